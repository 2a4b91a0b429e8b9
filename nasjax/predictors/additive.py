"""Additive (MathNAS, NeurIPS 2023) predictor: block contributions measured by one-position replacements.

MathNAS models a network's accuracy and cost as a base value minus per-block "drops"::

    f(a) ~= F0 - sum_i D[i, a_i],        D[i, r_i] = 0 for the reference choice r_i of position i

and measures ``D`` on the network itself: take a base network ``b`` (an architecture), replace position
``i``'s choice by the reference ``r_i`` and by ``c``, and read the change::

    d_b[i, c] = f(b with a_i = r_i) - f(b with a_i = c)

MathNAS uses one base, the all-reference network (for NAS-Bench-201 the reference op is nor_conv_3x3:
its published NB201 table is zero in that column), so ``D = d_ref`` and ``F0 = f(ref)``. Its paper
averages ``d_b`` over several networks to cancel interactions between positions; :func:`block_contributions`
supports both::

    D[i, c] = mean_{b in B, f defined} d_b[i, c]
    F0      = mean_{b in B} ( f(b) + sum_i D[i, b_i] )      (the mean residual on the bases is zero)

with ``B`` = ``"ref"`` (the single all-reference base), an integer ``n`` (``n`` bases drawn uniformly with a
seed; the reference base is always included) or ``"all"`` (every architecture of the space). On a full
factorial space ``"all"`` makes ``D`` the main effects of a one-way-per-position ANOVA, which is exactly the
least-squares additive fit of ``f`` over the whole space (the best any additive table can do in L2); the
single base needs only ``1 + sum_i (K_i - 1)`` measurements (25 on NAS-Bench-201).

:class:`AdditivePredictor` bundles an accuracy :class:`~nasjax.tables.Table` with resource tables (latency per
device, energy) and predicts all of them for a batch of architectures.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from nasjax.errors import NasjaxInputError
from nasjax.spaces.base import SearchSpace, product_space
from nasjax.tables import Table

BASES_HELP = "'ref' (the all-reference network), 'all' (every architecture) or a positive int (random bases)"


def _base_set(space: SearchSpace, ref: np.ndarray, bases, seed: int) -> np.ndarray:
    if isinstance(bases, str) and bases == "ref":
        return ref[None, :].copy()
    if isinstance(bases, str) and bases == "all":
        if space.size > 2_000_000:
            raise NasjaxInputError(f"bases: 'all' needs {space.size} architectures, expected at most 2,000,000")
        return space.all_archs()
    if isinstance(bases, (int, np.integer)) and not isinstance(bases, bool) and bases >= 1:
        rand = space.random(np.random.default_rng(seed), int(bases) - 1)
        return np.concatenate([ref[None, :], rand], 0)
    raise NasjaxInputError(f"bases: got {bases!r}, expected {BASES_HELP}")


@dataclass(frozen=True)
class Contributions:
    """Result of :func:`block_contributions`: ``f(a) ~= F0 - sum_i D[i, a_i]``."""

    drops: np.ndarray  # [P, K] D
    base: float  # F0
    ref: np.ndarray  # [P] reference choice per position
    bases: str  # description of B
    num_bases: int
    measured: int  # distinct architectures whose value was read
    counts: np.ndarray  # [P, K] how many bases contributed to each D[i, c]
    num_choices: np.ndarray  # [P]

    def table(self, metric: str, unit: str, device: str | None = None, space: str | None = None, **prov) -> Table:
        """The contributions as a drop table: ``value(a) = base - sum_i values[i, a_i]`` (``sign = -1``).

        Args:
          metric: the quantity (one of :data:`~nasjax.tables.METRICS`).
          unit: the unit of ``f``'s values.
          device: the device the values were measured on, if any.
          space: the registry name of the search space, if any.
          **prov: further provenance entries (the method, formula, reference, bases and counts are recorded).

        Returns:
          The :class:`~nasjax.tables.Table` (cells beyond a position's choice count masked).

        Raises:
          NasjaxInputError: when the table is invalid (e.g. unknown unit or metric, a too large sum).
        """
        return Table(
            values=self.drops,
            mask=np.arange(self.drops.shape[1])[None, :] < self.num_choices[:, None],
            metric=metric,
            unit=unit,
            base=self.base,
            sign=-1,
            device=device,
            space=space,
            provenance=dict(
                method="MathNAS one-position replacement",
                formula="value(a) = base - sum_i values[i][a_i]; values[i][c] = mean_b f(b, a_i=ref_i) - f(b, a_i=c)",
                reference=[int(x) for x in self.ref],
                bases=self.bases,
                num_bases=self.num_bases,
                measured_architectures=self.measured,
                **prov,
            ),
        )


def block_contributions(
    f: Callable[[np.ndarray], np.ndarray],
    num_choices,
    ref,
    bases="ref",
    seed: int = 0,
) -> Contributions:
    """MathNAS block contributions of a function ``f: int[N, P] -> float[N]`` (NaN = not measured).

    ``D[i, c] = mean_{b in B, f defined} f(b with a_i = ref_i) - f(b with a_i = c)`` and
    ``F0 = mean_{b in B} (f(b) + sum_i D[i, b_i])`` (module docstring).

    Args:
      f: the measured quantity of a batch of choice vectors (NaN where not measured).
      num_choices: choices per position (a full product space).
      ref: the reference choice of each position (its drop is 0).
      bases: ``"ref"``, ``"all"`` or a number of random bases (see the module docstring).
      seed: seed of the random bases.

    Returns:
      The :class:`Contributions` (``D``, ``F0`` and what was measured). Deltas whose two measurements are
      not both finite are skipped; a cell with no finite delta is an error naming it.
    """
    K = np.asarray(num_choices, dtype=np.int64)
    ref = np.asarray(ref, dtype=np.int64)
    P = len(K)
    if ref.shape != (P,) or np.any(ref < 0) or np.any(ref >= K):
        raise NasjaxInputError(f"ref: got {ref.tolist()}, expected {P} choice indices below {K.tolist()}")
    space = product_space("contributions", [f"p{i}" for i in range(P)], [[str(c) for c in range(k)] for k in K])
    B = _base_set(space, ref, bases, seed)
    Kmax = int(K.max())
    # values of every base with one position set to each choice: [nb, P, Kmax]
    vals = np.full((len(B), P, Kmax), np.nan)
    seen: set[int] = set()
    for i in range(P):
        for c in range(int(K[i])):
            a = B.copy()
            a[:, i] = c
            v = np.asarray(f(a), dtype=np.float64)
            if v.shape != (len(B),):
                raise NasjaxInputError(f"f: returned shape {v.shape}, expected ({len(B)},)")
            vals[:, i, c] = v
            seen.update(space.index_of(a)[np.isfinite(v)].tolist())
    d = vals[:, np.arange(P), ref][:, :, None] - vals  # [nb, P, K]
    ok = np.isfinite(d)
    counts = ok.sum(0)
    for i in range(P):
        for c in range(int(K[i])):
            if counts[i, c] == 0:
                raise NasjaxInputError(
                    f"block_contributions: no base has both f(ref) and f(choice {c}) at position {i} measured; "
                    "expected at least one (use more bases, or a metric without missing cells)"
                )
    drops = np.where(ok, d, 0.0).sum(0) / np.maximum(counts, 1)
    drops[np.arange(P), ref] = 0.0
    fb = np.asarray(f(B), dtype=np.float64)
    okb = np.isfinite(fb)
    if not okb.any():
        raise NasjaxInputError("block_contributions: f is NaN on every base; expected measured bases")
    base = float(np.mean(fb[okb] + drops[np.arange(P)[None, :], B[okb]].sum(1)))
    desc = bases if isinstance(bases, str) else f"{int(bases)} random (seed {seed}, reference included)"
    return Contributions(drops, base, ref, desc, len(B), len(seen), counts, K)


@dataclass(frozen=True)
class AdditivePredictor:
    """An accuracy table plus named resource tables (``"latency/pixel3"``...), all additive."""

    accuracy: Table
    resources: dict = field(default_factory=dict)

    def __post_init__(self):
        for name, t in self.resources.items():
            if t.values.shape != self.accuracy.values.shape:
                raise NasjaxInputError(
                    f"resources[{name!r}]: table shape {t.values.shape}, expected {self.accuracy.values.shape}"
                )

    def predict(self, archs) -> dict[str, np.ndarray]:
        """``{"accuracy": [N], <resource name>: [N]}`` for a batch ``[N, P]``.

        Args:
          archs: choice vectors ``[P]`` or ``[N, P]``.

        Returns:
          One prediction array ``[N]`` per table, in each table's unit.

        Raises:
          NasjaxInputError: when an architecture does not fit the tables (length, choice out of range).
        """
        a = np.atleast_2d(np.asarray(archs, dtype=np.int64))
        out = {"accuracy": np.asarray(self.accuracy.predict(a))}
        for k, t in self.resources.items():
            out[k] = np.asarray(t.predict(a))
        return out
