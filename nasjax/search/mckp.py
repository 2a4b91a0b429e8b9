"""Fast exact solver for additive objectives: the multiple-choice knapsack by bounded, dominance-pruned DP.

Problem (MathNAS, NeurIPS 2023; BINAS's stage-wise program, arXiv 2110.12399; one or more constraints)::

    max_a  sum_i v[i, a_i]     s.t.   sum_i A_j[i, a_i] <= b_j   (j = 1..m),   a_i in choices(i)

The DP adds one position at a time to a set of partial solutions ``(V, W_1..W_m)`` and keeps only those
that can still matter:

* choice pruning: a choice that another choice of the same position matches or beats in value and in
  every resource is dropped before the DP (of identical choices the lowest index stays);
* budget pruning: a partial solution whose ``W_j`` plus the smallest possible remainder
  ``sum_{p > i} min_c A_j[p, c]`` exceeds ``b_j`` can never become feasible;
* bound pruning (branch and bound): a partial solution whose upper bound ``V + U_i(b - W)`` is below a
  target ``t`` is dropped; such a pass keeps every solution worth at least ``t``, so any solution it
  finds is optimal. With one constraint ``U_i(r)`` is the LP relaxation of the remaining positions: the
  value of taking, in decreasing order of slope, the increments of each position's upper convex hull of
  (cost, value) until the budget ``r`` is spent (a concave piecewise-linear function, evaluated for all
  states at once; because it is concave in the cost of the next choice, the choices worth expanding for
  each state form a range found by binary search, and the last position takes the best affordable choice
  directly). With several constraints ``U_i`` is the smallest of the Lagrangian bound at the LP's dual
  prices ``lambda`` and the LP bounds of surrogate constraints (``lambda``-weighted and each alone);
* target and reduced-cost fixing: the target is the value of a feasible solution found by passes that
  keep only the most promising partial solutions (a beam); at prices ``lambda`` a choice whose reduced
  value ``v - lambda . A`` is more than ``L(lambda) - t`` below its position's best (``L`` the Lagrangian
  bound of the whole program) cannot be part of a solution worth ``t`` and is dropped before the exact
  pass;
* dominance pruning: a partial solution with ``V <= V'`` and ``W_j >= W'_j`` for every ``j`` (one strict)
  is never better than ``(V', W')`` whatever the remaining positions choose (Nemhauser-Ullmann). With one
  constraint the surviving set is a sorted front (a sort plus a running maximum); with two, a sweep
  against the staircase of kept points; with more, blocked pairwise comparison.

Every pruning removes only solutions that are provably no better, so the answer is exact; ties in the
objective are broken towards the smaller first resource (then the earlier solution in the DP's order,
which bound pruning does not change). Registered as the exact searcher ``mckp``.
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

_PAIRWISE_LIMIT = 3000  # below this many points, n^2 dominance comparison in one vectorised call
_BLOCK = 512  # block size of the exact large-n dominance sweep
_BEAM = 64  # partial solutions kept by the incumbent pass
_SMALL = 64  # programs with at most this many cells (undominated choices) run the plain DP


def _prune_1d(V: np.ndarray, W: np.ndarray) -> np.ndarray:
    """Indices of the non-dominated points of (W ascending, V ascending), W[:, 0] only."""
    order = np.lexsort((-V, W[:, 0]))
    vs = V[order]
    prev = np.concatenate([[-np.inf], np.maximum.accumulate(vs)[:-1]])
    return order[vs > prev]


def _covers(Wa: np.ndarray, Wb: np.ndarray) -> np.ndarray:
    """``[a, b]``: point ``a`` is at most point ``b`` in every resource."""
    out = np.ones((len(Wa), len(Wb)), bool)
    for j in range(Wa.shape[1]):
        out &= Wa[:, None, j] <= Wb[None, :, j]
    return out


def _prune_nd(V: np.ndarray, W: np.ndarray) -> np.ndarray:
    """Indices of the non-dominated points in several resource dimensions. Sorted by objective descending
    (ties: resources lexicographically ascending), a point can only be dominated by, or equal to, a point
    sorted before it, so ``s`` is dropped iff some ``t < s`` has ``W_t <= W_s`` in every dimension (this
    also keeps only the first of identical points). Large sets are swept in blocks against the points
    kept so far (a staircase with two resources), which drops exactly the same points."""
    n = len(V)
    order = np.lexsort(tuple(W[:, j] for j in range(W.shape[1] - 1, -1, -1)) + (-V,))
    Ws = W[order]
    if n <= _PAIRWISE_LIMIT:
        return order[~(np.triu(_covers(Ws, Ws), 1)).any(axis=0)]
    keep = np.zeros(n, bool)
    kept = np.zeros((0, W.shape[1]))
    for lo in range(0, n, _BLOCK):
        blk = Ws[lo:lo + _BLOCK]
        dom = np.triu(_covers(blk, blk), 1).any(axis=0)
        if len(kept) and W.shape[1] == 2:  # staircase: W0 ascending, W1 strictly decreasing
            j = np.searchsorted(kept[:, 0], blk[:, 0], side="right") - 1
            dom |= (j >= 0) & (kept[np.maximum(j, 0), 1] <= blk[:, 1])
        elif len(kept):
            for k0 in range(0, len(kept), _BLOCK):
                dom |= _covers(kept[k0:k0 + _BLOCK], blk).any(axis=0)
        keep[lo:lo + len(blk)] = ~dom
        new = np.concatenate([kept, blk[~dom]])
        if W.shape[1] == 2:
            new = new[np.lexsort((new[:, 1], new[:, 0]))]
            run = np.minimum.accumulate(new[:, 1])
            new = new[np.concatenate([[True], new[1:, 1] < run[:-1]])]
        kept = new
    return order[keep]


def _prune(V: np.ndarray, W: np.ndarray) -> np.ndarray:
    return _prune_1d(V, W) if W.shape[1] == 1 else _prune_nd(V, W)


def undominated_choices(v: np.ndarray, A: Sequence[np.ndarray], mask: np.ndarray) -> list[np.ndarray]:
    """Per position, the choices no other choice of the position matches or beats in value and every resource.

    Of identical choices the lowest index stays.

    Args:
      v: ``[P, K]`` values (maximised).
      A: one ``[P, K]`` resource array per constraint (minimised).
      mask: bool ``[P, K]``: which choices exist.

    Returns:
      One ascending int64 array of choice indices per position.
    """
    out = []
    for i in range(v.shape[0]):
        c = np.flatnonzero(mask[i])
        W = np.stack([a[i, c] for a in A], 1) if len(A) else np.zeros((len(c), 1))
        out.append(np.sort(c[_prune(v[i, c], W)]))
    return out


def _upper_hull(w: np.ndarray, val: np.ndarray) -> np.ndarray:
    """Indices of the vertices of the upper concave hull of points with strictly increasing ``w`` and
    ``val`` (a point whose left slope is at most its right slope lies under its neighbours' chord)."""
    h = np.arange(len(w))
    while len(h) > 2:
        s = np.diff(val[h]) / np.diff(w[h])
        bad = np.concatenate([[False], s[:-1] <= s[1:], [False]])
        if not bad.any():
            break
        h = h[~bad]
    return h


class _Front:
    """One position's undominated choices sorted by cost: ``idx`` (choice indices), ``w``, ``val`` (strictly
    increasing), ``env`` (the upper concave hull of (w, val) at each ``w``) and the hull's increments."""

    def __init__(self, c: np.ndarray, w: np.ndarray, val: np.ndarray):
        o = np.lexsort((-val, w))
        self.idx, self.w, self.val = c[o], w[o], val[o]
        h = _upper_hull(self.w, self.val)
        self.hull = h
        self.env = np.interp(self.w, self.w[h], self.val[h])
        self.inc = np.stack([np.diff(self.w[h]), np.diff(self.val[h])], 1)  # [h - 1, 2], slopes decreasing


class _LPBound:
    """``U_i(r)``: the LP relaxation of positions ``i+1..P-1`` with budget ``r`` (``i = -1``: all of them),
    a concave piecewise-linear function: the hull starts plus the hull increments in decreasing order of
    slope until ``r`` is spent (``-inf`` below the cheapest completion)."""

    def __init__(self, fronts: list[_Front]):
        P = len(fronts)
        inc = np.concatenate([f.inc for f in fronts]) if P else np.zeros((0, 2))
        owner = np.concatenate([np.full(len(f.inc), i) for i, f in enumerate(fronts)]) if P else np.zeros(0, int)
        o = np.argsort(-inc[:, 1] / np.maximum(inc[:, 0], 1e-300), kind="stable")
        self.inc, self.owner = inc[o], owner[o]
        w0 = np.array([f.w[0] for f in fronts])
        v0 = np.array([f.val[0] for f in fronts])
        self.parts = {}
        for i in range(-1, P):
            sel = self.owner > i
            self.parts[i] = (float(w0[i + 1:].sum()), float(v0[i + 1:].sum()),
                             np.concatenate([[0.0], np.cumsum(self.inc[sel, 0])]),
                             np.concatenate([[0.0], np.cumsum(self.inc[sel, 1])]))

    def __call__(self, i: int, r, tol: float = 0.0):
        c0, v0, cw, cv = self.parts[i]
        r = np.asarray(r, float)
        x = (r[:, 0] if r.ndim == 2 else r) - c0
        return np.where(x >= -tol, v0 + np.interp(np.maximum(x, 0.0), cw, cv), -np.inf)

    def price(self, b: float) -> float:
        """The LP's dual price of the budget: the slope of the first increment it does not take in full."""
        c0, _, cw, _ = self.parts[-1]
        k = int(np.searchsorted(cw[1:], b - c0, side="right"))
        return float(self.inc[k, 1] / self.inc[k, 0]) if k < len(self.inc) else 0.0


def lp_relaxation(v: np.ndarray, w: np.ndarray, budget: float):
    """The LP relaxation of ``max sum_i v[i, a_i] s.t. sum_i w[i, a_i] <= budget`` (every cell exists), exactly.

    Each position starts at its cheapest hull vertex; hull increments are taken in decreasing order of
    slope ``dv / dw`` while the budget lasts, the last one in part (Dantzig's greedy on the convex hulls).

    Args:
      v: ``[P, K]`` values; w: ``[P, K]`` costs; budget: the bound.

    Returns:
      ``(x, a)``: ``x [P, K]`` the LP solution (rows on the simplex, at most one row fractional) and ``a [P]``
      the integral solution without its fractional increment (feasible); ``None`` when even the cheapest
      choices exceed the budget.
    """
    P, K = v.shape
    fronts = []
    for i in range(P):
        c = np.arange(K)[_prune_1d(v[i], w[i][:, None])]
        fronts.append(_Front(c, w[i, c], v[i, c]))
    lp = _LPBound(fronts)
    c0, _, cw, _ = lp.parts[-1]
    r = budget - c0
    if r < -1e-9 * max(1.0, abs(budget)):
        return None
    n = int(np.searchsorted(cw[1:], r, side="right"))  # increments taken in full
    k = np.bincount(lp.owner[:n], minlength=P)
    x = np.zeros((P, K))
    a = np.array([f.idx[f.hull[j]] for f, j in zip(fronts, k)], np.int64)
    x[np.arange(P), a] = 1.0
    if n < len(lp.inc):
        i = int(lp.owner[n])
        theta = (r - cw[n]) / lp.inc[n, 0]
        x[i, a[i]] = 1.0 - theta
        x[i, fronts[i].idx[fronts[i].hull[k[i] + 1]]] += theta
    return x, a


def _search_interval(G, lo: np.ndarray, hi: np.ndarray, thr: np.ndarray):
    """For unimodal rows ``G(rows, k)`` on ``k in [lo, hi]``: the ranges ``[left, right]`` where ``G >= thr``
    (``left > right`` when empty), by vectorised binary searches (the peak, then each side)."""
    rows = np.arange(len(lo))
    a, z = lo.copy(), hi.copy()
    while np.any(a < z):
        m = (a + z) // 2
        up = G(rows, m) < G(rows, np.minimum(m + 1, hi))
        a, z = np.where(up & (a < z), m + 1, a), np.where(~up & (a < z), m, z)
    peak = a
    a, z = lo.copy(), peak.copy()
    while np.any(a < z):  # first k <= peak with G >= thr
        m = (a + z) // 2
        ok = G(rows, m) >= thr
        a, z = np.where(~ok & (a < z), m + 1, a), np.where(ok & (a < z), m, z)
    left = a
    a, z = peak.copy(), hi.copy()
    while np.any(a < z):  # last k >= peak with G >= thr
        m = (a + z + 1) // 2
        ok = G(rows, m) >= thr
        a, z = np.where(ok & (a < z), m, a), np.where(~ok & (a < z), m - 1, z)
    right = np.where(G(rows, peak) >= thr, a, left - 1)
    return left, right


def _target_pass(fronts, U, rem, b, tol, t, ttol):
    """The one-constraint pass with target ``t`` (module docstring): the optimum, or ``None`` below ``t``."""
    P = len(fronts)
    archs, V, W = np.zeros((1, 0), np.int64), np.zeros(1), np.zeros(1)
    for i in range(P - 1):
        f = fronts[i]
        K = len(f.w)
        def G(rows, k, f=f, i=i, W=W):
            return f.env[k] + U(i, b - W[rows] - f.w[k], tol)

        left, right = _search_interval(G, np.zeros(len(V), int), np.full(len(V), K - 1), t - ttol - V)
        n = np.maximum(right - left + 1, 0)
        parent = np.repeat(np.arange(len(V)), n)
        k = np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n) + np.repeat(left, n)
        V2, W2 = V[parent] + f.val[k], W[parent] + f.w[k]
        ok = (W2 + rem[i] <= b + tol) & (V2 + U(i, b - W2, tol) >= t - ttol)
        parent, k, V2, W2 = parent[ok], k[ok], V2[ok], W2[ok]
        if not len(V2):
            return None
        o = np.lexsort((f.idx[k], parent))  # the DP's candidate order: parent, then choice index
        parent, k, V2, W2 = parent[o], k[o], V2[o], W2[o]
        keep = _prune_1d(V2, W2[:, None])
        archs = np.concatenate([archs[parent[keep]], f.idx[k[keep]][:, None]], axis=1)
        V, W = V2[keep], W2[keep]
    f = fronts[-1]  # the last position: the best affordable choice of each partial solution
    j = np.searchsorted(f.w, b + tol - W, side="right") - 1
    for _ in range(2):  # the exact test W + w <= b + tol decides at the boundary
        up = (j + 1 < len(f.w)) & (W + f.w[np.minimum(j + 1, len(f.w) - 1)] <= b + tol)
        down = (j >= 0) & (W + f.w[np.maximum(j, 0)] > b + tol)
        j = j + up - down
    Vf = np.where(j >= 0, V + f.val[np.maximum(j, 0)], -np.inf)
    if not np.any(Vf >= t - ttol):  # a pass answers only when a solution reaches its target
        return None
    Wf = W + f.w[np.maximum(j, 0)]
    best = np.flatnonzero(Vf == Vf.max())
    s = best[np.argmin(Wf[best])]
    return np.concatenate([archs[s], [f.idx[j[s]]]]), float(Vf[s]), np.array([Wf[s]])


