"""Exact search over a union of additive branches (a resolution, a decoder depth: one table set each).

Some spaces are additive only once one position is fixed: SuperViT's tables differ per input resolution,
HAT's per decoder depth. A :class:`Branch` holds one value of that position: the sub-space of the
positions it activates, its objective and resource tables over that sub-space, and ``embed``, which maps
a sub-space architecture to the full choice vector. A :class:`BranchedObjective` is the objective of the
whole space, ``objective(a) = objective_k(restrict_k(a))`` for the branch ``k`` of ``a``; its
:meth:`BranchedObjective.resource` models are what constraints bound
(``Constraint(objective.resource("flops"), 200.0, "MFLOPs")``).

The searcher ``branched`` solves, exactly,

    max_a objective(a)  s.t.  r_j(a) <= b_j   =   max_k  max_{a in branch k} objective_k(a)  s.t.  r_{j,k}(a) <= b_j

with one solve per branch by an inner exact searcher (option ``inner``: ``mckp``, the default, ``highs``,
``gurobi`` or ``enumerate``), keeping the best branch optimum (ties: the smaller first resource, then the
earlier branch). :func:`branch_pareto` gives the exact (objective, resource) Pareto front: the
non-dominated part of the union of the branch fronts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from nasjax.constraints import Constraint
from nasjax.errors import InfeasibleError, NasjaxInputError, require
from nasjax.search.base import (
    SEARCHERS,
    Searcher,
    SearchProblem,
    SearchResult,
    check_budgets,
    joint_infeasible,
    register,
    run_search,
)
from nasjax.search.mckp import dp_states
from nasjax.spaces.base import SearchSpace
from nasjax.tables import Table


@dataclass(frozen=True, eq=False)
class Branch:
    """One value of a branching position and its additive tables.

    Attributes:
      key: the branch's value (a resolution, a decoder depth).
      space: the positions active in this branch (what ``objective`` and ``resources`` cover).
      objective: the branch's additive objective table.
      resources: resource tables by metric name (``{"flops": Table}``), the same names in every branch.
      embed: ``embed(sub [p]) -> [P]``, a branch architecture as a full choice vector of the space.
    """

    key: Any
    space: SearchSpace
    objective: Table
    resources: Mapping[str, Table]
    embed: Callable[[np.ndarray], np.ndarray]

    def __post_init__(self):
        self.objective.check_space(self.space)
        for t in self.resources.values():
            t.check_space(self.space)


@dataclass(frozen=True, eq=False)
class BranchedObjective:
    """The objective of a space that is additive within each branch.

    Attributes:
      branches: the branches, each with the same metrics and units.
      locate: ``locate(a [P]) -> (branch index, sub-architecture)``, the inverse of the branches' ``embed``.
    """

    branches: tuple[Branch, ...]
    locate: Callable[[np.ndarray], tuple[int, np.ndarray]]

    def __post_init__(self):
        brs = tuple(self.branches)
        require(len(brs) >= 1, "branches", len(brs), "at least one branch")
        b0 = brs[0]
        for br in brs[1:]:
            require((br.objective.metric, br.objective.unit) == (b0.objective.metric, b0.objective.unit),
                    f"branch {br.key!r} objective", (br.objective.metric, br.objective.unit),
                    f"{(b0.objective.metric, b0.objective.unit)} like the first branch")
            require({k: t.unit for k, t in br.resources.items()} == {k: t.unit for k, t in b0.resources.items()},
                    f"branch {br.key!r} resources", sorted(br.resources), f"the first branch's {sorted(b0.resources)}")
        object.__setattr__(self, "branches", brs)
        object.__setattr__(self, "_resources", {m: BranchedResource(self, m) for m in b0.resources})

    @property
    def metric(self) -> str:
        """The objective's metric (the same in every branch)."""
        return self.branches[0].objective.metric

    @property
    def unit(self) -> str:
        """The objective's unit (the same in every branch)."""
        return self.branches[0].objective.unit

    @property
    def resources(self) -> dict[str, BranchedResource]:
        """The resource model of every metric the branches have a table for."""
        return dict(self._resources)

    def resource(self, metric: str) -> BranchedResource:
        """The resource model ``metric`` (an unknown metric names the known ones).

        Args:
          metric: a resource name the branches have a table for (e.g. ``"flops"``, ``"latency"``).

        Returns:
          The :class:`BranchedResource`.

        Raises:
          NasjaxInputError: when no branch has a ``metric`` table.
        """
        if metric not in self._resources:
            raise NasjaxInputError(f"{metric}_constraint: the space has no {metric} table; expected one of "
                                   f"{', '.join(self._resources) or 'none'}")
        return self._resources[metric]

    def values(self, archs, table_of: Callable[[Branch], Table]) -> np.ndarray | float:
        """``table_of(branch)(sub)`` for each architecture (its branch and sub-architecture from ``locate``).

        Args:
          archs: full choice vectors ``[P]`` or ``[N, P]``.
          table_of: picks the table of a branch (its objective, or one of its resources).

        Returns:
          A float for one architecture, else float64 ``[N]``, in the table's unit.
        """
        a = np.asarray(archs)
        out = []
        for row in np.atleast_2d(a):
            k, sub = self.locate(row)
            out.append(float(table_of(self.branches[k]).predict(sub)))
        return out[0] if a.ndim == 1 else np.array(out)

    def predict(self, archs) -> np.ndarray | float:
        """The objective of each architecture: its branch's objective table on its sub-architecture.

        objective(a) = objective_k(restrict_k(a)),  k = the branch of a

        Args:
          archs: full choice vectors ``[P]`` or ``[N, P]``.

        Returns:
          A float for one architecture, else float64 ``[N]``, in the objective's unit.
        """
        return self.values(archs, lambda br: br.objective)


