"""The exact multiple-choice knapsack at scale: the bounded solver equals HiGHS on instances whose costs rise
with value (many positions, many choices, two constraints), returns exactly the plain DP's answer (ties
included), and the large-set dominance sweep keeps exactly the pairwise test's points."""

import numpy as np
import pytest
from scipy.optimize import Bounds, LinearConstraint, milp

from nasjax.search import mckp


def instance(P, K, m, seed, noise=1.0):
    """``v ~ U(0, 1)``, ``A_j = v + noise * U(0, 1)``: costs rise with value; budgets halfway."""
    r = np.random.default_rng(seed)
    v = r.uniform(0, 1, (P, K))
    A = [v + noise * r.uniform(0, 1, (P, K)) for _ in range(m)]
    b = [a.min(1).sum() + 0.5 * (a.max(1).sum() - a.min(1).sum()) for a in A]
    return v, A, np.ones((P, K), bool), b


def highs_optimum(v, A, b):
    P, K = v.shape
    cons = [LinearConstraint(np.kron(np.eye(P), np.ones(K)), 1, 1),
            LinearConstraint(np.stack([a.reshape(-1) for a in A]), -np.inf, b)]
    res = milp(-v.reshape(-1), constraints=cons, integrality=np.ones(P * K), bounds=Bounds(0, 1),
               options={"mip_rel_gap": 0.0})
    assert res.status == 0
    return -res.fun


@pytest.mark.parametrize("P, K, m, noise", [(5, 2000, 1, 1.0), (5, 2000, 1, 0.1), (80, 12, 1, 1.0), (80, 12, 1, 0.3),
                                            (20, 12, 2, 1.0), (20, 12, 2, 0.1), (8, 40, 3, 0.5)])
def test_equals_highs(P, K, m, noise):
    for seed in range(2):
        v, A, mask, b = instance(P, K, m, seed, noise)
        arch, V, W = mckp.solve_mckp(v, A, mask, b)
        assert V == pytest.approx(highs_optimum(v, A, b), abs=1e-7)
        assert V == pytest.approx(v[np.arange(P), arch].sum()) and np.all(W <= np.array(b) + 1e-9)


def test_same_answer_as_the_plain_dp_ties_included():
    rng = np.random.default_rng(0)
    n = 0
    for trial in range(150):
        P, K, m = int(rng.integers(2, 6)), int(rng.integers(4, 18)), int(rng.integers(1, 3))
        mask = np.ones((P, K), bool)
        mask[:, 1:] = rng.random((P, K - 1)) < 0.9
        if trial % 2:
            v = rng.integers(0, 6, (P, K)).astype(float)
            A = [v + rng.integers(0, 4, (P, K)) for _ in range(m)]
        else:
            v = rng.uniform(0, 1, (P, K))
            A = [v + 0.2 * rng.uniform(0, 1, (P, K)) for _ in range(m)]
        v, A = np.where(mask, v, 0), [np.where(mask, a, 0) for a in A]
        b = [sum(a[i, mask[i]].min() for i in range(P)) * 0.6 + sum(a[i, mask[i]].max() for i in range(P)) * 0.4
             for a in A]
        archs, V, W = mckp.dp_states(v, A, mask, b)  # no bound, no target: the plain pruned DP
        got = mckp.solve_mckp(v, A, mask, b)
        if len(V) == 0:
            assert got is None
            continue
        best = np.flatnonzero(V == V.max())
        j = best[np.argmin(W[best, 0])]
        assert np.array_equal(got[0], archs[j]) and got[1] == V[j], trial
        n += 1
    assert n > 100


def test_large_set_dominance_equals_pairwise():
    rng = np.random.default_rng(1)
    for m in (2, 3):
        V = rng.integers(0, 30, 5000).astype(float)
        W = rng.integers(0, 40, (5000, m)).astype(float)
        fast = mckp._prune_nd(V, W)  # above the pairwise limit: the blocked sweep
        order = np.lexsort(tuple(W[:, j] for j in range(m - 1, -1, -1)) + (-V,))
        Ws = W[order]
        slow = []
        for s in range(len(V)):
            if not np.any(np.all(Ws[:s] <= Ws[s], axis=1)):
                slow.append(order[s])
        assert sorted(fast.tolist()) == sorted(slow)


def test_lp_relaxation_is_the_lp_optimum():
    from scipy.optimize import linprog

    rng = np.random.default_rng(2)
    for _ in range(50):
        P, K = int(rng.integers(1, 7)), int(rng.integers(1, 6))
        v, w = rng.normal(size=(P, K)), rng.uniform(0, 1, (P, K))
        b = w.min(1).sum() + rng.uniform(0, 1) * (w.max(1).sum() - w.min(1).sum())
        x, a = mckp.lp_relaxation(v, w, b)
        res = linprog(-v.reshape(-1), A_ub=w.reshape(1, -1), b_ub=[b], A_eq=np.kron(np.eye(P), np.ones(K)),
                      b_eq=np.ones(P), bounds=(0, 1), method="highs")
        assert (x * v).sum() == pytest.approx(-res.fun, abs=1e-9)
        assert w[np.arange(P), a].sum() <= b + 1e-9 and np.allclose(x.sum(1), 1)
