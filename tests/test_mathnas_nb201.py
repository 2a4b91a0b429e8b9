"""MathNAS on real NAS-Bench-201 accuracies: block contributions, exact search vs enumeration, regret."""

import numpy as np
import pytest
from conftest import require_shared

from nasjax.benchmarks import nasbench201 as nb
from nasjax.constraints import Constraint
from nasjax.errors import NasjaxInputError
from nasjax.predictors.additive import block_contributions
from nasjax.protocols.regret import NB201_REF, fit_errors, nb201_additive, regret_sweep, summarize, true_best
from nasjax.search import SearchProblem, run_search
from nasjax.spaces.nasbench201 import nasbench201_space

ALL = nasbench201_space().all_archs()


@pytest.fixture(scope="module")
def table():
    require_shared("constrained-tpe")
    return nb.load()  # the user cache (built once, then ~0.05 s)


def test_additive_function_recovered_by_every_base_choice():
    rng = np.random.default_rng(0)
    W = rng.normal(size=(6, 5))
    f = lambda a: 3.0 + W[np.arange(6), a].sum(1)  # noqa: E731
    for bases in ("ref", 7, "all"):
        c = block_contributions(f, [5] * 6, NB201_REF, bases, seed=1)
        t = c.table("accuracy", "%")
        np.testing.assert_allclose(t.predict(ALL), f(ALL), atol=1e-9)
    assert block_contributions(f, [5] * 6, NB201_REF, "ref").measured == 25
    # ragged space (positions with 2, 3, 4 choices): padded cells are masked, predictions exact
    g = lambda a: a[:, 0] * 1.5 - a[:, 1] + 0.25 * a[:, 2] ** 1  # noqa: E731
    c = block_contributions(g, [2, 3, 4], [1, 0, 3], bases=5, seed=0)
    t = c.table("latency", "ms")
    assert t.mask.tolist() == [[True, True, False, False], [True, True, True, False], [True] * 4]
    grid = np.stack(np.meshgrid(range(2), range(3), range(4), indexing="ij"), -1).reshape(-1, 3)
    np.testing.assert_allclose(t.predict(grid), g(grid), atol=1e-12)
    with pytest.raises(NasjaxInputError, match="ref"):
        block_contributions(g, [2, 3, 4], [2, 0, 0])


def test_single_base_is_mathnas_one_edge_replacement(table):
    v = table.val_acc("cifar10")
    f = lambda a: v[table.index_of(a)]  # noqa: E731
    c = block_contributions(f, [5] * 6, NB201_REF, "ref")
    ref_val = v[table.index_of(NB201_REF)[0]]
    assert c.base == ref_val and c.measured == 25 and c.num_bases == 1
    for i in range(6):
        for op in range(5):
            a = NB201_REF.copy()
            a[i] = op
            assert c.drops[i, op] == pytest.approx(ref_val - f(a[None])[0], abs=1e-12)
            assert c.table("accuracy", "%").predict(a) == pytest.approx(f(a[None])[0], abs=1e-9)
    assert np.all(c.drops[:, 3] == 0)  # reference op nor_conv_3x3


def test_all_bases_equal_least_squares_fit(table):
    y = table.test_acc("cifar100")
    c = block_contributions(lambda a: y[table.index_of(a)], [5] * 6, NB201_REF, "all")
    X = nasbench201_space().onehot(table.archs).reshape(15625, 30).astype(np.float64)
    X = np.concatenate([np.ones((15625, 1)), X], 1)
    coef, *_ = np.linalg.lstsq(X, y, rcond=None)
    np.testing.assert_allclose(c.table("accuracy", "%").predict(table.archs), X @ coef, atol=1e-8)
    # fit_errors reports the same residual for the validation column
    y = table.val_acc("cifar100")
    coef, *_ = np.linalg.lstsq(X, y, rcond=None)
    fe = fit_errors(table, nb201_additive(table, "cifar100", ["pixel3"], bases="all"), "cifar100")
    assert fe["accuracy"]["rmse"] == pytest.approx(np.sqrt(np.mean((X @ coef - y) ** 2)))
    assert fe["accuracy"]["cells"] == 15625 and 0.5 < fe["latency/pixel3"]["spearman"] <= 1


def test_random_bases_deterministic_under_seed(table):
    a = nb201_additive(table, "cifar100", ["pixel3"], bases=8, seed=3)
    b = nb201_additive(table, "cifar100", ["pixel3"], bases=8, seed=3)
    c = nb201_additive(table, "cifar100", ["pixel3"], bases=8, seed=4)
    np.testing.assert_array_equal(a.accuracy.values, b.accuracy.values)
    np.testing.assert_array_equal(a.resources["latency/pixel3"].values, b.resources["latency/pixel3"].values)
    assert not np.array_equal(a.accuracy.values, c.accuracy.values)
    assert a.accuracy.provenance["num_bases"] == 8


