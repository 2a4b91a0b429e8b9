"""Block profiles (Mills et al., CIKM 2021): the distribution of every metric over architectures that contain a block.

For each block ``(p, c)`` (see :mod:`nasjax.profiling.sampling`) and each metric source ``m`` (anything
with ``metric``, ``unit`` and ``predict(archs [N, P]) -> [N]``, like
:class:`nasjax.constraints.ResourceModel`: an additive table, a benchmark column, a predictor, a latency
table, measured latency), the profile holds ``m(a)`` for the block's samples ``a`` and for the baseline
(unconstrained) samples. Its summary, per block and metric, over the ``n`` sampled values ``x``::

    mean = (1/n) sum x,   std = sqrt((1/n) sum (x - mean)^2),   q_r = numpy quantile r (linear),
    min, max,   rel_mean = mean / median(baseline)

with ``r`` in 1 / 5 / 95 / 99 %. ``rel_mean`` compares devices: a block costing 1.3 means the networks
containing it take 30 % more than the median network of that device.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from nasjax.errors import NasjaxInputError, require
from nasjax.io import write_csv
from nasjax.profiling.sampling import (
    Block,
    all_blocks,
    cells_baseline,
    cells_with_block,
    sample_baseline,
    sample_with_block,
)
from nasjax.spaces.base import SearchSpace
from nasjax.spaces.structure import SpaceStructure, structure_of

QUANTILES = (0.01, 0.05, 0.95, 0.99)
STATS = ("mean", "std", "q01", "q05", "q95", "q99", "min", "max")
BASELINE = "baseline"


def source_label(model) -> str:
    """``"<metric>/<device>"`` of a metric source (``"<metric>"`` without a device).

    Args:
      model: a metric source (``metric``, optionally ``device``).

    Returns:
      The label.
    """
    dev = getattr(model, "device", None)
    return f"{model.metric}/{dev}" if dev else str(model.metric)


def summarize(x) -> dict[str, float]:
    """The summary statistics :data:`STATS` of a 1-D sample (formulas in the module docstring).

    Args:
      x: the sampled values (any shape, flattened), at least one, all finite.

    Returns:
      ``{"mean", "std", "q01", "q05", "q95", "q99", "min", "max"}``.

    Raises:
      NasjaxInputError: on an empty sample or a non-finite value.
    """
    v = np.asarray(x, np.float64).reshape(-1)
    require(v.size >= 1 and bool(np.all(np.isfinite(v))), "profile values", v.size, "finite sampled values")
    q = np.quantile(v, QUANTILES)
    return {"mean": float(v.mean()), "std": float(v.std()), "q01": float(q[0]), "q05": float(q[1]),
            "q95": float(q[2]), "q99": float(q[3]), "min": float(v.min()), "max": float(v.max())}


@dataclass
class BlockProfile:
    """Sampled metric values of every profiled block and of the baseline.

    Attributes:
      space: the space's name.
      blocks: the profiled blocks.
      metrics: one label per metric source (:func:`source_label`).
      units: the unit of each metric.
      samples: per block, ``[n_b, M]`` values (n_b is ``num_archs``, or the cell count over measured cells).
      baseline: ``[n_0, M]`` values of the unconstrained samples.
      archs: per block, the ``[n_b, P]`` sampled architectures (``baseline_archs`` for the baseline).
      population: per block, how many architectures its samples were drawn from without replacement (the
        measured cells containing it); ``inf`` for samples drawn with replacement from the space.
    """

    space: str
    blocks: list[Block]
    metrics: tuple[str, ...]
    units: tuple[str, ...]
    samples: list[np.ndarray]
    baseline: np.ndarray
    archs: list[np.ndarray] = field(default_factory=list)
    baseline_archs: np.ndarray | None = None
    population: list[float] = field(default_factory=list)

    def metric_index(self, metric: str) -> int:
        """The column of ``metric`` in the samples.

        Args:
          metric: a metric label (:func:`source_label`).

        Returns:
          Its index into ``metrics``.

        Raises:
          NasjaxInputError: when the profile has no such metric.
        """
        if metric not in self.metrics:
            raise NasjaxInputError(f"metric: got {metric!r}, expected one of {', '.join(self.metrics)}")
        return self.metrics.index(metric)

    def stat(self, name: str, metric: str) -> np.ndarray:
        """``[B]`` one summary statistic (``STATS`` or ``"rel_mean"``) of ``metric`` for every block.

        rel_mean(b) = mean of the block's samples / median of the baseline samples

        Args:
          name: one of :data:`STATS` or ``"rel_mean"``.
          metric: a metric label (:func:`source_label`).

        Returns:
          float64 ``[B]`` in the metric's unit (``rel_mean`` dimensionless).

        Raises:
          NasjaxInputError: on an unknown metric or statistic, or non-finite sampled values.
        """
        j = self.metric_index(metric)
        if name == "rel_mean":
            med = float(np.median(self.baseline[:, j]))
            return np.array([float(s[:, j].mean()) / med for s in self.samples])
        require(name in STATS, "statistic", name, f"one of {', '.join(STATS)} or rel_mean")
        return np.array([summarize(s[:, j])[name] for s in self.samples])

    def rows(self) -> list[dict]:
        """One row per (block or baseline, metric): labels, ``n``, the :data:`STATS` and ``rel_mean``."""
        out = []
        for j, (m, u) in enumerate(zip(self.metrics, self.units)):
            med = float(np.median(self.baseline[:, j]))
            base = {"unit": BASELINE, "layer": "", "block": BASELINE, "position": -1, "choice": -1}
            for lab, vals in [(base, self.baseline[:, j])] + [
                ({"unit": b.unit, "layer": b.layer, "block": b.label, "position": b.position, "choice": b.choice},
                 s[:, j]) for b, s in zip(self.blocks, self.samples)]:
                st = summarize(vals)
                rel = st["mean"] / med if med != 0 else float("nan")
                out.append({**lab, "metric": m, "metric_unit": u, "n": int(vals.size), **st, "rel_mean": rel})
        return out

    def write_csv(self, path) -> None:
        """The summary as CSV (:meth:`rows`), written atomically.

        Args:
          path: the ``.csv`` file to write; one row per (block or baseline, metric).
        """
        rows = self.rows()
        header = ["unit", "layer", "block", "position", "choice", "metric", "metric_unit", "n", *STATS, "rel_mean"]
        write_csv(path, header, [[r[h] if not isinstance(r[h], float) else f"{r[h]:.6g}" for h in header]
                                 for r in rows])

    def values_grid(self, metric: str, stat: str = "mean") -> tuple[list[str], list[str], list[str], np.ndarray]:
        """``(units, layers, block labels, grid [U, L, C])`` of one statistic for heat maps (NaN = not profiled).

        Rows are (unit, layer) pairs in profile order, columns the distinct block labels.

        Args:
          metric: a metric label (:func:`source_label`).
          stat: one of :data:`STATS` or ``"rel_mean"``.

        Returns:
          The unit names, layer labels, block labels (each in first-seen order) and the float64 grid.

        Raises:
          NasjaxInputError: on an unknown metric or statistic.
        """
        vals = self.stat(stat, metric)
        units = list(dict.fromkeys(b.unit for b in self.blocks))
        layers = list(dict.fromkeys(b.layer for b in self.blocks))
        labels = list(dict.fromkeys(b.label for b in self.blocks))
        grid = np.full((len(units), len(layers), len(labels)), np.nan)
        for b, v in zip(self.blocks, vals):
            grid[units.index(b.unit), layers.index(b.layer), labels.index(b.label)] = v
        return units, layers, labels, grid


def evaluate_sources(sources: Sequence, archs: np.ndarray) -> np.ndarray:
    """``[N, M]``: every metric source's ``predict`` on ``archs [N, P]`` (one call per source)."""
    cols = []
    for m in sources:
        v = np.asarray(m.predict(archs), np.float64).reshape(-1)
        require(v.shape == (archs.shape[0],), f"metric {source_label(m)} output", v.shape, f"({archs.shape[0]},)")
        cols.append(v)
    return np.stack(cols, 1)


