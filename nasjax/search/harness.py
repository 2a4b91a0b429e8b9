"""Query accounting for searches over a finite set of cells: one harness for every query-based searcher.

A query-based searcher sees a :class:`~nasjax.search.base.SearchProblem` through its :class:`Task`: the
finite cells (the cells of a :class:`~nasjax.search.base.TabularObjective`, or every architecture of an
enumerable space whose objective is a model, e.g. an additive table, which is then the oracle), their
seed-mean validation value, a test value reported for the found cell, and the feasible set (every
constraint evaluated on every cell). The searcher only learns values through an :class:`Oracle`, which

* returns the seed-mean value of a cell (``signal="mean"``, the signal WeakNAS's code effectively used),
  or, with ``signal="seed"``, one training seed's value drawn at random the first time the cell is
  queried (what a real run would see); a repeated query returns the cached value;
* counts *unique* queries: the query count of a search is the number of distinct cells evaluated;
* refuses cells outside the feasible set (a searcher bug, never silent).

The search's *optimum* is the feasible cell with the highest seed-mean value; the figure of merit is the
number of unique queries until it is queried (``queries_to_optimum``, the optimum itself included), and
the test value of the best-so-far cell after ``n`` queries, where "best" is judged by the values the
searcher saw. With ``stop_at_optimum=True`` a run ends once it has queried the optimum.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from nasjax.errors import NasjaxInputError, require
from nasjax.search.base import (
    Searcher,
    SearchProblem,
    SearchResult,
    TabularObjective,
    broadcast_problems,
    check_budgets,
    joint_infeasible,
)

SIGNALS = ("mean", "seed")
ENUMERABLE = 1_000_000  # largest space a query-based searcher enumerates into cells (model objectives)


def tabular_support(problem: SearchProblem, limit: int = ENUMERABLE) -> str | None:
    """Whether a query-based searcher can run on ``problem``.

    Args:
      problem: the problem.
      limit: the largest space a model objective is enumerated over.

    Returns:
      ``None`` for a TabularObjective or a model objective over at most ``limit`` architectures, else the
      reason.
    """
    obj = problem.objective
    if isinstance(obj, TabularObjective):
        return None
    if not hasattr(obj, "predict"):
        return f"expected a TabularObjective or a model with predict(archs), got {type(obj).__name__}"
    if problem.space.size > limit:
        return (f"space {problem.space.name!r} has {problem.space.size} architectures, expected a "
                f"TabularObjective or a space of at most {limit} architectures to query")
    return None


class Task:
    """The cells of a problem as a query-based searcher sees them.

    A model objective is enumerated over the whole space (at most :data:`ENUMERABLE` architectures).

    Args:
      problem: the :class:`~nasjax.search.base.SearchProblem`.

    Attributes:
      problem: the :class:`~nasjax.search.base.SearchProblem`.
      name: the problem's name.
      space: the problem's space; ``num_choices`` its choice counts.
      archs: ``[M, P]`` cells, row ``i`` = cell ``i``.
      val_mean: ``[M]`` seed-mean validation value (the search signal).
      test: ``[M]`` test value reported for the found cell (the objective itself for a model objective).
      val_seeds: ``[M, R]`` per-training-seed values or ``None``.
      constraint_values: ``[M, m]`` value of each constraint's model on each cell (NaN = not measured).
      feasible: ``[M]`` cells meeting every constraint (a NaN value never does).

    Raises:
      NasjaxInputError: when a query-based searcher cannot run on ``problem``, a model objective gives a
        non-finite value, or no cell is feasible (:class:`~nasjax.errors.InfeasibleError`).
    """

    def __init__(self, problem: SearchProblem):
        why = tabular_support(problem)
        if why is not None:
            raise NasjaxInputError(f"problem {problem.name!r}: {why}")
        obj = problem.objective
        self.problem = problem
        self.space = problem.space
        self.num_choices = problem.space.num_choices
        if isinstance(obj, TabularObjective):
            self.archs, self.val_mean, self.test, self.val_seeds = obj.archs, obj.val_mean, obj.test, obj.val_seeds
            self.name = problem.name or obj.name
            self._rows_of = obj.rows_of
        else:
            self.archs = problem.space.all_archs(ENUMERABLE)
            self.val_mean = np.asarray(obj.predict(self.archs), np.float64).reshape(-1)
            require(bool(np.isfinite(self.val_mean).all()), "objective", "NaN/inf values",
                    "a finite value per architecture")
            self.test, self.val_seeds = self.val_mean, None
            self.name = problem.name or problem.space.name
            self._rows_of = problem.space.index_of
        cons = problem.constraints
        self.constraint_values = np.stack([c.values(self.archs) for c in cons], 1) if cons else np.zeros((self.size, 0))
        self.feasible = np.ones(self.size, dtype=bool)
        for c in cons:
            self.feasible &= c.satisfied(self.archs)
        if not self.feasible.any():
            check_budgets(cons)
            raise joint_infeasible(cons)
        self._neighbours = None

    _VIEWS: OrderedDict = OrderedDict()

    @classmethod
    def of(cls, problem: SearchProblem) -> Task:
        """The (cached) task of ``problem``: building it evaluates every constraint on every cell once.

        The cache keeps the 64 most recently used problems (by identity).

        Args:
          problem: the :class:`~nasjax.search.base.SearchProblem`.

        Returns:
          Its :class:`Task`.

        Raises:
          NasjaxInputError: when a query-based searcher cannot run on ``problem`` (:func:`tabular_support`), or no
            cell is feasible (:class:`~nasjax.errors.InfeasibleError`).
        """
        hit = cls._VIEWS.get(id(problem))
        if hit is not None and hit.problem is problem:
            cls._VIEWS.move_to_end(id(problem))
            return hit
        task = cls(problem)
        cls._VIEWS[id(problem)] = task
        while len(cls._VIEWS) > 64:
            cls._VIEWS.popitem(last=False)
        return task

    @property
    def size(self) -> int:
        """``M``, the number of cells."""
        return int(self.archs.shape[0])

    @property
    def feasible_idx(self) -> np.ndarray:
        """The rows of the feasible cells, ascending."""
        return np.flatnonzero(self.feasible)

    @property
    def optimum(self) -> int:
        """Index of the feasible cell with the highest seed-mean validation value."""
        return int(np.argmax(np.where(self.feasible, self.val_mean, -np.inf)))

    def onehot(self) -> np.ndarray:
        """``[M, sum(num_choices)]`` float32 one-hot encoding of every cell (the predictor input): the
        space's padded one-hot ``[M, P, K]`` without its padded columns, positions concatenated."""
        x = self.space.onehot(self.archs).reshape(self.size, -1)
        return np.ascontiguousarray(x[:, self.space.mask.reshape(-1)])

    def cell_of(self, archs) -> np.ndarray:
        """Row index of each choice vector (``[N, P]`` -> ``[N]``; -1 when it is not a cell).

        Args:
          archs: choice vectors ``[P]`` or ``[N, P]``.

        Returns:
          int64 ``[N]`` rows.
        """
        return np.asarray(self._rows_of(np.atleast_2d(np.asarray(archs, np.int64))), np.int64)

    def neighbours(self) -> np.ndarray:
        """``[M, sum(num_choices - 1)]`` rows of the cells one position-change away (-1: not a cell)."""
        if self._neighbours is None:
            cols = []
            for p, k in enumerate(self.num_choices):
                for d in range(1, int(k)):
                    moved = self.archs.copy()
                    moved[:, p] = (moved[:, p] + d) % k
                    cols.append(self.cell_of(moved))
            self._neighbours = np.stack(cols, axis=1)
        return self._neighbours

    def describe_infeasible(self, i: int) -> str:
        """Which constraints cell ``i`` violates, with its values.

        Args:
          i: a cell's row.

        Returns:
          E.g. ``"latency 12.3400 ms > 10"`` (comma-separated), or ``"infeasible"``.
        """
        parts = [f"{c.name} {self.constraint_values[i, j]:.4f} {c.unit} > {c.bound:g}"
                 for j, c in enumerate(self.problem.constraints) if not c.satisfied(self.archs[i][None])[0]]
        return ", ".join(parts) or "infeasible"

    def result(self, history: History) -> SearchResult:
        """A query-based run's result: its pick (the best value seen, certified feasible) and its log.

        Args:
          history: the run's query log.

        Returns:
          The :class:`~nasjax.search.base.SearchResult` (``info``: ``cell``, ``queries``, ``test``).

        Raises:
          NasjaxInputError: when the history is empty or its pick is infeasible.
        """
        pick = certify(self, history)
        res = {c.name: float(self.constraint_values[pick, j]) for j, c in enumerate(self.problem.constraints)}
        return SearchResult(self.archs[pick].copy(), float(np.max(history.observed)), res, history=history,
                            info={"cell": pick, "queries": int(len(history.order)), "test": float(self.test[pick])})