def _enumerate(pred, key, budget):
    acc = pred.accuracy.predict(ALL)
    lat = pred.resources[key].predict(ALL)
    ok = lat <= budget + 1e-9 * max(1.0, abs(budget))
    return acc[ok].max() if ok.any() else None


def test_exact_search_equals_enumeration_over_table_predictions(table):
    from nasjax.search.ilp import ILPSearch

    space = nasbench201_space()
    devs = ["pixel3", "raspi4", "titanxp_1", "gold_6226"]
    for bases in ("ref", "all"):
        pred = nb201_additive(table, "ImageNet16-120", devs, bases=bases)
        for dev in devs:
            t = pred.resources[f"latency/{dev}"]
            lo, hi = t.bounds()
            for q in (0.15, 0.4, 0.8):
                budget = lo + q * (hi - lo)
                res = run_search("mckp", SearchProblem(space, pred.accuracy, (Constraint(t, budget, "ms"),)))
                assert res.objective == pytest.approx(_enumerate(pred, f"latency/{dev}", budget), abs=1e-9)
                assert t.predict(res.arch) <= budget + 1e-9
    pred = nb201_additive(table, "cifar10", ["fpga"])
    t = pred.resources["latency/fpga"]
    ilp = ILPSearch(pred.accuracy, [Constraint(t, t.bounds()[1], "ms")])
    for budget in np.linspace(*t.bounds(), 5)[1:]:
        assert ilp.solve([budget]).objective == pytest.approx(_enumerate(pred, "latency/fpga", budget), abs=1e-7)
        highs = run_search("highs", SearchProblem(space, pred.accuracy, (Constraint(t, budget, "ms"),)))
        assert highs.objective == pytest.approx(_enumerate(pred, "latency/fpga", budget), abs=1e-7)


def test_regret_sweep_against_brute_force(table):
    devs = ["pixel3", "titan_rtx_32"]
    lat0 = table.latency("pixel3")
    budgets = {"pixel3": [float(np.quantile(lat0, 0.3)), float(lat0.min()) + 1e-6]}
    rows = regret_sweep(table, devs, budgets, "cifar100", bases="ref")
    assert [r["device"] for r in rows] == ["pixel3"] * 2 + ["titan_rtx_32"] * 5
    val, test = table.val_acc("cifar100"), table.test_acc("cifar100")
    for r in rows:
        lat = table.latency(r["device"])
        feas = lat <= r["budget"]
        assert r["best_val"] == val[feas].max() and r["best_test"] == test[feas].max()
        assert r["n_feasible"] == feas.sum()
        if r["status"] != "ok":
            assert r["status"] == "infeasible (predicted)" and np.isnan(r["regret_val"])
            continue
        f = r["found_row"]
        assert r["true_resource"] == lat[f] and r["feasible_true"] == bool(lat[f] <= r["budget"])
        assert r["regret_val"] == pytest.approx(val[feas].max() - val[f])
        assert r["regret_test"] == pytest.approx(test[feas].max() - test[f])
        if r["feasible_true"]:
            assert r["regret_val"] >= 0 and r["regret_test"] >= 0
        assert r["pred_resource"] <= r["budget"] + 1e-9
    s = summarize(rows)
    assert s["runs"] == 7 and s["solved"] + s["infeasible_predicted"] == 7
    assert s["truly_feasible"] + s["violations"] == s["solved"]
    feas_rows = [r for r in rows if r["status"] == "ok" and r["feasible_true"]]
    assert s["worst_regret_val"] == max(r["regret_val"] for r in feas_rows)
    b = true_best(table, "cifar100", "pixel3", budgets["pixel3"][0])
    assert b["best_val_row"] == table.best("val_acc/cifar100", lat0 <= budgets["pixel3"][0])


def test_regret_errors(table):
    with pytest.raises(NasjaxInputError, match="energy device"):
        regret_sweep(table, ["fpga"], None, "cifar10", resource="energy")
    with pytest.raises(NasjaxInputError, match="bases"):
        regret_sweep(table, ["fpga"], None, "cifar10", bases="some")
    with pytest.raises(NasjaxInputError, match="solver"):
        regret_sweep(table, ["fpga"], None, "cifar10", solver="cplex")
    with pytest.raises(NasjaxInputError, match="solver: got 'ilp', expected one of enumerate, gurobi, highs, mckp"):
        regret_sweep(table, ["fpga"], None, "cifar10", solver="ilp")
    with pytest.raises(NasjaxInputError, match="finite"):
        regret_sweep(table, ["fpga"], {"fpga": [float("nan")]}, "cifar10")
    with pytest.raises(NasjaxInputError, match="below every measured cell"):
        true_best(table, "cifar10", "fpga", 0.0)
    with pytest.raises(NasjaxInputError, match="no base"):
        nb201_additive(table, "cifar10", ["true_630"])  # 1,999-cell device: the single base is not measured
