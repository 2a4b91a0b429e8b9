"""Hypervolume and the random-mutation Pareto searcher."""

import itertools

import numpy as np
import pytest

from nasjax.constraints import Constraint
from nasjax.errors import NasjaxInputError
from nasjax.search import FunctionModel, SearchProblem, run_search
from nasjax.search.pareto_mutation import Mutator, hypervolume, mutation_search, nondominated
from nasjax.spaces import get_space
from nasjax.spaces.structure import structure_of


def brute_hv(costs, ref):
    """Inclusion-exclusion over every subset: HV = sum_S (-1)^(|S|+1) prod_j (r_j - max_{i in S} y_ij)^+."""
    c = np.asarray(costs, float)
    total = 0.0
    for k in range(1, len(c) + 1):
        for S in itertools.combinations(range(len(c)), k):
            side = np.clip(np.asarray(ref) - c[list(S)].max(0), 0, None)
            total += (-1) ** (k + 1) * float(np.prod(side))
    return total


@pytest.mark.parametrize("m", [1, 2, 3, 4])
def test_hypervolume_equals_brute_force(m):
    rng = np.random.default_rng(m)
    for trial in range(25):
        n = int(rng.integers(1, 9))
        c = rng.random((n, m))
        if trial % 3 == 0:
            c = np.round(c * 4) / 4  # ties and duplicates
        ref = np.full(m, 1.1) if trial % 2 else np.full(m, 0.8)  # some points beyond the reference
        assert hypervolume(c, ref) == pytest.approx(brute_hv(c, ref), abs=1e-12), (m, trial)


def test_hypervolume_known_values():
    assert hypervolume([[1, 3], [2, 2], [3, 1]], [4, 4]) == pytest.approx(6.0)
    assert hypervolume(np.zeros((0, 2)), [1, 1]) == 0.0
    assert hypervolume([[2, 2]], [1, 1]) == 0.0


def test_nondominated_matches_pairwise_definition():
    rng = np.random.default_rng(0)
    for m in (2, 3):
        c = np.round(rng.random((60, m)) * 6)
        want = np.array([not any(np.all(c[j] <= c[i]) and np.any(c[j] < c[i]) for j in range(len(c)))
                         for i in range(len(c))])
        np.testing.assert_array_equal(nondominated(c), want)


def _ofa_problem(bound=np.inf):
    space = get_space("mobilenetv3_layers")
    st = structure_of(space)
    w = np.random.default_rng(0).random((25, 9))

    def cost(a):  # active layers only
        act = st.active(a)
        return (w[np.arange(25), a] * act).sum(1)

    acc = FunctionModel(lambda a: 70 + cost(a) - 0.1 * (a[:, :20] % 3).sum(1), "accuracy", "%")
    lat = FunctionModel(cost, "latency", "ms")
    cons = (Constraint(lat, float(bound) if np.isfinite(bound) else 1e9, "ms"),)
    return space, st, SearchProblem(space, acc, cons)


def test_mutations_stay_in_allowed_canonical_and_change_the_arch():
    space, st, _ = _ofa_problem()
    allowed = space.mask.copy()
    allowed[:20, 6:] = False  # no 7x7 kernels
    allowed[20, 2] = False  # stage 1 at most depth 3
    mut = Mutator(allowed, st.gate_position, st.gate_min_choice)
    rng = np.random.default_rng(1)
    a = mut.random(rng, 50)
    for x in a:
        y = mut.mutate(rng, x)
        assert allowed[np.arange(25), y].all()
        np.testing.assert_array_equal(y, mut.canonical(y))
        act = st.active(y[None])[0]
        assert np.all(y[~act] == 0)


def test_search_budget_front_and_reduced_space():
    space, st, problem = _ofa_problem()
    gates = {"gate_position": st.gate_position, "gate_min_choice": st.gate_min_choice}
    run = mutation_search(problem, 3, init_size=20, iterations=3, per_iteration=30, **gates)
    assert len(run.archs) == 20 + 3 * 30
    assert len({a.tobytes() for a in run.archs}) == len(run.archs)
    np.testing.assert_array_equal(np.sort(run.front), np.flatnonzero(nondominated(run.costs)))
    run2 = mutation_search(problem, 3, init_size=20, iterations=3, per_iteration=30, **gates)
    np.testing.assert_array_equal(run.archs, run2.archs)
    allowed = space.mask.copy()
    allowed[:20, 3:] = False
    red = mutation_search(problem, 3, allowed=allowed, init_size=20, iterations=2, per_iteration=30, **gates)
    assert allowed[np.arange(25), red.archs].all()


def test_registered_searcher_returns_the_front():
    _, st, problem = _ofa_problem(bound=10.0)
    r = run_search("pareto-mutation", problem, 0, init_size=20, iterations=2, per_iteration=20,
                   gate_position=st.gate_position, gate_min_choice=st.gate_min_choice)
    lat = np.asarray(r.info["front_resources"]["latency"])
    acc = np.asarray(r.info["front_objective"])
    assert np.all(np.diff(lat) >= 0) and np.all(lat <= 10.0)
    assert r.archs.shape == (len(lat), 25) and r.objective == pytest.approx(acc.max())
    assert nondominated(np.stack([-acc, lat], 1)).all()
    with pytest.raises(NasjaxInputError, match="allowed"):
        run_search("pareto-mutation", problem, 0, allowed=np.ones((3, 3), bool))


def test_coupled_draws_are_uniform_on_the_subset_and_share_the_full_spaces():
    full = np.ones((3, 5), bool)
    sub = full.copy()
    sub[0, [1, 3]] = False  # position 0 keeps 0, 2, 4
    mf, ms = Mutator(full), Mutator(sub, full=full)
    a, b = mf.random(np.random.default_rng(7), 3000), ms.random(np.random.default_rng(7), 3000)
    assert sub[np.arange(3), b].all()
    inside = sub[np.arange(3), a].all(1)
    np.testing.assert_array_equal(a[inside], b[inside])  # the full space's starts wherever they are allowed
    counts = np.bincount(b[:, 0], minlength=5)[[0, 2, 4]]
    assert np.all(np.abs(counts / 3000 - 1 / 3) < 0.03)  # uniform over the kept choices
    rf, rs = np.random.default_rng(3), np.random.default_rng(3)
    x = np.array([0, 0, 0])
    same = [(mf.draw(rf, 0, exclude=0), ms.draw(rs, 0, exclude=0)) for _ in range(2000)]
    got = np.array([s for _, s in same])
    assert set(got) == {2, 4} and abs(np.mean(got == 2) - 0.5) < 0.04  # uniform over allowed others
    assert all(s == f for f, s in same if sub[0, f])
    assert ms.mutate(np.random.default_rng(0), x).shape == (3,)
