"""Latency table: static subnet programs are the real subnet, the table decomposes the whole network,
measurement protocol and error statistics (no speed assertions)."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from nasjax.errors import NasjaxInputError
from nasjax.hardware import latency as lat
from nasjax.hardware.lut_builder import MobileNetV3Pieces
from nasjax.models import OFAMobileNetV3, SupernetConfig, apply, split_model, subnet_arrays
from nasjax.spaces.mobilenetv3 import BlockSet

CFG = SupernetConfig(width_mult=0.1, num_classes=10, in_channels=1)
RES = 12
SMALL = {"d": 2, "e": [3, 3, 3, 3], "ks": [3, 3, 3, 3]}
BIG = {"d": 3, "e": [6, 4, 3, 3], "ks": [7, 5, 3, 3]}


@pytest.fixture(scope="module")
def state():
    return split_model(OFAMobileNetV3(CFG, rngs=nnx.Rngs(1)))


def _subnet(blocks):
    ks, e, d = [], [], []
    for b in blocks:
        ks += b["ks"]
        e += b["e"]
        d.append(b["d"])
    return {"ks": ks, "e": e, "d": d}


def test_static_programs_compose_to_the_masked_supernet(state):
    blocks = [BIG, SMALL, BIG, SMALL, SMALL]
    sub = _subnet(blocks)
    x = jnp.asarray(np.random.default_rng(0).standard_normal((1, RES, RES, 1)), jnp.float32)
    masked = apply(state.graphdef, state.params, state.batch_stats, subnet_arrays(sub, CFG), x)
    pieces = MobileNetV3Pieces(state, CFG)
    static = pieces.subnet(sub).jax_fn()(x)
    np.testing.assert_allclose(np.asarray(static), np.asarray(masked), rtol=1e-4, atol=1e-5)
    # stem -> 5 stages -> head is the same network: the table's parts cover all of it
    h = pieces.stem().jax_fn()(x)
    shapes = pieces.shapes(1, RES)
    for s, b in enumerate(blocks):
        assert tuple(h.shape) == shapes[s]
        h = pieces.stage(s, b["d"], b["ks"], b["e"]).jax_fn()(h)
    assert tuple(h.shape) == shapes[5]
    np.testing.assert_allclose(np.asarray(pieces.head().jax_fn()(h)), np.asarray(static), rtol=1e-4, atol=1e-5)
    # one layer at its real input shape, as the layer view times it
    for s, i in ((1, 0), (1, 1)):
        piece = pieces.layer(s, i, 5, 4)
        assert piece.jax_fn()(jnp.zeros(piece.input_shape(1, RES))).shape[0] == 1


def test_measure_table_protocol(state):
    bs = BlockSet("test-2", ((SMALL, BIG),) + ((SMALL,),) * 4)
    t = lat.measure_stage_block_table(state, CFG, bs, RES, warmup=1, repeats=3, progress=False)
    assert t.unit == "ms" and t.metric == "latency" and t.sign == 1 and t.space == "mobilenetv3"
    assert t.device == lat.device_name() and re.fullmatch(r"cpu-[a-z0-9-]+-\d+c(-\d+mib)?", t.device)
    # the measured fixed parts take time; the fitted base may be below 0 (on a program this small the fit's
    # intercept absorbs what the parts' per-call costs over-count), the fitted subnets' predictions are not
    assert t.mask.sum(1).tolist() == [2, 1, 1, 1, 1] and t.provenance["raw_base_ms"] > 0
    fitted = np.concatenate([t.provenance["reference_archs"], t.provenance["context_archs"]])
    assert np.all(t.predict(fitted) > 0)
    assert {"protocol", "per_program_overhead_ms_o", "median_ms", "date", "block_set"} <= set(t.provenance)
    meas = lat.measure_subnets(state, CFG, [bs.to_ofa([0, 0, 0, 0, 0])], RES, warmup=1, repeats=3, progress=False)
    assert meas.shape == (1,) and meas[0] > 0
    with pytest.raises(NasjaxInputError, match="resolution"):
        lat.measure_stage_block_table(state, CFG, bs, 4, progress=False)


def test_time_call_and_table_error():
    calls = []
    f = jax.jit(lambda x: x + 1)
    ms = lat.time_call(lambda x: calls.append(1) or f(x), jnp.ones(3), warmup=2, repeats=5)
    assert ms > 0 and len(calls) == 7
    e = lat.table_error(np.array([1.0, 2.0, 3.0, 4.0]), np.array([1.0, 2.0, 4.0, 3.0]))
    assert e["n"] == 4 and e["mape_percent"] == pytest.approx((0 + 0 + 25 + 100 / 3) / 4)
    assert e["kendall_tau"] == pytest.approx(4 / 6)
    with pytest.raises(NasjaxInputError, match="predicted/measured"):
        lat.table_error(np.ones(3), np.ones(2))


def test_quickstart_rejects_bad_budgets_without_output(tmp_path):
    from experiments import _quickstart
    from nasjax import default
    from nasjax.errors import InfeasibleError

    if not (default.DEFAULT_DIR / "manifest.json").is_file():
        pytest.skip("embedded default luts/mobilenetv3_mnist not built")
    kw = dict(save_path=tmp_path / "out", progress=False, calibrate=False)
    with pytest.raises(InfeasibleError, match="smallest achievable latency"):  # no budget can be met
        _quickstart.run(latency_budgets_ms=[2e-4, 1e-4], **kw)
    with pytest.raises(NasjaxInputError, match="latency_budgets"):
        _quickstart.run(latency_budgets_ms=[float("nan")], **kw)
    with pytest.raises(NasjaxInputError, match="solver"):
        _quickstart.run(latency_budgets_ms=[1.0], solver="cplex", **kw)
    with pytest.raises(NasjaxInputError, match="manifest.json"):
        _quickstart.run(latency_budgets_ms=[1.0], luts_dir=tmp_path, **kw)
    assert not (tmp_path / "out" / "mobilenetv3" / "quickstart" / "summary.json").exists()


def test_quickstart_reports_a_budget_this_machine_cannot_meet_beside_the_others():
    from nasjax import default

    if not (default.DEFAULT_DIR / "manifest.json").is_file():
        pytest.skip("embedded default luts/mobilenetv3_mnist not built")
    res = default.search_and_measure(latency_budgets_ms=[1e3, 1e-4], calibrate=False, progress=False)
    assert [r["budget_ms"] for r in res["rows"]] == [1e3]
    assert [b["budget_ms"] for b in res["infeasible"]] == [1e-4]
    assert "smallest achievable latency" in res["infeasible"][0]["message"]


def test_quickstart_recalibrates_once_when_the_machine_changes_speed(monkeypatch):
    """The machine becomes 1.3x slower after the start-up calibration: the references timed with the found
    subnets show it, the table is recalibrated from them and the budgets searched again, so the printed
    predictions match the measurements at the new speed."""
    from nasjax import default
    from nasjax.hardware import lut_validate as lv

    if not (default.DEFAULT_DIR / "manifest.json").is_file():
        pytest.skip("embedded default luts/mobilenetv3_mnist not built")
    true_table = default.load_default()["tables"]["latency_stage"]
    calls = []

    def fake_measure(lspace, runtime, archs, **kw):  # the table's latency, 1.3x after the calibration's 2 rounds
        calls.append(len(archs))
        return lspace.predict(true_table, archs) * (1.0 if len(calls) <= 2 else 1.3)

    monkeypatch.setattr(lv, "measure_archs", fake_measure)
    res = default.search_and_measure(latency_budgets_ms=[4.0, 6.0], calibrate=True, progress=False)
    assert len(res["recalibrations"]) == 1
    assert res["recalibrations"][0]["speed_change"] == pytest.approx(1.3)
    assert res["recalibrations"][0]["scale_before"] == pytest.approx(1.0)
    assert res["calibration"]["scale"] == pytest.approx(1.3)
    assert res["speed_change"] == pytest.approx(1.0)
    for r in res["rows"]:
        assert r["predicted"]["latency_ms"] == pytest.approx(r["measured"]["latency_ms"], rel=1e-9)
        assert r["predicted"]["latency_ms"] <= r["budget_ms"] * (1 + 1e-9)
