"""DGL's genetic algorithm (Wang & Zhang, IEEE TMC 2023, ``utils.py``) as a general constrained searcher.

Maximises ``fitness(a)`` over the architectures ``a`` of any :class:`~nasjax.spaces.SearchSpace`
subject to ``r_j(a) <= b_j`` for every constraint ``j``::

    a* = argmax_a fitness(a)   s.t.  r_j(a) <= b_j  for all j

Constraints are :class:`~nasjax.constraints.Constraint` (additive tables) or :class:`FnConstraint`
(any vectorised function, e.g. a latency predictor). One generation, as in DGL:

1. *roulette selection*: ``P`` parents drawn with replacement, ``p_i`` proportional to
   ``fitness_i - min_feasible + eps`` for feasible individuals and 0 for infeasible ones (DGL scores an
   infeasible network 0 and selects with ``p = fitness / sum(fitness)``); a population with no feasible
   member is selected with ``p_i`` proportional to ``exp(-v_i / median(v))``, ``v`` the total relative
   violation;
2. *single-point crossover*: with probability ``crossover_rate`` (DGL's default 2, i.e. always) child
   ``i`` takes positions ``[0, cut)`` from parent ``i`` and ``[cut, P)`` from another parent drawn
   uniformly, ``cut`` uniform in ``1..P-1``;
3. *mutation*: with probability ``mutation_rate`` one position, drawn uniformly, is redrawn uniformly
   from its choices (DGL's per-gene value sets are the space's choices);
4. an archive keeps the best ``P`` distinct individuals seen (DGL's ``save_fitness``), feasible ones
   first. DGL breeds the next generation from the children (``elitist=False``); the default
   ``elitist=True`` breeds from the archive, which converges faster.

The initial population is the best ``P`` (feasible first) of ``init_factor * P`` uniform draws, or of a
given pool (DGL seeds it from a pool of known networks). The result is the best *feasible* architecture
seen; when none was seen, :class:`~nasjax.errors.InfeasibleError` names the smallest value of each
constraint reached. All randomness comes from ``np.random.default_rng(seed)``: same seed, same result.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from nasjax.errors import InfeasibleError, NasjaxInputError, require
from nasjax.search import SearchResult


@dataclass(frozen=True)
class FnConstraint:
    """``fn(archs [N, P]) -> values [N]`` must be ``<= bound`` (in ``unit``)."""

    name: str
    fn: Callable[[np.ndarray], np.ndarray]
    bound: float
    unit: str = ""

    def __post_init__(self):
        require(np.isfinite(self.bound), f"{self.name}_constraint", self.bound, "a finite number")

    def values(self, archs: np.ndarray) -> np.ndarray:
        return np.asarray(self.fn(archs), np.float64).reshape(-1)


def constraint_values(c, archs: np.ndarray) -> np.ndarray:
    """Values ``r_j(archs)`` of a :class:`FnConstraint` or a table :class:`~nasjax.constraints.Constraint`."""
    if isinstance(c, FnConstraint):
        return c.values(archs)
    if hasattr(c, "table"):
        return np.asarray(c.table.predict(np.atleast_2d(archs)), np.float64).reshape(-1)
    raise NasjaxInputError(f"constraint: got {type(c).__name__}, expected a Constraint or FnConstraint")


@dataclass(frozen=True)
class GAConfig:
    """DGL's flags: ``POPULATION_SIZE``, ``EPOCH``, ``CROSSOVER_RATE``, ``MUTATION_RATE``, ``GENE_LENGTH``."""

    population_size: int = 100
    epochs: int = 10
    crossover_rate: float = 2.0
    mutation_rate: float = 0.05
    gene_length: int | None = None  # if given, must equal the space's number of positions
    elitist: bool = True
    init_factor: int = 10

    def __post_init__(self):
        require(self.population_size >= 2, "POPULATION_SIZE", self.population_size, "an integer >= 2")
        require(self.epochs >= 0, "EPOCH", self.epochs, "an integer >= 0")
        require(self.crossover_rate >= 0, "CROSSOVER_RATE", self.crossover_rate, "a probability >= 0 (>= 1: always)")
        require(0 <= self.mutation_rate <= 1, "MUTATION_RATE", self.mutation_rate, "a probability in [0, 1]")
        require(self.init_factor >= 1, "init_factor", self.init_factor, "an integer >= 1")


@dataclass
class GAResult(SearchResult):
    evaluations: int = 0
    best_per_epoch: list = field(default_factory=list)  # best feasible fitness after each generation (nan: none)

    def to_dict(self) -> dict:
        d = super().to_dict()
        d.update({"evaluations": self.evaluations, "best_per_epoch": [float(x) for x in self.best_per_epoch]})
        return d


def _as_fitness(objective) -> Callable[[np.ndarray], np.ndarray]:
    if hasattr(objective, "predict") and hasattr(objective, "coef"):  # an additive Table
        return lambda a: np.asarray(objective.predict(np.atleast_2d(a)), np.float64).reshape(-1)
    if callable(objective):
        return lambda a: np.asarray(objective(a), np.float64).reshape(-1)
    raise NasjaxInputError(f"fitness: got {type(objective).__name__}, expected a callable or a Table")


