"""The runtime's trace: one CSV row per served batch and a plot (latency against the window).

Columns (:data:`nasjax.runtime.controller.TRACE_COLUMNS`): policy, batch, time since serving started
(s), window min / max (ms), the batch's run time and its served latency (ms, including any wait for a
switch), whether the served latency was inside the window, the active subnet (``encodearch`` joined by
``-``), its predicted accuracy (%) and re-estimated latency (ms), the estimator's scale, whether a
slowdown was running, the events before the batch (start, window, slowdown-on/off, violation, the
decision's kind, ``switch(kind)``), the decision and switch times (ms).
"""

from __future__ import annotations

import numpy as np

from nasjax.io import write_csv
from nasjax.plots import _plt, _save
from nasjax.runtime.controller import TRACE_COLUMNS


def write_trace_csv(path, results) -> None:
    """Write every result's rows to one CSV (atomically).

    Args:
      path: the CSV file.
      results: :class:`~nasjax.runtime.controller.RunResult` objects.
    """
    rows = [[r[c] for c in TRACE_COLUMNS] for res in results for r in res.rows]
    write_csv(path, list(TRACE_COLUMNS), rows)


def plot_trace(path, results, title: str) -> None:
    """One panel per policy: served latency per batch, the window band, slowdowns shaded, switches marked,
    predicted accuracy of the active subnet on a second axis (PNG, written atomically).

    Args:
      path: the PNG file.
      results: :class:`~nasjax.runtime.controller.RunResult` objects.
      title: the figure title.
    """
    plt = _plt()
    fig, axes = plt.subplots(len(results), 1, figsize=(10, 3.2 * len(results)), squeeze=False, sharex=True)
    for ax, res in zip(axes[:, 0], results):
        b = np.array([r["batch"] for r in res.rows])
        served = np.array([r["served_ms"] for r in res.rows])
        lo = np.array([r["window_min_ms"] for r in res.rows])
        hi = np.array([r["window_max_ms"] for r in res.rows])
        slow = np.array([r["slowdown"] for r in res.rows], bool)
        bottom = max(min(float(served.min()), float(lo[lo > 0].min()) if (lo > 0).any() else np.inf) * 0.7, 1e-3)
        top = max(float(served.max()), float(hi.max())) * 1.4
        ax.set_yscale("log")
        ax.fill_between(b, np.maximum(lo, bottom), hi, step="post", color="tab:green", alpha=0.2, label="window")
        ax.fill_between(b, bottom, top, where=slow, step="post", color="tab:red", alpha=0.08, label="slowdown")
        ax.plot(b, served, ".", ms=2, color="tab:blue", label="served latency")
        sw = [r["batch"] for r in res.rows if "switch(" in r["event"]]
        for x in sw:
            ax.axvline(x, color="0.5", lw=0.5, alpha=0.6)
        ax.set_ylim(bottom, top)
        ax.set_ylabel("served ms per batch (log)")
        frac = res.summary.get("fraction_inside")
        ax.set_title(f"{res.policy}: {100 * frac:.1f} % of batches inside the window, {len(sw)} switches", fontsize=9)
        ax2 = ax.twinx()
        ax2.plot(b, [r["predicted_accuracy"] for r in res.rows], color="tab:orange", lw=1, label="predicted accuracy")
        ax2.set_ylabel("predicted accuracy %")
        h1, l1 = ax.get_legend_handles_labels()
        h2, l2 = ax2.get_legend_handles_labels()
        ax.legend(h1 + h2, l1 + l2, fontsize=7, loc="upper right")
    axes[-1, 0].set_xlabel("batch")
    fig.suptitle(title, fontsize=10)
    _save(fig, path)
