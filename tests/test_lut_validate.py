"""Validation of a latency table on synthetic timings: metrics, held-out correction, calibration, CSV rows."""

import numpy as np
import pytest

from nasjax.errors import NasjaxInputError
from nasjax.hardware import lut_validate as lv
from nasjax.metrics import latency_metrics


def test_metrics_on_synthetic_timings():
    rng = np.random.default_rng(0)
    measured = rng.uniform(5, 20, 200)
    exact = latency_metrics(measured, measured)
    assert exact["mape_percent"] == 0 and exact["kendall_tau"] == 1 and exact["within_10_percent"] == 1
    assert lv.meets_goals(exact)
    off = latency_metrics(measured, measured * 1.2)  # a table 20 % too slow everywhere
    assert off["mape_percent"] == pytest.approx(20) and off["within_10_percent"] == 0 and off["kendall_tau"] == 1
    assert not lv.meets_goals(off)


def test_linear_correction_recovers_affine_miss_on_held_out():
    rng = np.random.default_rng(1)
    pred = rng.uniform(5, 20, 100)
    meas = 1.3 * pred + 0.7 + rng.normal(0, 0.01, 100)
    idx = np.arange(100)
    c = lv.linear_correction(pred, meas, idx[0::2], idx[1::2])
    assert c["alpha"] == pytest.approx(1.3, abs=0.01) and c["beta"] == pytest.approx(0.7, abs=0.1)
    assert c["held_out"]["n"] == 50 and c["held_out"]["mape_percent"] < 0.5
    with pytest.raises(NasjaxInputError, match="disjoint"):
        lv.linear_correction(pred, meas, idx[:10], idx[5:20])


def test_calibrate_scale_recovers_known_factor():
    pred = np.array([2.0, 4.0, 8.0])
    assert lv.calibrate_scale(pred, 1.7 * pred) == pytest.approx(1.7)
    with pytest.raises(NasjaxInputError, match="predicted/measured"):
        lv.calibrate_scale(pred, np.array([1.0, -1.0, 2.0]))


def test_csv_rows_are_readable_by_the_sequence_reader(tmp_path):
    from nasjax.io import write_csv
    from nasjax.predictors.sequence_data import read_measured_csv

    archs = np.zeros((3, 25), int)
    archs[1, :20] = 8
    write_csv(tmp_path / "m.csv", ["arch", "resolution", "latency_ms"],
              lv.measurements_csv_rows(archs, 224, [1.5, 2.5, 3.5]))
    a, y = read_measured_csv(tmp_path / "m.csv")
    assert a.shape == (3, 26) and (a[:, 25] == 224).all() and np.allclose(y, [1.5, 2.5, 3.5])


def _layers_table():
    """A depth-gated toy table of the width-0.25 ``mobilenetv3_layers`` space (no weights) and that space."""
    from nasjax.hardware import lut_builder as lb
    from nasjax.models.mobilenetv3 import SupernetConfig
    from nasjax.tables import Table

    cfg = SupernetConfig(width_mult=0.25, num_classes=10, in_channels=1)
    vals = np.zeros((25, 9))
    vals[:20] = np.linspace(0.1, 0.9, 9)
    t = Table(vals, None, "latency", "ms", 1.0, 1, "x", "mobilenetv3_layers",
              {"model": "depth_gated", "space": "mobilenetv3_layers", "batch_size": 1, "resolution": 16,
               "clock": "wall"})
    return lb.lut_space("mobilenetv3_layers", None, cfg), t


def _slower_machine(t, factor: float, anchor_ms: float = 3.0):
    """A fake ``measure_archs``: every subnet ``factor`` times the table, the anchor at ``anchor_ms``."""
    def measure(lspace, runtime, archs, with_anchor=False, **kw):
        y = factor * lspace.predict(t, archs)
        return (y, anchor_ms) if with_anchor else y
    return measure


def test_validate_table_reports_calibrated_held_out(monkeypatch):
    ls, t = _layers_table()
    # a machine 1.5x slower than the table, no noise: the k-shot scale recovers it on the held-out half
    monkeypatch.setattr(lv, "measure_archs", _slower_machine(t, 1.5))
    rt = type("R", (), {"name": "fake", "threads": 0, "clock": "wall"})()
    r = lv.validate_table(ls, rt, t, num_subnets=20, progress=False)
    assert r["anchor_scaled"] is None and r["anchor_scaled_meets_goals"] is None  # the toy table keeps no anchor
    assert r["metrics"]["mape_percent"] == pytest.approx(100 / 3) and not r["meets_goals"]
    assert r["calibrated"]["scale"] == pytest.approx(1.5) and r["calibrated"]["held_out"]["mape_percent"] < 1e-9
    assert r["calibrated_meets_goals"] and r["corrected_meets_goals"]
    rep = r["repeatability"]  # the fake machine repeats itself exactly
    assert rep["n"] == lv.REPEAT_SUBNETS if lv.REPEAT_SUBNETS <= 20 else rep["n"] == 20
    assert rep["kendall_tau"] == pytest.approx(1.0) and rep["mape_percent"] == pytest.approx(0.0)


