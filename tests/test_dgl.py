"""DGL device-generic latency model (nasjax.hardware.dgl), its protocols and its experiment entry point."""

import dataclasses
import math
import sys

import numpy as np
import pytest
from conftest import require_shared

from nasjax import cli
from nasjax.errors import NasjaxInputError
from nasjax.hardware import dgl
from nasjax.protocols import latency_constrained as lc
from nasjax.protocols.dgl_unseen import dgl_unseen_device_eval
from nasjax.spaces import get_space


def test_formula_matches_definition():
    hw = (2.2, 10.0, 4.0, 34.1)
    A = np.array([1000.0, 2500.0])
    want = (A / 10.0 + A / (math.sqrt(4.0) * 34.1)) / 2.2
    assert np.allclose(dgl.dgl_latency(A, hw), want, rtol=1e-12)
    assert dgl.device_constant(hw) == pytest.approx(want[0] / 1000.0)


def test_bad_hardware_parameters():
    with pytest.raises(NasjaxInputError, match="expected 4"):
        dgl.device_constant((2.0, 3.0, 1.0))
    with pytest.raises(NasjaxInputError, match="cache.*> 0"):
        dgl.device_constant((2.0, 3.0, 0.0, 7.46))
    with pytest.raises(NasjaxInputError, match="frequency"):
        dgl.device_constant((float("nan"), 3.0, 1.0, 7.46))


def test_unknown_device_and_bad_files(tmp_path):
    (tmp_path / "hardware").mkdir()
    (tmp_path / "hardware" / "Phone A.txt").write_text("2 3 1 7.46\n")
    (tmp_path / "hardware" / "Phone B.txt").write_text("2 3 -1 7.46\n")
    (tmp_path / "hardware" / "Phone C.txt").write_text("2 3 1\n")
    assert np.allclose(dgl.load_hardware(tmp_path, "Phone A"), [2, 3, 1, 7.46])
    with pytest.raises(NasjaxInputError, match="known devices: Phone A, Phone B, Phone C"):
        dgl.load_hardware(tmp_path, "Phone Z")
    with pytest.raises(NasjaxInputError, match="cache.*> 0"):
        dgl.load_hardware(tmp_path, "Phone B")
    with pytest.raises(NasjaxInputError, match="got 3 values"):
        dgl.load_hardware(tmp_path, "Phone C")


def test_nb201_features():
    a = np.array([[0, 1, 2, 3, 4, 3], [3, 3, 3, 3, 3, 3]])
    X = dgl.features("nasbench201", a)
    assert X.shape == (2, dgl.feature_spec("nasbench201")["length"]) == (2, 410)
    assert np.array_equal(X[:, :30].reshape(2, 6, 5).argmax(2), a)
    assert np.array_equal(X[0, 30:35], [1, 1, 1, 2, 1]) and np.array_equal(X[1, 30:35], [0, 0, 0, 6, 0])
    names = dgl.feature_spec("nasbench201")["names"]
    on = {names[i] for i in np.flatnonzero(X[0, 35:]) + 35}
    assert len(on) == 15 and "pair e0=none&e1=skip_connect" in on and "pair e4=avg_pool_3x3&e5=nor_conv_3x3" in on
    with pytest.raises(NasjaxInputError, match="shape"):
        dgl.features("nasbench201", np.zeros((2, 5), int))
    with pytest.raises(NasjaxInputError, match="search_space"):
        dgl.features("darts", a)