class _Bounds:
    """``U_i(r)`` with several constraints: the smallest of the Lagrangian bound at the LP prices ``lambda``,
    ``sum_{p > i} max_c (v[p, c] - lambda . A[p, c]) + lambda . r``, and the LP bounds of the surrogate
    constraints ``mu . A <= mu . r`` for ``mu = lambda`` and for each constraint alone (each adapts to the
    state's residual ``r``)."""

    def __init__(self, v, A, cells, lam):
        score = [np.max(v[i, c] - sum(x * a[i, c] for x, a in zip(lam, A))) for i, c in enumerate(cells)]
        self.lam = np.asarray(lam, float)
        self.rest = np.concatenate([np.cumsum(score[::-1])[::-1][1:], [0.0]])
        mus = [np.eye(len(A))[j] for j in range(len(A))] + ([self.lam] if self.lam.any() else [])
        self.surrogates = []
        for mu in mus:
            w = sum(x * a for x, a in zip(mu, A))
            fronts = []
            for i, c in enumerate(cells):
                k = c[_prune_1d(v[i, c], w[i, c][:, None])]
                fronts.append(_Front(k, w[i, k], v[i, k]))
            self.surrogates.append((mu, _LPBound(fronts)))

    def __call__(self, i: int, r: np.ndarray, tol: float = 0.0) -> np.ndarray:
        out = self.rest[i] + r @ self.lam
        for mu, lp in self.surrogates:
            out = np.minimum(out, lp(i, r @ mu, tol))
        return out


