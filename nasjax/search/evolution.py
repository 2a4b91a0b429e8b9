"""Regularized (aging) evolution, Real et al., "Regularized Evolution for Image Classifier Architecture
Search" (AAAI 2019), on a tabular task through the shared query harness.

Population of ``P`` cells, initialised with ``P`` uniformly drawn (feasible) cells. Each cycle: draw
``T`` members uniformly without replacement (the tournament), take the one with the best value seen as
parent, mutate it (one position, chosen uniformly, moved to a different choice, chosen uniformly;
infeasible children of a constrained problem are redrawn), query the child, append it to the population
and remove the *oldest* member. A child that was already queried costs no new query (unique-query
accounting) but still enters the population. The run ends after the query budget (the problem's
``query_budget``, else ``EvolutionConfig.max_queries``), once the optimum has been queried
(``stop_at_optimum``), or after ``max_cycles_factor x budget`` cycles. Registered as ``evolution``
(option ``config``: an :class:`EvolutionConfig`).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from nasjax.cli import option
from nasjax.errors import require
from nasjax.search.base import register
from nasjax.search.harness import History, Oracle, TabularSearcher, Task, seed_sequences


@dataclass(frozen=True)
class EvolutionConfig:
    """Regularized evolution's settings (Real et al.'s names)."""

    population: int = option(10, help="Regularized evolution: population size.")
    tournament: int = option(3, help="Regularized evolution: tournament size.")
    max_queries: int = option(1000, flag=False, help="Query budget when the problem has none.")
    max_cycles_factor: int = option(20, flag=False, help="Cycles cap = factor x query budget (a population stuck "
                                    "on repeats ends).")

    def __post_init__(self):
        require(self.population >= 2, "population", self.population, "at least 2")
        require(1 <= self.tournament <= self.population, "tournament", self.tournament,
                f"between 1 and population={self.population}")
        require(self.max_queries >= 1, "max_queries", self.max_queries, "a positive query budget")


def mutate(arch: np.ndarray, num_choices: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One-position mutation: ``child = arch`` with ``child[p] = (arch[p] + 1 + u) mod K_p``.

    Args:
      arch: ``[P]`` choice vector.
      num_choices: ``K_p`` per position.
      rng: the generator; ``p`` is uniform among positions with ``K_p > 1``, ``u`` uniform in ``0..K_p - 2``.

    Returns:
      The child (a copy), different from ``arch`` in exactly one position.
    """
    child = arch.copy()
    movable = np.flatnonzero(num_choices > 1)
    p = int(movable[rng.integers(movable.size)])
    child[p] = (child[p] + 1 + rng.integers(int(num_choices[p]) - 1)) % int(num_choices[p])
    return child


class EvolutionSearcher(TabularSearcher):
    """Regularized (aging) evolution (module docstring)."""

    name = "evolution"

    def run(self, task: Task, seed: int, max_queries: int | None, signal: str, stop_cell: int | None,
            config: EvolutionConfig | None = None) -> History:
        """Regularized evolution on ``task`` (module docstring; tag = cycle, 0 for the initial population).

        Args:
          task: the :class:`~nasjax.search.harness.Task`.
          seed: the run's seed.
          max_queries: the unique-query budget (``None``: ``config.max_queries``).
          signal: ``"mean"`` or ``"seed"``.
          stop_cell: stop once this cell is queried, or ``None``.
          config: the :class:`EvolutionConfig` (default settings when ``None``).

        Returns:
          The run's :class:`~nasjax.search.harness.History`.

        Raises:
          NasjaxInputError: on a budget below 1.
        """
        config = config or EvolutionConfig()
        budget = config.max_queries if max_queries is None else int(max_queries)
        require(budget >= 1, "max_queries", budget, "a positive query budget")
        s_search, s_oracle = seed_sequences(seed)
        rng = np.random.default_rng(s_search)
        oracle = Oracle(task, signal, s_oracle)
        feas = task.feasible_idx
        done = lambda: len(oracle) >= budget or (stop_cell is not None and oracle.seen(stop_cell))  # noqa: E731

        pop: deque[tuple[int, float]] = deque()
        for i in rng.choice(feas, size=min(config.population, feas.size), replace=False):
            pop.append((int(i), oracle.query(i, tag=0)))
            if done():
                return oracle.history(self.name, seed)
        for cycle in range(config.max_cycles_factor * budget):
            picks = rng.choice(len(pop), size=min(config.tournament, len(pop)), replace=False)
            parent = max((pop[j] for j in picks), key=lambda t: t[1])[0]
            for _ in range(1000):
                child = int(task.cell_of(mutate(task.archs[parent], task.num_choices, rng))[0])
                if child >= 0 and task.feasible[child]:
                    break
            else:  # the parent has no feasible neighbour reachable: restart from a random feasible cell
                child = int(rng.choice(feas))
            pop.append((child, oracle.query(child, tag=cycle + 1)))
            pop.popleft()
            if done():
                break
        return oracle.history(self.name, seed)


register(EvolutionSearcher())
