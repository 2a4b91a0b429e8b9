"""Fast exact solver for additive objectives: a dominance-pruned dynamic program (multiple-choice knapsack).

Problem (MathNAS, NeurIPS 2023, with one or more resource constraints)::

    max_a  sum_i v[i, a_i]     s.t.   sum_i A_j[i, a_i] <= b_j   (j = 1..m),   a_i in choices(i)

The DP adds one position at a time to a set of partial solutions ``(V, W_1..W_m)`` and keeps only those
that can still matter:

* budget pruning: a partial solution whose ``W_j`` plus the smallest possible remainder
  ``sum_{p > i} min_c A_j[p, c]`` exceeds ``b_j`` can never become feasible;
* dominance pruning: a partial solution with ``V <= V'`` and ``W_j >= W'_j`` for every ``j`` (one strict)
  is never better than ``(V', W')`` whatever the remaining positions choose (Nemhauser-Ullmann).

With one constraint the surviving set is the exact (resource, objective) Pareto front of the positions
seen so far, kept sorted, so pruning is a sort plus a running maximum. The answer is exact: pruning only
removes solutions that are provably no better. Ties in the objective are broken towards the smaller
first resource. Registered as the exact searcher ``mckp``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from nasjax.search.base import (
    Searcher,
    SearchProblem,
    SearchResult,
    check_budgets,
    evaluate,
    joint_infeasible,
    register,
)

_PAIRWISE_LIMIT = 3000  # dominance pruning in >= 2 dimensions is O(n^2); beyond this, budget pruning only


def _prune_1d(V: np.ndarray, W: np.ndarray) -> np.ndarray:
    """Indices of the non-dominated points of (W ascending, V ascending), W[:, 0] only."""
    order = np.lexsort((-V, W[:, 0]))
    vs = V[order]
    prev = np.concatenate([[-np.inf], np.maximum.accumulate(vs)[:-1]])
    return order[vs > prev]


def _prune_nd(V: np.ndarray, W: np.ndarray) -> np.ndarray:
    """Indices of the non-dominated points in several resource dimensions. Sorted by objective descending
    (ties: resources lexicographically ascending), a point can only be dominated by, or equal to, a point
    sorted before it, so ``s`` is dropped iff some ``t < s`` has ``W_t <= W_s`` in every dimension (this
    also keeps only the first of identical points)."""
    n = len(V)
    if n > _PAIRWISE_LIMIT:
        return np.arange(n)
    order = np.lexsort(tuple(W[:, j] for j in range(W.shape[1] - 1, -1, -1)) + (-V,))
    W = W[order]
    covers = np.tri(n, k=-1, dtype=bool).T  # [t, s]: t sorted before s
    for j in range(W.shape[1]):
        covers &= W[:, None, j] <= W[None, :, j]
    return order[~covers.any(axis=0)]


def dp_states(v: np.ndarray, A: Sequence[np.ndarray], mask: np.ndarray, b: Sequence[float] | None):
    """Run the pruned DP over the positions of an additive space.

    Args:
      v: ``[P, K]`` objective coefficients (``objective.coef``).
      A: one ``[P, K]`` coefficient array per constraint (``constraint.A``).
      mask: ``[P, K]`` existing cells.
      b: the bounds ``b_j`` of ``sum_i A_j[i, a_i] <= b_j`` for budget pruning, or ``None`` to keep every
        Pareto point.

    Returns:
      ``(archs [n, P], V [n], W [n, m])``: the surviving complete solutions with ``V = sum_i v[i, a_i]``
      and ``W_j = sum_i A_j[i, a_i]``.
    """
    P = v.shape[0]
    m = len(A)
    Aw = np.stack(A, axis=-1) if m else np.zeros(v.shape + (1,))  # [P, K, m']
    mm = max(m, 1)
    cells = [np.flatnonzero(mask[i]) for i in range(P)]
    if b is not None and m:
        mins = np.stack([np.array([A[j][i, cells[i]].min() for i in range(P)]) for j in range(m)], 1)  # [P, m]
        rem = np.concatenate([np.cumsum(mins[::-1], 0)[::-1][1:], np.zeros((1, m))], 0)  # after position i
        bb = np.asarray(b, float)
        tol = 1e-9 * np.maximum(1.0, np.abs(bb))
    archs = np.zeros((1, 0), np.int64)
    V = np.zeros(1)
    W = np.zeros((1, mm))
    for i in range(P):
        c = cells[i]
        k = len(c)
        V2 = (V[:, None] + v[i, c][None, :]).reshape(-1)
        W2 = (W[:, None, :] + Aw[i, c][None, :, :]).reshape(-1, mm)
        parent = np.repeat(np.arange(len(V)), k)
        choice = np.tile(c, len(V))
        if b is not None and m:
            ok = np.all(W2[:, :m] + rem[i] <= bb + tol, axis=1)
            V2, W2, parent, choice = V2[ok], W2[ok], parent[ok], choice[ok]
            if len(V2) == 0:
                return np.zeros((0, P), np.int64), np.zeros(0), np.zeros((0, m))
        keep = _prune_1d(V2, W2) if mm == 1 else _prune_nd(V2, W2)
        archs = np.concatenate([archs[parent[keep]], choice[keep][:, None]], axis=1)
        V, W = V2[keep], W2[keep]
    return archs, V, W[:, :m]


class MCKPSearcher(Searcher):
    """Exact maximiser of an additive objective under additive constraints by the pruned DP above.

    ``max_a sum_i v[i, a_i]  s.t.  sum_i A_j[i, a_i] <= b_j``; among optima the one with the smallest first
    resource is returned (without constraints: the first optimum the DP keeps).
    """

    name = "mckp"
    kind = "exact"

    def supports(self, problem: SearchProblem) -> str | None:
        return None if problem.additive else "expected an additive problem (a Table objective and Table constraints)"

    def _search(self, problem: SearchProblem, seed: int) -> SearchResult:
        objective, cons = problem.objective, list(problem.constraints)
        check_budgets(cons)
        b = [c.b for c in cons] if cons else None
        archs, V, W = dp_states(objective.coef, [c.A for c in cons], objective.mask, b)
        if len(V) == 0:
            raise joint_infeasible(cons)
        best = np.flatnonzero(V == V.max())
        j = best[np.argmin(W[best, 0])] if cons else int(np.argmax(V))
        obj, res = evaluate(archs[j], objective, cons)
        return SearchResult(archs[j], obj, res, certified=True)


register(MCKPSearcher())