def _check_sources(sources) -> tuple[tuple[str, ...], tuple[str, ...]]:
    sources = list(sources)
    require(len(sources) >= 1, "metrics", 0, "at least one metric source")
    for m in sources:
        require(all(hasattr(m, k) for k in ("metric", "unit", "predict")), "metric source", type(m).__name__,
                "an object with metric, unit and predict(archs)")
    labels = tuple(source_label(m) for m in sources)
    require(len(set(labels)) == len(labels), "metrics", labels, "distinct metric/device labels")
    return labels, tuple(str(m.unit) for m in sources)


def profile_blocks(space: SearchSpace, sources: Sequence, num_archs: int, *, blocks: Sequence[Block] | None = None,
                   seed: int = 0, structure: SpaceStructure | None = None) -> BlockProfile:
    """Profile ``blocks`` (default: every block) of ``space`` on every metric source.

    Args:
      space: the space.
      sources: metric sources (``metric``, ``unit``, ``predict``); each is called ONCE on every sampled
        architecture stacked (so a supernet evaluates them in one batched pass).
      num_archs: samples per block and for the baseline.
      blocks: the blocks to profile (:func:`~nasjax.profiling.sampling.parse_blocks`), default all.
      seed: the profile's seed (per-block streams, see :mod:`nasjax.profiling.sampling`).
      structure: the space's structure (default :func:`~nasjax.spaces.structure.structure_of`).

    Returns:
      The :class:`BlockProfile`.
    """
    labels, units = _check_sources(sources)
    st = structure or structure_of(space)
    blocks = list(all_blocks(space, st) if blocks is None else blocks)
    require(len(blocks) >= 1, "blocks", 0, "at least one block")
    parts = [sample_with_block(space, st, b, num_archs, seed) for b in blocks]
    base = sample_baseline(space, num_archs, seed)
    allv = evaluate_sources(sources, np.concatenate(parts + [base], 0))
    n = int(num_archs)
    samples = [allv[i * n:(i + 1) * n] for i in range(len(blocks))]
    return BlockProfile(space.name, blocks, labels, units, samples, allv[len(blocks) * n:], parts, base,
                        [np.inf] * len(blocks))