@dataclass(frozen=True, eq=False)
class BranchedResource:
    """Resource ``name`` of a :class:`BranchedObjective`: ``r(a) = r_k(restrict_k(a))`` (a constraint model)."""

    objective: BranchedObjective
    name: str

    @property
    def metric(self) -> str:
        """The resource's name."""
        return self.name

    @property
    def unit(self) -> str:
        """The resource's unit (the first branch's; the same in every branch)."""
        return self.objective.branches[0].resources[self.name].unit

    @property
    def device(self) -> str | None:
        """The device of the first branch's resource table (``None`` for device-independent ones)."""
        return self.objective.branches[0].resources[self.name].device

    def predict(self, archs) -> np.ndarray | float:
        """The resource of each architecture: its branch's ``name`` table on its sub-architecture.

        r(a) = r_k(restrict_k(a)),  k = the branch of a

        Args:
          archs: full choice vectors ``[P]`` or ``[N, P]``.

        Returns:
          A float for one architecture, else float64 ``[N]``, in the resource's unit.
        """
        return self.objective.values(archs, lambda br: br.resources[self.name])

    def bounds(self) -> tuple[float, float]:
        """Smallest and largest value over all branches."""
        b = [br.resources[self.name].bounds() for br in self.objective.branches]
        return min(x[0] for x in b), max(x[1] for x in b)


class BranchedSearcher(Searcher):
    """One exact solve per branch, best branch optimum kept (module docstring)."""

    name = "branched"
    kind = "exact"

    def supports(self, problem: SearchProblem) -> str | None:
        """``None`` for a :class:`BranchedObjective` whose every constraint bounds one of its own resource models.

        Args:
          problem: the :class:`~nasjax.search.base.SearchProblem`.

        Returns:
          ``None`` or the reason (naming the offending constraint).
        """
        obj = problem.objective
        if not isinstance(obj, BranchedObjective):
            return f"expected a BranchedObjective, got {type(obj).__name__}"
        for c in problem.constraints:
            if not (isinstance(c.model, BranchedResource) and c.model.objective is obj):
                return f"{c.name}_constraint: expected a resource model of the problem's objective (objective.resource)"
        return None

    def _search(self, problem: SearchProblem, seed: int, inner: str = "mckp") -> SearchResult:
        require(inner in SEARCHERS and SEARCHERS.get(inner).kind == "exact" and inner != self.name, "inner", inner,
                "an exact searcher for the branches: " + ", ".join(n for n, s in SEARCHERS.items()
                                                                   if s.kind == "exact" and n != self.name))
        cons = problem.constraints
        check_budgets(cons)
        branches = problem.objective.branches
        best, best_k = None, -1
        for k, br in enumerate(branches):
            sub = SearchProblem(br.space, br.objective, tuple(Constraint(br.resources[c.model.name], c.bound, c.unit)
                                                              for c in cons), name=f"{problem.name}[{br.key}]")
            try:
                res = run_search(inner, sub)
            except InfeasibleError:
                continue
            r0 = next(iter(res.resources.values()), 0.0)
            if best is None or res.objective > best.objective + 1e-12 or (
                abs(res.objective - best.objective) <= 1e-12 and r0 < next(iter(best.resources.values()), 0.0)
            ):
                best, best_k = res, k
        if best is None:
            raise joint_infeasible(cons)
        br = branches[best_k]
        return SearchResult(br.embed(best.arch), best.objective, dict(best.resources),
                            solver=f"branched/{inner} x {len(branches)} branches", certified=best.certified,
                            info={"branch": br.key, "branches": len(branches)})


def branch_pareto(objective: BranchedObjective, resource: str) -> list[tuple[np.ndarray, float, float]]:
    """The exact (objective, ``resource``) Pareto front of a branched space.

    Args:
      objective: the branched objective.
      resource: the resource metric of the front's second axis.

    Returns:
      ``[(full arch, objective, resource)]`` sorted by resource: the union of every branch's front (the
      pruned DP without a budget keeps exactly a branch's front) with the points another branch dominates
      removed.
    """
    objective.resource(resource)
    pts = []
    for br in objective.branches:
        t = br.resources[resource]
        archs, V, W = dp_states(br.objective.coef, [t.coef], br.objective.mask, None)
        for a, v, w in zip(archs, V, W[:, 0]):
            pts.append((br.embed(a), float(v + br.objective.base), float(w + t.base)))
    pts.sort(key=lambda p: (p[2], -p[1]))
    front, best = [], -np.inf
    for p in pts:
        if p[1] > best:
            front.append(p)
            best = p[1]
    return front


register(BranchedSearcher())