def _price_filter(v, A, cells, lam, b, t: float) -> list[np.ndarray]:
    """Reduced-cost fixing: the choices that can be part of a solution worth at least ``t``.

    For prices ``lambda >= 0`` every feasible solution ``a`` has value at most
    ``L = lambda . b + sum_p max_c r[p, c]`` with reduced values ``r[p, c] = v[p, c] - lambda . A[p, c]``,
    and at most ``L - (max_c r[p, c] - r[p, a_p])`` at each position ``p``: a choice whose reduced value is
    more than ``L - t`` below its position's best cannot be in a solution worth ``t``.
    """
    red = [v[i, c] - sum(x * a[i, c] for x, a in zip(lam, A)) for i, c in enumerate(cells)]
    L = float(np.dot(lam, b) + sum(r.max() for r in red))
    slack = L - t + 1e-9 * max(1.0, abs(L), abs(t))
    return [c[r.max() - r <= slack] for c, r in zip(cells, red)]


def _dual_prices(v, A, cells, b) -> np.ndarray:
    """Dual prices of the resource constraints of the LP relaxation (zeros when it has no solution)."""
    from scipy.optimize import linprog

    idx = [(i, c) for i, cs in enumerate(cells) for c in cs]
    pi, ci = np.array(idx).T
    n, P = len(idx), len(cells)
    eq = np.zeros((P, n))
    eq[pi, np.arange(n)] = 1.0
    res = linprog(-v[pi, ci], A_ub=np.stack([a[pi, ci] for a in A]), b_ub=np.asarray(b, float), A_eq=eq,
                  b_eq=np.ones(P), bounds=(0, 1), method="highs")
    if res.status != 0:
        return np.zeros(len(A))
    return np.maximum(-np.asarray(res.ineqlin.marginals, float), 0.0)


