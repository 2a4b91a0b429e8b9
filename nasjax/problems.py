"""MathNAS-style problems: one space on one device, an additive objective, resource tables, a codec.

A :class:`Problem` bundles what the ``nas`` / ``predict`` / ``pareto`` modes of the search experiments
need, so that every space (MobileNetV3, NAS-Bench-201, SuperViT, SuperTransformer, nasjax's own supernet
tables) runs through one code path. Spaces whose resolution changes the tables (SuperViT) override
:meth:`Problem.solve` to solve once per resolution.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from nasjax.constraints import Constraint
from nasjax.errors import NasjaxInputError
from nasjax.search import SearchResult
from nasjax.tables import Table, check_unit

# keys nasjax adds to a native architecture yml (ignored when the yml is read back)
NASJAX_KEYS = frozenset({"predicted", "solve_time_ms", "solver", "space", "device", "constraints", "measured"})

_QTY = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*([A-Za-z%]*)\s*$")


def parse_quantity(text: str, field_name: str, default_unit: str) -> tuple[float, str]:
    """``"500"`` -> (500, default_unit); ``"68.9ms"`` -> (68.9, "ms"); anything else names the field."""
    m = _QTY.match(str(text))
    if not m:
        raise NasjaxInputError(f"{field_name}: got {text!r}, expected a number with an optional unit, e.g. 500 or 500ms")
    value = float(m.group(1))
    unit = m.group(2) or default_unit
    check_unit(unit, field_name + " unit")
    if not np.isfinite(value):
        raise NasjaxInputError(f"{field_name}: got {text!r}, expected a finite number")
    return value, unit


@dataclass
class Problem:
    space: str
    device: str | None
    objective: Table
    resources: dict[str, Table]
    decode: Callable[[np.ndarray], dict]
    encode: Callable[[dict], np.ndarray]
    notes: dict = field(default_factory=dict)

    def constraints(self, bounds: dict[str, tuple[float, str]]) -> list[Constraint]:
        out = []
        for metric, (value, unit) in bounds.items():
            if metric not in self.resources:
                known = ", ".join(sorted(self.resources)) or "none"
                raise NasjaxInputError(
                    f"{metric}_constraint: space {self.space!r}"
                    + (f" on {self.device!r}" if self.device else "")
                    + f" has no {metric} table; expected one of: {known}"
                )
            out.append(Constraint(self.resources[metric], value, unit))
        return out

    def solve(self, constraints: Sequence[Constraint], solver: str = "highs") -> SearchResult:
        return solve_tables(self.objective, constraints, solver)

    def predict(self, arch: np.ndarray) -> dict[str, tuple[float, str]]:
        out = {self.objective.metric: (float(self.objective.predict(arch)), self.objective.unit)}
        for m, t in self.resources.items():
            out[m] = (float(t.predict(arch)), t.unit)
        return out

    def pareto(self, metric: str):
        """Exact (objective, ``metric``) Pareto front of the space."""
        from nasjax.search.pareto import pareto_front

        if metric not in self.resources:
            raise NasjaxInputError(f"pareto_resource: got {metric!r}, expected one of {sorted(self.resources)}")
        return pareto_front(self.objective, self.resources[metric])

    def read_native(self, d) -> np.ndarray:
        if not isinstance(d, dict):
            raise NasjaxInputError(f"architecture yml: got {type(d).__name__}, expected a mapping of keys")
        return self.encode({k: v for k, v in d.items() if k not in NASJAX_KEYS})


def solve_tables(objective: Table, constraints: Sequence[Constraint], solver: str) -> SearchResult:
    """Dispatch to an exact solver by name: highs / gurobi (CVXPY), mckp (pruned DP), enumerate."""
    from nasjax.search.enumerate import enumerate_best
    from nasjax.search.ilp import ILPSearch
    from nasjax.search.mckp import solve_mckp

    if solver in ("highs", "gurobi"):
        return ILPSearch(objective, constraints, solver=solver).solve()
    if solver == "mckp":
        if not constraints:
            from nasjax.search.mckp import dp_states

            archs, V, _ = dp_states(objective.coef, [], objective.mask, None)
            a = archs[int(np.argmax(V))]
            return SearchResult(a, float(objective.predict(a)), {}, 0.0, "mckp")
        return solve_mckp(objective, constraints)
    if solver == "enumerate":
        return enumerate_best(objective, constraints)
    raise NasjaxInputError(f"solver: got {solver!r}, expected one of highs, gurobi, mckp, enumerate")
