"""Constraints: (resource model, bound, unit), shared by every searcher.

A constraint on an additive table ``t`` reads ``t.base + sum_i t.coef[i, a_i] <= bound``; searchers
see its linear form ``sum_i A[i, a_i] <= b`` with ``A = t.coef`` and ``b = bound - t.base``.
The bound's unit must equal the table's unit: a mismatch is an error, never a silent rescale.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nasjax.errors import NasjaxInputError
from nasjax.tables import Table, check_unit


@dataclass(frozen=True)
class Constraint:
    table: Table
    bound: float
    unit: str

    def __post_init__(self):
        check_unit(self.unit, f"{self.table.metric}_constraint unit")
        if self.unit != self.table.unit:
            raise NasjaxInputError(
                f"{self.table.metric}_constraint: bound in {self.unit!r} but the {self.table.metric} table "
                f"{('on ' + repr(self.table.device) + ' ') if self.table.device else ''}is in "
                f"{self.table.unit!r}; expected the same unit (convert explicitly with Table.to_unit)"
            )
        if not np.isfinite(self.bound):
            raise NasjaxInputError(f"{self.table.metric}_constraint: got {self.bound!r}, expected a finite number")

    @property
    def name(self) -> str:
        return self.table.metric

    @property
    def A(self) -> np.ndarray:
        return self.table.coef

    @property
    def b(self) -> float:
        return float(self.bound) - self.table.base

    def satisfied(self, archs, tol: float = 1e-9) -> np.ndarray:
        return np.asarray(self.table.predict(np.atleast_2d(archs))) <= self.bound + tol

    def with_bound(self, bound: float) -> Constraint:
        return Constraint(self.table, float(bound), self.unit)