def dp_states(v: np.ndarray, A: Sequence[np.ndarray], mask: np.ndarray, b: Sequence[float] | None,
              target: float = -np.inf, beam: int | None = None, bound=None, cells: list[np.ndarray] | None = None):
    """Run the pruned DP over the positions of an additive space.

    Args:
      v: ``[P, K]`` objective coefficients (``objective.coef``).
      A: one ``[P, K]`` coefficient array per constraint (``constraint.A``).
      mask: ``[P, K]`` existing cells.
      b: the bounds ``b_j`` of ``sum_i A_j[i, a_i] <= b_j`` for budget pruning, or ``None`` to keep every
        Pareto point.
      target: drop partial solutions whose bound is below it (needs ``bound``): every solution worth at
        least ``target`` survives.
      beam: keep only this many partial solutions (the best by bound) after each position: a heuristic
        pass that finds a good feasible solution, not an exact one.
      bound: ``bound(i, r)``, an upper bound on what positions after ``i`` add with residual budgets ``r``.
      cells: the choices to consider per position (default: :func:`undominated_choices`; every cell of a
        program of at most 64 cells).

    Returns:
      ``(archs [n, P], V [n], W [n, m])``: the surviving complete solutions with ``V = sum_i v[i, a_i]``
      and ``W_j = sum_i A_j[i, a_i]``.
    """
    P = v.shape[0]
    m = len(A)
    Aw = np.stack(A, axis=-1) if m else np.zeros(v.shape + (1,))  # [P, K, m']
    mm = max(m, 1)
    if cells is None:  # dropping dominated choices first pays off beyond the smallest programs
        cells = undominated_choices(v, A, mask) if int(mask.sum()) > _SMALL else [np.flatnonzero(r) for r in mask]
    budgeted = b is not None and m
    if budgeted:
        mins = np.stack([np.array([A[j][i, cells[i]].min() for i in range(P)]) for j in range(m)], 1)  # [P, m]
        rem = np.concatenate([np.cumsum(mins[::-1], 0)[::-1][1:], np.zeros((1, m))], 0)  # after position i
        bb = np.asarray(b, float)
        tol = 1e-9 * np.maximum(1.0, np.abs(bb))
        ttol = 1e-9 * max(1.0, abs(target)) if np.isfinite(target) else 0.0
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
        if budgeted:
            ok = np.all(W2[:, :m] + rem[i] <= bb + tol, axis=1)
            if bound is not None:
                ub = V2 + bound(i, bb - W2[:, :m])
                ok &= ub >= target - ttol
            V2, W2, parent, choice = V2[ok], W2[ok], parent[ok], choice[ok]
            if len(V2) == 0:
                return np.zeros((0, P), np.int64), np.zeros(0), np.zeros((0, m))
        keep = _prune(V2, W2)
        if beam and len(keep) > beam:
            keep = keep[np.argsort(-ub[ok][keep], kind="stable")[:beam]]
        archs = np.concatenate([archs[parent[keep]], choice[keep][:, None]], axis=1)
        V, W = V2[keep], W2[keep]
    return archs, V, W[:, :m]


