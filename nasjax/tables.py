"""Block tables: arrays ``[positions, choices]`` with a unit, a device and a base value.

A table predicts one quantity of an architecture ``a`` additively (MathNAS, NeurIPS 2023)::

    value(a) = base + sign * sum_i values[i, a_i]

``sign = -1`` expresses MathNAS's "drop" tables (accuracy = 79.23 - sum of drops); ``sign = +1`` a plain
sum of block costs. Padded cells (``mask == False``) are never selected. Units are explicit and are
never converted silently: comparing a table in ``s`` with a budget in ``ms`` is an error, and
:meth:`Table.to_unit` converts only when asked.

Magnitudes are bounded so that every sum over the space stays exact enough to compare: every cell and the
base are finite and ``|base| + sum_i max_c |values[i, c]| <= MAX_MAGNITUDE`` (``1e12`` in the table's
unit). Every architecture's value and every partial sum is then below ``1e12`` and carries an absolute
rounding error below ``1e-3`` of the unit in double precision, and exact solvers stay in their numeric
range (HiGHS fails from about ``1e16``). A larger table is a unit mistake: use a larger unit.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from nasjax.errors import NasjaxInputError
from nasjax.io import read_json, write_json

# unit -> (dimension, factor to the dimension's reference unit)
UNITS: dict[str, tuple[str, float]] = {
    "ms": ("time", 1.0),
    "s": ("time", 1000.0),
    "us": ("time", 1e-3),
    "mJ": ("energy", 1.0),
    "J": ("energy", 1000.0),
    "MFLOPs": ("flops", 1.0),
    "GFLOPs": ("flops", 1000.0),
    "M": ("count", 1.0),  # parameters, in millions
    "%": ("accuracy", 1.0),
    "BLEU": ("bleu", 1.0),
    "1": ("dimensionless", 1.0),
    "au": ("unstated", 1.0),  # as published, the source does not state the unit (never converted)
}

METRICS = ("accuracy", "latency", "energy", "flops", "params", "bleu", "score")

FORMAT = "nasjax.table/1"
MAX_MAGNITUDE = 1e12  # bound on |base| + sum_i max_c |values[i, c]| (see the module docstring)
_FIELDS = ("format", "space", "metric", "unit", "device", "base", "sign", "formula", "values", "mask", "provenance")


def check_unit(unit: str, field_name: str = "unit") -> str:
    """Check that ``unit`` is one of the known units (:data:`UNITS`).

    Args:
      unit: the unit name, e.g. ``"ms"``, ``"mJ"``, ``"%"``.
      field_name: the name of the checked field, first in the error message.

    Returns:
      ``unit`` unchanged.

    Raises:
      NasjaxInputError: when ``unit`` is not a string among the keys of :data:`UNITS`.
    """
    if not isinstance(unit, str) or unit not in UNITS:
        raise NasjaxInputError(f"{field_name}: got {unit!r}, expected one of {', '.join(UNITS)}")
    return unit


def convert_value(x, from_unit: str, to_unit: str):
    """Explicit unit conversion; raises when the two units measure different things (s vs mJ).

    x_to = x_from * factor(from_unit) / factor(to_unit), the factors of :data:`UNITS` (e.g. 1 s = 1000 ms).

    Args:
      x: a number or numpy array in ``from_unit``.
      from_unit: the unit of ``x``.
      to_unit: the unit wanted, of the same dimension (time, energy, flops, ...).

    Returns:
      ``x`` in ``to_unit`` (same type and shape).

    Raises:
      NasjaxInputError: when a unit is unknown or the two units have different dimensions.
    """
    check_unit(from_unit, "from_unit")
    check_unit(to_unit, "to_unit")
    d1, f1 = UNITS[from_unit]
    d2, f2 = UNITS[to_unit]
    if d1 != d2:
        raise NasjaxInputError(f"unit: cannot convert {from_unit!r} ({d1}) to {to_unit!r} ({d2})")
    return x * (f1 / f2)


@dataclass(frozen=True)
class Table:
    """One additive table over a search space (see the module docstring for the formula)."""

    values: np.ndarray  # [P, K] float64, padded cells 0
    mask: np.ndarray  # [P, K] bool
    metric: str
    unit: str
    base: float = 0.0
    sign: int = 1
    device: str | None = None
    space: str | None = None
    provenance: dict = field(default_factory=dict, compare=False)

    def __post_init__(self):
        name = f"table {self.metric!r}" + (f" on {self.device!r}" if self.device else "")
        raw = np.asarray(self.values)
        if raw.dtype.kind not in "biuf":
            raise NasjaxInputError(f"{name}: values of dtype {raw.dtype}, expected numbers")
        v = raw.astype(np.float64)
        if self.mask is None:
            m = np.ones(v.shape, bool)
        else:
            m = np.asarray(self.mask)
            if m.dtype != bool and not (m.dtype.kind in "iu" and np.isin(m, (0, 1)).all()):
                raise NasjaxInputError(f"{name}: mask of dtype {m.dtype}, expected booleans")
            m = m.astype(bool)
        if v.ndim != 2 or 0 in v.shape:
            raise NasjaxInputError(f"{name}: values shape {v.shape}, expected [positions, choices] (both >= 1)")
        if m.shape != v.shape:
            raise NasjaxInputError(f"{name}: mask shape {m.shape}, expected {v.shape} like values")
        if not np.all(np.isfinite(v[m])):
            i, c = np.argwhere(~np.isfinite(v) & m)[0]
            raise NasjaxInputError(f"{name}: values[{i}, {c}] is {v[i, c]}, expected a finite number")
        if not m[:, 0].all():
            raise NasjaxInputError(f"{name}: mask[:, 0] must be True (every position has choice 0)")
        check_unit(self.unit, f"{name}.unit")
        if not isinstance(self.metric, str) or self.metric not in METRICS:
            raise NasjaxInputError(f"{name}: metric {self.metric!r}, expected one of {', '.join(METRICS)}")
        if isinstance(self.sign, bool) or self.sign not in (1, -1):
            raise NasjaxInputError(f"{name}: sign {self.sign!r}, expected +1 or -1")
        if isinstance(self.base, bool) or not isinstance(self.base, (int, float, np.integer, np.floating)):
            raise NasjaxInputError(f"{name}: base {self.base!r}, expected a number")
        if not np.isfinite(self.base) or abs(self.base) > MAX_MAGNITUDE:
            raise NasjaxInputError(f"{name}: base {self.base!r}, expected a finite number within "
                                   f"+-{MAX_MAGNITUDE:g}")
        v = np.where(m, v, 0.0)
        reach = abs(float(self.base)) + float(np.abs(v).max(1).sum())
        if not reach <= MAX_MAGNITUDE:
            i, c = np.unravel_index(int(np.argmax(np.abs(v))), v.shape)
            raise NasjaxInputError(
                f"{name}: values[{i}, {c}] is {v[i, c]:g}; |base| + the sum over positions of the largest |value| "
                f"is {reach:g}, expected at most {MAX_MAGNITUDE:g} {self.unit} so that sums over the space stay "
                "exact (use a larger unit)"
            )
        for f in ("device", "space"):
            if getattr(self, f) is not None and not isinstance(getattr(self, f), str):
                raise NasjaxInputError(f"{name}: {f} {getattr(self, f)!r}, expected a string or None")
        if not isinstance(self.provenance, dict):
            raise NasjaxInputError(f"{name}: provenance {self.provenance!r}, expected a mapping")
        object.__setattr__(self, "values", v)
        object.__setattr__(self, "mask", m)
        object.__setattr__(self, "base", float(self.base))
        object.__setattr__(self, "sign", int(self.sign))

    # --- shape ------------------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, int]:
        """``(P, K)``, the shape of ``values`` and ``mask``."""
        return self.values.shape

    def check_space(self, space) -> Table:
        """Raise unless this table's mask matches ``space`` (positions x choice counts).

        Args:
          space: the :class:`~nasjax.spaces.SearchSpace` the table is meant for.

        Returns:
          This table, so the call can be chained.

        Raises:
          NasjaxInputError: when the number of positions or a position's choice count differs from the space's.
        """
        if self.values.shape[0] != space.num_positions or not np.array_equal(
            self.mask.sum(1), space.num_choices
        ):
            raise NasjaxInputError(
                f"table {self.metric!r}: shape {self.values.shape} with choice counts "
                f"{self.mask.sum(1).tolist()}, expected {space.num_positions} positions with "
                f"{space.num_choices.tolist()} choices (space {space.name!r})"
            )
        return self

    # --- prediction ---------------------------------------------------------------------------
    @property
    def coef(self) -> np.ndarray:
        """Signed per-cell coefficients: ``value(a) = base + sum_i coef[i, a_i]``."""
        return self.sign * self.values

    def predict(self, archs) -> np.ndarray | float:
        """Vectorised prediction for one architecture ``[P]`` or a batch ``[N, P]``.

        value(a) = base + sign * sum_i values[i, a_i]

        Args:
          archs: integer choice indices, one architecture ``[P]`` or a batch ``[N, P]``.

        Returns:
          A float for one architecture, else an array ``[N]``, in the table's unit.

        Raises:
          NasjaxInputError: when the length is not ``P`` or a choice index is negative, beyond the row or masked.
        """
        a = np.asarray(archs, dtype=np.int64)
        single = a.ndim == 1
        a = np.atleast_2d(a)
        if a.shape[1] != self.values.shape[0]:
            raise NasjaxInputError(
                f"arch: length {a.shape[1]}, expected {self.values.shape[0]} positions for table {self.metric!r}"
            )
        if np.any(a < 0) or np.any(~self.mask[np.arange(a.shape[1]), np.clip(a, 0, self.shape[1] - 1)]) or np.any(
            a >= self.shape[1]
        ):
            raise NasjaxInputError(f"arch: choice index out of range for table {self.metric!r}")
        out = self.base + self.coef[np.arange(a.shape[1])[None, :], a].sum(1)
        return float(out[0]) if single else out

    def bounds(self) -> tuple[float, float]:
        """Smallest and largest achievable value over the whole space."""
        big = np.where(self.mask, self.coef, np.inf)
        small = np.where(self.mask, self.coef, -np.inf)
        return self.base + float(big.min(1).sum()), self.base + float(small.max(1).sum())

    def to_unit(self, unit: str) -> Table:
        """The same table with values and base converted to ``unit`` (see :func:`convert_value`).

        Args:
          unit: the target unit, of the same dimension as the table's.

        Returns:
          A new :class:`Table` in ``unit``.

        Raises:
          NasjaxInputError: when ``unit`` is unknown or measures something else.
        """
        f = convert_value(1.0, self.unit, unit)
        return replace(self, values=self.values * f, base=self.base * f, unit=unit)

    # --- I/O --------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The table as JSON data (format :data:`FORMAT`; the inverse of :meth:`from_dict`)."""
        return {
            "format": FORMAT,
            "space": self.space,
            "metric": self.metric,
            "unit": self.unit,
            "device": self.device,
            "base": self.base,
            "sign": self.sign,
            "formula": "value(a) = base + sign * sum_i values[i][a_i]",
            "values": [[float(x) for x in row] for row in self.values],
            "mask": [[bool(x) for x in row] for row in self.mask],
            "provenance": self.provenance,
        }

    @classmethod
    def from_dict(cls, d: dict, source: str = "table") -> Table:
        """Table from its JSON form (:meth:`to_dict`); every field is checked before use.

        Args:
          d: the decoded JSON object.
          source: the file it came from, prefixed to every error message.

        Returns:
          The table. A wrong type, a ragged or non-numeric ``values``, a ``mask`` of another shape or of
          non-booleans, a missing or unknown field raises :class:`NasjaxInputError` naming the field.
        """
        if not isinstance(d, dict):
            raise NasjaxInputError(f"{source}: expected a JSON object, got {type(d).__name__}")
        if d.get("format") != FORMAT:
            raise NasjaxInputError(f"{source}: format {d.get('format')!r}, expected {FORMAT!r}")
        for k in ("metric", "unit", "values"):
            if k not in d:
                raise NasjaxInputError(f"{source}: missing field {k!r}")
        unknown = sorted(str(k) for k in d if k not in _FIELDS)
        if unknown:
            raise NasjaxInputError(f"{source}: unknown field(s) {unknown}, expected only {', '.join(_FIELDS)}")
        values = _grid(d["values"], f"{source}.values", "a number", _is_number, np.float64)
        mask = None
        if d.get("mask") is not None:
            mask = _grid(d["mask"], f"{source}.mask", "true or false", lambda x: isinstance(x, bool), bool)
            if mask.shape != values.shape:
                raise NasjaxInputError(f"{source}.mask: shape {mask.shape}, expected {values.shape} like values")
        for k, kinds, what in (("metric", (str,), "a string"), ("unit", (str,), "a string"),
                               ("base", (int, float), "a number"), ("sign", (int,), "+1 or -1"),
                               ("device", (str, type(None)), "a string or null"),
                               ("space", (str, type(None)), "a string or null"),
                               ("formula", (str,), "a string"), ("provenance", (dict,), "an object")):
            if k in d and (not isinstance(d[k], kinds) or isinstance(d[k], bool)):
                raise NasjaxInputError(f"{source}.{k}: got {d[k]!r}, expected {what}")
        try:
            return cls(
                values=values,
                mask=mask,
                metric=d["metric"],
                unit=d["unit"],
                base=d.get("base", 0.0),
                sign=d.get("sign", 1),
                device=d.get("device"),
                space=d.get("space"),
                provenance=d.get("provenance", {}),
            )
        except NasjaxInputError as e:
            raise NasjaxInputError(f"{source}: {e}") from None

    def save(self, path) -> None:
        """Write the table as strict JSON (:meth:`to_dict`), atomically.

        Args:
          path: the ``.json`` file to write.
        """
        write_json(path, self.to_dict())

    @classmethod
    def load(cls, path) -> Table:
        """Read a table written by :meth:`save` (strict JSON: UTF-8, no NaN/Infinity; see :meth:`from_dict`).

        Args:
          path: the ``.json`` table file.

        Returns:
          The table.

        Raises:
          NasjaxInputError: when the file is missing or not valid JSON, or a field is wrong (see :meth:`from_dict`).
        """
        path = Path(path)
        return cls.from_dict(read_json(path, "table file"), source=str(path))


