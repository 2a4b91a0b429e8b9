"""Searchers: one protocol (:mod:`nasjax.search.base`) and one registry, :data:`SEARCHERS`.

``run_search(name, SearchProblem(space, objective, constraints, query_budget), seed, **options)``:

* exact: ``highs`` / ``gurobi`` (:mod:`~nasjax.search.ilp`, the CVXPY integer program), ``mckp``
  (:mod:`~nasjax.search.mckp`, dominance-pruned dynamic programming), ``enumerate``
  (:mod:`~nasjax.search.enumerate`, exhaustive over a small space or the cells of a tabular objective),
  ``branched`` (:mod:`~nasjax.search.branched`, a union of additive branches); on BINAS spaces
  ``binas-exact`` (:mod:`~nasjax.search.binas_exact`, the stage-wise decomposition) and ``binas-milp``
  (:mod:`~nasjax.search.binas_milp`, the linearised MILP);
* query-based, through the query harness (:mod:`~nasjax.search.harness`): ``random``, ``local``
  (:mod:`~nasjax.search.baselines`), ``evolution`` (:mod:`~nasjax.search.evolution`), ``genetic``
  (:mod:`~nasjax.search.genetic`, DGL's GA and BINAS's evolution), ``weaknas-uniform``, ``weaknas-ei``
  (:mod:`~nasjax.search.weak`); ``bcfw`` (:mod:`~nasjax.search.bcfw`, BINAS's block coordinate Frank-Wolfe);
  ``pareto-mutation`` (:mod:`~nasjax.search.pareto_mutation`, the block-profiling paper's random-mutation
  Pareto search over two objectives).

A searcher with a ``spaces`` attribute solves problems over those spaces only (``("binas",)``).

:mod:`~nasjax.search.pareto` computes the whole accuracy-resource front of an additive space. Importing
this package registers every searcher; JAX, CVXPY and SciPy are imported only when a searcher needs them.
"""

from nasjax.search import baselines, branched, enumerate, evolution, genetic, ilp, mckp, weak  # noqa: F401, E402, I001
from nasjax.search import bcfw, binas_exact, binas_milp, pareto_mutation  # noqa: F401, E402, I001
from nasjax.search.base import (  # noqa: F401
    SEARCHERS,
    ColumnModel,
    FunctionModel,
    Searcher,
    SearchProblem,
    SearchResult,
    TabularObjective,
    check_budgets,
    evaluate,
    get_searcher,
    joint_infeasible,
    register,
    run_search,
)


def exact_searchers() -> list[str]:
    """Names of the registered exact searchers that solve an additive problem directly (not ``branched``,
    not those restricted to one kind of space: their ``spaces`` attribute)."""
    return [n for n, s in SEARCHERS.items()
            if s.kind == "exact" and n != "branched" and getattr(s, "spaces", None) is None]