def solve_mckp(v: np.ndarray, A: Sequence[np.ndarray], mask: np.ndarray, b: Sequence[float]):
    """The exact optimum of the program of the module docstring.

    A beam pass finds a good solution (value ``t``); reduced-cost fixing at the LP prices drops every choice
    that cannot be part of a solution worth ``t``; an exact pass with target ``t`` (which keeps every
    solution worth at least ``t``) then finds the optimum.

    Args:
      v: ``[P, K]`` objective coefficients; A: one ``[P, K]`` array per constraint; mask: ``[P, K]``
        existing cells; b: one bound per constraint.

    Returns:
      ``(arch [P], V, W [m])`` of the optimum (ties: the smallest ``W_1``), or ``None`` when no choice
      meets every bound.
    """
    b = [float(x) for x in b]
    if not b:
        archs, V, _ = dp_states(v, [], mask, None)
        j = int(np.argmax(V))
        return archs[j], float(V[j]), np.zeros(0)
    if int(mask.sum()) <= _SMALL:  # the plain DP is fastest on the smallest programs
        return _exact_pass(v, A, mask, b, [np.flatnonzero(r) for r in mask], -np.inf)
    cells = undominated_choices(v, A, mask)
    mins = [sum(float(a[i, c].min()) for i, c in enumerate(cells)) for a in A]
    if any(lo > x + 1e-9 * max(1.0, abs(x)) for lo, x in zip(mins, b)):
        return None
    target = -np.inf
    if sum(len(c) for c in cells) > _SMALL:
        if len(b) == 1:
            bound = _one_bound(v, A, cells)
            lam = np.array([bound.price(b[0])])
            bound_of = lambda cs: _one_bound(v, A, cs)  # noqa: E731
        else:
            lam = _dual_prices(v, A, cells, b)
            bound_of = lambda cs: _Bounds(v, A, cs, lam)  # noqa: E731
            bound = bound_of(cells)
        for k, beam in enumerate((_BEAM, 4 * _BEAM)):  # each pass on the choices the previous one's value left
            _, Vb, _ = dp_states(v, A, mask, b, beam=beam, bound=bound if k == 0 else bound_of(cells), cells=cells)
            if not len(Vb):
                break
            target = max(target, float(Vb.max()))
            cells = _price_filter(v, A, cells, lam, b, target)
            if sum(len(c) for c in cells) <= 2 * len(cells):
                break
    for t in (target, -np.inf) if np.isfinite(target) else (target,):
        found = _exact_pass(v, A, mask, b, cells, t)
        if found is not None:
            return found
    return None


