"""Latency-table builder: schema, units, provenance, resume == one shot, bad input (library and command)."""

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import FakeRuntime, fake_timing, run_latency_table

from nasjax.errors import NasjaxInputError
from nasjax.hardware import lut_builder as lb
from nasjax.hardware import runtimes as rt
from nasjax.tables import Table

ROOT = Path(__file__).resolve().parent.parent


def _fake_timing(calls, **kw):
    return fake_timing(calls, anchor_drift=True, **kw)


@pytest.mark.parametrize("space", ["mobilenetv3", "mobilenetv3_layers"])
def test_resume_equals_one_shot(tiny, tmp_path, monkeypatch, space):
    monkeypatch.setattr(lb, "time_interleaved", _fake_timing)
    state, cfg, bs = tiny
    ls = lb.lut_space(space, state, cfg, bs)
    one = lb.build_table(ls, FakeRuntime(), resolution=16, out=tmp_path / "one.json", progress=False)
    out = tmp_path / "resumed.json"
    with pytest.raises(KeyboardInterrupt):
        lb.build_table(ls, FakeRuntime(fail_after=12), resolution=16, out=out, progress=False)
    assert not out.exists() and lb.partial_path(out).exists()
    done = json.loads(lb.partial_path(out).read_text())["chunks"]
    assert 0 < len(done) < len(ls.cell_chunks()) + 2
    r2 = FakeRuntime()
    again = lb.build_table(ls, r2, resolution=16, out=out, progress=False)
    total = (sum(len(c.pieces) for c in ls.cell_chunks()) + 2 + len(ls.reference_archs())
             + len(ls.context_archs(lb.CONTEXT_SUBNETS)) + 1)  # + the anchor
    assert r2.prepared == total - sum(len(c["keys"]) for c in done.values())  # finished chunks were not re-timed
    assert not lb.partial_path(out).exists()
    np.testing.assert_array_equal(one.values, again.values)
    assert one.base == again.base
    np.testing.assert_array_equal(Table.load(out).values, again.values)


@pytest.mark.parametrize("space", ["mobilenetv3", "mobilenetv3_layers"])
def test_in_network_fit_recovers_a_known_context_effect(tiny, space):
    """End-to-end times that are alpha * (table sum) + gamma_io * (boundary elements) + gamma_w * (active
    parameters) + beta, plus a little noise: the leave-one-out selection keeps exactly those two features,
    the fit finds the numbers and the shipped (rewritten) table predicts the noiseless times."""
    state, cfg, bs = tiny
    ls = lb.lut_space(space, state, cfg, bs)
    sp = ls.space()
    rng = np.random.default_rng(0)
    mask = sp.mask
    vals = np.where(mask, rng.uniform(0.1, 1.0, mask.shape), 0.0)
    if space == "mobilenetv3_layers":
        vals[20:] = 0.0  # depth positions have no program
    archs = np.concatenate([ls.reference_archs(), ls.context_archs(40)])
    feats = lb._cell_features(ls, mask, 256, 16)
    assert set(feats) == {"programs", "io_melements", "params_m"}
    n_prog = 20 if space == "mobilenetv3_layers" else 5
    assert feats["params_m"][:n_prog].min() > 0 and feats["io_melements"][:n_prog].min() > 0
    assert np.all(feats["programs"][:n_prog] == 1) and np.all(feats["programs"][n_prog:] == 0)
    rows, act = np.arange(sp.num_positions)[None, :], ls.active(archs)

    def total(f):
        return (f[rows, archs] * act).sum(1)

    lat0 = 0.7 + total(vals)
    truth = 0.4 + 1.15 * lat0 - 0.8 * total(feats["io_melements"]) + 0.25 * total(feats["params_m"])
    measured = truth * (1 + 1e-4 * rng.standard_normal(len(truth)))
    fit = lb._in_network_fit(ls, vals, 0.7, feats, archs, measured)
    if space == "mobilenetv3_layers":  # depth varies, so io and params are separable from the intercept
        assert set(fit["terms"]) == {"io_melements", "params_m"}
        assert fit["terms"]["io_melements"] == pytest.approx(-0.8, rel=0.05)
    assert fit["alpha"] == pytest.approx(1.15, rel=1e-2) and fit["terms"]["params_m"] == pytest.approx(0.25, rel=0.05)
    assert fit["loo_mape_percent"] < 0.05 < fit["selection"]["loo_mape_percent"]["affine"]
    cells, base = lb._apply_in_network_fit(vals, 0.7, mask, feats, fit)
    table = Table(cells, mask, "latency", "ms", base, 1, "cpu-test", space, {"model": ls.model})
    np.testing.assert_allclose(ls.predict(table, archs), truth, rtol=1e-3)
    assert fit["in_sample_fitted"]["mape_percent"] < 0.05 < fit["in_sample_plain"]["mape_percent"]
    assert lb._in_network_fit(ls, vals, 0.7, feats, archs[:lb.MIN_FIT_SUBNETS - 1], measured[:7]) is None