def test_anchor_scaled_moves_the_table_to_the_speed_of_the_run(monkeypatch):
    from dataclasses import replace

    ls, t = _layers_table()
    anchor = [int(x) for x in ls.anchor_arch()]
    # the table's level was set with the anchor at 2 ms (the median over chunks); it now runs 3 ms: 1.5x slower
    t = replace(t, provenance=dict(t.provenance, anchor_arch=anchor,
                                   anchor_ms_per_chunk={"a": 1.9, "b": 2.0, "c": 2.4}))
    assert lv.table_anchor_ms(t, anchor) == pytest.approx(2.0)
    monkeypatch.setattr(lv, "measure_archs", _slower_machine(t, 1.5, anchor_ms=3.0))
    rt = type("R", (), {"name": "fake", "threads": 0, "clock": "wall"})()
    r = lv.validate_table(ls, rt, t, num_subnets=20, progress=False, repeat_subnets=0)
    a = r["anchor_scaled"]
    assert a["speed_ratio"] == pytest.approx(1.5) and a["metrics"]["n"] == 20  # every subnet, none fitted on
    assert a["metrics"]["mape_percent"] < 1e-9 and r["anchor_scaled_meets_goals"] and not r["meets_goals"]
    # a refinement's anchors set the level of a refined table
    refined = replace(t, provenance=dict(t.provenance, refinement={"anchor_ms_per_chunk": {"x": 3.0}}))
    assert lv.table_anchor_ms(refined, anchor) == pytest.approx(3.0)
    # another anchor subnet than the one timed: no speed ratio
    other = list(anchor)
    other[0] = (other[0] + 1) % 9
    assert lv.table_anchor_ms(t, other) is None
    assert lv.anchor_scaled(t, other, 3.0, [1.0], [1.5]) is None


def test_repeatability_separates_speed_change_from_noise():
    a = np.linspace(5, 10, 30)
    b = 1.1 * a
    rep = lv.repeatability(a, b)
    assert rep["speed_ratio"] == pytest.approx(1.1) and rep["mape_percent"] == pytest.approx(10.0)
    assert rep["mape_after_speed_percent"] == pytest.approx(0.0, abs=1e-9) and rep["kendall_tau"] == pytest.approx(1.0)


def test_between_runs_compares_two_days_on_the_same_subnets():
    archs = np.arange(60).reshape(10, 6) % 5
    truth = np.linspace(5, 10, 10)
    day1 = truth * np.where(np.arange(10) % 2, 1.08, 0.92)  # noise that swaps neighbours
    day2 = 0.9 * truth * np.where(np.arange(10) % 2, 0.92, 1.08)  # the machine 10 % faster, other noise
    r = lv.between_runs({"archs": archs.tolist(), "measured_ms": day1.tolist(), "date": "d1"}, archs, truth, day2)
    assert r["speed_ratio"] == pytest.approx(np.median(day2 / day1)) and r["previous_date"] == "d1"
    assert r["kendall_tau"] < 1.0  # each day's noise reorders neighbours differently
    assert r["table_tau_vs_both"] == pytest.approx(1.0)  # the noise cancels in the geometric mean
    assert r["n"] == 10
    with pytest.raises(NasjaxInputError, match="same 10 subnets"):
        lv.between_runs({"archs": archs[::-1].tolist(), "measured_ms": day1.tolist()}, archs, truth, day2)
    with pytest.raises(NasjaxInputError, match="measured_ms"):
        lv.between_runs({"archs": archs.tolist()}, archs, truth, day2)
    with pytest.raises(NasjaxInputError, match="finite latencies"):
        lv.between_runs({"archs": archs.tolist(), "measured_ms": [float("nan")] * 10}, archs, truth, day2)


def test_calibrate_table_recovers_a_known_slowdown_and_scales_the_whole_table(monkeypatch):
    ls, t = _layers_table()
    seen = {}

    def slower(lspace, runtime, archs, **kw):  # the machine now runs 1.25x slower than at the table's build
        seen.update(kw)
        return 1.25 * lspace.predict(t, archs)

    monkeypatch.setattr(lv, "measure_archs", slower)
    refs = ls.space().random(0, 4)
    cal = lv.calibrate_table(ls, object(), t, refs, batch_size=1, resolution=16, statistic="q10")
    assert cal["scale"] == pytest.approx(1.25) and cal["timing_rounds"] == 2
    assert seen["statistic"] == "q10" and seen["batch_size"] == 1 and seen["resolution"] == 16
    others = ls.space().random(1, 10)  # every subnet, not only the references, moves with the scale
    np.testing.assert_allclose(ls.predict(cal["table"], others), 1.25 * ls.predict(t, others))
    assert cal["table"].provenance["calibration_scale"] == pytest.approx(1.25)
    assert "calibration_scale" not in t.provenance
    with pytest.raises(NasjaxInputError, match="calibration scale"):
        lv.scaled_table(t, float("nan"))


def test_one_thread_xla_table_must_have_been_timed_on_one_core():
    from types import SimpleNamespace

    from nasjax.tables import Table

    def table(**prov):
        return Table(np.ones((2, 2)), None, "latency", "ms", provenance={"runtime": "xla", "threads": 1, **prov})

    one = SimpleNamespace(name="xla", threads=1)
    lv.check_one_thread_xla(table(cpu_affinity=[1]), one)  # pinned: accepted
    for prov in ({}, {"cpu_affinity": [0, 1]}):  # the flags alone: one XLA thread per core
        with pytest.raises(NasjaxInputError, match=r"cpu_affinity.*one core.*rebuild"):
            lv.check_one_thread_xla(table(**prov), one)
    lv.check_one_thread_xla(table(), SimpleNamespace(name="xla", threads=0))  # all threads: no pinning
    lv.check_one_thread_xla(table(), SimpleNamespace(name="onnxruntime", threads=1))
