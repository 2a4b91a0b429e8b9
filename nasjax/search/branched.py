"""Exact search over a union of additive branches (a resolution, a decoder depth: one table set each).

Some spaces are additive only once one position is fixed: SuperViT's tables differ per input
resolution, HAT's per decoder depth. A :class:`Branch` holds one such value with its tables; the
exact optimum of the whole space is the best of the branch optima, and its Pareto front is the
non-dominated part of the union of the branch fronts.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from nasjax.constraints import Constraint
from nasjax.errors import InfeasibleError, NasjaxInputError
from nasjax.search import SearchResult
from nasjax.tables import Table


@dataclass(frozen=True)
class Branch:
    """One value of a branching position (a resolution, a decoder depth) and its additive tables.

    ``objective``/``resources`` cover only the positions active in this branch; ``embed`` maps a
    solution of those positions to the full choice vector of the space.
    """

    key: Any
    objective: Table
    resources: dict[str, Table]
    embed: Callable[[np.ndarray], np.ndarray]


def solve_branches(branches: Sequence[Branch], budgets: dict[str, tuple[float, str]], solver: str = "mckp",
                   cache: dict | None = None) -> SearchResult:
    """Exact ``max objective s.t. resource_j <= bound_j`` over a union of additive branches.

    Each branch is solved exactly (``solver``: ``"mckp"`` = nasjax's dominance-pruned DP, ``"highs"`` /
    ``"gurobi"`` = the CVXPY MILP, ``"enumerate"``; see :func:`nasjax.problems.solve_tables`); the answer
    is the best branch optimum (ties: smaller first resource, then earlier branch). Infeasible everywhere
    -> :class:`InfeasibleError` naming the smallest achievable value of each resource over all branches.
    With a ``cache`` dict, the CVXPY models are built once per (branch, solver, resources) and re-solved
    with new bounds (parametrised re-solve).
    """
    from nasjax.problems import solve_tables

    t0 = time.perf_counter()
    best, best_key = None, None
    for br in branches:
        cons = []
        for name, (bound, unit) in budgets.items():
            if name not in br.resources:
                raise NasjaxInputError(
                    f"{name}_constraint: the space has no {name} table; expected one of {', '.join(br.resources)}"
                )
            cons.append(Constraint(br.resources[name], float(bound), unit))
        try:
            if cache is not None and solver in ("highs", "gurobi"):
                from nasjax.search.ilp import ILPSearch

                key = (br.key, solver, tuple(budgets))
                if key not in cache:
                    cache[key] = ILPSearch(br.objective, cons, solver)
                res = cache[key].solve([c.bound for c in cons])
            else:
                res = solve_tables(br.objective, cons, solver)
        except InfeasibleError:
            continue
        r0 = next(iter(res.resources.values()), 0.0)
        if best is None or res.objective > best.objective + 1e-12 or (
            abs(res.objective - best.objective) <= 1e-12 and r0 < next(iter(best.resources.values()), 0.0)
        ):
            best, best_key = res, br.key
    if best is None:
        smallest = {n: min(br.resources[n].bounds()[0] for br in branches) for n in budgets}
        msg = "; ".join(
            f"{n}_constraint: {b:g} {u} is infeasible; the smallest achievable {n} is {smallest[n]:.4f} {u}"
            for n, (b, u) in budgets.items()
        )
        raise InfeasibleError(msg, smallest)
    br = next(b for b in branches if b.key == best_key)
    return SearchResult(br.embed(best.arch), best.objective, dict(best.resources),
                        (time.perf_counter() - t0) * 1e3, f"{best.solver} x {len(branches)} branches")


def branch_pareto(branches: Sequence[Branch], resource: str) -> list[tuple[np.ndarray, float, float]]:
    """The exact (objective, resource) Pareto front of a branched space: the union of every branch's
    front (nasjax's pruned DP without a budget keeps exactly its front) with the dominated points of
    other branches removed. Returns ``[(full arch, objective, resource)]`` sorted by resource."""
    from nasjax.search.mckp import dp_states

    pts = []
    for br in branches:
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


def branched_problem(model, decode, encode, device):
    """A :class:`nasjax.problems.Problem` whose solve / predict / pareto go through ``model``'s branches.

    ``objective`` / ``resources`` hold branch 0's tables: they carry the metric names and units that
    the shared runner checks constraints against (every branch has the same metrics and units).
    """
    from nasjax.problems import Problem

    class BranchedProblem(Problem):
        def solve(self, constraints, solver="highs"):
            budgets = {c.name: (c.bound, c.unit) for c in constraints}
            return solve_branches(model.branches(), budgets, solver, model._ilp_cache)

        def predict(self, arch):
            units = {self.objective.metric: self.objective.unit, **{m: t.unit for m, t in self.resources.items()}}
            return {m: (v, units[m]) for m, v in model.predict(arch).items()}

        def pareto(self, metric: str):
            from nasjax.search.pareto import ParetoFront

            t0 = time.perf_counter()
            front = branch_pareto(model.branches(), metric)
            return ParetoFront(np.stack([p[0] for p in front]), np.array([p[1] for p in front]),
                               np.array([p[2] for p in front]), self.objective, self.resources[metric],
                               (time.perf_counter() - t0) * 1e3)

    b0 = model.branches()[0]
    return BranchedProblem(model.space_name, device, b0.objective, dict(b0.resources), decode, encode,
                           {"branches": [b.key for b in model.branches()]})