def _one_bound(v, A, cells) -> _LPBound:
    return _LPBound([_Front(c, A[0][i, c], v[i, c]) for i, c in enumerate(cells)])


def _exact_pass(v, A, mask, b, cells, t):
    """The optimum among solutions worth at least ``t`` (``None`` when the pass finds none)."""
    ttol = 1e-9 * max(1.0, abs(t)) if np.isfinite(t) else 0.0
    if len(b) == 1 and np.isfinite(t):
        fronts = [_Front(c, A[0][i, c], v[i, c]) for i, c in enumerate(cells)]
        mins = np.array([f.w[0] for f in fronts])
        rem = np.concatenate([np.cumsum(mins[::-1])[::-1][1:], [0.0]])
        return _target_pass(fronts, _LPBound(fronts), rem, b[0], 1e-9 * max(1.0, abs(b[0])), t, ttol)
    bound = _Bounds(v, A, cells, _dual_prices(v, A, cells, b)) if np.isfinite(t) else None
    archs, V, W = dp_states(v, A, mask, b, t, bound=bound, cells=cells)
    if not len(V) or V.max() < t - ttol:
        return None
    best = np.flatnonzero(V == V.max())
    j = best[np.argmin(W[best, 0])]
    return archs[j], float(V[j]), W[j]


class MCKPSearcher(Searcher):
    """Exact maximiser of an additive objective under additive constraints by the pruned DP above.

    ``max_a sum_i v[i, a_i]  s.t.  sum_i A_j[i, a_i] <= b_j``; among optima the one with the smallest first
    resource is returned (without constraints: the first optimum the DP keeps).
    """

    name = "mckp"
    kind = "exact"

    def supports(self, problem: SearchProblem) -> str | None:
        """``None`` for an additive problem (a Table objective and Table constraints), else why not.

        Args:
          problem: the :class:`~nasjax.search.base.SearchProblem`.

        Returns:
          ``None`` or the reason, in words.
        """
        return None if problem.additive else "expected an additive problem (a Table objective and Table constraints)"

    def _search(self, problem: SearchProblem, seed: int) -> SearchResult:
        objective, cons = problem.objective, list(problem.constraints)
        check_budgets(cons)
        found = solve_mckp(objective.coef, [c.A for c in cons], objective.mask, [c.b for c in cons])
        if found is None:
            raise joint_infeasible(cons)
        obj, res = evaluate(found[0], objective, cons)
        return SearchResult(found[0], obj, res, certified=True)


register(MCKPSearcher())