def test_fbnetv3_encoding_and_costs():
    sp = get_space("fbnetv3")
    assert sp.num_positions == 28 and list(sp.num_choices[:7]) == [2] * 7
    rng = np.random.default_rng(0)
    a = sp.random(rng, 5)
    g = dgl.arch_to_genes(a)
    assert np.array_equal(dgl.genes_to_arch(g), a)
    with pytest.raises(NasjaxInputError, match=r"genes\[0\]\[14\]"):
        bad = g.copy()
        bad[0, 14] = 17
        dgl.genes_to_arch(bad)
    X = dgl.features("fbnetv3", a)
    assert X.shape == (5, 42) and np.array_equal(X[:, :28], g)
    c = dgl.fbnetv3_costs(g)
    assert np.allclose(c[:, 0], c[:, 7:].sum(1) + 3 * g[:, 14] * 9 * 112 * 112
                       + g[:, 21] ** 2 * 6 * 49 + g[:, 21] * 6 * 1984 + 1984 * 1000)  # stages + stem + head
    more = g.copy()
    more[:, 27] = 9  # most stage-6 blocks: MACs and params grow
    less = g.copy()
    less[:, 27] = 5
    assert np.all(dgl.fbnetv3_costs(more)[:, :2] > dgl.fbnetv3_costs(less)[:, :2])
    assert np.all(dgl.fbnetv3_costs(more)[:, 3] == dgl.fbnetv3_costs(less)[:, 3] + 4)


def test_corrupt_rows_and_published_r():
    require_shared("DGL")
    d = dgl.load_dgl("nasbench201")
    assert np.flatnonzero(d.corrupt).tolist() == [120, 375]
    for dev, r in dgl.PUBLISHED_R["nasbench201"].items():
        theirs = dgl.authors_predictions("nasbench201", dev)
        assert dgl.latency_scores(d.latency[dev], theirs)["R"] == pytest.approx(r, abs=6e-4)
    f = dgl.load_dgl("fbnetv3")
    assert np.flatnonzero(f.corrupt).tolist() == [174]
    for dev, r in dgl.PUBLISHED_R["fbnetv3"].items():
        theirs = dgl.authors_predictions("fbnetv3", dev)
        assert dgl.latency_scores(f.latency[dev], theirs)["R"] == pytest.approx(r, abs=6e-4)
    with pytest.raises(NasjaxInputError, match="known devices"):
        dgl.load_dgl("nasbench201", devices=["Nokia 3310"])


def _tiny(space="nasbench201", n=60, kind="ours", **kw):
    sp = get_space(space)
    a = sp.random(np.random.default_rng(0), n)
    A = 1000 + 300 * dgl.features(space, a)[:, :5].sum(1) + np.arange(n)
    config = dataclasses.replace(dgl.default_config(space, kind), **kw)
    return a, A, dgl.train_a_model(space, a, A, config, seed=0)


@pytest.mark.parametrize("space,kind,kw", [("nasbench201", "ours", {"steps": 50, "members": 2}),
                                           ("fbnetv3", "ours", {"steps": 50}),
                                           ("nasbench201", "dgl_mlp", {"steps": 5})])
def test_save_load_identical_predictions(tmp_path, space, kind, kw):
    a, A, m = _tiny(space, kind=kind, **kw)
    p = tmp_path / "m.npz"
    m.save(p)
    m2 = dgl.DGLLatencyModel.load(p)
    assert np.array_equal(m.predict_A(a), m2.predict_A(a))
    hw = (2.0, 3.0, 1.0, 7.46)
    assert np.array_equal(m.predict_latency(a, hw), m2.predict_latency(a, hw))
    assert m2.config == m.config and m2.space == space


def test_model_input_checks():
    a, A, m = _tiny(steps=20)
    with pytest.raises(NasjaxInputError, match=r"features: shape \(3, 7\), expected \(N, 410\)"):
        m.predict_A_from_features(np.zeros((3, 7)))
    with pytest.raises(NasjaxInputError, match="shape"):
        m.predict_A(np.zeros((2, 28), int))
    with pytest.raises(NasjaxInputError, match="hardware"):
        m.predict_latency(a, (2.0, 0.0, 1.0, 7.46))
    with pytest.raises(NasjaxInputError, match="A"):
        dgl.train_a_model("nasbench201", a, -A)


def test_training_learns_and_is_deterministic():
    a, A, m = _tiny(steps=300, n=120)
    assert np.corrcoef(m.predict_A(a), A)[0, 1] > 0.95
    _, _, m2 = _tiny(steps=300, n=120)
    assert np.array_equal(m.predict_A(a), m2.predict_A(a))


