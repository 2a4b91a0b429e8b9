"""Registry-driven tests: every registered searcher on one small problem with a known optimum.

Problem A: an additive accuracy table over 4 x 4 x 3 x 3 = 144 architectures with a latency and an energy
table as constraints. Problem B: the synthetic tabular benchmark over the same space with a measured
latency column as the constraint. Every searcher that supports a problem must return a feasible
architecture; exact ones must return the brute-force optimum; query-based ones get a query budget
covering the space and must keep to it, query only feasible cells, and never repeat one.
"""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from nasjax.constraints import Constraint
from nasjax.errors import NasjaxInputError
from nasjax.predictors.mlp import MLPConfig
from nasjax.search import SEARCHERS, FunctionModel, SearchProblem, get_searcher, run_search
from nasjax.search.branched import Branch, BranchedObjective
from nasjax.search.genetic import GAConfig
from nasjax.search.synthetic import synthetic_tabular
from nasjax.search.weak import WeakNASConfig
from nasjax.spaces.base import product_space
from nasjax.tables import Table

ROOT = Path(__file__).resolve().parent.parent
COUNTS = (4, 4, 3, 3)
SPACE = product_space("toy", [f"p{i}" for i in range(4)], [[str(c) for c in range(k)] for k in COUNTS])
ALL = SPACE.all_archs()
OPTIONS = {
    "weaknas-uniform": {"config": WeakNASConfig(init_sample=6, sample_each_iter=4, top_start=20, top_end=8,
                                                mlp=MLPConfig(hidden=(8,), iters=10, lr=2e-2, members=2))},
    "genetic": {"config": GAConfig(population_size=20, epochs=10)},
}
OPTIONS["weaknas-ei"] = OPTIONS["weaknas-uniform"]


def _table(rng, metric, unit, lo=0.0, hi=1.0, base=0.0):
    return Table(rng.uniform(lo, hi, (4, 4)), SPACE.mask, metric, unit, base=base)


def additive_problem() -> tuple[SearchProblem, float]:
    rng = np.random.default_rng(0)
    acc, lat = _table(rng, "accuracy", "%", base=50), _table(rng, "latency", "ms", 1, 5)
    eng = _table(rng, "energy", "mJ")
    lb, eb = np.quantile(lat.predict(ALL), 0.45), np.quantile(eng.predict(ALL), 0.55)
    cons = (Constraint(lat, float(lb), "ms"), Constraint(eng, float(eb), "mJ"))
    ok = (lat.predict(ALL) <= lb) & (eng.predict(ALL) <= eb)
    return SearchProblem(SPACE, acc, cons, query_budget=SPACE.size, name="toy"), float(acc.predict(ALL)[ok].max())


def branched_version(problem: SearchProblem) -> SearchProblem:
    """The same problem branched on position 0: branch k fixes a_0 = k and covers positions 1..3."""
    sub_space = product_space("toy_sub", SPACE.positions[1:], SPACE.choices[1:])

    def sub(t: Table, k: int) -> Table:
        return Table(t.values[1:], t.mask[1:], t.metric, t.unit, base=t.base + t.coef[0, k])

    branches = tuple(Branch(k, sub_space, sub(problem.objective, k),
                            {c.name: sub(c.table, k) for c in problem.constraints},
                            lambda a, k=k: np.concatenate([[k], a]).astype(np.int64)) for k in range(COUNTS[0]))
    obj = BranchedObjective(branches, lambda a: (int(a[0]), np.asarray(a)[1:]))
    cons = tuple(Constraint(obj.resource(c.name), c.bound, c.unit) for c in problem.constraints)
    return SearchProblem(SPACE, obj, cons, problem.query_budget, "toy/branched")


