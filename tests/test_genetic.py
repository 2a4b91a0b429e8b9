"""DGL's genetic algorithm (nasjax.search.genetic): determinism, feasibility, exactness against enumeration."""

import numpy as np
import pytest

import nasjax.hardware.dgl  # noqa: F401  (registers the fbnetv3 space before parametrising)
from nasjax.constraints import Constraint
from nasjax.errors import InfeasibleError, NasjaxInputError
from nasjax.search.enumerate import enumerate_best
from nasjax.search.genetic import FnConstraint, GAConfig, GeneticSearch, genetic_search
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


def test_deterministic_under_seed():
    sp, acc, c = _instance(0)
    cfg = GAConfig(population_size=20, epochs=5)
    a = genetic_search(sp, acc, [c], cfg, seed=3)
    b = genetic_search(sp, acc, [c], cfg, seed=3)
    assert np.array_equal(a.arch, b.arch) and a.objective == b.objective and a.best_per_epoch == b.best_per_epoch


@pytest.mark.parametrize("seed", range(6))
def test_exact_optimum_on_additive_instances(seed):
    sp, acc, c = _instance(seed)
    exact = enumerate_best(acc, [c])
    ga = genetic_search(sp, acc, [c], GAConfig(population_size=100, epochs=30), seed=0)
    assert ga.objective == pytest.approx(exact.objective, abs=1e-12)
    assert ga.resources["latency"] <= c.bound + 1e-9


def test_matches_ilp_when_available():
    ilp = pytest.importorskip("nasjax.search.ilp")
    sp, acc, c = _instance(11)
    ref = ilp.ILPSearch(acc, [c]).solve()
    ga = genetic_search(sp, acc, [c], GAConfig(population_size=100, epochs=30), seed=1)
    assert ga.objective == pytest.approx(ref.objective, abs=1e-6)


@pytest.mark.parametrize("seed", range(4))
def test_never_returns_infeasible(seed):
    # tight budgets and a non-additive constraint (a product), with DGL's non-elitist breeding
    sp, acc, c = _instance(seed, budget_frac=0.05)
    prod = FnConstraint("prod", lambda a: np.prod(a + 1, axis=1).astype(float), 200.0)
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
        GeneticSearch(sp, acc, [c], GAConfig(gene_length=28))
    with pytest.raises(NasjaxInputError, match="POPULATION_SIZE"):
        GAConfig(population_size=1)
    with pytest.raises(NasjaxInputError, match="MUTATION_RATE"):
        GAConfig(mutation_rate=1.5)
    with pytest.raises(NasjaxInputError, match="NaN"):
        genetic_search(sp, lambda a: np.full(len(a), np.nan), [], GAConfig(population_size=4, epochs=1))


def test_epochs_change_the_search():
    sp, acc, c = _instance(5)
    r0 = genetic_search(sp, acc, [c], GAConfig(population_size=10, epochs=0), seed=0)
    r5 = genetic_search(sp, acc, [c], GAConfig(population_size=10, epochs=5), seed=0)
    assert r0.evaluations == 100 and r5.evaluations == 150 and len(r5.best_per_epoch) == 5
    assert r5.objective >= r0.objective


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