def profile_cells(space: SearchSpace, cells: np.ndarray, sources: Sequence, *, num_archs: int | None = None,
                  blocks: Sequence[Block] | None = None, seed: int = 0,
                  structure: SpaceStructure | None = None) -> BlockProfile:
    """Profile over a finite set of measured ``cells`` ``[M, P]`` (a tabular benchmark).

    With ``num_archs=None`` every cell containing a block is used (the exact conditional distribution over the
    cells), else ``num_archs`` drawn without replacement; the baseline is every cell (or ``num_archs`` of them).
    Sources are called once on all cells.

    Args:
      space: the space.
      cells: ``[M, P]`` measured choice vectors.
      sources: metric sources (``metric``, ``unit``, ``predict``) defined on the cells.
      num_archs: samples per block and for the baseline, or ``None`` for all.
      blocks: the blocks to profile, default all.
      seed: the profile's seed.
      structure: the space's structure (default :func:`~nasjax.spaces.structure.structure_of`).

    Returns:
      The :class:`BlockProfile`.

    Raises:
      NasjaxInputError: on invalid cells, a source without ``metric`` / ``unit`` / ``predict`` or with a
        repeated label or a wrong output length, or a block no cell contains.
    """
    labels, units = _check_sources(sources)
    cells = space.validate(np.atleast_2d(cells), "cells")
    st = structure or structure_of(space)
    blocks = list(all_blocks(space, st) if blocks is None else blocks)
    vals = evaluate_sources(sources, cells)
    rows = [cells_with_block(cells, st, b, num_archs, seed) for b in blocks]
    base = cells_baseline(cells.shape[0], num_archs, seed)
    pop = [float(cells_with_block(cells, st, b, None, seed).size) for b in blocks]
    return BlockProfile(space.name, blocks, labels, units, [vals[r] for r in rows], vals[base],
                        [cells[r] for r in rows], cells[base], pop)