def tabular_problem() -> tuple[SearchProblem, float]:
    obj, lat = synthetic_tabular(COUNTS, seed=3)
    budget = float(np.quantile(lat.values, 0.4))
    ok = lat.values <= budget
    return (SearchProblem(obj.space, obj, (Constraint(lat, budget, "ms"),), query_budget=obj.size, name="tab"),
            float(obj.val_mean[ok].max()))


def _check(name, problem, optimum, result):
    searcher = get_searcher(name)
    for c in problem.constraints:
        assert c.satisfied(result.arch)[0], (name, c.name)
    assert result.solver.startswith(name)
    assert set(result.units) >= {c.name for c in problem.constraints}
    if searcher.kind == "exact":
        assert result.certified and result.objective == pytest.approx(optimum, abs=1e-9), name
        assert result.history is None
    else:
        assert result.objective <= optimum + 1e-9
        h = result.history
        if h is not None:
            assert len(h.order) <= problem.query_budget and len(set(h.order.tolist())) == len(h.order)
        if name == "random" and problem.query_budget >= problem.space.size:  # covering budget: every cell seen
            assert result.objective == pytest.approx(optimum, abs=1e-9)


def skip_if_restricted(name, problem):
    """Searchers restricted to other spaces (``spaces`` attribute) have their own tests (tests/test_binas_*)."""
    spaces = getattr(get_searcher(name), "spaces", None)
    if spaces is not None and problem.space.name not in spaces:
        assert get_searcher(name).supports(problem) is not None
        pytest.skip(f"{name}: solves {spaces} spaces only")


@pytest.mark.parametrize("name", SEARCHERS.names())
def test_every_searcher_on_the_additive_problem(name):
    problem, optimum = additive_problem()
    skip_if_restricted(name, problem)
    if name == "branched":
        problem = branched_version(problem)
    why = get_searcher(name).supports(problem)
    if name == "gurobi" and why is not None:
        pytest.skip(f"gurobi: {why}")
    assert why is None, why
    _check(name, problem, optimum, run_search(name, problem, 0, **OPTIONS.get(name, {})))
    if name == "branched":  # any exact searcher of the registry solves the branches
        for inner in ("highs", "enumerate"):
            r = run_search(name, problem, inner=inner)
            assert r.objective == pytest.approx(optimum, abs=1e-9) and r.solver.startswith(f"branched/{inner}")
        with pytest.raises(NasjaxInputError, match="inner"):
            run_search(name, problem, inner="random")


@pytest.mark.parametrize("name", SEARCHERS.names())
def test_every_searcher_on_the_constrained_tabular_problem(name):
    problem, optimum = tabular_problem()
    skip_if_restricted(name, problem)
    searcher = get_searcher(name)
    why = searcher.supports(problem)
    if name == "gurobi" and why is not None and "not installed" in why:
        pytest.skip(f"gurobi: {why}")
    if why is not None:  # the integer-program searchers need additive tables: they say so
        assert searcher.kind == "exact" and "expected" in why
        with pytest.raises(NasjaxInputError, match=f"searcher '{name}'"):
            run_search(name, problem)
        return
    result = run_search(name, problem, 1, **OPTIONS.get(name, {}))
    _check(name, problem, optimum, result)
    if searcher.kind == "query":
        h = result.history
        feasible = problem.constraints[0].satisfied(problem.objective.archs)
        assert h is not None and feasible[h.order].all()


def test_exact_searchers_refuse_non_additive_problems_and_query_ones_huge_spaces():
    problem, _ = additive_problem()
    f = FunctionModel(lambda a: a.sum(1).astype(float), "accuracy", "%")
    non_additive = SearchProblem(SPACE, f, problem.constraints)
    for name in ("highs", "mckp", "branched"):
        assert get_searcher(name).supports(non_additive) is not None
    assert run_search("enumerate", non_additive).objective == pytest.approx(
        max(f.predict(ALL)[np.all([c.satisfied(ALL) for c in problem.constraints], 0)]))
    huge = product_space("huge", [f"p{i}" for i in range(12)], [[str(c) for c in range(9)]] * 12)
    big = SearchProblem(huge, FunctionModel(lambda a: a.sum(1).astype(float), "accuracy", "%"))
    for name in ("random", "local", "evolution", "weaknas-uniform", "enumerate"):
        with pytest.raises(NasjaxInputError, match=f"searcher '{name}': .*architectures"):
            run_search(name, big)


