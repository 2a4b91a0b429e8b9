"""Cross-device block profiles (Mills et al., CIKM 2021): which block is expensive on which device.

For device ``d`` with measured cells ``X_d`` and block ``b = (p, c)``::

    rel_d(b) = mean_{a in X_d, a_p = c} lat_d(a) / median_{a in X_d} lat_d(a)

(1.3: networks with the block take 30 % more than the device's median network), and the block's accuracy
effect ``acc(b) = mean_{a_p = c} acc(a) - mean_a acc(a)`` (percentage points). Over a tabular benchmark
every cell containing the block is used, so these are exact conditional means, not samples.

Devices are grouped by their profile vectors ``v_d = log rel_d(b)`` over all blocks (centred per device,
so a uniformly slower device has the same profile as a faster one): average-linkage hierarchical
clustering on Euclidean distances (:mod:`scipy.cluster.hierarchy`), cut into ``num_groups`` groups.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from nasjax.errors import require
from nasjax.io import write_csv
from nasjax.profiling.profiles import BlockProfile, profile_cells
from nasjax.profiling.sampling import Block
from nasjax.search.base import ColumnModel
from nasjax.spaces.base import SearchSpace


@dataclass
class DeviceProfiles:
    """Per device, the relative latency of every block; the blocks' accuracy effect; the device groups.

    Attributes:
      blocks: the profiled blocks (the same for every device).
      devices: device names; ``sources`` the benchmark each device comes from.
      rel: ``[D, B]`` relative latency ``rel_d(b)``; ``rel_q05`` ``[D, B]`` the same of the 5 % quantile
        (the block's cheapest networks vs the device's median network).
      acc_effect: ``[B]`` accuracy effect (percentage points); ``acc_mean`` / ``acc_q95`` ``[B]`` the
        conditional mean and 95 % quantile.
      cells: ``[D]`` number of measured cells per device.
      groups: ``[D]`` group label (1..num_groups); ``order``: the dendrogram's leaf order.
      linkage: scipy's linkage matrix.
    """

    blocks: list[Block]
    devices: list[str]
    sources: list[str]
    rel: np.ndarray
    rel_q05: np.ndarray
    acc_effect: np.ndarray
    acc_mean: np.ndarray
    acc_q95: np.ndarray
    cells: np.ndarray
    groups: np.ndarray
    order: np.ndarray
    linkage: np.ndarray

    def reduce_inputs(self, d: int) -> tuple[np.ndarray, np.ndarray]:
        """``(acc [B, 2], lat [B, 2])`` for :func:`~nasjax.profiling.reduce.reduce_space` on device ``d``.

        Accuracy mean and 95 % quantile, latency mean and 5 % quantile (relative).

        Args:
          d: the device's index into ``devices``.

        Returns:
          ``(acc [B, 2], lat [B, 2])``.
        """
        return np.stack([self.acc_mean, self.acc_q95], 1), np.stack([self.rel[d], self.rel_q05[d]], 1)

    def most_expensive(self) -> list[dict]:
        """Per device and position, the choice with the highest ``rel`` and its value."""
        out = []
        positions = sorted({b.position for b in self.blocks})
        for d, dev in enumerate(self.devices):
            for p in positions:
                idx = [i for i, b in enumerate(self.blocks) if b.position == p]
                i = idx[int(np.argmax(self.rel[d, idx]))]
                out.append({"device": dev, "unit": self.blocks[i].unit, "layer": self.blocks[i].layer,
                            "block": self.blocks[i].label, "rel": float(self.rel[d, i])})
        return out

    def write_csv(self, path) -> None:
        """One row per device: source, group, cells, then ``rel`` of every block; a last row the accuracy effect.

        Args:
          path: the ``.csv`` file to write (atomically); one column per block, named by its key.
        """
        header = ["device", "source", "group", "cells"] + [b.key for b in self.blocks]
        rows = [[dev, src, int(g), int(n)] + [f"{v:.5f}" for v in r]
                for dev, src, g, n, r in zip(self.devices, self.sources, self.groups, self.cells, self.rel)]
        rows.append(["accuracy_effect_pp", "", "", ""] + [f"{v:.4f}" for v in self.acc_effect])
        write_csv(path, header, rows)


def group_devices(rel: np.ndarray, num_groups: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(groups [D], leaf order [D], linkage)`` of devices by centred log profiles (module docstring).

    v_d = log rel_d - mean_b log rel_d(b); average-linkage clustering on Euclidean distances, cut into groups.

    Args:
      rel: ``[D, B]`` relative latency of every block on every device (> 0), ``D >= 2``.
      num_groups: the number of groups to cut the dendrogram into (at most ``D``).

    Returns:
      ``(groups, order, linkage)``: int64 group labels ``1..num_groups``, the dendrogram's leaf order, and
      scipy's linkage matrix ``[D - 1, 4]``.

    Raises:
      NasjaxInputError: with fewer than two devices.
    """
    from scipy.cluster import hierarchy

    v = np.log(np.asarray(rel, np.float64))
    v = v - v.mean(1, keepdims=True)
    require(v.shape[0] >= 2, "devices", v.shape[0], "at least two devices to group")
    link = hierarchy.linkage(v, method="average", metric="euclidean")
    groups = hierarchy.fcluster(link, t=min(int(num_groups), v.shape[0]), criterion="maxclust")
    return groups.astype(np.int64), hierarchy.leaves_list(link).astype(np.int64), link


