"""Pictures of block profiles (Mills et al., CIKM 2021): unit x layer x block heat maps and cross-device maps.

* :func:`plot_block_profile` -- rows = (unit, layer), columns = blocks, colour = a statistic of a metric (by
  default ``rel_mean``: networks containing the block vs the median network), the value printed in each
  cell: the paper's OFA figure as a heat map.
* :func:`plot_device_profiles` -- devices (dendrogram order, group labels) x blocks, colour = ``log2 rel``
  (red: networks with the block are slower than the device's median network), with the blocks' accuracy
  effect as a bar row on top: which operations are expensive on which device.
"""

from __future__ import annotations

import numpy as np

from nasjax.io import atomic_path
from nasjax.profiling.devices import DeviceProfiles
from nasjax.profiling.profiles import BlockProfile


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    _plt().close(fig)


def plot_block_profile(profile: BlockProfile, metric: str, path, stat: str = "rel_mean", title: str = "") -> None:
    """Heat map of ``stat`` of ``metric``: rows = (unit, layer), columns = blocks, value in each cell (PNG).

    Colours are centred at 1 for ``rel_mean``, else at the median of the shown values.

    Args:
      profile: the :class:`~nasjax.profiling.profiles.BlockProfile`.
      metric: the profiled metric to show.
      path: the ``.png`` file to write (atomically).
      stat: the statistic (e.g. ``rel_mean``, ``mean``, ``q05``; see :meth:`BlockProfile.stat`).
      title: the figure title (default: space, statistic, metric, unit and samples per block).

    Raises:
      NasjaxInputError: when the profile has no such metric or statistic.
    """
    plt = _plt()
    units, layers, labels, grid = profile.values_grid(metric, stat)
    rows = [(u, lay) for u in range(len(units)) for lay in range(len(layers))
            if np.isfinite(grid[u, lay]).any()]
    g = np.stack([grid[u, lay] for u, lay in rows])
    fin = g[np.isfinite(g)]
    centre = 1.0 if stat == "rel_mean" else float(np.median(fin))
    span = float(np.max(np.abs(fin - centre))) or 1.0
    fig, ax = plt.subplots(figsize=(2.4 + 0.55 * len(labels), 1.2 + 0.3 * len(rows)), dpi=110)
    im = ax.imshow(g, cmap="RdBu_r", vmin=centre - span, vmax=centre + span, aspect="auto")
    ax.set_xticks(range(len(labels)), labels, rotation=90, fontsize=7)
    ax.set_yticks(range(len(rows)), [f"{units[u]} {layers[lay]}" for u, lay in rows], fontsize=7)
    for k in range(1, len(rows)):
        if rows[k][0] != rows[k - 1][0]:
            ax.axhline(k - 0.5, color="k", lw=0.6)
    for (i, j), v in np.ndenumerate(g):
        if np.isfinite(v):
            ax.text(j, i, f"{v:.2f}" if abs(v) < 100 else f"{v:.0f}", ha="center", va="center", fontsize=5.5)
    fig.colorbar(im, ax=ax, fraction=0.03, pad=0.02)
    j = profile.metric_index(metric)
    ax.set_title(title or f"{profile.space}: {stat} of {metric} ({profile.units[j]}), "
                 f"{profile.samples[0].shape[0]} archs per block", fontsize=8)
    fig.tight_layout()
    _save(fig, path)


def plot_device_profiles(dp: DeviceProfiles, path, title: str = "") -> None:
    """Devices x blocks map of ``log2 rel`` with the accuracy effect on top (module docstring), as a PNG.

    Args:
      dp: the :class:`~nasjax.profiling.devices.DeviceProfiles` (devices shown in dendrogram order).
      path: the ``.png`` file to write (atomically).
      title: the figure title.
    """
    plt = _plt()
    order = dp.order
    v = np.log2(dp.rel[order])
    span = float(np.max(np.abs(v))) or 1.0
    B = len(dp.blocks)
    fig, (ax0, ax1) = plt.subplots(2, 1, figsize=(2.5 + 0.3 * B, 1.6 + 0.2 * len(order)), dpi=110,
                                   gridspec_kw={"height_ratios": [1, max(3, len(order) // 3)]}, sharex=True)
    ax0.bar(range(B), dp.acc_effect, color=["C2" if x > 0 else "C3" for x in dp.acc_effect])
    ax0.axhline(0, color="k", lw=0.5)
    ax0.set_ylabel("acc. effect\n(pp)", fontsize=7)
    ax0.tick_params(labelsize=6)
    im = ax1.imshow(v, cmap="RdBu_r", vmin=-span, vmax=span, aspect="auto")
    ax1.set_yticks(range(len(order)), [f"{dp.devices[i]} [{dp.groups[i]}]" for i in order], fontsize=6)
    ax1.set_xticks(range(B), [f"{b.layer}: {b.label}" for b in dp.blocks], rotation=90, fontsize=6)
    for k in range(1, B):
        if dp.blocks[k].position != dp.blocks[k - 1].position:
            ax1.axvline(k - 0.5, color="k", lw=0.4)
    fig.colorbar(im, ax=ax1, fraction=0.02, pad=0.01, label="log2(mean latency with block / device median)")
    fig.suptitle(title or "block cost per device ([group] = device group by profile)", fontsize=9)
    fig.tight_layout()
    _save(fig, path)
