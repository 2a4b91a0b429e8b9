"""The runtime's searches: MathNAS's light search (``dynamic-light``) and the window decision.

Light search (MathNAS's dynamic part): from the running architecture ``a``, the candidates are ``a``
itself and every architecture that moves one stage by one choice, ``a' = a`` except
``a'_s = order_s[rank_s(a_s) +- 1]`` where ``order_s`` lists stage ``s``'s choices from fastest to
slowest. Of those that meet every constraint (and, when the objective is a finite cell set, are cells
of it) it returns the best objective (ties: ``a`` itself, then the earlier neighbour). It is
registered as the searcher ``dynamic-light`` (``kind="query"``, on the query harness).

:class:`WindowSearch` keeps the window ``[lo, hi]`` (ms): with margin ``m`` the target is
``[lo + m (hi - lo), hi - m (hi - lo)]``; with measured latency ratios and a coverage ``c`` it is
instead "at most ``1 - c`` of the predicted batch latencies outside the window" (see :meth:`decide`).
It tries the light search, then the exact fallback (the
registered ``enumerate`` over the compiled candidates, or ``mckp`` over the whole space on the
re-scaled table), then the exact search under the target's upper end alone, and finally the
candidate nearest the target.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from nasjax.constraints import Constraint
from nasjax.errors import InfeasibleError, require
from nasjax.runtime.estimate import ScaleEstimator, latency_model
from nasjax.search.base import FunctionModel, SearchProblem, SearchResult, TabularObjective, register, run_search
from nasjax.search.harness import Oracle, TabularSearcher, seed_sequences
from nasjax.tables import Table


def light_moves(current, order) -> np.ndarray:
    """``current`` followed by every one-stage, one-choice move of it (see the module docstring).

    Args:
      current: ``[P]`` the running architecture.
      order: per position, its choices from fastest to slowest (a list of ``P`` integer sequences).

    Returns:
      ``[1 + n, P]`` int64 archs, ``current`` first.
    """
    a = np.asarray(current, np.int64)
    out = [a]
    for s, o in enumerate(order):
        o = list(o)
        r = o.index(int(a[s]))
        for rr in (r - 1, r + 1):
            if 0 <= rr < len(o):
                b = a.copy()
                b[s] = o[rr]
                out.append(b)
    return np.stack(out)


class LightSearcher(TabularSearcher):
    """MathNAS's light search: the best feasible cell among ``current`` and its one-stage moves.

    It runs on the query harness (:class:`~nasjax.search.harness.Task`, every query logged): the cells
    are those of a :class:`TabularObjective` (the compiled candidates) or every architecture of the
    space. Options: ``current`` (``[P]``, the running architecture; default a random feasible cell drawn
    with ``seed``) and ``order`` (per position its choices fastest first; default index order). No
    feasible cell among the moves raises :class:`~nasjax.errors.InfeasibleError`.
    """

    name = "dynamic-light"

    def run(self, task, seed: int, max_queries, signal: str, stop_cell, current=None, order=None):
        s_search, s_oracle = seed_sequences(seed)
        oracle = Oracle(task, signal, s_oracle)
        if current is None:
            current = task.archs[int(np.random.default_rng(s_search).choice(task.feasible_idx))]
        cur = task.space.validate(current, "current")
        if order is None:
            order = [range(k) for k in task.num_choices]
        cells = task.cell_of(light_moves(cur, order))
        ok = [int(j) for j in cells if j >= 0 and task.feasible[j]]
        if not ok:
            raise InfeasibleError(f"light search: no move of {cur.tolist()} by one stage and one choice meets "
                                  + " and ".join(f"{c.name} <= {c.bound:g} {c.unit}" for c in task.problem.constraints))
        for j in dict.fromkeys(ok):  # current first, then the moves, each once
            oracle.query(j)
        return oracle.history(self.name, seed)


register(LightSearcher())


@dataclass
class Decision:
    """One window decision: the architecture, how it was found, its predictions and the time taken."""

    arch: np.ndarray
    how: str  # "light", "exact", "exact-upper", "nearest", "most-inside"
    predicted_ms: float
    predicted_accuracy: float
    decision_ms: float


class WindowSearch:
    """Choose an architecture whose re-estimated latency is inside the window (module docstring).

    Args:
      space: the stage-block space.
      objective: a :class:`TabularObjective` of the compiled candidates (the search is restricted to
        them) or the additive accuracy :class:`Table` (the whole space).
      estimator: the latency estimator (ms).
      order: per stage, its choices fastest first (the light search's moves).
      margin: fraction of the window width kept free on each side, in [0, 0.5).
      exact: the registered exact fallback (``enumerate`` for candidates; ``mckp`` for the whole space,
        which needs a :class:`ScaleEstimator` and uses the upper bound only, as MathNAS does).
      light: run the light search first.
    """

    def __init__(self, space, objective, estimator, order, *, margin: float = 0.15, exact: str = "enumerate",
                 light: bool = True):
        require(isinstance(margin, (int, float)) and 0 <= margin < 0.5, "margin", margin, "a fraction in [0, 0.5)")
        require(isinstance(objective, (TabularObjective, Table)), "objective", type(objective).__name__,
                "a TabularObjective of candidates or an accuracy Table")
        if exact == "mckp":
            require(isinstance(estimator, ScaleEstimator) and isinstance(objective, Table), "exact", exact,
                    "'mckp' only with a ScaleEstimator and a Table objective")
        self.space, self.objective, self.estimator = space, objective, estimator
        self.order, self.margin, self.exact, self.light = [list(o) for o in order], float(margin), exact, light
        self._hi = latency_model(estimator)
        self._lo = latency_model(estimator, -1.0, "latency floor")

    def _problem(self, lo: float, hi: float) -> SearchProblem:
        cons = (Constraint(self._hi, hi, "ms"), Constraint(self._lo, -lo, "ms"))
        return SearchProblem(self.space, self.objective, cons)

    def _exact(self, lo: float, hi: float) -> SearchResult:
        if self.exact == "mckp":
            est = self.estimator
            t = est.table
            scaled = Table(t.values * est.scale, t.mask, "latency", "ms", t.base * est.scale)
            return run_search("mckp", SearchProblem(self.space, self.objective, (Constraint(scaled, hi, "ms"),)))
        return run_search(self.exact, self._problem(lo, hi))

    def _nearest(self, lo: float, hi: float) -> np.ndarray:
        if isinstance(self.objective, TabularObjective):
            archs, acc = self.objective.archs, self.objective.val_mean
        else:  # the whole space: fastest or slowest architecture
            archs = np.array([[o[0] for o in self.order], [o[-1] for o in self.order]], np.int64)
            acc = np.asarray(self.objective.predict(archs), np.float64)
        p = self.estimator.predict(archs)
        dist = np.maximum(np.maximum(lo - p, p - hi), 0.0)
        return archs[int(np.lexsort((-acc, dist))[0])]

    def _share_problem(self, lo: float, hi: float, ratios: np.ndarray, coverage: float) -> SearchProblem:
        r = np.asarray(ratios, np.float64)

        def outside(archs):
            p = self.estimator.predict(archs)[:, None] * r[None, :]
            return 100.0 * np.mean((p < lo) | (p > hi), axis=1)

        model = FunctionModel(outside, "latency outside window", "%")
        return SearchProblem(self.space, self.objective, (Constraint(model, 100.0 * (1.0 - coverage), "%"),))

    def decide(self, current, lo: float, hi: float, ratios=None, coverage: float = 0.0) -> Decision:
        """The architecture to run under window ``[lo, hi]`` ms, starting from ``current``.

        Without ``ratios`` the target is the window shrunk by the margin, ``[lo + m w, hi - m w]``. With
        ``ratios`` (measured batch latencies over their check's median) and ``coverage`` ``c``, the
        target is a share: an architecture qualifies when the share of its predicted batch latencies
        ``lat(a) * r_j`` outside ``[lo, hi]`` is at most ``1 - c``; if none qualifies, the candidate with
        the smallest share outside is taken (ties: the more accurate).

        Args:
          current: ``[P]`` the running architecture.
          lo, hi: the window (ms), ``lo <= hi``.
          ratios: measured latency ratios (``None``: the margin target).
          coverage: the share of batches to keep inside (with ``ratios``).

        Returns:
          A :class:`Decision`.
        """
        t0 = time.perf_counter()
        if ratios is not None and coverage > 0 and isinstance(self.objective, TabularObjective):
            prob = self._share_problem(lo, hi, ratios, coverage)
            arch, how = None, ""
            for name, opts in (("light", {"current": current, "order": self.order}), ("exact", None)):
                if name == "light" and not self.light:
                    continue
                try:
                    arch = (run_search("dynamic-light", prob, **opts) if opts else run_search(self.exact, prob)).arch
                    how = name
                    break
                except InfeasibleError:
                    pass
            if arch is None:
                archs, acc = self.objective.archs, self.objective.val_mean
                out = prob.constraints[0].values(archs)
                arch, how = archs[int(np.lexsort((-acc, out))[0])], "most-inside"
            arch = np.asarray(arch, np.int64)
            ms = (time.perf_counter() - t0) * 1e3
            return Decision(arch, how, float(self.estimator.predict(arch)[0]), float(self.objective.predict(arch)), ms)
        w = hi - lo
        tlo, thi = lo + self.margin * w, hi - self.margin * w
        arch, how = None, ""
        if self.light:
            try:
                arch = run_search("dynamic-light", self._problem(tlo, thi), current=current, order=self.order).arch
                how = "light"
            except InfeasibleError:
                pass
        for a, b, name in ((tlo, thi, "exact"), (0.0, thi, "exact-upper")):
            if arch is not None:
                break
            try:
                arch, how = self._exact(a, b).arch, name
            except InfeasibleError:
                pass
        if arch is None:
            arch, how = self._nearest(tlo, thi), "nearest"
        arch = np.asarray(arch, np.int64)
        ms = (time.perf_counter() - t0) * 1e3
        return Decision(arch, how, float(self.estimator.predict(arch)[0]), float(self.objective.predict(arch)), ms)
