"""Vectorised exhaustive enumeration: the certificate of optimality for small spaces and finite cell sets.

    a* = argmax_a  obj(a)   s.t.  r_j(a) <= b_j  for every constraint j,

evaluated for every architecture of the problem's space in chunks (for an additive table
``value = base + sum_i coef[i, a_i]`` is a gather-and-sum over the ``[N, P]`` index array; any other model
is called on the chunk), or for every cell of a :class:`~nasjax.search.base.TabularObjective`. Ties are
broken towards the lowest mixed-radix index (the lowest cell row). Registered as the exact searcher
``enumerate``; spaces above ``limit`` architectures (default 5,000,000) are refused.
"""

from __future__ import annotations

import numpy as np

from nasjax.errors import NasjaxInputError
from nasjax.search.base import (
    Searcher,
    SearchProblem,
    SearchResult,
    TabularObjective,
    check_budgets,
    evaluate,
    joint_infeasible,
    register,
)
from nasjax.tables import Table

LIMIT = 5_000_000


def all_values(table: Table, archs: np.ndarray) -> np.ndarray:
    """``base + sum_i coef[i, archs[n, i]]`` for every row of ``archs [N, P]`` (no input checks).

    Args:
      table: an additive table.
      archs: ``[N, P]`` valid choice vectors.

    Returns:
      ``[N]`` values in the table's unit.
    """
    return table.base + table.coef[np.arange(archs.shape[1])[None, :], archs].sum(1)


def _values(model, archs: np.ndarray) -> np.ndarray:
    if isinstance(model, Table):
        return all_values(model, archs)
    return np.asarray(model.predict(archs), np.float64).reshape(-1)


def _feasible(constraints, archs: np.ndarray) -> np.ndarray:
    ok = np.ones(len(archs), bool)
    for c in constraints:
        ok &= _values(c.model, archs) <= c.bound + 1e-9 * max(1.0, abs(c.bound))
    return ok


class EnumerateSearcher(Searcher):
    """Exhaustive optimum over the space (or the cells of a tabular objective); see the module docstring."""

    name = "enumerate"
    kind = "exact"

    def supports(self, problem: SearchProblem, limit: int = LIMIT) -> str | None:
        """``None`` for an objective with ``predict`` over a cell set or a space of at most ``limit`` architectures.

        Args:
          problem: the :class:`~nasjax.search.base.SearchProblem`.
          limit: the largest space enumerated.

        Returns:
          ``None`` or the reason, in words.
        """
        if not hasattr(problem.objective, "predict"):
            return f"expected an objective with predict(archs), got {type(problem.objective).__name__}"
        if not isinstance(problem.objective, TabularObjective) and problem.space.size > limit:
            return (f"enumeration: space {problem.space.name!r} has {problem.space.size} architectures, "
                    f"expected at most {limit}")
        return None

    def _search(self, problem: SearchProblem, seed: int, limit: int = LIMIT, chunk: int = 1 << 20) -> SearchResult:
        cons = problem.constraints
        check_budgets(cons)
        obj = problem.objective
        if isinstance(obj, TabularObjective):
            v = np.where(_feasible(cons, obj.archs), obj.val_mean, -np.inf)
            j = int(np.argmax(v))
            if not np.isfinite(v[j]):
                raise joint_infeasible(cons)
            arch = obj.archs[j]
        else:
            why = self.supports(problem, limit)
            if why is not None:
                raise NasjaxInputError(why)
            space = problem.space
            best_val, best_idx = -np.inf, -1
            for start in range(0, space.size, chunk):
                idx = np.arange(start, min(start + chunk, space.size))
                archs = space.from_index(idx)
                v = np.where(_feasible(cons, archs), _values(obj, archs), -np.inf)
                j = int(np.argmax(v))
                if v[j] > best_val:
                    best_val, best_idx = float(v[j]), int(idx[j])
            if best_idx < 0:
                raise joint_infeasible(cons)
            arch = space.from_index(np.array([best_idx]))[0]
        value, res = evaluate(arch, obj, cons)
        return SearchResult(arch, value, res, certified=True)


register(EnumerateSearcher())
