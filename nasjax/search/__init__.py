"""Searchers: every one returns choice vectors and takes the same objective table and constraints.

Exact solvers for additive objectives (MathNAS-style): :mod:`~nasjax.search.ilp` (CVXPY over HiGHS or
Gurobi), :mod:`~nasjax.search.mckp` (dominance-pruned dynamic programming, microseconds per solve),
:mod:`~nasjax.search.enumerate` (exhaustive, certifies the other two on small spaces) and
:mod:`~nasjax.search.pareto` (the whole accuracy-resource front).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class SearchResult:
    """One found architecture with its predicted objective and resources (in the tables' units)."""

    arch: np.ndarray
    objective: float
    resources: dict = field(default_factory=dict)
    solve_time_ms: float = 0.0
    solver: str = ""

    def to_dict(self) -> dict:
        return {
            "arch": [int(x) for x in self.arch],
            "objective": float(self.objective),
            "resources": {k: float(v) for k, v in self.resources.items()},
            "solve_time_ms": float(self.solve_time_ms),
            "solver": self.solver,
        }


def evaluate_tables(arch, objective, constraints) -> tuple[float, dict]:
    """Predicted objective and per-constraint resource of ``arch``."""
    res = {}
    for c in constraints:
        res[c.name] = float(c.table.predict(arch))
    return float(objective.predict(arch)), res


def check_budgets(objective, constraints, tol: float = 1e-9) -> None:
    """Raise :class:`~nasjax.errors.InfeasibleError` naming the smallest achievable value of any
    constraint whose bound is below what the space can reach on its own."""
    from nasjax.errors import InfeasibleError

    smallest = {}
    msgs = []
    for c in constraints:
        lo = c.table.bounds()[0]
        smallest[c.name] = lo
        if c.bound < lo - tol * max(1.0, abs(lo)):
            dev = f" on {c.table.device}" if c.table.device else ""
            msgs.append(
                f"{c.name}_constraint: {c.bound:g} {c.unit} is infeasible{dev}; "
                f"the smallest achievable {c.name} is {lo:.4f} {c.unit}"
            )
    if msgs:
        raise InfeasibleError("; ".join(msgs), smallest)


def joint_infeasible(constraints):
    from nasjax.errors import InfeasibleError

    parts = [f"{c.name} <= {c.bound:g} {c.unit} (alone reachable from {c.table.bounds()[0]:.4f})" for c in constraints]
    return InfeasibleError(
        "constraints are jointly infeasible: no architecture meets " + " and ".join(parts),
        {c.name: c.table.bounds()[0] for c in constraints},
    )
