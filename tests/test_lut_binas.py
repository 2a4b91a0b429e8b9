"""The BINAS latency-table space: schema, units, provenance, depth gating (BINAS's alpha^T p + alpha^T Q_T beta),
its pieces run in ONNX Runtime at their real shapes, and a resolution the space cannot take exits 2 without a file."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import FakeRuntime, fake_timing

from nasjax.errors import NasjaxInputError
from nasjax.hardware import lut_builder as lb
from nasjax.hardware import runtimes as rt
from nasjax.hardware.binas_latency import latency_from_table
from nasjax.spaces.binas import DEFAULT, binas_space, encode
from nasjax.tables import Table

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def tiny():
    from nasjax.train.trainer import init_state

    cfg = lb.LUT_SPACES.get("binas").supernet_config(0.25, 10, 1)
    return init_state(cfg, 0), cfg


_fake_timing = fake_timing


def test_schema_units_provenance(tiny, tmp_path, monkeypatch):
    monkeypatch.setattr(lb, "time_interleaved", _fake_timing)
    state, cfg = tiny
    ls = lb.lut_space("binas", state, cfg)
    r = FakeRuntime()
    out = lb.table_path(tmp_path, "binas", r.name, r.threads, 32, 4, width=0.25)
    assert out.parent.name == "binas_w0.25" and out.name.endswith("-fake-32px-b4.json")
    t = lb.build_table(ls, r, batch_size=4, resolution=32, warmup=1, repeats=2, out=out, progress=False)
    # 120 layer programs (layers 2-4 of a stage share one shape), stem, head, 6 references, the context subnets
    # of the in-network fit, the anchor
    assert len(r.names) == 5 * 2 * 12 + 2 + 6 + lb.CONTEXT_SUBNETS + 1
    parts = [n for n in r.names if not n.startswith("subnet")]
    assert len(parts) == 5 * 2 * 12 + 2 and len(set(parts)) == len(parts)
    assert any("se1" in n for n in r.names) and any("se0" in n for n in r.names)
    d = json.loads(out.read_text())
    assert d["format"] == "nasjax.table/1" and d["unit"] == "ms" and d["metric"] == "latency"
    assert d["space"] == "binas" and d["device"] == rt.device_name()
    p = d["provenance"]
    assert p["model"] == "depth_gated" and p["unit"] == "ms per call of batch_size images"
    assert p["batch_size"] == 4 and p["resolution"] == 32 and p["supernet_config"]["se_choice"] is True
    for k in ("cpu_model", "date", "median_ms", "spread_ms", "formula", "per_program_overhead_ms_o",
              "reference_archs", "anchor_arch", "in_network_fit", "context_archs"):
        assert k in p, k
    fit = p["in_network_fit"]  # fake timings: whole subnets unrelated to their parts, so no usable fit (None)
    assert fit is None or "params_m" not in fit["terms"]  # no parameter counts for this space
    loaded = Table.load(out)
    assert loaded.shape == (25, 12) and loaded.mask.sum(1).tolist() == [3, 12, 12, 12, 12] * 5
    assert np.all(loaded.values[DEFAULT.depth_positions] == 0)
    # layers 2-4 of a stage share their cells; layer 1 has its own
    for s in range(5):
        row = loaded.values[DEFAULT.layer_positions[s * 4:(s + 1) * 4]]
        assert np.array_equal(row[1], row[2]) and np.array_equal(row[1], row[3]) and not np.array_equal(row[0], row[1])
    archs = binas_space().random(7, 5)
    np.testing.assert_allclose(ls.predict(loaded, archs), lb.predict_latency(loaded, archs))
    # the table read as BINAS's latency model, in ms, under the searchers' Constraint
    from nasjax.constraints import Constraint

    form = latency_from_table(loaded)
    assert form.unit == "ms"
    np.testing.assert_allclose(form.predict(archs), ls.predict(loaded, archs))
    with pytest.raises(NasjaxInputError, match="ms"):
        Constraint(form, 0.005, "s")
    assert t.base == loaded.base


def test_depth_gating_is_binas_bilinear_form(tiny):
    state, cfg = tiny
    ls = lb.lut_space("binas", state, cfg)
    vals = np.zeros((25, 12))
    vals[DEFAULT.layer_positions] = 1.0 + np.arange(12)[None, :] / 100
    mask = np.arange(12)[None, :] < np.array(binas_space().num_choices)[:, None]
    t = Table(vals, mask, "latency", "ms", 0.5, 1, "x", "binas", {"model": "depth_gated"})
    a = np.zeros((2, 25), int)
    a[1, DEFAULT.depth_positions] = 2  # depth 4 everywhere; a[0]: depth 2 everywhere
    a[:, DEFAULT.layer_positions] = 3  # config 3 in every layer, also the inactive ones
    np.testing.assert_allclose(ls.predict(t, a), [0.5 + 10 * 1.03, 0.5 + 20 * 1.03])
    np.testing.assert_allclose(lb.predict_latency(t, a), [0.5 + 10.3, 0.5 + 20.6])
    assert len(ls.parts(a[0])) == 2 + 10 and len(ls.parts(a[1])) == 2 + 20
    # BINAS's variables: x = one-hot of every layer (active or not), beta = depth one-hot
    base, p, pb, Q = latency_from_table(t).binas_matrices()
    for arch, want in zip(a, ls.predict(t, a)):
        _, beta = encode(arch)
        x = np.zeros((20, 12))
        x[np.arange(20), arch[DEFAULT.layer_positions]] = 1.0
        assert np.isclose(base + x.ravel() @ p + beta.ravel() @ pb + x.ravel() @ Q @ beta.ravel(), want)
    with pytest.raises(NasjaxInputError, match="choice"):
        ls.predict(t, np.full((1, 25), 12))


def test_pieces_run_in_onnxruntime(tiny):
    state, cfg = tiny
    ls = lb.lut_space("binas", state, cfg)
    r = rt.get_runtime("onnxruntime", threads=1)
    arch = np.zeros(25, int)
    arch[DEFAULT.layer_positions] = np.arange(20) % 12
    parts = set(ls.parts(arch))
    pieces = {"stem": ls.pieces.stem(), "head": ls.pieces.head()}
    for c in ls.cell_chunks():
        pieces.update({k: p for k, p in zip(c.keys, c.pieces) if k in parts})
    assert set(pieces) == parts
    for p in pieces.values():
        r.prepare(p, 2, 32)()  # builds, checks and runs the ONNX model at its real input shape
    r.prepare(ls.pieces.subnet(ls.to_subnet(arch)), 2, 32)()


def test_bad_input(tiny, tmp_path):
    state, cfg = tiny
    ls = lb.lut_space("binas", state, cfg)
    with pytest.raises(NasjaxInputError, match="multiple of 32"):
        lb.build_table(ls, FakeRuntime(), resolution=40, out=tmp_path / "t.json", progress=False)
    assert not list(tmp_path.iterdir())
    from nasjax.models.mobilenetv3 import SupernetConfig

    with pytest.raises(NasjaxInputError, match="BINAS supernet"):
        lb.lut_space("binas", None, SupernetConfig())


def test_command_bad_resolution_exit_2(tmp_path):
    out = tmp_path / "t.json"
    p = subprocess.run([sys.executable, "-m", "experiments.latency_table", "--noprogress", "--space=binas",
                        "--runtime=onnxruntime", "--threads=1", "--width=0.25", "--num_classes=10",
                        "--in_channels=1", "--resolution=40", f"--out={out}"], cwd=ROOT, capture_output=True,
                       text=True, timeout=300, env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})
    assert p.returncode == 2, p.stderr[-2000:]
    last = [ln for ln in p.stderr.splitlines() if ln.strip()][-1]
    assert "resolution" in last and "multiple of 32" in last and "Traceback" not in p.stderr
    assert not out.exists() and not lb.partial_path(out).exists() and not list(tmp_path.iterdir())


class OrtNamedFake(FakeRuntime):
    """Fake timings under ONNX Runtime's name, 1 thread: a table the scripts then measure in real ONNX Runtime."""

    def __init__(self):
        super().__init__()
        self.name, self.threads, self.clock = "onnxruntime", 1, rt.resolve_clock("auto", 1)

    def prepare(self, piece, batch_size, resolution):
        call = super().prepare(piece, batch_size, resolution)
        if piece.name.startswith("subnet"):  # a whole subnet about as long as its parts: positive cells
            call.cost = 15.0
        return call

    def provenance(self):
        return {"runtime": self.name, "threads": 1, "clock": self.clock, **rt.machine_provenance()}


