"""Contribution tables computed by the supernet: MathNAS's definition, exact at the base and at every
single-position change, batched evaluation equal to one-at-a-time evaluation."""

import numpy as np
import pytest
from flax import nnx

from nasjax.data import load_dataset
from nasjax.errors import NasjaxInputError
from nasjax.models import OFAMobileNetV3, SupernetConfig, split_model, stack_subnets
from nasjax.profiling.contributions import (
    eval_data,
    evaluate_archs,
    nasjax_block_set,
    one_change_archs,
    one_change_table,
)
from nasjax.spaces.base import product_space
from nasjax.tables import Table
from nasjax.train.evaluate import evaluate_subnets_loop

TINY = SupernetConfig(width_mult=0.1, num_classes=10, in_channels=1, ks_list=(3,), expand_list=(3, 6),
                      depth_list=(1, 2))
# 10 layers (expand 3 | 6) then 5 stage depths (1 | 2)
SPACE = product_space("tiny", [f"layer {i}" for i in range(10)] + [f"depth {s}" for s in range(5)],
                      [["e3", "e6"]] * 10 + [["d1", "d2"]] * 5)


def to_subnets(archs):
    subs = [{"ks": np.full(10, 3), "e": np.where(a[:10] == 1, 6, 3), "d": a[10:] + 1} for a in np.atleast_2d(archs)]
    return stack_subnets(subs)


def test_block_set_and_one_change_archs():
    bs = nasjax_block_set()
    assert bs.num_choices == [5] * 5
    assert bs.configs[0][0] == {"d": 2, "e": [3] * 4, "ks": [3] * 4}
    assert bs.configs[4][4] == {"d": 4, "e": [6] * 4, "ks": [7] * 4}
    archs, cells = one_change_archs([3, 2], [2, 1])
    assert archs.tolist() == [[2, 1], [0, 1], [1, 1], [2, 0]] and cells == [(0, 0), (0, 1), (1, 0)]


def test_contribution_table_is_exact_at_single_changes(tmp_path):
    ds = load_dataset("digits")
    state = split_model(OFAMobileNetV3(TINY, rngs=nnx.Rngs(0)))
    data, calib = eval_data(ds, eval_limit=180, eval_batch=90, calib_size=64, calib_batch=32)
    calls = []

    def accuracy_fn(archs):
        calls.append(len(archs))
        return evaluate_archs(state, to_subnets(archs), data, calib, chunk_size=8, progress=False)

    base = np.ones(15, np.int64)
    t = one_change_table(accuracy_fn, SPACE, base, provenance={"dataset": "digits"})
    assert calls == [16]  # base + 15 single changes, in one batched call
    assert (t.metric, t.unit, t.sign, t.space) == ("accuracy", "%", -1, "tiny")
    assert np.all(t.values[:, 1] == 0)  # the base choice contributes nothing
    assert t.predict(base) == pytest.approx(t.base) and t.provenance["base_accuracy_percent"] == t.base
    # independent check: single-subnet (non-vmapped) evaluation of a few single changes
    checks = []
    for i in (0, 9, 10, 14):
        a = base.copy()
        a[i] = 0
        checks.append(a)
    loop = evaluate_subnets_loop(state, to_subnets(np.stack(checks)), data, calib)
    np.testing.assert_allclose(t.predict(np.stack(checks)), loop, atol=1e-9)
    # saved with provenance, loads back equal
    t.save(tmp_path / "acc.json")
    t2 = Table.load(tmp_path / "acc.json")
    np.testing.assert_array_equal(t2.values, t.values)
    assert t2.provenance["dataset"] == "digits"
    with pytest.raises(NasjaxInputError, match="accuracy_fn output"):
        one_change_table(lambda a: np.zeros(3), SPACE, base)
