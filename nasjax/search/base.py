"""The one searcher protocol: a problem and a seed in, a result out.

A :class:`SearchProblem` is ``max_a objective(a)  s.t.  model_j(a) <= bound_j`` over the architectures ``a``
of a :class:`~nasjax.spaces.SearchSpace`, optionally with a query budget:

* ``objective`` is an additive :class:`~nasjax.tables.Table` (exact solvers use its coefficients), a
  :class:`TabularObjective` (a finite set of measured cells that a query-based searcher learns through an
  oracle counting unique queries), or a :class:`FunctionModel` (any vectorised predictor);
* ``constraints`` are :class:`~nasjax.constraints.Constraint` objects, whatever their model (a table, a
  :class:`ColumnModel` of measured values, a :class:`FunctionModel`);
* ``query_budget`` bounds the unique queries of a query-based searcher.

Every searcher is a :class:`Searcher` registered once in :data:`SEARCHERS` under the name used by flags,
benchmarks and docs, and is called the same way: ``searcher.search(problem, seed, **options)`` returns a
:class:`SearchResult` (the chosen architecture(s), the predicted objective and resources in their units,
the query history where there is one, the wall time, whether the answer is certified optimal).
``searcher.search_many(problem, seeds)`` (or one problem per seed) runs independent repeats; each repeat's
result depends on its own problem and seed only, never on which other repeats share the call.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nasjax.constraints import Constraint
from nasjax.errors import InfeasibleError, NasjaxInputError, require
from nasjax.registry import Registry
from nasjax.spaces.base import SearchSpace
from nasjax.tables import Table, check_unit

# --------------------------------------------------------------------------------------------------
# models a problem can hold besides additive tables


@dataclass(frozen=True)
class FunctionModel:
    """A vectorised model ``fn(archs [N, P]) -> [N]`` of one quantity (a predictor, a lookup)."""

    fn: Callable[[np.ndarray], Any]
    metric: str
    unit: str
    device: str | None = None

    def __post_init__(self):
        check_unit(self.unit, f"{self.metric} unit")

    def predict(self, archs) -> np.ndarray | float:
        """``fn`` on one architecture ``[P]`` or a batch ``[N, P]``.

        Args:
          archs: choice vectors ``[P]`` or ``[N, P]`` (passed to ``fn`` as ``[N, P]``).

        Returns:
          A float for one architecture, else float64 ``[N]``, in the model's unit.
        """
        a = np.asarray(archs)
        single = a.ndim == 1
        v = np.asarray(self.fn(np.atleast_2d(a)), dtype=np.float64).reshape(-1)
        return float(v[0]) if single else v


@dataclass(frozen=True)
class ColumnModel:
    """A measured value per cell of a finite cell set (a benchmark column): ``predict`` looks cells up.

    ``archs [M, P]`` are the cells (choice vectors of ``space``), ``values [M]`` their measurements (NaN =
    not measured: never feasible). Looking up an architecture that is not a cell is an error.
    """

    space: SearchSpace
    archs: np.ndarray
    values: np.ndarray
    metric: str
    unit: str
    device: str | None = None

    def __post_init__(self):
        a = self.space.validate(np.atleast_2d(self.archs), f"{self.metric} cells")
        v = np.asarray(self.values, dtype=np.float64).reshape(-1)
        require(v.shape == (a.shape[0],), f"{self.metric} values", v.shape, f"({a.shape[0]},), one per cell")
        check_unit(self.unit, f"{self.metric} unit")
        keys = self.space.index_of(a)
        order = np.argsort(keys, kind="stable")
        require(bool(np.all(np.diff(keys[order]) > 0)), f"{self.metric} cells", "duplicate cells", "distinct cells")
        object.__setattr__(self, "archs", a)
        object.__setattr__(self, "values", v)
        object.__setattr__(self, "_keys", keys[order])
        object.__setattr__(self, "_order", order)

    def rows_of(self, archs) -> np.ndarray:
        """Row of each architecture among the cells (-1 when it is not a cell).

        Args:
          archs: choice vectors ``[P]`` or ``[N, P]``.

        Returns:
          int64 ``[N]`` rows into ``archs`` / ``values``.
        """
        k = self.space.index_of(np.atleast_2d(np.asarray(archs, np.int64)))
        pos = np.clip(np.searchsorted(self._keys, k), 0, len(self._keys) - 1)
        hit = self._keys[pos] == k
        return np.where(hit, self._order[pos], -1)

    def predict(self, archs) -> np.ndarray | float:
        """The measured value of each architecture (a cell lookup).

        Args:
          archs: choice vectors ``[P]`` or ``[N, P]``, each one of the cells.

        Returns:
          A float for one architecture, else float64 ``[N]``, in the model's unit (NaN = not measured).

        Raises:
          NasjaxInputError: when an architecture is not one of the cells.
        """
        a = np.asarray(archs)
        rows = self.rows_of(a)
        if np.any(rows < 0):
            bad = np.atleast_2d(a)[int(np.flatnonzero(rows < 0)[0])]
            raise NasjaxInputError(f"{self.metric}: architecture {bad.tolist()} is not one of the {len(self.values)} "
                                   "measured cells")
        v = self.values[rows]
        return float(v[0]) if a.ndim == 1 else v

    def bounds(self) -> tuple[float, float]:
        """``(min, max)`` of the measured values (NaN, NaN when none is finite)."""
        fin = self.values[np.isfinite(self.values)]
        return (float(fin.min()), float(fin.max())) if fin.size else (float("nan"), float("nan"))


@dataclass(frozen=True)
class TabularObjective:
    """A finite set of measured cells as a search objective (a tabular benchmark such as NAS-Bench-201).

    Attributes:
      space: the space the cells belong to.
      archs: ``[M, P]`` cells (choice vectors of ``space``), row ``i`` = cell ``i``.
      val_mean: ``[M]`` seed-mean validation accuracy: the search signal (``signal="mean"``).
      test: ``[M]`` test accuracy, reported for the found cell, never seen by the searcher.
      val_seeds: optional ``[M, R]`` per-training-seed validation accuracy (``signal="seed"``: one random
        seed's value per cell, drawn once per run), NaN where a seed is missing.

    ``predict(archs)`` is the seed-mean validation accuracy of cells (what exact enumeration over the
    cells maximises).
    """

    space: SearchSpace
    archs: np.ndarray
    val_mean: np.ndarray
    test: np.ndarray
    val_seeds: np.ndarray | None = None
    metric: str = "accuracy"
    unit: str = "%"
    name: str = "tabular"

    def __post_init__(self):
        a = self.space.validate(np.atleast_2d(self.archs), f"{self.name} cells")
        M = a.shape[0]
        for nm in ("val_mean", "test"):
            v = np.asarray(getattr(self, nm), dtype=np.float64)
            require(v.shape == (M,), nm, v.shape, f"({M},), one per cell")
            require(bool(np.isfinite(v).all()), nm, "NaN/inf entries", "finite accuracies")
            object.__setattr__(self, nm, v)
        if self.val_seeds is not None:
            vs = np.asarray(self.val_seeds, dtype=np.float64)
            require(vs.ndim == 2 and vs.shape[0] == M, "val_seeds", vs.shape, f"({M}, R)")
            require(bool(np.isfinite(vs).any(axis=1).all()), "val_seeds", "a row with no finite seed",
                    "at least one finite seed value per cell")
            object.__setattr__(self, "val_seeds", vs)
        object.__setattr__(self, "archs", a)
        object.__setattr__(self, "_lookup", ColumnModel(self.space, a, self.val_mean, self.metric, self.unit))

    @property
    def size(self) -> int:
        """``M``, the number of cells."""
        return int(self.archs.shape[0])

    def rows_of(self, archs) -> np.ndarray:
        """Row of each architecture among the cells (-1 when it is not a cell).

        Args:
          archs: choice vectors ``[P]`` or ``[N, P]``.

        Returns:
          int64 ``[N]`` rows into ``archs``.
        """
        return self._lookup.rows_of(archs)

    def predict(self, archs) -> np.ndarray | float:
        """The seed-mean validation accuracy of cells.

        Args:
          archs: choice vectors ``[P]`` or ``[N, P]``, each one of the cells.

        Returns:
          A float for one architecture, else float64 ``[N]``, in %.

        Raises:
          NasjaxInputError: when an architecture is not one of the cells.
        """
        return self._lookup.predict(archs)


# --------------------------------------------------------------------------------------------------
# problems and results


@dataclass(frozen=True)
class SearchProblem:
    """``max_a objective(a) s.t. c.model(a) <= c.bound for c in constraints`` over ``space``.

    ``query_budget`` bounds the unique queries of a query-based searcher (``None``: its own default).
    """

    space: SearchSpace
    objective: Any
    constraints: tuple[Constraint, ...] = ()
    query_budget: int | None = None
    name: str = ""

    def __post_init__(self):
        require(isinstance(self.space, SearchSpace), "problem.space", type(self.space).__name__, "a SearchSpace")
        cons = tuple(self.constraints)
        for c in cons:
            require(isinstance(c, Constraint), "problem.constraints", type(c).__name__, "Constraint objects")
        object.__setattr__(self, "constraints", cons)
        if self.query_budget is not None:
            require(isinstance(self.query_budget, (int, np.integer)) and self.query_budget >= 1, "query_budget",
                    self.query_budget, "a positive number of queries")
        if isinstance(self.objective, Table):
            self.objective.check_space(self.space)
        for c in cons:
            if c.linear:
                c.table.check_space(self.space)

    @property
    def additive(self) -> bool:
        """Objective and every constraint are additive tables (the exact integer-program solvers apply)."""
        return isinstance(self.objective, Table) and all(c.linear for c in self.constraints)

    def with_bounds(self, bounds: Sequence[float]) -> SearchProblem:
        """The same problem with new constraint bounds (same models, units and order).

        Args:
          bounds: one bound per constraint, in each constraint's unit.

        Returns:
          A new :class:`SearchProblem`.

        Raises:
          NasjaxInputError: when the number of bounds differs from the number of constraints.
        """
        n = len(self.constraints)
        require(len(bounds) == n, "bounds", len(bounds), f"{n} (one per constraint)")
        cons = tuple(c.with_bound(b) for c, b in zip(self.constraints, bounds))
        return SearchProblem(self.space, self.objective, cons, self.query_budget, self.name)

    def evaluate(self, arch) -> tuple[float, dict[str, float]]:
        """Predicted objective and per-constraint value of one architecture (:func:`evaluate`).

        Args:
          arch: one choice vector ``[P]``.

        Returns:
          ``(objective, {constraint name: value})`` in the models' units.
        """
        return evaluate(arch, self.objective, self.constraints)

    def units(self) -> dict[str, str]:
        """``{objective metric: unit, constraint name: unit}``."""
        return {getattr(self.objective, "metric", "objective"): getattr(self.objective, "unit", ""),
                **{c.name: c.unit for c in self.constraints}}


@dataclass
class SearchResult:
    """What a searcher returns.

    ``arch`` is the chosen architecture (``archs`` holds several when a searcher returns a ranked set,
    best first), ``objective`` its predicted objective and ``resources`` its value under each constraint,
    in ``units``. ``history`` is the query log of a query-based searcher (``None`` for exact ones);
    ``certified`` says the answer is proven optimal for the problem; ``info`` holds searcher-specific
    figures (evaluations, per-generation curves, solver statistics).
    """

    arch: np.ndarray
    objective: float
    resources: dict = field(default_factory=dict)
    solve_time_ms: float = 0.0
    solver: str = ""
    certified: bool = False
    units: dict = field(default_factory=dict)
    history: Any = None
    archs: np.ndarray | None = None
    info: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """The result as plain JSON: arch, objective, resources, units, time, solver, certified (+ history, info)."""
        d = {
            "arch": [int(x) for x in self.arch],
            "objective": float(self.objective),
            "resources": {k: float(v) for k, v in self.resources.items()},
            "units": dict(self.units),
            "solve_time_ms": float(self.solve_time_ms),
            "solver": self.solver,
            "certified": bool(self.certified),
        }
        if self.history is not None:
            d["history"] = self.history.to_dict()
        if self.info:
            d["info"] = self.info
        return d


def evaluate(arch, objective, constraints: Sequence[Constraint]) -> tuple[float, dict[str, float]]:
    """``(objective(a), {c.name: c.model(a)})`` of one architecture ``a``.

    Args:
      arch: ``[P]`` choice vector.
      objective: anything with ``predict`` (a Table, a FunctionModel, a TabularObjective).
      constraints: the constraints whose model values are reported.

    Returns:
      The objective value and one resource value per constraint, in the models' units.
    """
    a = np.asarray(arch)
    res = {c.name: float(c.values(a[None])[0]) for c in constraints}
    return float(objective.predict(a)), res


def check_budgets(problem_or_constraints, tol: float = 1e-9) -> None:
    """Raise when a bound is below what its model can reach on its own: ``b_j < min_a r_j(a)``.

    Args:
      problem_or_constraints: a :class:`SearchProblem` or its constraints.
      tol: relative tolerance on the comparison.

    Raises:
      :class:`~nasjax.errors.InfeasibleError` naming the smallest achievable value of every such
      constraint (models with ``bounds()``; others are not checked here).
    """
    cons = getattr(problem_or_constraints, "constraints", problem_or_constraints)
    smallest, msgs = {}, []
    for c in cons:
        lo = c.smallest()
        if lo is None:
            continue
        smallest[c.name] = lo
        if c.bound < lo - tol * max(1.0, abs(lo)):
            dev = getattr(c.model, "device", None)
            msgs.append(f"{c.name}_constraint: {c.bound:g} {c.unit} is infeasible{' on ' + dev if dev else ''}; "
                        f"the smallest achievable {c.name} is {lo:.4f} {c.unit}")
    if msgs:
        raise InfeasibleError("; ".join(msgs), smallest)


def joint_infeasible(constraints) -> InfeasibleError:
    """The error for constraints each reachable alone but not together (raise what it returns).

    Args:
      constraints: the constraints of the problem.

    Returns:
      An :class:`~nasjax.errors.InfeasibleError` listing every bound with its smallest achievable value.
    """
    parts = []
    for c in constraints:
        lo = c.smallest()
        alone = f" (alone reachable from {lo:.4f})" if lo is not None else ""
        parts.append(f"{c.name} <= {c.bound:g} {c.unit}{alone}")
    return InfeasibleError("constraints are jointly infeasible: no architecture meets " + " and ".join(parts),
                           {c.name: c.smallest() for c in constraints})


# --------------------------------------------------------------------------------------------------
# the searcher protocol and its registry


class Searcher:
    """Base of every searcher. Subclasses set ``name``, ``kind`` (``"exact"`` or ``"query"``), implement
    :meth:`_search`, and may override :meth:`supports` and :meth:`search_many`."""

    name: str = ""
    kind: str = ""

    def supports(self, problem: SearchProblem) -> str | None:
        """``None`` when this searcher can solve ``problem``, else the reason it cannot.

        Args:
          problem: the :class:`SearchProblem`.

        Returns:
          ``None`` (the base searcher accepts every problem) or the reason, in words.
        """
        return None

    def check(self, problem: SearchProblem, seed: int = 0) -> None:
        """Raise :class:`~nasjax.errors.NasjaxInputError` unless ``problem`` and ``seed`` are acceptable.

        Args:
          problem: the :class:`SearchProblem`.
          seed: the run's seed.

        Raises:
          NasjaxInputError: when ``problem`` is not a :class:`SearchProblem`, :meth:`supports` gives a reason
            (``"searcher '<name>': <reason>"``), or ``seed`` is not an integer >= 0.
        """
        require(isinstance(problem, SearchProblem), "problem", type(problem).__name__, "a SearchProblem")
        why = self.supports(problem)
        if why is not None:
            raise NasjaxInputError(f"searcher {self.name!r}: {why}")
        require(isinstance(seed, (int, np.integer)) and seed >= 0, "seed", seed, "an integer >= 0")

    def search(self, problem: SearchProblem, seed: int = 0, **options) -> SearchResult:
        """Solve ``problem`` with ``seed`` (exact searchers ignore it); ``options`` are searcher-specific.

        Args:
          problem: the :class:`SearchProblem`.
          seed: the seed of every random choice of the run (the same seed gives the same result).
          **options: searcher options (a config object, ``signal``, ``stop_at_optimum``, an inner solver...).

        Returns:
          A :class:`SearchResult`; an infeasible problem raises :class:`~nasjax.errors.InfeasibleError`.
        """
        self.check(problem, seed)
        t0 = time.perf_counter()
        res = self._search(problem, int(seed), **options)
        return self.finish(res, problem, (time.perf_counter() - t0) * 1e3)

    def finish(self, res: SearchResult, problem: SearchProblem, wall_ms: float) -> SearchResult:
        """Fill the result's solver name, units and wall time where the searcher left them unset.

        Args:
          res: the searcher's result (modified in place).
          problem: the solved problem (its units).
          wall_ms: the measured wall time of the search, ms.

        Returns:
          ``res``.
        """
        if not res.solve_time_ms:
            res.solve_time_ms = wall_ms
        res.solver = res.solver or self.name
        res.units = res.units or problem.units()
        return res

    def search_many(self, problems, seeds: Sequence[int], **options) -> list[SearchResult]:
        """Independent repeats, one per seed; each depends on its own problem and seed only.

        Args:
          problems: one :class:`SearchProblem` for every seed, or a sequence of problems, one per seed
            (a sweep over budgets and seeds is one call).
          seeds: the seeds of the repeats.
          **options: as for :meth:`search`, shared by every repeat.

        Returns:
          One :class:`SearchResult` per seed, in order.
        """
        return [self.search(p, s, **options) for p, s in zip(*broadcast_problems(problems, seeds))]

    def _search(self, problem: SearchProblem, seed: int, **options) -> SearchResult:
        raise NotImplementedError


def broadcast_problems(problems, seeds: Sequence[int]) -> tuple[list[SearchProblem], list[int]]:
    """``(problems, seeds)`` as two lists of equal length: one problem is repeated for every seed.

    Args:
      problems: one :class:`SearchProblem`, or a sequence of problems, one per seed.
      seeds: the seeds of the repeats, at least one.

    Returns:
      ``(problems, seeds)`` lists of equal length (seeds as Python ints).

    Raises:
      NasjaxInputError: when ``seeds`` is empty or the number of problems differs from the number of seeds.
    """
    seeds = [int(s) for s in seeds]
    require(len(seeds) >= 1, "seeds", seeds, "at least one seed")
    ps = [problems] * len(seeds) if isinstance(problems, SearchProblem) else list(problems)
    require(len(ps) == len(seeds), "problems", len(ps), f"one problem per seed ({len(seeds)})")
    return ps, seeds


SEARCHERS: Registry[Searcher] = Registry("searcher")


def register(searcher: Searcher) -> Searcher:
    """Add a searcher instance to :data:`SEARCHERS` under its ``name`` (a name is registered once).

    Args:
      searcher: the instance, with ``name`` and ``kind`` (``"exact"`` or ``"query"``) set.

    Returns:
      The searcher.
    """
    require(searcher.kind in ("exact", "query"), f"searcher {searcher.name!r}.kind", searcher.kind,
            "'exact' or 'query'")
    return SEARCHERS.add(searcher.name, searcher)


def get_searcher(name: str) -> Searcher:
    """The registered searcher ``name`` (an unknown name lists the known ones).

    Args:
      name: a registered searcher name (``SEARCHERS.names()``).

    Returns:
      The :class:`Searcher` instance.

    Raises:
      NasjaxInputError: on an unknown name.
    """
    return SEARCHERS.get(name)


def run_search(name: str, problem: SearchProblem, seed: int = 0, **options) -> SearchResult:
    """``get_searcher(name).search(problem, seed, **options)``.

    Args:
      name: a registered searcher (``SEARCHERS.names()``).
      problem: the problem.
      seed: the run's seed.
      **options: the searcher's options.

    Returns:
      The :class:`SearchResult`.
    """
    return get_searcher(name).search(problem, seed, **options)
