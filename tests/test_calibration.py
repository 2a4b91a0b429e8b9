"""Calibration of a latency table to a new target from k reference measurements."""

import numpy as np
import pytest

from nasjax import metrics
from nasjax.constraints import Constraint
from nasjax.errors import NasjaxInputError
from nasjax.hardware.calibration import (
    CalibratedTable,
    TableSource,
    calibrate,
    design_from_candidates,
    design_references,
    fit_ofa_layer_model,
)
from nasjax.hardware.calibration.ofa_fit import live_layers
from nasjax.spaces.mobilenetv3 import mobilenetv3_layers_space, mobilenetv3_space
from nasjax.tables import Table


def _table(seed=0, space=None):
    space = space or mobilenetv3_space()
    rng = np.random.default_rng(seed)
    vals = rng.uniform(0.5, 3.0, space.mask.shape) * space.mask
    return Table(vals, space.mask, "latency", "ms", 2.0, 1, "source", space.name), space


def _device(table, stage_scale, base_scale, noise=0.0, seed=1):
    """A synthetic target: every stage's cells scaled, the fixed part scaled, relative noise."""
    rng = np.random.default_rng(seed)

    def measure(archs):
        a = np.atleast_2d(archs)
        per = table.coef[np.arange(a.shape[1])[None, :], a] * np.asarray(stage_scale)[None, :]
        y = table.base * base_scale + per.sum(1)
        return y * (1 + noise * rng.standard_normal(len(y)))

    return measure


def test_k0_returns_the_table_unchanged():
    t, space = _table()
    c = calibrate(t, [], [])
    assert c.method == "unchanged" and c.k == 0 and c.table is t
    a = space.random(0, 20)
    np.testing.assert_allclose(c.predict(a), t.predict(a))


def test_recovers_a_global_scaling():
    t, space = _table()
    measure = _device(t, np.full(5, 1.7), 1.7)
    refs = design_references(space, 10, seed=0, table=t)
    for k in (1, 5, 10):
        c = calibrate(t, refs[:k], measure(refs[:k]))
        test = space.random(3, 200)
        assert metrics.mape(measure(test), c.predict(test)) < 0.5, (k, c.method)
    c = calibrate(t, refs, measure(refs), method="global_scale")
    np.testing.assert_allclose(c.multipliers, 1.7, rtol=1e-9)


def test_recovers_per_stage_scalings_and_is_a_table():
    t, space = _table(1)
    scales = np.array([0.6, 1.8, 1.0, 2.5, 0.8])
    measure = _device(t, scales, 1.3, noise=0.002)
    refs = design_references(space, 10, seed=0, table=t)
    c = calibrate(t, refs, measure(refs), device="target")
    test = space.random(5, 300)
    y = measure(test)
    assert c.method in ("stage_scales", "fewshot_additive_ms"), c.loo
    assert metrics.mape(y, c.predict(test)) < 1.5
    assert metrics.kendall(y, c.predict(test)) > 0.95
    # the global scale alone cannot do it
    g = calibrate(t, refs, measure(refs), method="global_scale")
    assert metrics.mape(y, g.predict(test)) > 2 * metrics.mape(y, c.predict(test))
    tab = c.table
    assert isinstance(tab, Table) and tab.device == "target" and tab.unit == "ms"
    np.testing.assert_allclose(tab.predict(test), c.predict(test), rtol=1e-9)
    assert Constraint(tab, 20.0, "ms").linear
    assert Constraint(c, 20.0, "ms").satisfied(test).shape == (300,)  # the calibrated model itself
    assert tab.provenance["calibration"]["method"] == c.method


def test_layer_view_groups_follow_stages():
    space = mobilenetv3_layers_space()
    t, _ = _table(2, space)
    scales = np.array([1.0] * 4 + [2.0] * 4 + [1.0] * 4 + [0.5] * 4 + [1.0] * 4 + [1.0, 2.0, 1.0, 0.5, 1.0])
    measure = _device(t, scales, 1.0)
    refs = design_references(space, 10, seed=1, table=t)
    c = calibrate(t, refs, measure(refs), method="stage_scales")
    test = space.random(2, 200)
    assert metrics.mape(measure(test), c.predict(test)) < 1.0


