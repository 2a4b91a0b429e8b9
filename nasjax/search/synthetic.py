"""A small synthetic tabular benchmark (tests and demos): a product space whose every cell is "measured".

Over ``P`` positions with ``K_p`` choices each, with a seeded generator::

    val(a)  = 70 + sum_p u_p[a_p] + sum_{p < P-1} w_p[a_p, a_{p+1}]      u ~ N(0, 2^2), w ~ N(0, 1)
    run_r(a) = val(a) + e_r(a)                                           e ~ N(0, noise^2), r = 1..runs
    val_mean(a) = mean_r run_r(a),   test(a) = val_mean(a) + N(0, noise^2)
    latency(a) = 1 + sum_p l_p[a_p]                                     l ~ U(0, 1)   (ms)
"""

from __future__ import annotations

import numpy as np

from nasjax.constraints import Constraint
from nasjax.search.base import ColumnModel, SearchProblem, TabularObjective
from nasjax.spaces.base import product_space


def synthetic_tabular(num_choices=(4, 4, 3, 3), seed: int = 0, runs: int = 3,
                      noise: float = 0.3) -> tuple[TabularObjective, ColumnModel]:
    """The benchmark of the module docstring.

    Args:
      num_choices: ``K_p`` per position.
      seed: the generator's seed.
      runs: training runs per cell.
      noise: standard deviation of a run's noise.

    Returns:
      ``(objective, latency)``: every cell of the product space as a
      :class:`~nasjax.search.base.TabularObjective` (per-run values included) and its latency column (ms).
    """
    rng = np.random.default_rng(seed)
    nc = np.asarray(num_choices, np.int64)
    space = product_space("synthetic", [f"p{i}" for i in range(nc.size)], [[str(c) for c in range(k)] for k in nc])
    archs = space.all_archs()
    val = 70.0 + sum(rng.normal(0, 2, int(k))[archs[:, p]] for p, k in enumerate(nc))
    for p in range(nc.size - 1):
        val = val + rng.normal(0, 1, (int(nc[p]), int(nc[p + 1])))[archs[:, p], archs[:, p + 1]]
    per_run = val[:, None] + rng.normal(0, noise, (archs.shape[0], runs))
    mean = per_run.mean(1)
    objective = TabularObjective(space, archs, mean, mean + rng.normal(0, noise, archs.shape[0]), per_run,
                                 name="synthetic")
    latency = 1.0 + sum(rng.uniform(0, 1, int(k))[archs[:, p]] for p, k in enumerate(nc))
    return objective, ColumnModel(space, archs, latency, "latency", "ms")


def synthetic_problem(num_choices=(4, 4, 3, 3), seed: int = 0, runs: int = 3, noise: float = 0.3,
                      latency_budget: float | None = None, query_budget: int | None = None) -> SearchProblem:
    """:func:`synthetic_tabular` as a search problem, with ``latency <= latency_budget`` (ms) when given.

    Args:
      num_choices: ``K_p`` per position.
      seed: the generator's seed.
      runs: training runs per cell.
      noise: standard deviation of a run's noise.
      latency_budget: the latency bound in ms, or ``None`` for an unconstrained problem.
      query_budget: the problem's unique-query budget, or ``None``.

    Returns:
      The :class:`~nasjax.search.base.SearchProblem`, named ``synthetic`` (``synthetic|latency<=<b>ms`` with a
      budget).
    """
    objective, latency = synthetic_tabular(num_choices, seed, runs, noise)
    cons = () if latency_budget is None else (Constraint(latency, float(latency_budget), "ms"),)
    name = "synthetic" if latency_budget is None else f"synthetic|latency<={latency_budget:g}ms"
    return SearchProblem(objective.space, objective, cons, query_budget, name)