class GeneticSearch:
    """DGL's GA (module docstring) over ``space`` for ``fitness`` under ``constraints``."""

    def __init__(self, space, fitness, constraints: Sequence = (), config: GAConfig = GAConfig()):
        self.space = space
        self.fitness = _as_fitness(fitness)
        self.constraints = list(constraints)
        self.config = config
        if config.gene_length is not None and config.gene_length != space.num_positions:
            raise NasjaxInputError(
                f"GENE_LENGTH: got {config.gene_length}, expected {space.num_positions} (positions of space {space.name!r})"
            )
        self._nc = space.num_choices

    # -- evaluation -----------------------------------------------------------------------------------
    def _evaluate(self, archs):
        f = self.fitness(archs)
        if f.shape != (len(archs),):
            raise NasjaxInputError(f"fitness: returned shape {f.shape}, expected ({len(archs)},)")
        if np.isnan(f).any():
            raise NasjaxInputError("fitness: returned NaN; expected a number per architecture (use -inf to forbid)")
        viol = np.zeros(len(archs))
        vals = {}
        for c in self.constraints:
            v = constraint_values(c, archs)
            vals[c.name] = v
            tol = 1e-9 * max(1.0, abs(c.bound))
            viol += np.maximum(v - c.bound - tol, 0.0) / max(abs(c.bound), 1e-12)
        feas = (viol == 0) & np.isfinite(f)
        return f, feas, viol, vals

    @staticmethod
    def _rank(f, feas, viol):
        """Order: feasible by fitness (desc), then infeasible by violation (asc); ties by position."""
        key_f = np.where(feas, -f, np.inf)
        return np.lexsort((np.arange(len(f)), viol, key_f))

    def _select(self, rng, f, feas, viol, n):
        if feas.any():
            ff = f[feas]
            lo, hi = ff.min(), ff.max()
            eps = 1e-3 * (hi - lo) if hi > lo else 1.0
            w = np.where(feas, f - lo + eps, 0.0)
        else:
            scale = np.median(viol) if np.median(viol) > 0 else 1.0
            w = np.exp(-(viol - viol.min()) / scale)
        return rng.choice(len(f), size=n, replace=True, p=w / w.sum())

    def _crossover(self, rng, parents):
        n, P = parents.shape
        children = parents.copy()
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
        do = rng.random(n) < self.config.mutation_rate
        pos = rng.integers(0, P, size=n)
        new = (rng.random(n) * self._nc[pos]).astype(np.int64)
        idx = np.flatnonzero(do)
        children[idx, pos[idx]] = new[idx]
        return children

    # -- search ---------------------------------------------------------------------------------------
    def solve(self, seed: int = 0, init_population=None) -> GAResult:
        t0 = time.perf_counter()
        cfg = self.config
        rng = np.random.default_rng(seed)
        P = cfg.population_size
        if init_population is not None:
            pool = self.space.validate(np.atleast_2d(np.asarray(init_population)), "init_population")
        else:
            pool = self.space.random(rng, cfg.init_factor * P)
        f, feas, viol, _ = self._evaluate(pool)
        evals = len(pool)
        order = self._rank(f, feas, viol)
        # archive: distinct individuals, best first
        arch_pop, arch_f, arch_feas, arch_viol = self._dedup(pool[order], f[order], feas[order], viol[order], P)
        if len(arch_pop) < P:  # a small pool: pad by resampling it
            extra = arch_pop[rng.integers(0, len(arch_pop), size=P - len(arch_pop))]
            parents = np.concatenate([arch_pop, extra])
            pf, pfe, pv, _ = self._evaluate(parents)
            evals += len(parents)
        else:
            parents, pf, pfe, pv = arch_pop, arch_f, arch_feas, arch_viol
        best_curve = []
        for _ in range(cfg.epochs):
            idx = self._select(rng, pf, pfe, pv, P)
            children = self._mutate(rng, self._crossover(rng, parents[idx]))
            cf, cfe, cv, _ = self._evaluate(children)
            evals += len(children)
            allp = np.concatenate([arch_pop, children])
            allf, allfe, allv = np.concatenate([arch_f, cf]), np.concatenate([arch_feas, cfe]), np.concatenate([arch_viol, cv])
            o = self._rank(allf, allfe, allv)
            arch_pop, arch_f, arch_feas, arch_viol = self._dedup(allp[o], allf[o], allfe[o], allv[o], P)
            if cfg.elitist:
                parents, pf, pfe, pv = arch_pop, arch_f, arch_feas, arch_viol
            else:
                parents, pf, pfe, pv = children, cf, cfe, cv
            best_curve.append(float(arch_f[0]) if arch_feas[0] else float("nan"))
        if not arch_feas.any():
            smallest = {}
            for c in self.constraints:
                smallest[c.name] = float(np.min(constraint_values(c, arch_pop)))
            raise InfeasibleError(
                "genetic search: no feasible architecture found in "
                f"{evals} evaluations; smallest values seen: "
                + ", ".join(f"{k} {v:.4g} (bound {c.bound:g} {getattr(c, 'unit', '')})" for (k, v), c in zip(smallest.items(), self.constraints)),
                smallest,
            )
        best = arch_pop[0]
        res = {c.name: float(constraint_values(c, best[None])[0]) for c in self.constraints}
        return GAResult(best.copy(), float(arch_f[0]), res, (time.perf_counter() - t0) * 1e3, "genetic",
                        evaluations=evals, best_per_epoch=best_curve)

    def _dedup(self, pop, f, feas, viol, n):
        """Keep the first occurrence of each architecture (input is ranked), at most ``n``."""
        _, first = np.unique(pop, axis=0, return_index=True)
        keep = np.sort(first)[:n]
        return pop[keep], f[keep], feas[keep], viol[keep]


def genetic_search(space, fitness, constraints: Sequence = (), config: GAConfig = GAConfig(), seed: int = 0,
                   init_population=None) -> GAResult:
    """Functional form of :class:`GeneticSearch` (``GeneticSearch(...).solve(seed, init_population)``)."""
    return GeneticSearch(space, fitness, constraints, config).solve(seed, init_population)
