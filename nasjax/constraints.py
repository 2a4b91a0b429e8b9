"""Constraints: (resource model, bound, unit), shared by every searcher.

A constraint reads ``model(a) <= bound``, where ``model`` is anything with a ``metric``, a ``unit`` and a
vectorised ``predict(archs)``: an additive :class:`~nasjax.tables.Table`, a measured column of a
benchmark, a latency predictor. For an additive table ``t`` the constraint is linear,
``t.base + sum_i t.coef[i, a_i] <= bound``, and exact solvers use its linear form
``sum_i A[i, a_i] <= b`` with ``A = t.coef`` and ``b = bound - t.base``.

The bound's unit must equal the model's unit: a mismatch is an error, never a silent rescale.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from nasjax.errors import NasjaxInputError
from nasjax.tables import Table, check_unit


@runtime_checkable
class ResourceModel(Protocol):
    """What a constraint needs of its model: a metric name, a unit and ``predict(archs [N, P]) -> [N]``."""

    metric: str
    unit: str

    def predict(self, archs) -> Any: ...


@dataclass(frozen=True)
class Constraint:
    """``model(a) <= bound`` with ``bound`` in ``unit`` (which must be the model's unit)."""

    model: Any
    bound: float
    unit: str

    def __post_init__(self):
        m = self.model
        if not isinstance(m, ResourceModel):
            raise NasjaxInputError(f"constraint: got {type(m).__name__}, expected a resource model with metric, "
                                   "unit and predict(archs) (e.g. a Table)")
        check_unit(self.unit, f"{m.metric}_constraint unit")
        if self.unit != m.unit:
            dev = getattr(m, "device", None)
            raise NasjaxInputError(
                f"{m.metric}_constraint: bound in {self.unit!r} but the {m.metric} "
                f"{'table' if isinstance(m, Table) else 'model'} {('on ' + repr(dev) + ' ') if dev else ''}is in "
                f"{m.unit!r}; expected the same unit (convert explicitly, e.g. with Table.to_unit)"
            )
        try:
            bound = float(self.bound)
        except (TypeError, ValueError):
            raise NasjaxInputError(f"{m.metric}_constraint: got {self.bound!r}, expected a number") from None
        if not np.isfinite(bound):
            raise NasjaxInputError(f"{m.metric}_constraint: got {self.bound!r}, expected a finite number")
        object.__setattr__(self, "bound", bound)

    @property
    def name(self) -> str:
        return self.model.metric

    @property
    def linear(self) -> bool:
        """True when the model is an additive table (exact solvers can use the linear form)."""
        return isinstance(self.model, Table)

    @property
    def table(self) -> Table:
        """The additive table of a linear constraint (an error for any other model)."""
        if not self.linear:
            raise NasjaxInputError(f"{self.name}_constraint: the model is a {type(self.model).__name__}, expected an "
                                   "additive Table for this solver")
        return self.model

    @property
    def A(self) -> np.ndarray:
        return self.table.coef

    @property
    def b(self) -> float:
        return float(self.bound) - self.table.base

    def values(self, archs) -> np.ndarray:
        """``model(archs)`` as a float64 vector ``[N]``."""
        a = np.atleast_2d(np.asarray(archs))
        v = np.asarray(self.model.predict(a), dtype=np.float64).reshape(-1)
        if v.shape != (a.shape[0],):
            raise NasjaxInputError(f"{self.name}_constraint: model returned shape {v.shape}, expected ({a.shape[0]},)")
        return v

    def satisfied(self, archs, tol: float = 1e-9) -> np.ndarray:
        """Which architectures meet the bound (NaN never does)."""
        v = self.values(archs)
        return np.isfinite(v) & (v <= self.bound + tol * max(1.0, abs(self.bound)))

    def smallest(self) -> float | None:
        """The smallest value the model can reach over the space, when it knows (``bounds()``)."""
        b = getattr(self.model, "bounds", None)
        return float(b()[0]) if callable(b) else None

    def with_bound(self, bound: float) -> Constraint:
        return Constraint(self.model, float(bound), self.unit)
