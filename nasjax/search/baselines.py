"""Predictor-free baselines on a tabular task through the shared query harness.

* Random search: query feasible cells in a uniformly random order without repetition (Li & Talwalkar,
  UAI 2019 use it as the baseline every NAS method must beat). With ``M`` feasible cells the optimum's
  expected position is ``(M + 1) / 2``.
* Local search (White, Nolen, Savani, "Exploring the Loss Landscape in Neural Architecture Search",
  UAI 2021): start at a random cell; query all its not-yet-queried neighbours (one position changed);
  move to the best neighbour if it beats the current cell, otherwise restart from a random unqueried
  cell (a local optimum has been reached).

Both stop after ``max_queries`` unique queries or once ``stop_cell`` has been queried.
"""

from __future__ import annotations

import numpy as np

from nasjax.errors import require
from nasjax.search.harness import History, Oracle, Task, seed_sequences


def random_search(task: Task, seed: int, max_queries: int | None = None, signal: str = "mean",
                  stop_cell: int | None = None) -> History:
    s_search, s_oracle = seed_sequences(seed)
    rng = np.random.default_rng(s_search)
    oracle = Oracle(task, signal, s_oracle)
    order = rng.permutation(task.feasible_idx)
    n = order.size if max_queries is None else min(int(max_queries), order.size)
    require(n >= 1, "max_queries", max_queries, "a positive query budget")
    for q, i in enumerate(order[:n]):
        oracle.query(i, tag=q)
        if stop_cell is not None and int(i) == stop_cell:
            break
    return oracle.history("random", seed)


def local_search(task: Task, seed: int, max_queries: int = 1000, signal: str = "mean",
                 stop_cell: int | None = None, neighbours: np.ndarray | None = None) -> History:
    require(int(max_queries) >= 1, "max_queries", max_queries, "a positive query budget")
    s_search, s_oracle = seed_sequences(seed)
    rng = np.random.default_rng(s_search)
    oracle = Oracle(task, signal, s_oracle)
    nb = task.neighbours() if neighbours is None else neighbours
    feas = task.feasible
    done = lambda: len(oracle) >= max_queries or (stop_cell is not None and oracle.seen(stop_cell))  # noqa: E731

    def fresh_start():
        free = np.flatnonzero(feas & ~np.isin(np.arange(task.size), oracle.order))
        return int(rng.choice(free)) if free.size else None

    cur, restarts = fresh_start(), 0
    while cur is not None and not done():
        cur_val = oracle.query(cur, tag=restarts)
        if done():
            break
        cand = [int(j) for j in rng.permutation(nb[cur]) if feas[j]]
        best_j, best_v = None, cur_val
        for j in cand:
            v = oracle.query(j, tag=restarts)
            if v > best_v:
                best_j, best_v = j, v
            if done():
                break
        if best_j is not None:
            cur = best_j
        else:
            restarts += 1
            cur = fresh_start()
    return oracle.history("local", seed)


# ---- one entry point for every searcher of the harness (scenic-style registry) ---------------------------
from nasjax.registry import Registry  # noqa: E402

SEARCHERS: Registry = Registry("searcher")


def _per_seed(fn):
    def run(task: Task, seeds, signal="mean", stop_cell=None, max_queries=1000, progress=False, **kw):
        it = list(seeds)
        if progress:
            from tqdm import tqdm

            it = tqdm(it, desc=f"{fn.__name__} {task.name}", unit="run", leave=False)
        return [fn(task, s, signal=signal, stop_cell=stop_cell, max_queries=max_queries, **kw) for s in it]

    return run


@SEARCHERS.register("random")
def _random(task, seeds, signal="mean", stop_cell=None, max_queries=None, progress=False, **_):
    return _per_seed(random_search)(task, seeds, signal, stop_cell, max_queries, progress)


@SEARCHERS.register("local")
def _local(task, seeds, signal="mean", stop_cell=None, max_queries=1000, progress=False, **_):
    nb = task.neighbours()
    return _per_seed(local_search)(task, seeds, signal, stop_cell, max_queries, progress, neighbours=nb)


@SEARCHERS.register("evolution")
def _evolution(task, seeds, signal="mean", stop_cell=None, max_queries=1000, progress=False, evolution=None, **_):
    from dataclasses import replace

    from nasjax.search.evolution import EvolutionConfig, regularized_evolution

    cfg = replace(evolution or EvolutionConfig(), max_queries=int(max_queries))

    def one(task, s, signal, stop_cell, max_queries):
        return regularized_evolution(task, s, cfg, signal, stop_cell)

    one.__name__ = "evolution"
    return _per_seed(one)(task, seeds, signal, stop_cell, max_queries, progress)


def _weak(method):
    def run(task, seeds, signal="mean", stop_cell=None, max_queries=1000, progress=False, weak=None, **_):
        from dataclasses import replace

        from nasjax.search.weak import WeakNASConfig, weaknas

        cfg = replace(weak or WeakNASConfig(), sampling_method=method, max_sample=int(max_queries))
        return weaknas(task, seeds, cfg, signal, stop_cell, progress)

    return run


SEARCHERS.add("weaknas-uniform", _weak("uniform"))
SEARCHERS.add("weaknas-ei", _weak("ei"))


def run_searcher(name: str, task: Task, seeds, **kw) -> list[History]:
    """Run searcher ``name`` (``SEARCHERS.names()``) for every seed; keyword arguments: ``signal``,
    ``stop_cell``, ``max_queries``, ``progress``, ``weak`` (WeakNASConfig), ``evolution`` (EvolutionConfig)."""
    return SEARCHERS.get(name)(task, seeds, **kw)
