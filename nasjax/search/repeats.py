"""Repeats of a query-based search: resumable sweeps over seeds and the figures of a set of runs.

For the query logs :class:`~nasjax.search.harness.History` of independent runs on one
:class:`~nasjax.search.harness.Task` (optimum ``o`` = the feasible cell with the best seed-mean value):

* queries to the optimum of run ``r``: ``q_r`` = unique queries up to and including ``o`` (a run that never
  queried it counts with the queries it made, so the mean is then a lower bound and ``found_fraction < 1``);
* test value at ``n`` queries: the test value of the cell with the best value seen among the first ``n``
  queries, averaged over runs (:func:`summarize` at ``CHECKPOINTS``, :func:`curves` for every ``n``).

:func:`run_resumable` runs a sweep in chunks and keeps each finished repeat in a file, so a killed sweep
continues where it stopped.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from nasjax.errors import NasjaxInputError, require
from nasjax.search.harness import History, Task

CHECKPOINTS = (50, 100, 200, 500)


def summarize(task: Task, histories: list[History], checkpoints=CHECKPOINTS, n_max: int | None = None) -> dict:
    """Queries-to-optimum over runs and the mean test value of the best-so-far cell at each checkpoint.

    Args:
      task: the task the runs searched.
      histories: one query log per run.
      checkpoints: query counts ``n`` at which ``test_at_<n>`` is reported.
      n_max: length of the best-so-far curves (default: the largest checkpoint or run length).

    Returns:
      ``{"runs", "found_fraction", "queries_mean", "queries_std", "queries_median", "queries_min",
      "queries_max", "optimum_index", "optimum_val", "optimum_test", "test_at_<n>"...}`` with
      ``queries_mean = mean_r q_r`` (module docstring).
    """
    require(len(histories) > 0, "histories", 0, "at least one run")
    opt = task.optimum
    q = np.array([h.queries_to(opt) or len(h.order) for h in histories], dtype=np.float64)
    found = np.array([h.queries_to(opt) is not None for h in histories])
    n_max = n_max or max(max(checkpoints), max(len(h.order) for h in histories))
    tests = np.stack([h.best_so_far(task, n_max)[1] for h in histories])
    out = {
        "runs": len(histories),
        "found_fraction": float(found.mean()),
        "queries_mean": float(q.mean()),
        "queries_std": float(q.std()),
        "queries_median": float(np.median(q)),
        "queries_min": int(q.min()),
        "queries_max": int(q.max()),
        "optimum_index": opt,
        "optimum_val": float(task.val_mean[opt]),
        "optimum_test": float(task.test[opt]),
    }
    for c in checkpoints:
        col = tests[:, min(c, n_max) - 1]
        out[f"test_at_{c}"] = float(np.nanmean(col)) if np.isfinite(col).any() else None
    return out


def curves(task: Task, histories: list[History], n_max: int) -> dict[str, np.ndarray]:
    """Mean / std / 25-75 percentiles over runs of the best-so-far test value, per query count.

    Args:
      task: the task the runs searched.
      histories: one query log per run.
      n_max: the curves' length (query counts ``1..n_max``).

    Returns:
      ``{"queries", "mean", "std", "p25", "p75"}``, arrays of length ``n_max``.
    """
    t = np.stack([h.best_so_far(task, n_max)[1] for h in histories])
    return {
        "queries": np.arange(1, n_max + 1),
        "mean": np.nanmean(t, axis=0),
        "std": np.nanstd(t, axis=0),
        "p25": np.nanpercentile(t, 25, axis=0),
        "p75": np.nanpercentile(t, 75, axis=0),
    }


def run_resumable(run_chunk: Callable[[list[int]], list[History]], seeds: Sequence[int], cache_dir=None,
                  chunk: int = 25, progress: bool = False) -> list[History]:
    """Run a sweep of repeats in chunks, keeping each finished repeat as ``cache_dir/seed_<s>.json``.

    Args:
      run_chunk: ``run_chunk(list_of_seeds) -> list[History]`` runs some repeats (WeakNAS runs a chunk in
        lockstep; a repeat's log depends on its seed only, so the chunking never changes a result).
      seeds: every seed of the sweep.
      cache_dir: where finished repeats are kept (``None``: nowhere). A killed sweep re-run with the same
        directory loads the finished repeats and runs only the rest; temporaries a killed write left
        behind are removed first.
      chunk: repeats per ``run_chunk`` call (the resume granularity).
      progress: show a progress bar over the repeats.

    Returns:
      One :class:`History` per seed, in order. A cache file that cannot be read raises
      :class:`NasjaxInputError` naming it (delete it to recompute).
    """
    from nasjax.cli import remove_stale_temporaries
    from nasjax.io import write_json

    seeds = [int(s) for s in seeds]
    require(int(chunk) >= 1, "batch_seeds", chunk, "a positive chunk size")
    done: dict[int, History] = {}
    if cache_dir is not None:
        cache_dir = Path(cache_dir)
        remove_stale_temporaries(cache_dir)
        for s in seeds:
            f = cache_dir / f"seed_{s}.json"
            if f.is_file():
                try:
                    h = History.from_dict(json.loads(f.read_text()))
                except (json.JSONDecodeError, UnicodeDecodeError, NasjaxInputError) as e:
                    raise NasjaxInputError(f"resume file {f}: unreadable ({e}); expected a finished repeat's JSON "
                                           "(delete it to recompute that repeat)") from e
                require(h.seed == s, str(f), h.seed, f"seed {s}")
                done[s] = h
    todo = [s for s in seeds if s not in done]
    bar = None
    if progress and len(seeds) > 1:
        from tqdm import tqdm

        bar = tqdm(total=len(seeds), initial=len(seeds) - len(todo), desc="repeats", unit="repeat")
    for i in range(0, len(todo), int(chunk)):
        part = todo[i: i + int(chunk)]
        hs = run_chunk(part)
        require(len(hs) == len(part), "run_chunk", len(hs), f"{len(part)} histories")
        for s, h in zip(part, hs):
            done[s] = h
            if cache_dir is not None:
                write_json(cache_dir / f"seed_{s}.json", h.to_dict(), indent=None)
        if bar is not None:
            bar.update(len(part))
    if bar is not None:
        bar.close()
    return [done[s] for s in seeds]