def test_loo_mape_equals_explicit_refits():
    rng = np.random.default_rng(1)
    X = np.column_stack([np.ones(15), rng.uniform(1, 2, 15), rng.uniform(0, 1, 15)])
    y = X @ [0.5, 2.0, -0.3] + 0.05 * rng.standard_normal(15)
    errs = []
    for i in range(15):
        keep = np.arange(15) != i
        c, *_ = np.linalg.lstsq(X[keep], y[keep], rcond=None)
        errs.append(abs(X[i] @ c - y[i]) / abs(y[i]))
    assert lb._loo_mape(X, y) == pytest.approx(100 * np.mean(errs), rel=1e-9)


def test_refit_reproduces_the_build(tiny, tmp_path, monkeypatch):
    """A table re-derived from its stored medians equals the one the build wrote."""
    monkeypatch.setattr(lb, "time_interleaved", _fake_timing)
    state, cfg, bs = tiny
    ls = lb.lut_space("mobilenetv3_layers", state, cfg, bs)
    built = lb.build_table(ls, FakeRuntime(), resolution=16, out=tmp_path / "t.json", progress=False)
    again = lb.refit_table(Table.load(tmp_path / "t.json"), ls, out=tmp_path / "r.json")
    np.testing.assert_allclose(again.values, built.values, rtol=1e-12)
    assert again.base == pytest.approx(built.base)
    assert "refit" in Table.load(tmp_path / "r.json").provenance
    with pytest.raises(NasjaxInputError, match="median_ms"):
        lb.refit_table(Table(built.values, built.mask, "latency", "ms", 0.0, 1, "x", ls.name, {}), ls)


def test_refit_to_median_equals_a_median_build(tiny, tmp_path, monkeypatch):
    """A table built with a low quantile refits to the table a median build gives from the same rounds."""
    def low_quantile(calls, *, statistic="median", **kw):
        t = fake_timing(calls, anchor_drift=True, **kw)
        est = None if statistic == "median" else 0.9 * t.medians_ms * (1.0 + 0.05 * np.arange(len(calls)) % 3)
        return rt.Timing(t.medians_ms, t.spread_ms, t.raw_ms, t.warmup, t.repeats, est, statistic)

    monkeypatch.setattr(lb, "time_interleaved", low_quantile)
    state, cfg, bs = tiny
    ls = lb.lut_space("mobilenetv3_layers", state, cfg, bs)
    q10 = lb.build_table(ls, FakeRuntime(), resolution=16, out=tmp_path / "q.json", progress=False, statistic="q10")
    med = lb.build_table(ls, FakeRuntime(), resolution=16, out=tmp_path / "m.json", progress=False)
    assert not np.allclose(q10.values, med.values)
    again = lb.refit_table(Table.load(tmp_path / "q.json"), ls, out=tmp_path / "r.json", statistic="median")
    np.testing.assert_allclose(again.values, med.values, rtol=1e-12)
    assert again.base == pytest.approx(med.base)
    p = Table.load(tmp_path / "r.json").provenance
    assert p["statistic"] == "median" and p["time_ms"] == p["median_ms"] and "the median of" in p["protocol"]
    with pytest.raises(NasjaxInputError, match="statistic"):
        lb.refit_table(Table.load(tmp_path / "q.json"), ls, statistic="min")


def test_schema_units_provenance_ort(tiny, tmp_path):
    state, cfg, bs = tiny
    ls = lb.lut_space("mobilenetv3", state, cfg, bs)
    r = rt.get_runtime("onnxruntime", threads=1)
    out = lb.table_path(tmp_path, "mobilenetv3", r.name, r.threads, 16, 2)
    assert out.name.endswith("-onnxruntime-16px-b2-t1.json") and out.parent.name == "mobilenetv3"
    t = lb.build_table(ls, r, batch_size=2, resolution=16, warmup=1, repeats=3, out=out, progress=False)
    d = json.loads(out.read_text())
    assert d["format"] == "nasjax.table/1" and d["unit"] == "ms" and d["metric"] == "latency"
    assert d["space"] == "mobilenetv3" and d["device"] == rt.device_name()
    p = d["provenance"]
    for k in ("cpu_model", "cpu_count", "threads", "onnxruntime", "onnx", "numpy", "date", "command", "warmup",
              "repeats", "batch_size", "resolution", "runtime", "median_ms", "spread_ms", "unit", "formula",
              "per_program_overhead_ms_o", "load_average", "in_network_fit", "raw_values", "context_archs"):
        assert k in p, k
    fit = p["in_network_fit"]
    assert fit["n_subnets"] == len(ls.reference_archs()) + lb.CONTEXT_SUBNETS == len(p["context_archs"]) + 6
    # The fit is least squares in ms, chosen by leave-one-out MAPE (its in-sample MAPE may exceed the plain sum's
    # on a noisy tiny table): the chosen term set is within the tolerance of the best, with a positive alpha.
    loo = fit["selection"]["loo_mape_percent"]
    assert fit["alpha"] > 0 and fit["loo_mape_percent"] <= min(loo.values()) * (1 + lb.LOO_TOLERANCE) + 1e-3
    assert ("+".join(sorted(fit["terms"])) or "affine") in loo
    assert p["threads"] == 1 and p["batch_size"] == 2 and p["resolution"] == 16 and p["repeats"] == 3
    assert set(p["median_ms"]) == set(p["spread_ms"]) == set(p["time_ms"]) and "stem" in p["median_ms"]
    assert p["statistic"] == rt.default_statistic("onnxruntime") == "q10"
    assert all(p["time_ms"][k] <= p["median_ms"][k] for k in p["time_ms"])
    loaded = Table.load(out)
    assert loaded.shape == (5, 5) and np.all(np.isfinite(loaded.values))
    assert np.allclose(ls.predict(loaded, [[0] * 5, [4] * 5]), t.predict(np.array([[0] * 5, [4] * 5])))


