"""Predictor-free baselines through the shared query harness: random search and local search.

* ``random`` (Li & Talwalkar, UAI 2019 use it as the baseline every NAS method must beat): query feasible
  cells in a uniformly random order without repetition. With ``M`` feasible cells the optimum's expected
  position is ``(M + 1) / 2``. Default budget: every feasible cell.
* ``local`` (White, Nolen, Savani, "Exploring the Loss Landscape in Neural Architecture Search", UAI 2021):
  start at a random cell; query all its not-yet-queried feasible neighbours (one position changed) in a
  random order; move to the best neighbour if it beats the current cell, otherwise restart from a random
  unqueried cell (a local optimum has been reached). Default budget: 1,000 queries.

Both stop after the problem's query budget or, with ``stop_at_optimum``, once the optimum has been queried.
"""

from __future__ import annotations

import numpy as np

from nasjax.errors import require
from nasjax.search.base import register
from nasjax.search.harness import History, Oracle, TabularSearcher, Task, seed_sequences


class RandomSearcher(TabularSearcher):
    """Random search without repetition (module docstring)."""

    name = "random"
    default_budget = None

    def run(self, task: Task, seed: int, max_queries: int | None, signal: str, stop_cell: int | None) -> History:
        """Query feasible cells in one seeded random order without repetition (tag = query number).

        Args:
          task: the :class:`~nasjax.search.harness.Task`.
          seed: the run's seed.
          max_queries: the unique-query budget (``None``: every feasible cell).
          signal: ``"mean"`` or ``"seed"``.
          stop_cell: stop once this cell is queried, or ``None``.

        Returns:
          The run's :class:`~nasjax.search.harness.History`.

        Raises:
          NasjaxInputError: on a budget below 1.
        """
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
        return oracle.history(self.name, seed)


class LocalSearcher(TabularSearcher):
    """Best-improvement local search with random restarts (module docstring)."""

    name = "local"

    def run(self, task: Task, seed: int, max_queries: int | None, signal: str, stop_cell: int | None) -> History:
        """Best-improvement local search with random restarts (module docstring; tag = restart number).

        Args:
          task: the :class:`~nasjax.search.harness.Task`.
          seed: the run's seed.
          max_queries: the unique-query budget (``None``: 1,000).
          signal: ``"mean"`` or ``"seed"``.
          stop_cell: stop once this cell is queried, or ``None``.

        Returns:
          The run's :class:`~nasjax.search.harness.History` (it also ends when every feasible cell was queried).

        Raises:
          NasjaxInputError: on a budget below 1.
        """
        max_queries = 1000 if max_queries is None else int(max_queries)
        require(max_queries >= 1, "max_queries", max_queries, "a positive query budget")
        s_search, s_oracle = seed_sequences(seed)
        rng = np.random.default_rng(s_search)
        oracle = Oracle(task, signal, s_oracle)
        nb = task.neighbours()
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
            cand = [int(j) for j in rng.permutation(nb[cur]) if j >= 0 and feas[j]]
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
        return oracle.history(self.name, seed)


register(RandomSearcher())
register(LocalSearcher())