def test_fit_hw_params_from_k():
    A = np.array([1000.0, 2000.0, 3500.0])
    hw = (2.8, 5.0, 2.0, 29.8)
    lat = dgl.dgl_latency(A, hw)
    fit = dgl.fit_hw_params_from_k(A, lat, prior_hw=hw)
    assert fit.scale == pytest.approx(dgl.device_constant(hw)) and fit.offset == 0.0
    assert np.allclose(fit.hw_equivalent, hw)
    fit2 = dgl.fit_hw_params_from_k(A, 0.5 * A + 15.0, offset=True)
    assert fit2.scale == pytest.approx(0.5) and fit2.offset == pytest.approx(15.0)
    assert dgl.device_constant(fit2.hw_equivalent) == pytest.approx(0.5)
    with pytest.raises(NasjaxInputError, match="k"):
        dgl.fit_hw_params_from_k(A[:1], lat[:1], offset=True)


def test_unseen_device_eval_rows():
    require_shared("DGL")
    rows = dgl_unseen_device_eval("fbnetv3", n_splits=1, seed=0,
                                  model_config=dataclasses.replace(dgl.default_config("fbnetv3"), steps=200))
    assert [r["device"] for r in rows] == sorted(dgl.PUBLISHED_R["fbnetv3"])
    for r in rows:
        assert r["theirs_all_R"] == pytest.approx(r["published_R"], abs=6e-4)
        assert -1 <= r["ours_heldout_R"] <= 1 and r["ours_heldout_RMSE"] > 0 and r["n_heldout"] == 40


# --- the experiment entry point ------------------------------------------------------------------------


def _run(argv):
    """``python -m experiments.dgl <argv>`` in this process (through ``nasjax.cli.run``); a failing run raises
    ``SystemExit`` with its exit code."""
    from absl import flags

    import experiments.dgl as exp

    F = flags.FLAGS
    F.unparse_flags()
    saved = sys.argv
    sys.argv = ["dgl", *argv]
    try:
        cli.run(exp.main)
    except SystemExit as e:
        if e.code not in (None, 0):
            raise
    finally:
        sys.argv = saved
        F.unparse_flags()


def test_experiment_train_test_nas_and_flags(tmp_path, capsys):
    require_shared("DGL")
    out = tmp_path / "res"
    base = ["--search_space=fbnetv3", f"--save_path={out}"]
    _run(base + ["--mode=train", "--epoch=100"])
    assert (out / "fbnetv3" / "model.npz").is_file()
    _run(base + ["--mode=test", "--test_devices=Oppo A5"])
    assert (out / "fbnetv3" / "Oppo A5_timepre.txt").is_file()
    import json

    rows = json.loads((out / "fbnetv3" / "test_metrics.json").read_text())["rows"]
    assert [r["device"] for r in rows] == ["Oppo A5"] and "heldout_R" in rows[0]
    import yaml

    nas = ["--mode=nas", "--nas_target_device=Oppo A5", "--latency_constraint=900", "--POPULATION_SIZE=10"]
    _run(base + nas + ["--EPOCH=0"])
    y0 = yaml.safe_load((out / "fbnetv3" / "nas" / "Oppo A5_900.yml").read_text())
    _run(base + nas + ["--EPOCH=4"])
    y4 = yaml.safe_load((out / "fbnetv3" / "nas" / "Oppo A5_900.yml").read_text())
    assert y0["evaluations"] == 100 and y4["evaluations"] == 140 and len(y4["best_per_epoch"]) == 4
    assert y4["predicted_latency"] <= 900 and y4["MACs"] >= y0["MACs"]
    # bad input: exit code 2, a message naming the field, and no output file
    for bad, msg in [(["--nas_target_device=Nokia 3310"], "known devices"), (["--GENE_LENGTH=6"], "GENE_LENGTH"),
                     (["--latency_constraint=1"], "infeasible|no feasible")]:
        args = base + nas + ["--EPOCH=1"] + bad
        target = out / "fbnetv3" / "nas"
        before = sorted(p.name for p in target.iterdir())  # hidden temporaries included
        with pytest.raises(SystemExit) as e:
            _run(args)
        assert e.value.code == 2
        assert sorted(p.name for p in target.iterdir()) == before
        assert __import__("re").search(msg, capsys.readouterr().err)
    with pytest.raises(SystemExit):
        _run(["--search_space=fbnetv3", "--mode=test", "--test_devices=Nokia 3310",
              f"--save_path={tmp_path / 'empty'}"])
    assert not (tmp_path / "empty").exists()
    # a flag of another mode is refused, not ignored
    with pytest.raises(SystemExit) as e:
        _run(base + ["--mode=test", "--epoch=100"])
    assert e.value.code == 2 and "epoch" in capsys.readouterr().err


