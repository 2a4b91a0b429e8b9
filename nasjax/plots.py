"""Pictures a person looks at after a search sweep: search curves and a t-SNE of the search dynamics.

* :func:`plot_search_curves`: test accuracy of the best-so-far cell (judged by the values the search saw)
  against the number of unique queries, mean over runs with the 25-75 percentile band, one line per
  method, log-scaled query axis; the test accuracy of the validation-optimal cell as a dashed line.
* :func:`plot_tsne`: WeakNAS's search-dynamics picture (Wu et al., NeurIPS 2021, Fig. 4): a 2-D t-SNE
  (van der Maaten & Hinton 2008, scikit-learn) of the one-hot encodings of a random background of the
  space (grey, shaded by validation accuracy) plus every cell one run queried, coloured by the iteration
  that sampled it; the optimum is starred. It shows the sampling region narrowing towards the optimum.

Every file is written atomically (temp file + rename); matplotlib runs on the Agg backend.
"""

from __future__ import annotations

import numpy as np

from nasjax.io import atomic_path, write_csv


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
    _plt().close(fig)


def write_curves_csv(path, curves_by_method: dict[str, dict]) -> None:
    """Write the search curves as CSV rows ``method, queries, mean, std, p25, p75`` (test accuracy %, best-so-far).

    Args:
      path: the ``.csv`` file to write (atomically).
      curves_by_method: ``{method: curve}``; each curve holds equal-length arrays ``queries`` (unique queries)
        and ``mean``, ``std``, ``p25``, ``p75`` (test accuracy of the best-so-far cell over runs, %).
    """
    rows = []
    for method, c in curves_by_method.items():
        for j in range(len(c["queries"])):
            rows.append([method, int(c["queries"][j]), round(float(c["mean"][j]), 4), round(float(c["std"][j]), 4),
                         round(float(c["p25"][j]), 4), round(float(c["p75"][j]), 4)])
    write_csv(path, ["method", "queries", "test_acc_mean", "test_acc_std", "test_acc_p25", "test_acc_p75"], rows)


def plot_search_curves(path, curves_by_method: dict[str, dict], title: str, optimum_test: float | None = None,
                       ylim_points: float = 3.0) -> None:
    """PNG of best-so-far test accuracy (%) vs unique queries for each method (see module docstring).

    Args:
      path: the ``.png`` file to write (atomically).
      curves_by_method: ``{method: curve}`` as for :func:`write_curves_csv` (numpy arrays); the mean is drawn
        as a line, ``p25`` .. ``p75`` as a band.
      title: the figure title.
      optimum_test: the test accuracy (%) of the validation-optimal cell, drawn dashed; with it the y axis
        spans from ``ylim_points`` below it (or the lowest mean from 10 queries on, if higher) to 0.5 above.
      ylim_points: how many accuracy points below ``optimum_test`` the y axis reaches at most.
    """
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    lo = np.inf
    for method, c in curves_by_method.items():
        q, m = c["queries"], c["mean"]
        ok = np.isfinite(m)
        ax.plot(q[ok], m[ok], label=method, lw=1.6)
        ax.fill_between(q[ok], c["p25"][ok], c["p75"][ok], alpha=0.2)
        lo = min(lo, float(np.nanmin(m[q >= 10])) if (q >= 10).any() else float(np.nanmin(m)))
    if optimum_test is not None:
        ax.axhline(optimum_test, ls="--", c="k", lw=1, label="validation-optimal cell (test)")
        ax.set_ylim(max(lo, optimum_test - ylim_points) - 0.2, optimum_test + 0.5)
    ax.set_xscale("log")
    ax.set_xlabel("unique queries")
    ax.set_ylabel("test accuracy of best found (%)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    _save(fig, path)


def tsne_embedding(x: np.ndarray, seed: int = 0, perplexity: float = 30.0) -> np.ndarray:
    """``[N, 2]`` t-SNE coordinates of rows ``x`` (scikit-learn, PCA init, fixed seed).

    Args:
      x: the points ``[N, D]`` (e.g. one-hot encodings), ``N >= 2``.
      seed: the t-SNE random state.
      perplexity: the t-SNE perplexity, capped at ``(N - 1) / 3``.

    Returns:
      The 2-D embedding ``[N, 2]`` (float32), 500 iterations.
    """
    from sklearn.manifold import TSNE

    return TSNE(n_components=2, perplexity=min(perplexity, (len(x) - 1) / 3), init="pca", random_state=seed,
                max_iter=500, n_jobs=1).fit_transform(np.asarray(x, np.float32))


def plot_tsne(path, task, history, background: int = 1000, seed: int = 0, title: str | None = None) -> np.ndarray:
    """t-SNE picture of one run's search dynamics (see module docstring), written as a PNG.

    Args:
      path: the ``.png`` file to write (atomically).
      task: the search :class:`~nasjax.search.harness.Task` (cells, one-hot encodings, ``val_mean``, optimum).
      history: the run's :class:`~nasjax.search.harness.History` (queried cells, iteration tags).
      background: how many not-queried cells to sample at random as the grey background.
      seed: seed of the background sample and of the t-SNE.
      title: the figure title; by default the method, seed and task name.

    Returns:
      The 2-D coordinates ``[B + Q, 2]`` of the plotted cells: background first, then the run's queried cells
      in query order.
    """
    rng = np.random.default_rng(seed)
    queried = np.asarray(history.order, np.int64)
    rest = np.setdiff1d(np.arange(task.size), queried)
    bg = rng.choice(rest, size=min(background, rest.size), replace=False)
    cells = np.concatenate([bg, queried])
    xy = tsne_embedding(task.onehot()[cells], seed)
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 5.4))
    nb = bg.size
    ax.scatter(xy[:nb, 0], xy[:nb, 1], c=task.val_mean[bg], cmap="Greys", s=5, alpha=0.5, vmin=0)
    tags = np.asarray(history.tags)
    sc = ax.scatter(xy[nb:, 0], xy[nb:, 1], c=tags, cmap="viridis", s=16, edgecolors="none")
    fig.colorbar(sc, ax=ax, label="iteration that sampled the cell (0 = initial)")
    opt = task.optimum
    where = np.flatnonzero(queried == opt)
    if where.size:
        p = xy[nb + where[0]]
        ax.scatter([p[0]], [p[1]], marker="*", s=260, c="red", edgecolors="k", label="optimum (queried)")
        ax.legend(fontsize=8, loc="lower right")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(title or f"search dynamics ({history.method}, seed {history.seed}, {task.name})")
    _save(fig, path)
    return xy
