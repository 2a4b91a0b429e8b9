"""Supernet training: resume after an interruption continues identically; seeds; checkpoint errors."""

import shutil

import jax
import numpy as np
import pytest

from nasjax.data import load_dataset
from nasjax.errors import NasjaxInputError
from nasjax.models import SupernetConfig
from nasjax.train.checkpoint import CheckpointStore
from nasjax.train.trainer import TrainConfig, load_weights, save_weights, train_supernet

# a tiny elastic net (2 layers per stage, kernel 3, expand 3/6): compiles fast, still sandwich-trained
TINY = SupernetConfig(width_mult=0.1, num_classes=10, in_channels=1, ks_list=(3,), expand_list=(3, 6),
                      depth_list=(1, 2), dropout_rate=0.1)


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def _leaves(state):
    return [np.asarray(x) for x in jax.tree_util.tree_leaves((state.params, state.batch_stats))]


def test_resume_continues_identically(tmp_path, digits):
    tc = TrainConfig(steps=4, batch_size=16, checkpoint_every=2, warmup_steps=1, seed=3)
    straight = train_supernet(TINY, digits, tc, tmp_path / "a", progress=False, log_every=1)
    # "killed" after step 3: the last checkpoint is step 2, step 3 is redone on resume
    first = train_supernet(TINY, digits, tc, tmp_path / "b", progress=False, stop_after=3)
    assert first.step == 3 and CheckpointStore(tmp_path / "b").latest_step() == 2
    resumed = train_supernet(TINY, digits, tc, tmp_path / "b", progress=False, log_every=1)
    assert resumed.resumed_from == 2 and resumed.step == 4
    for a, b in zip(_leaves(straight.state), _leaves(resumed.state)):
        np.testing.assert_array_equal(a, b)
    # the uninterrupted and the resumed run logged the same losses for steps 3 and 4
    assert straight.history[2:] == resumed.history
    # training moved the weights and the loss is finite
    assert all(np.isfinite(h["loss_largest"]) for h in straight.history)
    # a different seed gives different weights
    cfg4 = TrainConfig(steps=1, batch_size=16, checkpoint_every=1, warmup_steps=0, seed=4)
    other = train_supernet(TINY, digits, cfg4, tmp_path / "c", progress=False)
    one = train_supernet(TINY, digits, TrainConfig(steps=1, batch_size=16, checkpoint_every=1, warmup_steps=0, seed=3),
                         tmp_path / "d", progress=False)
    assert any(not np.array_equal(a, b) for a, b in zip(_leaves(other.state), _leaves(one.state)))

    # a checkpoint of another configuration is refused
    with pytest.raises(NasjaxInputError, match="different run"):
        train_supernet(TINY, digits, TrainConfig(steps=4, batch_size=8, checkpoint_every=2, warmup_steps=1, seed=3),
                       tmp_path / "b", progress=False)

    # weights export round trip, then corruption -> clear error
    save_weights(straight.state, TINY, tmp_path / "w", {"note": "test"})
    st, cfg, meta = load_weights(tmp_path / "w")
    assert cfg == TINY and meta["note"] == "test"
    for a, b in zip(_leaves(straight.state), _leaves(st)):
        np.testing.assert_array_equal(a, b)
    data_files = [p for p in (tmp_path / "w").rglob("*") if p.is_file() and p.parent.name == "d"]
    assert data_files
    for p in data_files:
        raw = bytearray(p.read_bytes())
        raw[len(raw) // 2] ^= 0xFF
        p.write_bytes(bytes(raw))
    with pytest.raises(NasjaxInputError, match="corrupted"):
        load_weights(tmp_path / "w")
    shutil.rmtree(tmp_path / "w" / "0" / "state")
    with pytest.raises(NasjaxInputError, match="checkpoint"):
        load_weights(tmp_path / "w")


def test_train_config_validation():
    with pytest.raises(NasjaxInputError, match="train.optimizer"):
        TrainConfig(optimizer="rmsprop")
    with pytest.raises(NasjaxInputError, match="train.steps"):
        TrainConfig(steps=0)
