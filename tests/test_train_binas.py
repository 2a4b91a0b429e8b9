"""BINAS's one-shot training with the trainer (heaviest first, then multipath + in-place distillation):
a killed run resumes bit-identically (a tiny BINAS-structured supernet)."""

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

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


TC = TrainConfig(steps=4, batch_size=16, checkpoint_every=2, warmup_steps=1, seed=3, sampling="multipath",
                 heaviest_steps=1, num_random=1, optimizer="adamw", learning_rate=1e-3)


@pytest.fixture(scope="module")
def straight(digits, tmp_path_factory):
    return train_supernet(TINY, digits, TC, tmp_path_factory.mktemp("straight"), progress=False, log_every=1)


def test_multipath_training_resumes_identically(tmp_path, digits, straight):
    tc = TC
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


KILLED_RUN = textwrap.dedent("""
    import os, signal, sys
    sys.path.insert(0, sys.argv[2])
    from nasjax.data import load_dataset
    from nasjax.train import checkpoint
    from nasjax.train.trainer import train_supernet
    from tests.test_train_binas import TC, TINY

    save = checkpoint.CheckpointStore.save

    def save_then_die(self, step, state, meta):
        save(self, step, state, meta)
        if step == 2:  # killed outright right after the first checkpoint: no cleanup, no exit handlers
            os.kill(os.getpid(), signal.SIGKILL)

    checkpoint.CheckpointStore.save = save_then_die
    train_supernet(TINY, load_dataset("digits"), TC, sys.argv[1], progress=False)
""")


def test_a_sigkilled_run_resumes_bit_identically(tmp_path, digits, straight):
    root = Path(__file__).resolve().parents[1]
    p = subprocess.run([sys.executable, "-c", KILLED_RUN, str(tmp_path / "k"), str(root)], capture_output=True,
                       text=True, timeout=600, env={**os.environ, "JAX_PLATFORMS": "cpu"})
    assert p.returncode == -signal.SIGKILL, p.stderr[-3000:]
    assert CheckpointStore(tmp_path / "k").latest_step() == 2
    resumed = train_supernet(TINY, digits, TC, tmp_path / "k", progress=False, log_every=1)
    assert resumed.resumed_from == 2 and resumed.step == 4
    for a, b in zip(_leaves(straight.state), _leaves(resumed.state)):
        np.testing.assert_array_equal(a, b)
    assert straight.history[2:] == resumed.history