class Oracle:
    """Answers value queries for one search run and keeps the query log.

    ``query(i)`` returns the signal of cell ``i`` (see module docstring). ``order`` lists the unique
    cells in the order first queried; ``observed`` the value the searcher saw for each.

    Args:
      task: the :class:`Task`.
      signal: ``"mean"`` (seed-mean value) or ``"seed"`` (one training run's value per cell).
      seed: the seed of the ``"seed"`` draws (an int or a ``SeedSequence``).

    Raises:
      NasjaxInputError: on an unknown signal, or ``"seed"`` for a task without per-seed values.
    """

    def __init__(self, task: Task, signal: str = "mean", seed: int | np.random.SeedSequence = 0):
        require(signal in SIGNALS, "signal", signal, f"one of {SIGNALS}")
        if signal == "seed":
            require(task.val_seeds is not None, "signal", signal, "a task with per-seed validation accuracies")
        self.task = task
        self.signal = signal
        self._rng = np.random.default_rng(seed)
        self._seen: dict[int, float] = {}
        self.order: list[int] = []
        self.observed: list[float] = []
        self.tags: list[int] = []

    def __len__(self) -> int:
        return len(self.order)

    def seen(self, i: int) -> bool:
        """Whether cell ``i`` has been queried.

        Args:
          i: a cell's row.

        Returns:
          True after its first query.
        """
        return int(i) in self._seen

    def query(self, i: int, tag: int = 0) -> float:
        """The signal of cell ``i`` (a repeat costs nothing and returns the same value).

        Args:
          i: a feasible cell's row.
          tag: what the log records with a first query (an iteration, a generation).

        Returns:
          The seed-mean value, or with ``signal="seed"`` one training run's value drawn at the first query.
        """
        i = int(i)
        if i in self._seen:
            return self._seen[i]
        if not (0 <= i < self.task.size):
            raise NasjaxInputError(f"query: cell {i}, expected an index in 0..{self.task.size - 1}")
        if not self.task.feasible[i]:
            raise NasjaxInputError(f"query: cell {i} is infeasible ({self.task.describe_infeasible(i)}); "
                                   "expected a feasible cell")
        if self.signal == "mean":
            v = float(self.task.val_mean[i])
        else:
            row = self.task.val_seeds[i]
            row = row[np.isfinite(row)]
            v = float(row[self._rng.integers(row.size)])
        self._seen[i] = v
        self.order.append(i)
        self.observed.append(v)
        self.tags.append(int(tag))
        return v

    def query_many(self, idx, tag: int = 0) -> np.ndarray:
        """:meth:`query` of every cell of ``idx``, in order.

        Args:
          idx: cell rows (any shape, flattened).
          tag: what the log records with each first query.

        Returns:
          float64 values, one per entry of ``idx``.

        Raises:
          NasjaxInputError: on a row out of range or an infeasible cell.
        """
        return np.array([self.query(i, tag) for i in np.asarray(idx).reshape(-1)], dtype=np.float64)

    def history(self, method: str, seed: int) -> History:
        """The run's query log as a :class:`History`.

        Args:
          method: the searcher's name.
          seed: the run's seed.

        Returns:
          The :class:`History` (unique cells in query order, values seen, tags).
        """
        return History(method, int(seed), np.array(self.order, np.int64), np.array(self.observed, np.float64),
                       np.array(self.tags, np.int64))


