"""Exact search: CVXPY/HiGHS and the pruned DP both equal exhaustive enumeration (MathNAS tables and random
instances), through the registry and the ILP program directly; the Pareto front is exactly the non-dominated
set, and bad budgets fail clearly."""

import numpy as np
import pytest
from conftest import require_shared

from nasjax.constraints import Constraint
from nasjax.errors import InfeasibleError, NasjaxInputError
from nasjax.search import SearchProblem, get_searcher, run_search
from nasjax.search.enumerate import all_values
from nasjax.search.ilp import ILPSearch
from nasjax.search.pareto import pareto_front
from nasjax.spaces import get_space
from nasjax.spaces.base import product_space
from nasjax.tables import Table, from_ragged


def table_space(t: Table):
    """The product space a table covers (its choice counts)."""
    counts = t.mask.sum(1)
    return product_space("table", [f"p{i}" for i in range(len(counts))], [[str(c) for c in range(k)] for k in counts])


def enumerate_best(acc, cons):
    return run_search("enumerate", SearchProblem(table_space(acc), acc, tuple(cons)))


def solve_mckp(acc, c):
    cons = (c,) if isinstance(c, Constraint) else tuple(c)
    return run_search("mckp", SearchProblem(table_space(acc), acc, cons))


def _budgets(table, n):
    lo, hi = table.bounds()
    return np.linspace(lo, hi, n)


@pytest.mark.parametrize("device", ["raspberrypi", "tx2cpu", "tx2gpu"])
def test_mobilenetv3_all_solvers_equal_enumeration(device):
    from nasjax.benchmarks.mathnas import mobilenetv3_tables

    _, acc, res = mobilenetv3_tables(require_shared("MathNAS"), device)
    lat = res["latency"]
    ilp = ILPSearch(acc, [Constraint(lat, 1e9, "ms")])
    for b in _budgets(lat, 24):
        c = Constraint(lat, float(b), "ms")
        best = enumerate_best(acc, [c])
        highs = run_search("highs", SearchProblem(table_space(acc), acc, (c,)))
        for r in (ilp.solve([float(b)]), solve_mckp(acc, c), highs):
            assert r.objective == pytest.approx(best.objective, abs=1e-9)
            assert r.resources["latency"] <= b + 1e-6


@pytest.mark.parametrize("device", ["fpga", "edgegpu"])
def test_nasbench201_latency_and_energy_together(device):
    from nasjax.benchmarks.mathnas import nasbench201_tables

    acc, res = nasbench201_tables(require_shared("MathNAS"), device)
    lat, eng = res["latency"], res["energy"]
    ilp = ILPSearch(acc, [Constraint(lat, 1e9, "au"), Constraint(eng, 1e9, "au")])
    rng = np.random.default_rng(0)
    lb, eb = _budgets(lat, 22)[1:], _budgets(eng, 22)[1:]
    n = 0
    for b1, b2 in zip(lb, rng.permutation(eb)):
        cs = [Constraint(lat, float(b1), "au"), Constraint(eng, float(b2), "au")]
        try:
            best = enumerate_best(acc, cs)
        except InfeasibleError:
            with pytest.raises(InfeasibleError):
                solve_mckp(acc, cs)
            with pytest.raises(InfeasibleError):
                ilp.solve([float(b1), float(b2)])
            continue
        n += 1
        for r in (ilp.solve([float(b1), float(b2)]), solve_mckp(acc, cs)):
            assert r.objective == pytest.approx(best.objective, abs=1e-7)
            assert r.resources["latency"] <= b1 + 1e-6 and r.resources["energy"] <= b2 + 1e-6
    assert n >= 15


def test_random_ragged_instances():
    rng = np.random.default_rng(3)
    for _ in range(6):
        counts = rng.integers(2, 7, size=5)
        acc = from_ragged([rng.normal(size=k) for k in counts], "accuracy", "%", base=50)
        lat = from_ragged([rng.uniform(1, 10, size=k) for k in counts], "latency", "ms")
        ilp = ILPSearch(acc, [Constraint(lat, 1.0, "ms")])
        for b in _budgets(lat, 8):
            c = Constraint(lat, float(b), "ms")
            e = enumerate_best(acc, [c]).objective
            assert solve_mckp(acc, c).objective == pytest.approx(e)
            assert ilp.solve([float(b)]).objective == pytest.approx(e)


def test_pareto_front_is_exactly_the_non_dominated_set():
    rng = np.random.default_rng(1)
    acc = Table(rng.normal(size=(6, 5)), None, "accuracy", "%", base=70)
    lat = Table(rng.uniform(1, 5, size=(6, 5)), None, "latency", "ms")
    front = pareto_front(acc, lat)
    archs = get_space("nasbench201").all_archs()
    a, r = all_values(acc, archs), all_values(lat, archs)
    order = np.lexsort((-a, r))
    best = -np.inf
    nd = []
    for i in order:
        if a[i] > best:
            nd.append(i)
            best = a[i]
    np.testing.assert_allclose(front.resource, r[nd])
    np.testing.assert_allclose(front.objective, a[nd])
    for b in _budgets(lat, 10):
        assert front.best_under(float(b)).objective == pytest.approx(
            enumerate_best(acc, [Constraint(lat, float(b), "ms")]).objective
        )


def test_infeasible_budget_names_the_smallest_value():
    lat = Table(np.array([[2.0, 3.0], [1.0, 4.0]]), None, "latency", "ms", device="cpu")
    acc = Table(np.array([[0.0, 1.0], [0.0, 1.0]]), None, "accuracy", "%")
    space = table_space(acc)
    solvers = [lambda c: solve_mckp(acc, c), lambda c: ILPSearch(acc, [c]).solve(), lambda c: enumerate_best(acc, [c])]
    solvers += [lambda c, n=n: run_search(n, SearchProblem(space, acc, (c,))) for n in ("highs", "mckp", "enumerate")]
    for solve in solvers:
        with pytest.raises(InfeasibleError, match=r"smallest achievable latency is 3.0000 ms") as e:
            solve(Constraint(lat, 2.5, "ms"))
        assert e.value.smallest["latency"] == 3.0


def test_gurobi_is_optional():
    import cvxpy as cp

    if "GUROBI" in cp.installed_solvers():
        pytest.skip("gurobi installed here")
    acc = Table(np.zeros((2, 2)), None, "accuracy", "%")
    with pytest.raises(NasjaxInputError, match="solver: 'gurobi' is not installed"):
        ILPSearch(acc, [], solver="gurobi")
    problem = SearchProblem(table_space(acc), acc)
    assert "'gurobi' is not installed" in get_searcher("gurobi").supports(problem)
    with pytest.raises(NasjaxInputError, match="searcher 'gurobi': solver: 'gurobi' is not installed"):
        run_search("gurobi", problem)


def test_nd_dominance_pruning_equals_brute_force():
    """The multi-resource pruning keeps exactly one copy of every non-dominated point (random ties)."""
    from nasjax.search.mckp import _prune_nd

    rng = np.random.default_rng(0)
    for _ in range(200):
        n, m = int(rng.integers(1, 40)), int(rng.integers(2, 4))
        V = rng.integers(0, 5, n).astype(float)
        W = rng.integers(0, 4, (n, m)).astype(float)
        want = set()
        for s in range(n):
            better = (V >= V[s]) & np.all(W <= W[s], axis=1) & ((V > V[s]) | np.any(W < W[s], axis=1))
            if not better.any():
                want.add((V[s], *W[s]))
        got = [(V[s], *W[s]) for s in _prune_nd(V, W)]
        assert len(got) == len(set(got)) and set(got) == want