def test_a_solve_prints_nothing_on_stdout():
    """HiGHS's banner (and any solver log) goes to the logger, not to stdout."""
    code = (
        "import numpy as np\n"
        "from nasjax.constraints import Constraint\n"
        "from nasjax.search import SearchProblem, run_search\n"
        "from nasjax.spaces.base import product_space\n"
        "from nasjax.tables import Table\n"
        "sp = product_space('s', ['a', 'b'], [['0', '1'], ['0', '1']])\n"
        "acc = Table(np.array([[0.0, 1.0], [0.0, 2.0]]), None, 'accuracy', '%')\n"
        "lat = Table(np.array([[1.0, 2.0], [1.0, 3.0]]), None, 'latency', 'ms')\n"
        "r = run_search('highs', SearchProblem(sp, acc, (Constraint(lat, 4.0, 'ms'),)))\n"
        "assert r.arch.tolist() == [0, 1], r.arch\n"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout == ""
    assert "HiGHS" not in r.stderr  # the banner is logged at DEBUG, below the default level


def binas_problem() -> tuple[SearchProblem, float]:
    """A two-stage BINAS space (bilinear accuracy and latency models) with its brute-force optimum."""
    from nasjax.hardware.binas_latency import BilinearForm
    from nasjax.spaces import binas as bs

    st = bs.BinasStructure(stages=bs.STAGES[:2], configs=bs.CONFIGS[:3])
    rng = np.random.default_rng(5)
    L, K, S, D = st.num_layers, st.num_configs, st.num_stages, len(st.depths)
    same_stage = (st.layer_stage[:, None] == np.arange(S)[None, :])[:, None, :, None]
    acc = BilinearForm(70.0, rng.normal(size=(L, K)), np.zeros((S, D)), rng.normal(scale=0.3, size=(L, K, S, D))
                       * same_stage, "accuracy", "%", structure=st)
    lat = BilinearForm(5.0, rng.uniform(0, 1, (L, K)), rng.normal(size=(S, D)) ** 2,
                       np.abs(rng.normal(scale=0.06, size=(L, K, S, D))) * same_stage, "latency", "ms", structure=st)
    space = bs.binas_space(st)
    lo, hi = lat.bounds()
    cons = (Constraint(lat, lo + 0.5 * (hi - lo), "ms"),)
    archs = np.unique(bs.canonical(space.all_archs(), st), axis=0)
    ok = cons[0].satisfied(archs)
    optimum = float(acc.predict(archs)[ok].max())
    return SearchProblem(space, acc, cons, query_budget=300, name="binas-two-stage"), optimum


@pytest.mark.parametrize("name", SEARCHERS.names())
def test_every_searcher_on_a_binas_problem(name):
    """The BINAS searchers (and every general one that takes a bilinear objective) on a two-stage instance."""
    problem, optimum = binas_problem()
    searcher = get_searcher(name)
    why = searcher.supports(problem)
    if why is not None:
        assert isinstance(why, str) and why
        return
    _check(name, problem, optimum, run_search(name, problem, 2, **OPTIONS.get(name, {})))


def test_the_three_problems_cover_every_registered_searcher():
    problems = [additive_problem()[0], tabular_problem()[0], binas_problem()[0]]
    problems.append(branched_version(problems[0]))
    for name in SEARCHERS.names():
        whys = [get_searcher(name).supports(p) for p in problems]
        if name == "gurobi" and any(w and "not installed" in w for w in whys):
            continue  # covered by the additive problem where gurobipy is installed
        assert any(w is None for w in whys), (name, whys)