@dataclass
class History:
    """The query log of one run: unique cells in query order, the values seen and a tag per query
    (WeakNAS: the iteration that sampled it)."""

    method: str
    seed: int
    order: np.ndarray
    observed: np.ndarray
    tags: np.ndarray

    def best_so_far(self, task: Task, n_max: int) -> tuple[np.ndarray, np.ndarray]:
        """``(val_seen[n_max], test[n_max])``: after ``n`` queries (index ``n - 1``) the best value seen and the test
        accuracy of that cell; carried forward after the run ended (NaN before the first query).

        Ties keep the earlier cell.

        Args:
          task: the :class:`Task` the run searched (its ``test`` values).
          n_max: the length of the curves.

        Returns:
          ``(val, test)``: float64 ``[n_max]`` each.
        """
        n = min(len(self.order), n_max)
        val = np.full(n_max, np.nan)
        test = np.full(n_max, np.nan)
        if n == 0:
            return val, test
        obs = self.observed[:n]
        run_best = np.maximum.accumulate(obs)
        # index of the first cell reaching the running maximum (ties keep the earlier cell)
        prev = np.concatenate([[-np.inf], run_best[:-1]])
        arg = np.maximum.accumulate(np.where(obs > prev, np.arange(n), 0))
        val[:n] = run_best
        test[:n] = task.test[self.order[:n][arg]]
        val[n:] = val[n - 1]
        test[n:] = test[n - 1]
        return val, test

    def best(self) -> int:
        """Cell with the best value seen (the run's final pick)."""
        require(len(self.order) > 0, "history", "empty", "at least one query")
        return int(self.order[int(np.argmax(self.observed))])

    def queries_to(self, cell: int) -> int | None:
        """Unique queries until ``cell`` was queried (inclusive), or None if it never was.

        Args:
          cell: a cell's row.

        Returns:
          The 1-based query count, or ``None``.
        """
        hit = np.flatnonzero(self.order == cell)
        return int(hit[0]) + 1 if hit.size else None

    def to_dict(self) -> dict:
        """The log as plain JSON (the inverse of :meth:`from_dict`)."""
        return {"method": self.method, "seed": self.seed, "order": self.order.tolist(),
                "observed": self.observed.tolist(), "tags": self.tags.tolist()}

    @staticmethod
    def from_dict(d: dict) -> History:
        """The inverse of :meth:`to_dict`.

        Args:
          d: ``{"method", "seed", "order", "observed", "tags"}``.

        Returns:
          The :class:`History`.

        Raises:
          NasjaxInputError: when a key is missing or a value has the wrong type.
        """
        try:
            return History(str(d["method"]), int(d["seed"]), np.asarray(d["order"], np.int64),
                           np.asarray(d["observed"], np.float64), np.asarray(d["tags"], np.int64))
        except (KeyError, TypeError, ValueError) as e:
            raise NasjaxInputError(f"history record: {e!r}; expected keys method, seed, order, observed, tags") from e


