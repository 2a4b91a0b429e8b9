"""Refining a measured table on subnets timed end to end: recovers a per-cell effect, resumes, refits, bad input."""

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import FakeRuntime, fake_timing, run_latency_table

from nasjax.errors import NasjaxInputError
from nasjax.hardware import lut_builder as lb
from nasjax.hardware import lut_refine as lr
from nasjax.hardware import lut_validate as lv
from nasjax.metrics import latency_metrics
from nasjax.tables import Table

ROOT = Path(__file__).resolve().parent.parent


def _synthetic(P=6, K=4, seed=0):
    """A table, and a 'machine' on which every cell costs its own factor (0.7-1.4) of the table's value."""
    rng = np.random.default_rng(seed)
    vals = rng.uniform(0.5, 2.0, (P, K))
    table = Table(vals, None, "latency", "ms", 1.0, 1, "here", "toy", {"method": "test"})
    factor = rng.uniform(0.7, 1.4, (P, K))

    def truth(a):
        return 1.0 + (vals * factor)[np.arange(P)[None, :], a].sum(1)

    return table, truth, rng


def test_refinement_recovers_a_per_cell_effect():
    table, truth, rng = _synthetic()
    archs = rng.integers(0, 4, (120, 6))
    y = truth(archs) * (1 + 0.005 * rng.standard_normal(len(archs)))
    refined = lr.apply_refinement(table, archs, y, seed=3)
    test = np.random.default_rng(9).integers(0, 4, (300, 6))
    before = latency_metrics(truth(test), table.predict(test))
    after = latency_metrics(truth(test), refined.predict(test))
    assert after["mape_percent"] < 0.5 * before["mape_percent"]
    assert after["kendall_tau"] > before["kendall_tau"] + 0.05
    r = refined.provenance["refinement"]
    assert r["method"] == "fewshot_additive_ms" and r["n_subnets"] == 120 and r["seed"] == 3
    cv = r["cross_validated"]
    assert cv["folds"] == lr.REFINE_FOLDS and cv["refined"]["mape_percent"] < cv["unrefined"]["mape_percent"]
    assert r["in_sample"]["unrefined"] == pytest.approx(
        {k: round(float(v), 4) for k, v in latency_metrics(y, table.predict(archs)).items() if k in r["in_sample"][
            "unrefined"]}, abs=1e-4)
    assert "calibration" not in refined.provenance and refined.unit == "ms" and refined.device == "here"
    # the unrefined table comes back exactly; refining again starts from it, not from the refined cells
    back = lr.unrefined(refined)
    np.testing.assert_array_equal(back.values, table.values)
    assert back.base == table.base and "refinement" not in back.provenance
    twice = lr.apply_refinement(refined, archs, y, seed=3)
    np.testing.assert_allclose(twice.values, refined.values, rtol=1e-12)


def test_refinement_is_deterministic_and_checks_its_input():
    table, truth, rng = _synthetic(seed=1)
    archs = rng.integers(0, 4, (40, 6))
    y = truth(archs)
    a = lr.apply_refinement(table, archs, y)
    b = lr.apply_refinement(table, archs, y)
    np.testing.assert_array_equal(a.values, b.values)
    with pytest.raises(NasjaxInputError, match="measured_ms"):
        lr.apply_refinement(table, archs, np.where(np.arange(40) == 5, np.nan, y))
    with pytest.raises(NasjaxInputError, match="archs/measured_ms"):
        lr.apply_refinement(table, archs[:5], y[:5])
    with pytest.raises(NasjaxInputError, match="unit"):
        lr.apply_refinement(table.to_unit("s"), archs, y)
    damaged = Table(a.values, None, "latency", "ms", a.base, 1, "here", "toy",
                    {**a.provenance, "refinement": {**a.provenance["refinement"], "unrefined_values": [[1.0]]}})
    with pytest.raises(NasjaxInputError, match="unrefined_values"):
        lr.unrefined(damaged)


def _fake_timing(calls, **kw):
    return fake_timing(calls, anchor_drift=True, **kw)


