"""DGL's genetic algorithm (the ``genetic`` searcher): determinism, feasibility, exactness against enumeration."""

import numpy as np
import pytest

import nasjax.hardware.dgl  # noqa: F401  (registers the fbnetv3 space before parametrising)
from nasjax.constraints import Constraint
from nasjax.errors import InfeasibleError, NasjaxInputError
from nasjax.search import FunctionModel, SearchProblem, run_search
from nasjax.search.genetic import GAConfig
from nasjax.spaces import SPACES, get_space
from nasjax.tables import Table


def _instance(seed, space="nasbench201", budget_frac=0.4):
    sp = get_space(space)
    r = np.random.default_rng(seed)
    mask = sp.mask
    acc = Table(r.random(mask.shape), mask, "accuracy", "%")
    lat = Table(r.random(mask.shape) * 10, mask, "latency", "ms")
    lo, hi = lat.bounds()
    return sp, acc, Constraint(lat, lo + budget_frac * (hi - lo), "ms")


def genetic_search(space, objective, constraints, config=GAConfig(), seed=0, init_population=None):
    return run_search("genetic", SearchProblem(space, objective, tuple(constraints)), seed, config=config,
                      init_population=init_population)


def test_deterministic_under_seed():
    sp, acc, c = _instance(0)
    cfg = GAConfig(population_size=20, epochs=5)
    a = genetic_search(sp, acc, [c], cfg, seed=3)
    b = genetic_search(sp, acc, [c], cfg, seed=3)
    assert np.array_equal(a.arch, b.arch) and a.objective == b.objective
    assert a.info["best_per_epoch"] == b.info["best_per_epoch"]


@pytest.mark.parametrize("seed", range(6))
def test_exact_optimum_on_additive_instances(seed):
    sp, acc, c = _instance(seed)
    exact = run_search("enumerate", SearchProblem(sp, acc, (c,)))
    ga = genetic_search(sp, acc, [c], GAConfig(population_size=100, epochs=30), seed=0)
    assert ga.objective == pytest.approx(exact.objective, abs=1e-12)
    assert ga.resources["latency"] <= c.bound + 1e-9


def test_matches_ilp_when_available():
    sp, acc, c = _instance(11)
    ref = run_search("highs", SearchProblem(sp, acc, (c,)))
    ga = genetic_search(sp, acc, [c], GAConfig(population_size=100, epochs=30), seed=1)
    assert ga.objective == pytest.approx(ref.objective, abs=1e-6)


@pytest.mark.parametrize("seed", range(4))
def test_never_returns_infeasible(seed):
    # tight budgets and a non-additive constraint (a product), with DGL's non-elitist breeding
    sp, acc, c = _instance(seed, budget_frac=0.05)
    prod = Constraint(FunctionModel(lambda a: np.prod(a + 1, axis=1).astype(float), "prod", "1"), 200.0, "1")
    for elitist in (True, False):
        try:
            r = genetic_search(sp, acc, [c, prod], GAConfig(population_size=30, epochs=8, elitist=elitist), seed=seed)
        except InfeasibleError:
            continue
        assert c.satisfied(r.arch)[0] and np.prod(r.arch + 1) <= 200


def test_infeasible_budget_raises_with_smallest():
    sp, acc, c = _instance(0)
    lo, _ = c.table.bounds()
    with pytest.raises(InfeasibleError) as e:
        genetic_search(sp, acc, [c.with_bound(lo - 1.0)], GAConfig(population_size=10, epochs=3))
    assert e.value.smallest["latency"] >= lo - 1e-9


def test_bad_config_is_an_error():
    sp, acc, c = _instance(0)
    with pytest.raises(NasjaxInputError, match="GENE_LENGTH"):
        genetic_search(sp, acc, [c], GAConfig(gene_length=28))
    with pytest.raises(NasjaxInputError, match="POPULATION_SIZE"):
        GAConfig(population_size=1)
    with pytest.raises(NasjaxInputError, match="MUTATION_RATE"):
        GAConfig(mutation_rate=1.5)
    nan = FunctionModel(lambda a: np.full(len(a), np.nan), "score", "1")
    with pytest.raises(NasjaxInputError, match="NaN"):
        genetic_search(sp, nan, [], GAConfig(population_size=4, epochs=1))


def test_epochs_change_the_search():
    sp, acc, c = _instance(5)
    r0 = genetic_search(sp, acc, [c], GAConfig(population_size=10, epochs=0), seed=0)
    r5 = genetic_search(sp, acc, [c], GAConfig(population_size=10, epochs=5), seed=0)
    assert r0.info["evaluations"] == 100 and r5.info["evaluations"] == 150 and len(r5.info["best_per_epoch"]) == 5
    assert r5.objective >= r0.objective


def test_pool_search_with_function_models():
    """DGL's pool search: fitness and latency looked up in a pool, pool membership as a constraint."""
    sp = get_space("nasbench201")
    r = np.random.default_rng(5)
    pool = sp.from_index(r.choice(sp.size, 400, replace=False))
    acc, lat = r.random(400) * 100, r.random(400) * 50
    pos = {int(k): n for n, k in enumerate(sp.index_of(pool))}
    look = lambda col, missing: lambda a: np.array([col[pos[int(i)]] if int(i) in pos else missing  # noqa: E731
                                                    for i in sp.index_of(a)])
    member = FunctionModel(lambda a: np.array([0.0 if int(i) in pos else 1.0 for i in sp.index_of(a)]), "pool", "1")
    cons = [Constraint(member, 0.0, "1"), Constraint(FunctionModel(look(lat, np.inf), "latency", "ms"), 20.0, "ms")]
    res = genetic_search(sp, FunctionModel(look(acc, -np.inf), "accuracy", "%"), cons,
                         GAConfig(population_size=50, epochs=20), seed=3, init_population=pool)
    i = pos[int(sp.index_of(res.arch[None])[0])]
    assert lat[i] <= 20.0 and res.objective == acc[i]
    assert res.objective == pytest.approx(acc[lat <= 20.0].max())  # the pool's constrained optimum


@pytest.mark.parametrize("name", SPACES.names())
def test_every_registered_space(name):
    try:
        get_space(name)
    except TypeError:
        pytest.skip(f"space {name} needs arguments")
    sp, acc, c = _instance(1, name, budget_frac=0.5)
    r = genetic_search(sp, acc, [c], GAConfig(population_size=10, epochs=2), seed=0)
    sp.validate(r.arch)
    assert c.satisfied(r.arch)[0]
