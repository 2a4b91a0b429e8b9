"""BINAS's one-shot training with the trainer (heaviest first, then multipath + in-place distillation):
a killed run resumes bit-identically (a tiny BINAS-structured supernet)."""

import jax
import numpy as np
import pytest

from nasjax.data import load_dataset
from nasjax.models.binas import binas_supernet_config
from nasjax.spaces.binas import BinasStructure, LayerConfig
from nasjax.train.checkpoint import CheckpointStore
from nasjax.train.trainer import TrainConfig, train_supernet

# five stages, depth 1-2, two configurations per layer (SE off / on): the BINAS structure in miniature
TINY = binas_supernet_config(
    BinasStructure(depths=(1, 2), configs=(LayerConfig(3, 3, 0.0), LayerConfig(3, 3, 0.25))).to_dict(),
    num_classes=10, in_channels=1, width_mult=0.1, dropout_rate=0.0)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def _leaves(state):
    return [np.asarray(x) for x in jax.tree_util.tree_leaves((state.params, state.batch_stats))]


def test_multipath_training_resumes_identically(tmp_path, digits):
    tc = TrainConfig(steps=4, batch_size=16, checkpoint_every=2, warmup_steps=1, seed=3, sampling="multipath",
                     heaviest_steps=1, num_random=1, optimizer="adamw", learning_rate=1e-3)
    straight = train_supernet(TINY, digits, tc, tmp_path / "a", progress=False, log_every=1)
    first = train_supernet(TINY, digits, tc, tmp_path / "b", progress=False, stop_after=3)
    assert first.step == 3 and CheckpointStore(tmp_path / "b").latest_step() == 2
    resumed = train_supernet(TINY, digits, tc, tmp_path / "b", progress=False, log_every=1)
    assert resumed.resumed_from == 2 and resumed.step == 4
    for a, b in zip(_leaves(straight.state), _leaves(resumed.state)):
        np.testing.assert_array_equal(a, b)
    assert straight.history[2:] == resumed.history
    # step 1 trained the heaviest network alone; later steps add the multipath student
    assert straight.history[0]["loss_smallest"] == straight.history[0]["loss_largest"]
    assert straight.history[1]["loss_smallest"] != straight.history[1]["loss_largest"]