def certify(task: Task, history: History) -> int:
    """The run's final pick, checked feasible.

    Args:
      task: the task the run searched.
      history: its query log.

    Returns:
      The row of the best value seen; a pick that is not feasible raises (a searcher bug).
    """
    pick = history.best()
    if not task.feasible[pick]:
        raise NasjaxInputError(f"final pick: cell {pick} is infeasible ({task.describe_infeasible(pick)})")
    return pick


def seed_sequences(seed: int, n: int = 2) -> list[np.random.SeedSequence]:
    """Independent random streams of one run.

    Args:
      seed: the run's seed (>= 0).
      n: how many streams.

    Returns:
      ``SeedSequence(seed).spawn(n)``: ``[searcher, oracle]`` for ``n = 2``.
    """
    require(int(seed) >= 0, "rand_seed", seed, "a seed >= 0")
    return np.random.SeedSequence(int(seed)).spawn(n)


class TabularSearcher(Searcher):
    """Base of the query-based searchers that run one seed at a time on a :class:`Task`.

    Subclasses implement ``run(task, seed, max_queries, signal, stop_cell, **options) -> History``; the
    query budget is the problem's ``query_budget`` (``default_budget`` when it has none; ``None`` = every
    feasible cell). Options of :meth:`search`: ``signal`` (``"mean"`` / ``"seed"``), ``stop_at_optimum``;
    :meth:`search_many` also takes ``progress`` (a progress bar over the repeats).
    """

    kind = "query"
    default_budget: int | None = 1000

    def supports(self, problem: SearchProblem) -> str | None:
        """``None`` when the problem's objective can be queried cell by cell (:func:`tabular_support`), else why not.

        Args:
          problem: the :class:`~nasjax.search.base.SearchProblem`.

        Returns:
          ``None`` or the reason.
        """
        return tabular_support(problem)

    def _search(self, problem: SearchProblem, seed: int, signal: str = "mean", stop_at_optimum: bool = False,
                **options) -> SearchResult:
        task = Task.of(problem)
        budget = problem.query_budget if problem.query_budget is not None else self.default_budget
        h = self.run(task, seed, budget, signal, task.optimum if stop_at_optimum else None, **options)
        return task.result(h)

    def search_many(self, problems, seeds, progress: bool = False, **options) -> list[SearchResult]:
        """Independent repeats, one per seed, each run alone (optionally with a progress bar).

        Args:
          problems: one :class:`~nasjax.search.base.SearchProblem`, or one per seed.
          seeds: the seeds of the repeats.
          progress: show a tqdm bar over the repeats (with more than one).
          **options: as for :meth:`search` (``signal``, ``stop_at_optimum``, searcher options).

        Returns:
          One :class:`~nasjax.search.base.SearchResult` per seed, in order.

        Raises:
          NasjaxInputError: on mismatched problems and seeds, or a problem or seed :meth:`check` refuses.
        """
        ps, ss = broadcast_problems(problems, seeds)
        it = list(zip(ps, ss))
        if progress and len(it) > 1:
            from tqdm import tqdm

            it = tqdm(it, desc=f"{self.name} {ps[0].name}", unit="run", leave=False)
        return [self.search(p, s, **options) for p, s in it]

    def run(self, task: Task, seed: int, max_queries: int | None, signal: str, stop_cell: int | None,
            **options) -> History:
        """One run on ``task``: query cells through an :class:`Oracle` and return its log (implemented by subclasses).

        Args:
          task: the :class:`Task`.
          seed: the run's seed (its streams come from :func:`seed_sequences`).
          max_queries: the unique-query budget (``None``: every feasible cell).
          signal: ``"mean"`` or ``"seed"`` (see :class:`Oracle`).
          stop_cell: stop once this cell is queried (the optimum with ``stop_at_optimum``), or ``None``.
          **options: searcher-specific settings.

        Returns:
          The run's :class:`History`.
        """
        raise NotImplementedError