def test_stage_kernel_scales_recover_a_change_per_stage_and_kernel_size():
    space = mobilenetv3_layers_space()
    t, _ = _table(3, space)
    src = TableSource(t)
    kg = src.kernel_groups
    assert kg is not None and kg[0] == 0 and kg.max() == 20  # the fixed part, 5 stages x (depth, k3, k5, k7)
    # every kernel size of a stage in one group: the cells of position 0 (stage 1 layer 1), choices k3e3 k3e4
    assert kg[1] == kg[2] and kg[1] != kg[1 + 3]
    g_scale = np.r_[1.0, np.random.default_rng(0).uniform(0.5, 2.0, int(kg.max()))]
    measure = lambda a: src.cells(a) @ g_scale[kg]  # noqa: E731
    refs, test = space.random(7, 40), space.random(8, 300)
    y = measure(test)
    c = calibrate(t, refs, measure(refs), method="stage_kernel_scales")
    assert metrics.mape(y, c.predict(test)) < 0.5 and metrics.kendall(y, c.predict(test)) > 0.99
    s = calibrate(t, refs, measure(refs), method="stage_scales")
    assert metrics.kendall(y, s.predict(test)) < metrics.kendall(y, c.predict(test)) - 0.03
    # only by name: "auto" never considers it
    assert not any(k.startswith("stage_kernel_scales") for k in calibrate(t, refs, measure(refs)).loo)
    # a design for it: distinct and nested; 24 designed references recover the change
    d = design_references(space, 24, seed=2, table=t, method="stage_kernel_scales")
    assert len(np.unique(d, axis=0)) == 24
    assert np.array_equal(design_references(space, 12, seed=2, table=t, method="stage_kernel_scales"), d[:12])
    c24 = calibrate(t, d, measure(d), method="stage_kernel_scales")
    assert metrics.kendall(y, c24.predict(test)) > 0.97
    t5, space5 = _table()  # the stage-block view: no choice names a kernel size
    assert TableSource(t5).kernel_groups is None
    with pytest.raises(NasjaxInputError, match="kernel size"):
        calibrate(t5, space5.random(0, 3), [1.0, 2.0, 3.0], method="stage_kernel_scales")
    with pytest.raises(NasjaxInputError, match="kernel size"):
        design_references(space5, 3, seed=0, table=t5, method="stage_kernel_scales")
    with pytest.raises(NasjaxInputError, match="method"):
        design_references(space, 3, seed=0, table=t, method="global_scale")


def test_design_is_deterministic_and_distinct():
    t, space = _table()
    a = design_references(space, 10, seed=4, table=t)
    b = design_references(space, 10, seed=4, table=t)
    assert a.shape == (10, 5) and np.array_equal(a, b)
    assert len(np.unique(a, axis=0)) == 10
    assert np.array_equal(design_references(space, 5, seed=4, table=t), a[:5])
    one_hot = design_references(space, 6, seed=0)
    assert one_hot.shape == (6, 5)
    idx = design_from_candidates(t, space.random(0, 50), 7)
    assert len(set(idx.tolist())) == 7


@pytest.mark.parametrize("refs_ms, message", [
    ([1.0, float("nan"), 2.0], "measured_ms[1]"),
    ([1.0, 2.0], "ref_archs"),
    ([1.0, -2.0, 2.0], "measured_ms[1]"),
])
def test_bad_measurements(refs_ms, message):
    t, space = _table()
    with pytest.raises(NasjaxInputError, match=message.replace("[", r"\[")):
        calibrate(t, space.random(0, 3), refs_ms)


def test_bad_table_unit_method_and_arch():
    t, space = _table()
    with pytest.raises(NasjaxInputError, match="'s'.*'ms'"):
        calibrate(t.to_unit("s"), space.random(0, 3), [1.0, 2.0, 3.0])
    with pytest.raises(NasjaxInputError, match="method"):
        calibrate(t, space.random(0, 3), [1.0, 2.0, 3.0], method="magic")
    with pytest.raises(NasjaxInputError, match="arch"):
        calibrate(t, np.full((3, 5), 9), [1.0, 2.0, 3.0])
    with pytest.raises(NasjaxInputError, match="kind"):
        calibrate(t, space.random(0, 3), [1.0, 2.0, 3.0], method="kind_scales")
    with pytest.raises(NasjaxInputError, match="k"):
        design_references(space, -1, 0)


def _ofa_archs(n, seed):
    rng = np.random.default_rng(seed)
    ks = rng.choice([3, 5, 7], (n, 20))
    e = rng.choice([3, 4, 6], (n, 20))
    d = rng.choice([2, 3, 4], (n, 5))
    r = rng.choice(np.arange(128, 225, 4), (n, 1))
    return np.concatenate([ks, e, d, r], 1).astype(np.int64)


def test_ofa_layer_model_fits_an_additive_device_and_calibrates():
    rng = np.random.default_rng(0)
    w0, w1 = rng.uniform(0.05, 0.2, (20, 9)), rng.uniform(0.1, 0.5, (20, 9))

    def truth(archs, a0=1.0, a1=1.0):
        c, rho = live_layers(archs)
        rows, layers = np.nonzero(c >= 0)
        y = a0 * 1.0 + a1 * 2.0 * rho
        np.add.at(y, rows, a0 * w0[layers, c[rows, layers]] + a1 * w1[layers, c[rows, layers]] * rho[rows])
        return y

    train, test = _ofa_archs(1500, 1), _ofa_archs(300, 2)
    m = fit_ofa_layer_model(train, truth(train), ridge=1e-8)
    assert metrics.mape(truth(test), m.predict(test)) < 0.5
    assert m.cells(test).shape == (300, 362)
    # a target whose per-call part is 3x and compute part 0.5x: the kind scales recover it
    y = truth(test, 3.0, 0.5)
    idx = design_from_candidates(m, test, 10)
    c = calibrate(m, test[idx], y[idx])
    assert isinstance(c, CalibratedTable) and c.table is None
    rest = np.setdiff1d(np.arange(300), idx)
    assert metrics.mape(y[rest], c.predict(test[rest])) < 1.0, c.loo
    with pytest.raises(NasjaxInputError, match="archs"):
        m.predict(np.zeros((2, 45), np.int64))