def test_layer_view_is_depth_gated(tiny):
    state, cfg, bs = tiny
    ls = lb.lut_space("mobilenetv3_layers", state, cfg, bs)
    vals = np.zeros((25, 9))
    vals[:20, :] = 1.0
    t = Table(vals, np.ones((25, 9), bool), "latency", "ms", 0.5, 1, "x", "mobilenetv3_layers",
              {"model": "depth_gated"})
    a = np.zeros((2, 25), int)
    a[1, 20:] = 2  # depth 4 everywhere; a[0]: depth 2 everywhere
    np.testing.assert_allclose(ls.predict(t, a), [0.5 + 10, 0.5 + 20])
    np.testing.assert_allclose(lb.predict_latency(t, a, cfg), [10.5, 20.5])
    assert len(ls.parts(a[0])) == 2 + 10 and ls.cell_key(1, 3) == ls.cell_key(3, 3) != ls.cell_key(0, 3)


def test_bad_input(tiny, tmp_path):
    state, cfg, bs = tiny
    ls = lb.lut_space("mobilenetv3", state, cfg, bs)
    with pytest.raises(NasjaxInputError, match="resolution"):
        lb.build_table(ls, FakeRuntime(), resolution=4, progress=False)
    with pytest.raises(NasjaxInputError, match="latency-table space"):
        lb.lut_space("resnet", state, cfg, bs)
    with pytest.raises(NasjaxInputError, match="block_set"):
        lb.lut_space("mobilenetv3", state, cfg, None)
    out = tmp_path / "t.json"
    lb.partial_path(out).write_text("{not json")
    with pytest.raises(NasjaxInputError, match="partial"):
        lb.build_table(ls, FakeRuntime(), resolution=16, out=out, progress=False)
    lb.partial_path(out).write_text(json.dumps({"format": lb.PARTIAL_FORMAT, "settings": {}, "chunks": {}}))
    with pytest.raises(NasjaxInputError, match="settings"):
        lb.build_table(ls, FakeRuntime(), resolution=16, out=out, progress=False)
    assert not out.exists()


def test_table_in_seconds_against_budget_in_ms():
    from nasjax.constraints import Constraint

    t = Table(np.ones((2, 2)), None, "latency", "s", 0.0, 1, "x", "toy")
    with pytest.raises(NasjaxInputError, match=r"'ms'.*'s'|'s'.*'ms'"):
        Constraint(t, 5.0, "ms")


@pytest.mark.parametrize("args,match", [(["--runtime=tensorrt"], "runtime"),
                                        (["--resolution=4", "--runtime=onnxruntime"], "resolution"),
                                        (["--space=resnet"], "space")])
def test_command_bad_input_exit_2(tmp_path, args, match):
    out = tmp_path / "t.json"
    p = run_latency_table(*args, f"--out={out}")
    assert p.returncode == 2, p.stderr[-2000:]
    last = [ln for ln in p.stderr.splitlines() if ln.strip()][-1]
    assert match in last and "Traceback" not in p.stderr
    assert not out.exists() and not lb.partial_path(out).exists()


def test_command_damaged_partial_exit_2(tmp_path):
    out = tmp_path / "t.json"
    lb.partial_path(out).write_text("[1, 2")
    p = run_latency_table("--space=mobilenetv3", "--runtime=onnxruntime", "--width=0.25", "--resolution=16",
                          f"--out={out}")
    assert p.returncode == 2 and "partial" in p.stderr.splitlines()[-1], p.stderr[-2000:]
    assert not out.exists()


def test_shipped_tables_equal_their_refit():
    """Every shipped table built with the current model (it records its timing statistic) is what
    ``refit_table`` derives from its own stored timings: the files are the code's output, not edited."""
    from experiments.latency_table import table_lut_space

    files = [p for p in sorted((ROOT / "luts").glob("*/*.json"))
             if json.loads(p.read_text()).get("provenance", {}).get("statistic")]
    assert files, "no shipped table records its statistic"
    for p in files:
        t = Table.load(p)
        again = lb.refit_table(t, table_lut_space(t))
        np.testing.assert_allclose(again.values, t.values, rtol=1e-9, atol=1e-12, err_msg=str(p))
        assert again.base == pytest.approx(t.base, rel=1e-9)