class E2eRuntime(FakeRuntime):
    """The fake runtime with whole subnets far dearer than a part (their per-program overhead), so that the
    table it builds predicts positive latencies like a real one."""

    def prepare(self, piece, batch_size, resolution):
        call = super().prepare(piece, batch_size, resolution)
        if piece.name.startswith("subnet"):
            call.cost += 20.0
        return call


def test_refine_table_resumes_refits_and_is_held_out(tiny, tmp_path, monkeypatch):
    """A refinement interrupted after its first chunk continues without re-timing it and gives the one-shot
    result; the refit of a refined table re-applies the refinement; validation subnets are not its subnets."""
    monkeypatch.setattr(lb, "time_interleaved", _fake_timing)
    state, cfg, bs = tiny
    ls = lb.lut_space("mobilenetv3_layers", state, cfg, bs)
    built = lb.build_table(ls, E2eRuntime(), resolution=16, out=tmp_path / "t.json", progress=False)
    one = lr.refine_table(ls, E2eRuntime(), built, num_subnets=30, chunk_size=10, out=tmp_path / "one.json",
                          progress=False)
    out = tmp_path / "resumed.json"
    with pytest.raises(KeyboardInterrupt):  # the anchor and the first chunk's 10 subnets, then 5 of the second
        lr.refine_table(ls, E2eRuntime(fail_after=16), built, num_subnets=30, chunk_size=10, out=out, progress=False)
    assert not out.exists() and len(json.loads(lr.refine_partial_path(out).read_text())["chunks"]) == 1
    r2 = E2eRuntime()
    again = lr.refine_table(ls, r2, built, num_subnets=30, chunk_size=10, out=out, progress=False)
    assert r2.prepared == 1 + 20 and not lr.refine_partial_path(out).exists()
    np.testing.assert_array_equal(again.values, one.values)
    rec = Table.load(out).provenance["refinement"]
    assert rec["n_subnets"] == 30 and len(rec["archs"]) == 30 and len(rec["anchor_ms_per_chunk"]) == 3
    np.testing.assert_array_equal(rec["unrefined_values"], built.values)
    # a refit re-derives the unrefined cells from the stored times, then re-applies the refinement
    refit = lb.refit_table(Table.load(out), ls)
    np.testing.assert_allclose(refit.values, one.values, rtol=1e-12)
    assert refit.provenance["refinement"]["cross_validated"] == rec["cross_validated"]
    fitted = lv.fitted_subnets(one)
    assert len(fitted) == len(built.provenance["reference_archs"]) + len(built.provenance["context_archs"]) + 30
    assert lv.overlap_count(ls.space().random(1, 100), fitted) == 0
    assert lv.overlap_count(np.asarray(rec["archs"][:4]), fitted) == 4
    # another runtime or thread count than the table's is refused before any timing
    other = E2eRuntime()
    other.threads = 1
    with pytest.raises(NasjaxInputError, match="runtime"):
        lr.refine_table(ls, other, built, num_subnets=30, out=tmp_path / "x.json", progress=False)
    assert other.prepared == 0 and not (tmp_path / "x.json").exists()


@pytest.mark.parametrize("content,match", [(None, "refine"), ("[1, 2", "table"),
                                           ('{"format": "nasjax.table/1"}', "metric")])
def test_command_refine_bad_input_exit_2(tmp_path, content, match):
    src = tmp_path / "t.json"
    if content is not None:
        src.write_text(content)
    out = tmp_path / "r.json"
    p = run_latency_table(f"--refine={src}", f"--out={out}")
    assert p.returncode == 2, p.stderr[-2000:]
    last = [ln for ln in p.stderr.splitlines() if ln.strip()][-1]
    assert match in last and "Traceback" not in p.stderr
    assert not out.exists() and not lr.refine_partial_path(out).exists()


def test_command_refine_rejects_a_table_not_made_by_the_builder(tmp_path):
    src = tmp_path / "t.json"
    Table(np.ones((2, 2)), None, "latency", "ms", 0.0, 1, "x", "toy", {"method": "hand-made"}).save(src)
    p = run_latency_table(f"--refine={src}", f"--out={tmp_path / 'r.json'}")
    assert p.returncode == 2 and "build_table" in p.stderr.splitlines()[-1], p.stderr[-2000:]
    assert not (tmp_path / "r.json").exists()
