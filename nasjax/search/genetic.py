"""DGL's genetic algorithm (Wang & Zhang, IEEE TMC 2023, ``utils.py``) as a general constrained searcher.

Maximises the problem's objective ``f(a)`` over the architectures ``a`` of its space subject to its
constraints ``r_j(a) <= b_j``::

    a* = argmax_a f(a)   s.t.  r_j(a) <= b_j  for all j

The objective is any model with ``predict`` (an additive table, a
:class:`~nasjax.search.base.FunctionModel` such as a predictor; ``-inf`` forbids an architecture) or a
:class:`~nasjax.search.base.TabularObjective`, whose cells are learned through the query harness (unique
queries, the problem's query budget, a :class:`~nasjax.search.harness.History`; architectures that are not
cells are infeasible). Constraints are :class:`~nasjax.constraints.Constraint` objects of any model.
Registered as ``genetic`` (options ``config``: a :class:`GAConfig`, ``init_population``, and on tabular
problems ``signal``). One generation, as in DGL:

1. *roulette selection*: ``P`` parents drawn with replacement, ``p_i`` proportional to
   ``fitness_i - min_feasible + eps`` for feasible individuals and 0 for infeasible ones (DGL scores an
   infeasible network 0 and selects with ``p = fitness / sum(fitness)``); a population with no feasible
   member is selected with ``p_i`` proportional to ``exp(-v_i / median(v))``, ``v`` the total relative
   violation ``v = sum_j max(r_j - b_j, 0) / |b_j|``;
2. *single-point crossover*: with probability ``crossover_rate`` (DGL's default 2, i.e. always) child
   ``i`` takes positions ``[0, cut)`` from parent ``i`` and ``[cut, P)`` from another parent drawn
   uniformly, ``cut`` uniform in ``1..P-1``;
3. *mutation*: with probability ``mutation_rate`` one position, drawn uniformly, is redrawn uniformly
   from its choices (DGL's per-gene value sets are the space's choices);
4. an archive keeps the best ``P`` distinct individuals seen (DGL's ``save_fitness``), feasible ones
   first. DGL breeds the next generation from the children (``elitist=False``); the default
   ``elitist=True`` breeds from the archive, which converges faster.

The initial population is the best ``P`` (feasible first) of ``init_factor * P`` uniform draws, or of a
given pool (DGL seeds it from a pool of known networks).

The operators can also be those of OFA's and BINAS's evolution finder (Nayman et al., arXiv 2110.12399,
``evo``; :func:`binas_evolution` gives its settings: population 100, 500 generations, mutation 0.1):
``selection="truncation"`` draws parents uniformly from the best ``parent_ratio`` share of the archive;
with ``mutation_share`` set, that share of the children are mutants of one parent and the rest are
crossovers of two, instead of every child being a crossover then a mutant; ``crossover="uniform"`` takes
each position from either parent with probability 1/2; ``mutation="per_position"`` redraws each position
with probability ``mutation_rate``; ``redraw_infeasible=n`` repeats a child's operator on the same
parents (and redraws an initial draw) up to ``n`` times until the constraints hold.

The result is the best *feasible* architecture seen; when none was seen,
:class:`~nasjax.errors.InfeasibleError` names the smallest value of each constraint reached. All
randomness comes from ``np.random.default_rng(seed)``: same seed, same result.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nasjax.cli import option
from nasjax.errors import InfeasibleError, NasjaxInputError, require
from nasjax.search.base import Searcher, SearchProblem, SearchResult, TabularObjective, register
from nasjax.search.harness import Oracle, Task, seed_sequences


@dataclass(frozen=True)
class GAConfig:
    """DGL's genetic-search settings; the flags carry DGL's names (``POPULATION_SIZE``, ``EPOCH``,
    ``CROSSOVER_RATE``, ``MUTATION_RATE``, ``GENE_LENGTH``). ``elitist`` breeds from the archive of the best
    individuals (DGL breeds from the children); ``init_factor * population_size`` uniform draws seed the
    first population. ``selection``, ``parent_ratio``, ``crossover``, ``mutation``, ``mutation_share`` and
    ``redraw_infeasible`` select the operators of the module docstring (their defaults are DGL's;
    :func:`binas_evolution` sets BINAS's); they have no command-line flags."""

    population_size: int = option(100, flag="POPULATION_SIZE", help="GA population size.")
    epochs: int = option(10, flag="EPOCH", help="GA generations.")
    crossover_rate: float = option(2.0, flag="CROSSOVER_RATE", help="GA crossover probability per individual "
                                                                    "(>= 1: always).")
    mutation_rate: float = option(0.05, flag="MUTATION_RATE", help="GA mutation probability per individual.")
    gene_length: int | None = option(None, flag="GENE_LENGTH", help="GA gene length; if given, must equal the "
                                                                    "space's number of positions.")
    elitist: bool = option(True, flag=False)
    init_factor: int = option(10, flag=False)
    selection: str = option("roulette", flag=False)
    parent_ratio: float = option(0.25, flag=False)
    crossover: str = option("single_point", flag=False)
    mutation: str = option("one_position", flag=False)
    mutation_share: float | None = option(None, flag=False)
    redraw_infeasible: int = option(0, flag=False)

    def __post_init__(self):
        require(self.population_size >= 2, "POPULATION_SIZE", self.population_size, "an integer >= 2")
        require(self.epochs >= 0, "EPOCH", self.epochs, "an integer >= 0")
        require(self.crossover_rate >= 0, "CROSSOVER_RATE", self.crossover_rate, "a probability >= 0 (>= 1: always)")
        require(0 <= self.mutation_rate <= 1, "MUTATION_RATE", self.mutation_rate, "a probability in [0, 1]")
        require(self.init_factor >= 1, "init_factor", self.init_factor, "an integer >= 1")
        require(self.selection in ("roulette", "truncation"), "selection", self.selection, "roulette or truncation")
        require(0 < self.parent_ratio <= 1, "parent_ratio", self.parent_ratio, "a share in (0, 1]")
        require(self.crossover in ("single_point", "uniform"), "crossover", self.crossover, "single_point or uniform")
        require(self.mutation in ("one_position", "per_position"), "mutation", self.mutation,
                "one_position or per_position")
        require(self.mutation_share is None or 0 <= self.mutation_share <= 1, "mutation_share", self.mutation_share,
                "None or a share in [0, 1]")
        require(self.redraw_infeasible >= 0, "redraw_infeasible", self.redraw_infeasible, "an integer >= 0")


def binas_evolution(**overrides) -> GAConfig:
    """BINAS's (and OFA's) evolution finder as a :class:`GAConfig`.

    Population 100, 500 generations (``max_time_budget``), per-position mutation 0.1 for half of the children
    and uniform crossover for the other half, parents drawn from the best 25 %, infeasible children redrawn;
    the initial population is 100 feasible random draws.

    Args:
      **overrides: :class:`GAConfig` fields replacing those settings.

    Returns:
      The :class:`GAConfig`.

    Raises:
      NasjaxInputError: when an override makes the config invalid.
    """
    cfg = dict(population_size=100, epochs=500, mutation_rate=0.1, crossover_rate=1.0, init_factor=1,
               selection="truncation", parent_ratio=0.25, crossover="uniform", mutation="per_position",
               mutation_share=0.5, redraw_infeasible=100)
    cfg.update(overrides)
    return GAConfig(**cfg)


class _Fitness:
    """Fitness and constraint values of a batch: a model objective is called; a tabular objective is
    queried through an :class:`Oracle` (feasible cells only, within the query budget; others -inf)."""

    def __init__(self, problem: SearchProblem, seed: int, signal: str):
        self.problem = problem
        self.oracle = None
        if isinstance(problem.objective, TabularObjective):
            self.task = Task.of(problem)
            self.oracle = Oracle(self.task, signal, seed_sequences(seed)[1])
            self.budget = problem.query_budget
        self.generation = 0

    def constraint_values(self, archs: np.ndarray) -> list[np.ndarray]:
        if self.oracle is None:
            return [c.values(archs) for c in self.problem.constraints]
        rows = self.task.cell_of(archs)
        vals = np.where(rows[:, None] >= 0, self.task.constraint_values[np.maximum(rows, 0)], np.inf)
        return [np.where(np.isfinite(v), v, np.inf) for v in vals.T]

    def fitness(self, archs: np.ndarray, feasible: np.ndarray) -> np.ndarray:
        if self.oracle is None:
            f = np.asarray(self.problem.objective.predict(archs), np.float64).reshape(-1)
            if f.shape != (len(archs),):
                raise NasjaxInputError(f"fitness: returned shape {f.shape}, expected ({len(archs)},)")
            if np.isnan(f).any():
                raise NasjaxInputError("fitness: returned NaN; expected a number per architecture (use -inf to forbid)")
            return f
        rows = self.task.cell_of(archs)
        f = np.full(len(archs), -np.inf)
        for n in np.flatnonzero(feasible & (rows >= 0)):
            r = int(rows[n])
            if self.oracle.seen(r) or self.budget is None or len(self.oracle) < self.budget:
                f[n] = self.oracle.query(r, tag=self.generation)
        return f


class GeneticSearcher(Searcher):
    """DGL's GA (module docstring)."""

    name = "genetic"
    kind = "query"

    def supports(self, problem: SearchProblem) -> str | None:
        """``None`` for any objective with ``predict(archs)``, else why not.

        Args:
          problem: the :class:`~nasjax.search.base.SearchProblem`.

        Returns:
          ``None`` or the reason, in words.
        """
        if not hasattr(problem.objective, "predict"):
            return f"expected an objective with predict(archs), got {type(problem.objective).__name__}"
        return None

    def _search(self, problem: SearchProblem, seed: int, config: GAConfig | None = None, init_population=None,
                signal: str = "mean") -> SearchResult:
        cfg = config or GAConfig()
        space = problem.space
        if cfg.gene_length is not None and cfg.gene_length != space.num_positions:
            raise NasjaxInputError(
                f"GENE_LENGTH: got {cfg.gene_length}, expected {space.num_positions} "
                f"(positions of space {space.name!r})"
            )
        return _GeneticRun(problem, cfg, seed, signal).solve(init_population)


class _GeneticRun:
    def __init__(self, problem: SearchProblem, config: GAConfig, seed: int, signal: str):
        self.problem = problem
        self.space = problem.space
        self.constraints = list(problem.constraints)
        self.config = config
        self.seed = seed
        self.model = _Fitness(problem, seed, signal)
        self._nc = problem.space.num_choices

    # -- evaluation -----------------------------------------------------------------------------------
    def _evaluate(self, archs):
        viol = np.zeros(len(archs))
        for c, v in zip(self.constraints, self.model.constraint_values(archs)):
            tol = 1e-9 * max(1.0, abs(c.bound))
            viol += np.maximum(v - c.bound - tol, 0.0) / max(abs(c.bound), 1e-12)
        f = self.model.fitness(archs, viol == 0)
        feas = (viol == 0) & np.isfinite(f)
        return f, feas, viol

    @staticmethod
    def _rank(f, feas, viol):
        """Order: feasible by fitness (desc), then infeasible by violation (asc); ties by position."""
        key_f = np.where(feas, -f, np.inf)
        return np.lexsort((np.arange(len(f)), viol, key_f))

    def _select(self, rng, f, feas, viol, n):
        if self.config.selection == "truncation":  # uniformly among the best parent_ratio share
            top = self._rank(f, feas, viol)[:max(1, int(round(self.config.parent_ratio * len(f))))]
            return top[rng.integers(0, len(top), size=n)]
        if feas.any():
            ff = f[feas]
            lo, hi = ff.min(), ff.max()
            eps = 1e-3 * (hi - lo) if hi > lo else 1.0
            w = np.where(feas, f - lo + eps, 0.0)
        else:
            scale = np.median(viol) if np.median(viol) > 0 else 1.0
            w = np.exp(-(viol - viol.min()) / scale)
        return rng.choice(len(f), size=n, replace=True, p=w / w.sum())

    def _crossover(self, rng, parents, mates=None):
        n, P = parents.shape
        children = parents.copy()
        if self.config.crossover == "uniform":
            take = rng.random((n, P)) < 0.5
            children[take] = mates[take]
            return children
        if P < 2:
            return children
        do = rng.random(n) < self.config.crossover_rate
        mates = (np.arange(n) + 1 + rng.integers(0, n - 1, size=n)) % n  # uniformly another individual
        cuts = rng.integers(1, P, size=n)
        tail = np.arange(P)[None, :] >= cuts[:, None]
        sel = do[:, None] & tail
        children[sel] = parents[mates][sel]
        return children

    def _mutate(self, rng, children):
        n, P = children.shape
        if self.config.mutation == "per_position":
            do = rng.random((n, P)) < self.config.mutation_rate
            new = (rng.random((n, P)) * self._nc[None, :]).astype(np.int64)
            children[do] = new[do]
            return children
        do = rng.random(n) < self.config.mutation_rate
        pos = rng.integers(0, P, size=n)
        new = (rng.random(n) * self._nc[pos]).astype(np.int64)
        idx = np.flatnonzero(do)
        children[idx, pos[idx]] = new[idx]
        return children

    # -- search ---------------------------------------------------------------------------------------
    def solve(self, init_population=None) -> SearchResult:
        cfg = self.config
        rng = np.random.default_rng(self.seed)
        P = cfg.population_size
        if init_population is not None:
            pool = self.space.validate(np.atleast_2d(np.asarray(init_population)), "init_population")
        else:
            pool = self.space.random(rng, cfg.init_factor * P)
            pool = self._redraw(pool, lambda k: self.space.random(rng, int(k.sum())))
        f, feas, viol = self._evaluate(pool)
        evals = len(pool)
        order = self._rank(f, feas, viol)
        # archive: distinct individuals, best first
        arch_pop, arch_f, arch_feas, arch_viol = self._dedup(pool[order], f[order], feas[order], viol[order], P)
        if len(arch_pop) < P:  # a small pool: pad by resampling it
            extra = arch_pop[rng.integers(0, len(arch_pop), size=P - len(arch_pop))]
            parents = np.concatenate([arch_pop, extra])
            pf, pfe, pv = self._evaluate(parents)
            evals += len(parents)
        else:
            parents, pf, pfe, pv = arch_pop, arch_f, arch_feas, arch_viol
        best_curve = []
        for epoch in range(cfg.epochs):
            self.model.generation = epoch + 1
            if cfg.mutation_share is None:
                idx = self._select(rng, pf, pfe, pv, P)
                children = self._mutate(rng, self._crossover(rng, parents[idx]))
            else:
                children = self._offspring(rng, parents, pf, pfe, pv)
            cf, cfe, cv = self._evaluate(children)
            evals += len(children)
            allp = np.concatenate([arch_pop, children])
            allf = np.concatenate([arch_f, cf])
            allfe, allv = np.concatenate([arch_feas, cfe]), np.concatenate([arch_viol, cv])
            o = self._rank(allf, allfe, allv)
            arch_pop, arch_f, arch_feas, arch_viol = self._dedup(allp[o], allf[o], allfe[o], allv[o], P)
            if cfg.elitist:
                parents, pf, pfe, pv = arch_pop, arch_f, arch_feas, arch_viol
            else:
                parents, pf, pfe, pv = children, cf, cfe, cv
            best_curve.append(float(arch_f[0]) if arch_feas[0] else float("nan"))
        if not arch_feas.any():
            values = self.model.constraint_values(arch_pop)
            smallest = {c.name: float(np.min(v)) for c, v in zip(self.constraints, values)}
            raise InfeasibleError(
                "genetic search: no feasible architecture found in "
                f"{evals} evaluations; smallest values seen: "
                + ", ".join(f"{k} {v:.4g} (bound {c.bound:g} {c.unit})"
                            for (k, v), c in zip(smallest.items(), self.constraints)),
                smallest,
            )
        best = arch_pop[0]
        res = {c.name: float(v[0]) for c, v in zip(self.constraints, self.model.constraint_values(best[None]))}
        info = {"evaluations": evals, "best_per_epoch": best_curve}
        history = None
        if self.model.oracle is not None:
            history = self.model.oracle.history("genetic", self.seed)
            info["cell"] = int(self.model.task.cell_of(best[None])[0])
        return SearchResult(best.copy(), float(arch_f[0]), res, history=history, info=info)

    def _violates(self, archs) -> np.ndarray:
        bad = np.zeros(len(archs), bool)
        for c, v in zip(self.constraints, self.model.constraint_values(archs)):
            bad |= ~(v <= c.bound + 1e-9 * max(1.0, abs(c.bound)))
        return bad

    def _redraw(self, archs, make):
        """Replace the members that violate a constraint by ``make(mask)`` (one row per masked member), up to
        ``redraw_infeasible`` times."""
        for _ in range(self.config.redraw_infeasible if self.constraints else 0):
            bad = self._violates(archs)
            if not bad.any():
                break
            archs[bad] = make(bad)
        return archs

    def _offspring(self, rng, parents, pf, pfe, pv):
        """OFA/BINAS offspring: ``mutation_share`` of the children mutate one parent, the rest cross two."""
        P = self.config.population_size
        n_mut = int(round(self.config.mutation_share * P))
        a = parents[self._select(rng, pf, pfe, pv, P)]
        b = parents[self._select(rng, pf, pfe, pv, P - n_mut)]
        mut = self._redraw(self._mutate(rng, a[:n_mut].copy()), lambda k: self._mutate(rng, a[:n_mut][k].copy()))
        first = a[n_mut:]
        cross = self._redraw(self._crossover(rng, first, b), lambda k: self._crossover(rng, first[k], b[k]))
        return np.concatenate([mut, cross])

    def _dedup(self, pop, f, feas, viol, n):
        """Keep the first occurrence of each architecture (input is ranked), at most ``n``."""
        _, first = np.unique(pop, axis=0, return_index=True)
        keep = np.sort(first)[:n]
        return pop[keep], f[keep], feas[keep], viol[keep]


register(GeneticSearcher())