@pytest.fixture(scope="module")
def ort_table(tiny, tmp_path_factory):
    state, cfg = tiny
    mp = pytest.MonkeyPatch()
    mp.setattr(lb, "time_interleaved", _fake_timing)
    try:
        out = tmp_path_factory.mktemp("lut") / "binas.json"
        lb.build_table(lb.lut_space("binas", state, cfg), OrtNamedFake(), batch_size=2, resolution=32, warmup=1,
                       repeats=2, out=out, progress=False, extra_provenance={"weights": "random", "width": 0.25},
                       context_subnets=0)  # fake timings of whole subnets are unrelated to their parts: no fit
    finally:
        mp.undo()
    return out


def test_measure_found(tiny, ort_table):
    from nasjax.hardware.lut_binas import measure_found
    from nasjax.models.mobilenetv3 import SupernetConfig

    table = Table.load(ort_table)
    archs = binas_space().random(3, 2)
    m = measure_found(table, archs, repeats=3)
    assert m["runtime"] == "onnxruntime" and m["threads"] == 1 and m["batch_size"] == 2 and m["resolution"] == 32
    assert m["measured_ms"].shape == (2,) and np.all(m["measured_ms"] > 0)
    np.testing.assert_allclose(m["predicted_ms"], lb.predict_latency(table, archs))
    from nasjax.train.trainer import init_state

    other = init_state(lb.LUT_SPACES.get("binas").supernet_config(0.5, 10, 1), 0)
    with pytest.raises(NasjaxInputError, match="supernet config"):
        measure_found(table, archs, other)
    with pytest.raises(NasjaxInputError, match="binas table"):
        measure_found(Table(np.ones((2, 2)), None, "latency", "ms", 0.0, 1, "x", "toy"), archs)
    assert SupernetConfig.from_dict(table.provenance["supernet_config"]) == tiny[1]