def _is_number(x) -> bool:
    """A JSON number that converts to a float64 (not a bool, not an integer beyond float range)."""
    return isinstance(x, float) or (isinstance(x, int) and not isinstance(x, bool) and abs(x) < 2**1000)


def _grid(rows, field_name: str, expected: str, ok, dtype) -> np.ndarray:
    """A JSON list of equal-length lists whose entries satisfy ``ok``, as an array; else name the entry."""
    if not isinstance(rows, list) or not rows:
        raise NasjaxInputError(f"{field_name}: got {str(rows)[:80]}, expected a non-empty list of rows")
    width = None
    for i, row in enumerate(rows):
        if not isinstance(row, list) or not row:
            raise NasjaxInputError(f"{field_name}[{i}]: got {str(row)[:80]}, expected a non-empty list")
        if width is None:
            width = len(row)
        elif len(row) != width:
            raise NasjaxInputError(f"{field_name}[{i}]: {len(row)} entries, expected {width} like "
                                   f"{field_name}[0] (pad with the mask for fewer choices)")
        for j, x in enumerate(row):
            if not ok(x):
                raise NasjaxInputError(f"{field_name}[{i}][{j}]: got {x!r}, expected {expected}")
    return np.array(rows, dtype=dtype)


def from_ragged(rows, metric: str, unit: str, **kw) -> Table:
    """Build a table from ragged rows (a list per position); shorter rows are padded and masked.

    Args:
      rows: one list of per-choice values per position; row ``i`` has the choice count of position ``i``.
      metric: the quantity (one of :data:`METRICS`).
      unit: the unit of the values (one of :data:`UNITS`).
      **kw: further :class:`Table` fields (``base``, ``sign``, ``device``, ``space``, ``provenance``).

    Returns:
      The table, ``values`` / ``mask`` of shape ``[len(rows), max row length]`` with padded cells 0 and masked.

    Raises:
      NasjaxInputError: from :class:`Table` on a non-finite value, an unknown unit or metric, or a too large sum.
    """
    k = max(len(r) for r in rows)
    v = np.zeros((len(rows), k))
    m = np.zeros((len(rows), k), bool)
    for i, r in enumerate(rows):
        v[i, : len(r)] = r
        m[i, : len(r)] = True
    return Table(values=v, mask=m, metric=metric, unit=unit, **kw)