# --- latency-constrained search ------------------------------------------------------------------------


def test_constrained_report_exact_and_biased():
    sp = get_space("nasbench201")
    rng = np.random.default_rng(0)
    archs = np.unique(sp.random(rng, 80), axis=0)
    n = len(archs)
    acc = rng.random(n) * 10 + 60
    true = 100 + 400 * rng.random(n) + 5 * acc  # accuracy costs latency
    b = lc.budgets_from_quantiles(true, (0.2, 0.5, 0.8))
    exact = lc.constrained_search_report(archs, acc, true, true, b)
    assert exact["violation_rate"] == 0 and exact["mean_gap_all"] == 0 and exact["n_not_found"] == 0
    low = lc.constrained_search_report(archs, acc, true, 0.7 * true, b)  # optimistic predictor
    assert low["violation_rate"] > 0
    assert all(r["gap"] <= 0 for r in low["budgets"] if r["violated"])
    high = lc.constrained_search_report(archs, acc, true, 1.3 * true, b)  # pessimistic predictor
    assert high["violation_rate"] == 0 and high["mean_gap_feasible"] >= 0
    ga = lc.constrained_search_report(archs, acc, true, 1.3 * true, b, searcher="genetic")
    assert [r["found_acc"] for r in ga["budgets"]] == [r["found_acc"] for r in high["budgets"]]


def test_accuracy_sources():
    require_shared("DGL")
    archs, acc = lc.nb201_accuracy("dgl_oracle")
    assert archs.shape == (4000, 6) and acc[0] == pytest.approx(73.513, abs=1e-3)
    assert archs[0].tolist() == [3, 3, 3, 1, 3, 3]
    require_shared("constrained-tpe")
    a2, acc2 = lc.nb201_accuracy("200ep", "cifar100")
    assert a2.shape == (15625, 6) and 0 < acc2.min() < acc2.max() < 100
    with pytest.raises(NasjaxInputError, match="accuracy source"):
        lc.nb201_accuracy("oracle")


def test_absolute_error_diagnostics_and_test_mode_rows():
    require_shared("DGL")
    from nasjax.protocols import dgl_unseen

    d = dgl.load_dgl("nasbench201")
    m = dgl_unseen.train_on_split("nasbench201", d,
                                  config=dataclasses.replace(dgl.default_config("nasbench201"), steps=200), seed=0)
    assert len(m.info["heldout_rows"]) == 100 and len(m.info["train_rows"]) == 400
    rows, preds = dgl_unseen.score_devices(m, d)
    for r in rows:  # ours and the authors' shipped predictions, on all archs and on the held-out ones
        assert {"all_R", "all_RMSE", "all_MAE", "heldout_MAE", "theirs_all_MAE", "theirs_heldout_RMSE"} <= set(r)
        assert r["theirs_all_R"] == pytest.approx(r["published_R"], abs=6e-4)
    diag = dgl_unseen.absolute_error_diagnostics(m, d)
    # the three phones with the same 4 hardware parameters are biased differently against DGL's formula
    ratios = {k: round(v["formula_ratio"], 3) for k, v in diag.items()}
    same_hw = ("Motorola Moto E6s", "Samsung Galaxy A10s", "Xiaomi Redmi 5 Plus")
    assert [ratios[p] for p in same_hw] == [1.06, 0.913, 0.865]
    for v in diag.values():
        lo, hi = v["scale_range"]
        assert lo <= hi