def _script(*args, timeout=600):
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          env={**__import__("os").environ, "PYTHONPATH": str(ROOT)})


def test_calibrate_found_table_uses_the_tables_references(tiny, ort_table):
    from nasjax.hardware.lut_binas import calibrate_found_table

    table = Table.load(ort_table)
    cal = calibrate_found_table(table, repeats=3)
    refs = np.asarray(table.provenance["reference_archs"])
    np.testing.assert_array_equal(cal["reference_archs"], refs)
    np.testing.assert_allclose(cal["reference_predicted_ms"], lb.predict_latency(table, refs))
    assert cal["scale"] == pytest.approx(float(np.median(cal["reference_measured_ms"] / cal["reference_predicted_ms"])))
    archs = binas_space().random(5, 3)
    np.testing.assert_allclose(lb.predict_latency(cal["table"], archs), cal["scale"] * lb.predict_latency(table, archs))
    with pytest.raises(NasjaxInputError, match="binas table"):
        calibrate_found_table(Table(np.ones((2, 2)), None, "latency", "ms", 0.0, 1, "x", "toy"))


def test_bench_binas_measures_found_latency(ort_table):
    p = _script("scripts/bench_binas.py", f"--latency_table={ort_table}", "--repeats=1", "--evo_generations=3")
    assert p.returncode == 0, p.stderr[-3000:]
    assert "measured vs predicted latency of the found architectures" in p.stdout
    assert "calibrated to this machine: scale" in p.stdout
    res = json.loads(p.stdout.strip().splitlines()[-1])
    assert res["calibration"]["scale"] > 0 and len(res["calibration"]["reference_measured_ms"]) >= 2
    assert all(r["unit"] == "ms" and r["measured_latency"] > 0 for r in res["budgets"])
    assert res["goals_met"]["measured_latency_within_10pct"] in (True, False)
    assert {"bilinear", "additive", "bilinear_configs", "bilinear_configs_full", "additive_configs",
            "quadratic"} <= set(res["ranking"])


def test_binas_af_table_with_latency_table_random_weights(ort_table, tmp_path):
    p = _script("scripts/bench_binas.py", f"--write_synthetic={tmp_path}")
    assert p.returncode == 0, p.stderr[-3000:]
    (tmp_path / "measured_fit.json").rename(tmp_path / "fit_subnets.json")
    (tmp_path / "measured_test.json").rename(tmp_path / "test_subnets.json")
    p = _script("scripts/binas_af_table.py", f"--measure_dir={tmp_path}", "--weights=random",
                f"--latency_table={ort_table}", "--val_images=64", "--calib_images=16", "--latency_repeats=3")
    assert p.returncode == 0, p.stderr[-3000:]
    res = json.loads(p.stdout.strip().splitlines()[-1])
    assert res["cost"] == "latency" and res["latency_measurement"]["runtime"] == "onnxruntime"
    assert res["calibration"]["scale"] > 0
    assert len(res["rows"]) == 12 and all(r["measured_cost"] > 0 and 0 <= r["measured_accuracy"] <= 100
                                          for r in res["rows"])
    assert "| predicted / measured cost |" in p.stdout
    p = _script("scripts/binas_af_table.py", f"--measure_dir={tmp_path}", "--weights=random", "--cost=latency")
    assert p.returncode == 2 and "latency_table" in p.stderr.splitlines()[-1]


def test_binas_search_calibrates_a_machine_table(ort_table, tmp_path):
    from nasjax.predictors.bilinear import contribution_estimator

    rng = np.random.default_rng(0)
    contribution_estimator(70.0, 70 + rng.uniform(0, 1, (20, 12)), 70 + rng.uniform(0, 1, (5, 3))).save(
        tmp_path / "est.npz")
    table = Table.load(ort_table)
    budget = 1e4  # the fake-timed table's scale to real timings is unknown: a budget every subnet meets
    p = _script("-m", "experiments.binas_search", f"--predictor_ckpt_filename={tmp_path / 'est.npz'}",
                f"--latency_table={ort_table}", "--calibrate_latency", f"--inference_time_limit={budget}ms",
                f"--save_path={tmp_path / 'out'}")
    assert p.returncode == 0, p.stderr[-3000:]
    assert "calibrated to this machine: scale" in p.stdout
    doc = json.loads((tmp_path / "out" / "arch.json").read_text())
    scale = doc["latency_model"]["calibration_scale"]
    assert scale > 0 and doc["predicted"]["latency"]["value"] <= budget + 1e-9
    arch = np.asarray(doc["arch"])[None]
    assert doc["predicted"]["latency"]["value"] == pytest.approx(scale * float(lb.predict_latency(table, arch)[0]))