def device_profiles(space: SearchSpace, accuracy: ColumnModel, latency: Sequence[ColumnModel],
                    sources: Sequence[str] | None = None, num_groups: int = 4) -> DeviceProfiles:
    """Profile every block on every device over each device's measured cells (module docstring).

    Args:
      space: the space (e.g. NAS-Bench-201).
      accuracy: the accuracy of the cells (its cells are the accuracy profile's cells).
      latency: one measured-latency column per device (cells with NaN latency are dropped for that device).
      sources: the benchmark of each device (labels for the CSV).
      num_groups: groups to cut the device dendrogram into.

    Returns:
      The :class:`DeviceProfiles`.
    """
    acc_prof = profile_cells(space, accuracy.archs, [accuracy])
    blocks = acc_prof.blocks
    acc_mean = acc_prof.stat("mean", acc_prof.metrics[0])
    acc_effect = acc_mean - float(acc_prof.baseline[:, 0].mean())
    acc_q95 = acc_prof.stat("q95", acc_prof.metrics[0])
    rel, rel_q05, cells, names = [], [], [], []
    for m in latency:
        ok = np.isfinite(m.values)
        col = ColumnModel(space, m.archs[ok], m.values[ok], m.metric, m.unit, m.device)
        prof: BlockProfile = profile_cells(space, col.archs, [col], blocks=blocks)
        rel.append(prof.stat("rel_mean", prof.metrics[0]))
        rel_q05.append(prof.stat("q05", prof.metrics[0]) / float(np.median(prof.baseline[:, 0])))
        cells.append(int(ok.sum()))
        names.append(str(m.device))
    rel = np.stack(rel)
    groups, order, link = group_devices(rel, num_groups)
    src = list(sources) if sources is not None else [""] * len(names)
    return DeviceProfiles(blocks, names, src, rel, np.stack(rel_q05), acc_effect, acc_mean, acc_q95,
                          np.asarray(cells), groups, order, link)


def nb201_columns(table, dataset: str = "cifar10", devices: Sequence[str] | None = None,
                  sources: Sequence[str] = ("HELP", "OneProxy")) -> tuple[ColumnModel, list[ColumnModel], list[str]]:
    """The NAS-Bench-201 accuracy column (200-epoch validation, seed mean) and each device's latency column.

    Args:
      table: a :class:`~nasjax.benchmarks.nasbench201.NB201Table`.
      dataset: the accuracy's dataset.
      devices: the devices (default: every device of ``sources``).
      sources: the benchmarks whose devices are taken by default.

    Returns:
      ``(accuracy, latencies, source of each device)``.
    """
    from nasjax.spaces.nasbench201 import nasbench201_space

    space = nasbench201_space()
    acc = ColumnModel(space, table.archs, table.val_acc(dataset), "accuracy", "%", f"nb201 {dataset}")
    if devices is None:
        devices, src = [], []
        for s in sources:
            ds = table.devices(source=s)
            devices += ds
            src += [s] * len(ds)
    else:
        src = [next((s for s in sources if d in table.devices(source=s)), "") for d in devices]
    lats = [ColumnModel(space, table.archs, table.latency(d), "latency", "ms", d) for d in devices]
    return acc, lats, src
