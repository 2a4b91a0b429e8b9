"""WeakNAS: a sequence of weak predictors that narrows the sampling space (Wu et al., "Stronger NAS with
Weaker Predictors", NeurIPS 2021), every run of a sweep fitted in vmapped programs of a fixed shape.

For each independent run (seed) ``s``, with the query log ``Q_s`` (cells and the values seen):

1. ``Q_s`` <- ``init_sample`` cells drawn uniformly (without replacement) from the feasible set.
2. Iteration ``t = 1, 2, ...``: standardise the seen values ``z = (v - mean(v)) / std(v)`` (or, with
   ``target="rank"``, take the normal scores of their ranks, see :func:`fit_targets`), fit a fresh
   MLP ensemble ``f_t`` (:mod:`nasjax.predictors.mlp`) on ``(onehot(Q_s), z)``, predict every feasible
   cell of the space ``mu_t(c), sigma_t(c)``, and take the top-``k_t`` cells by ``mu_t``, where ``k_t``
   shrinks from ``top_start`` to ``top_end`` on WeakNAS's exponential schedule
   ``k_t = top_end + (top_start - top_end) (d^{x_t} - d^{x_T}) / (1 - d^{x_T})``, ``x_t`` spaced evenly
   on ``[0, 99]``, ``d = top_decay``.
3. Acquisition, ``m = sample_each_iter`` new cells:
   * ``uniform``: ``m`` drawn uniformly from the top-``k_t`` cells not yet queried (as WeakNAS, the top-k
     is taken over the whole feasible space, so queried cells shrink the pool); if fewer than ``m``
     remain, the pool is completed with the best-predicted unqueried cells;
   * ``ei``: the ``m`` unqueried cells of the top-``k_t`` pool with the highest expected improvement
     ``EI = s (g Phi(g) + phi(g))``, ``s = sigma_t / c``, ``g = (mu_t - z_best) / s`` (``c`` =
     ``ei_calibration``, 5 in WeakNAS). With ``top_k >= M`` this is WeakNAS's whole-space EI.
   * re-widening (not in WeakNAS; off by default, ``widen_max=1``): with ``widen_max > 1``, once the best
     value seen has not improved for ``stall_iters`` consecutive iterations, the pool is re-widened,
     ``k = k_t min(widen_max, 2^(stall - stall_iters + 1))`` (doubling with each further stalled
     iteration), until a new best is seen.
4. Query them; stop after ``max_sample`` unique queries (the problem's query budget when it has one), or,
   with ``stop_at_optimum``, once the optimum has been queried.
5. Restart on stagnation (not in WeakNAS; on by default, ``restart_stall=6``; 0 = off): the run is split
   into *segments*. When the best value seen in the current segment has not improved for
   ``restart_stall`` consecutive iterations, a new segment begins: ``init_sample`` fresh cells drawn
   uniformly from the unqueried feasible cells, later fits use only the new segment's queries, and the
   top-k schedule starts again at ``top_start`` (``k_{t - t_0}``, ``t_0`` = the segment's first
   iteration). Queries of earlier segments still count, are never repeated (the pool excludes every
   queried cell) and compete for the final pick. A predictor fit on one basin cannot rank cells outside
   it; an independent fresh start reaches another basin, with the query log kept. Within a segment the
   loop is WeakNAS's (weak predictors + shrinking top-k + the acquisition); the trigger is the run's own
   stagnation, nothing dataset-specific. The settings and how they were chosen: docs/weaknas.md.

Batching, and why a run's log depends on its own seed only: per iteration every active run's sample set
is padded to ``N`` = the smallest ``16 * 2^j`` holding it, a function of the run alone. Runs with the same
``N`` (and the same cells) are fitted ``LANES`` at a time per compiled call (``[LANES, E]`` members, all
cells predicted in the same program), the last call of a group filled with zero-weight dummy lanes.
Every call of a given ``N`` has the same shape, and a lane's result depends neither on its position nor
on the other lanes (tested), so a seed gives the same log alone, in a batch of 25 or of 100. ``LANES = 1``
because on 2 CPU cores one run per call was faster than 4 or 8 lanes (dummy lanes cost full compute);
the ensemble members of a run are still fitted together by ``vmap``.
Constrained WeakNAS is the same loop on a problem with constraints: initial samples and candidates are
restricted to the feasible set, and the final pick (best value seen) is certified feasible
(:func:`nasjax.search.harness.certify`). Registered as ``weaknas-uniform`` and ``weaknas-ei`` (options:
``config`` (:class:`WeakNASConfig`), ``signal``, ``stop_at_optimum``, ``progress``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from nasjax.cli import option
from nasjax.errors import require
from nasjax.predictors.mlp_config import MLPConfig
from nasjax.search.base import Searcher, SearchProblem, SearchResult, broadcast_problems, register
from nasjax.search.harness import History, Oracle, Task, seed_sequences, tabular_support

METHODS = ("uniform", "ei")
TARGETS = ("zscore", "rank")
LANES = 1  # runs per compiled fit: part of the numerics (a run's floats depend on this shape), not a setting
MIN_PADDED = 16  # smallest padded sample-set size


def fit_targets(v: np.ndarray, kind: str) -> np.ndarray:
    """Regression targets from the values seen.

    ``zscore``: ``(v - mean(v)) / std(v)``; ``rank``: the normal scores of the ranks,
    ``Phi^-1((rank(v) + 0.5) / n)`` (monotone, so the order is unchanged, but the few very poor cells no
    longer dominate the squared error and the top of the order gets resolution).

    Args:
      v: ``[n]`` values seen.
      kind: ``"zscore"`` or ``"rank"``.

    Returns:
      ``[n]`` float64 targets.
    """
    v = np.asarray(v, np.float64)
    if kind == "rank":
        from scipy.stats import norm

        r = np.empty(v.size)
        r[np.argsort(v, kind="stable")] = np.arange(v.size)
        return norm.ppf((r + 0.5) / v.size)
    sd = v.std()
    return (v - v.mean()) / (sd if sd > 0 else 1.0)


@dataclass(frozen=True)
class WeakNASConfig:
    """Loop hyper-parameters; the flag names are WeakNAS's command line.

    Defaults (rank targets, a top-k pool shrinking 50 -> 10, a 3-member ensemble, restarts after 6
    stalled iterations, no re-widening) were chosen on NAS-Bench-201 tuning seeds, never on the
    benchmark's seeds 0-99; docs/weaknas.md has the measurements.
    """

    init_sample: int = option(10, help="Initial uniformly drawn samples (and samples of a restart).")
    sample_each_iter: int = option(10, help="Cells queried per iteration.")
    top_start: int = option(50, help="Top-k pool size at the first iteration.")
    top_end: int = option(10, help="Top-k pool size at the last iteration.")
    top_decay: float = option(0.96, help="Exponential decay of the top-k schedule.")
    sampling_method: str = option("uniform", choices=METHODS, help="Acquisition inside the top-k pool.")
    max_sample: int = option(1000, help="Query budget per repeat (unique cells).")
    ei_calibration: float = option(5.0, help="EI: the predicted spread is divided by this factor.")
    target: str = option("rank", choices=TARGETS, help="Predictor regression target (z-scores or rank normal scores).")
    stall_iters: int = option(3, help="Iterations without a new best before the pool re-widens.")
    widen_max: int = option(1, help="Largest re-widening factor of a stalled top-k pool (1 = off).")
    restart_stall: int = option(6, help="Iterations without a new best in the current segment before a fresh "
                                "restart (0 = off).")
    mlp: MLPConfig = field(default_factory=lambda: MLPConfig(members=3))

    def __post_init__(self):
        require(self.init_sample >= 2, "init_sample", self.init_sample, "at least 2 initial samples")
        require(self.sample_each_iter >= 1, "sample_each_iter", self.sample_each_iter, "at least 1")
        require(self.top_start >= 1 and self.top_end >= 1, "top_start/top_end", (self.top_start, self.top_end),
                "positive pool sizes")
        require(self.top_start >= self.top_end, "top_start", self.top_start, f">= top_end={self.top_end}")
        require(0 < self.top_decay <= 1, "top_decay", self.top_decay, "a decay in (0, 1]")
        require(self.sampling_method in METHODS, "sampling_method", self.sampling_method, f"one of {METHODS}")
        require(self.max_sample >= self.init_sample, "max_sample", self.max_sample,
                f">= init_sample={self.init_sample}")
        require(self.ei_calibration > 0, "ei_calibration", self.ei_calibration, "a positive factor")
        require(self.target in TARGETS, "target", self.target, f"one of {TARGETS}")
        require(self.stall_iters >= 1, "stall_iters", self.stall_iters, "at least 1 iteration")
        require(self.widen_max >= 1, "widen_max", self.widen_max, "a factor >= 1 (1 = never re-widen)")
        require(self.restart_stall >= 0, "restart_stall", self.restart_stall, "iterations >= 0 (0 = never restart)")
        if self.sampling_method == "ei":
            require(self.mlp.members >= 2, "ensemble", self.mlp.members,
                    "at least 2 members for EI (it needs a spread)")

    @property
    def iterations(self) -> int:
        """Iterations after the initial sample: ``max(1, ceil((max_sample - init_sample) / sample_each_iter))``."""
        return max(1, math.ceil((self.max_sample - self.init_sample) / self.sample_each_iter))

    def top_k_schedule(self) -> np.ndarray:
        """``k_t`` for ``t = 1..iterations`` (WeakNAS's exponential decay from top_start to top_end)."""
        T = self.iterations
        if T == 1 or self.top_start == self.top_end:
            return np.full(T, self.top_start, dtype=np.int64)
        y = np.power(self.top_decay, np.linspace(0, 99, T))
        y = (y - y.min()) / (y.max() - y.min())
        return (y * (self.top_start - self.top_end) + self.top_end).astype(np.int64)


def padded_size(n: int) -> int:
    """Smallest ``MIN_PADDED * 2^j >= n``: a run's padded sample-set size (a function of the run alone).

    Args:
      n: the number of samples.

    Returns:
      The padded size.
    """
    b = MIN_PADDED
    while b < n:
        b *= 2
    return b


def expected_improvement(mu: np.ndarray, sigma: np.ndarray, best: float, calibration: float) -> np.ndarray:
    """``EI = s (g Phi(g) + phi(g))``, ``s = sigma / calibration``, ``g = (mu - best) / s``: the expected
    improvement of a maximisation with Gaussian belief ``N(mu, s^2)`` over ``best``.

    Args:
      mu: predicted means; sigma: predicted spreads (same shape).
      best: the best target seen.
      calibration: the divisor ``c`` of the spread.

    Returns:
      The EI of every entry.
    """
    from scipy.stats import norm

    s = np.maximum(sigma / calibration, 1e-12)
    g = (mu - best) / s
    return s * (g * norm.cdf(g) + norm.pdf(g))


@dataclass
class _Run:
    seed: int
    task: Task
    config: WeakNASConfig  # the shared config with this run's query budget
    ks: np.ndarray  # its top-k schedule
    stop_cell: int | None
    rng: np.random.Generator
    oracle: Oracle
    key: object  # jax PRNG key
    done: bool = False
    best: float = -math.inf  # best value seen so far
    stall: int = 0  # consecutive iterations without a new best
    start: int = 0  # first query of the current segment (restarts begin a new one)
    t0: int = 0  # iteration at which the current segment began (its top-k schedule starts there)
    seg_best: float = -math.inf  # best value seen in the current segment
    seg_stall: int = 0  # consecutive iterations without a new segment best


def weaknas_runs(tasks: Sequence[Task], seeds: Sequence[int], config: WeakNASConfig = WeakNASConfig(),
                 signal: str = "mean", stop_cells: Sequence[int | None] | None = None,
                 budgets: Sequence[int | None] | None = None, progress: bool = False) -> list[History]:
    """Independent WeakNAS runs ``(tasks[i], seeds[i])``, each stopping at ``stop_cells[i]`` (or never) and
    after ``budgets[i]`` unique queries (``None``: ``config.max_sample``).

    Args:
      tasks: one task per run (runs over the same cells share their fitted programs' calls).
      seeds: one seed per run (the run's whole randomness: initial samples, acquisitions, MLP inits).
      config: the loop's settings (its ``sampling_method`` selects the acquisition).
      signal: ``"mean"`` or ``"seed"`` (see :class:`~nasjax.search.harness.Oracle`).
      stop_cells: per run, the cell whose query ends it.
      budgets: per run, its query budget.
      progress: a progress bar over the runs.

    Returns:
      One query log per run; its tags are the iteration (0 = initial samples) that sampled each cell. A
      run's log depends on its own task, seed, budget and the config only (module docstring).
    """
    import jax

    from nasjax.predictors.mlp import get_ensemble

    seeds = [int(s) for s in seeds]
    require(len(seeds) >= 1, "repeat", len(seeds), "at least one run")
    require(len(tasks) == len(seeds), "tasks", len(tasks), f"one task per seed ({len(seeds)})")
    stop_cells = [None] * len(seeds) if stop_cells is None else list(stop_cells)
    budgets = [None] * len(seeds) if budgets is None else list(budgets)
    require(len(stop_cells) == len(seeds), "stop_cells", len(stop_cells), f"one per seed ({len(seeds)})")
    require(len(budgets) == len(seeds), "budgets", len(budgets), f"one per seed ({len(seeds)})")
    inputs: dict[int, tuple] = {}  # id(cells) -> (cells, one-hot on the host and on the device, ensemble)
    for tk in tasks:
        if id(tk.archs) not in inputs:
            x = tk.onehot()
            inputs[id(tk.archs)] = (tk.archs, x, jax.numpy.asarray(x), get_ensemble(x.shape[1], config.mlp))
    m = config.sample_each_iter
    name = f"weaknas-{config.sampling_method}"

    runs = []
    for tk, s, sc, b in zip(tasks, seeds, stop_cells, budgets):
        cfg = config if b is None or int(b) == config.max_sample else replace(config, max_sample=int(b))
        s_search, s_oracle = seed_sequences(s)
        rng = np.random.default_rng(s_search)
        r = _Run(s, tk, cfg, cfg.top_k_schedule(), sc, rng, Oracle(tk, signal, s_oracle), jax.random.PRNGKey(s))
        feas_idx = tk.feasible_idx
        r.best = r.seg_best = float(r.oracle.query_many(
            rng.choice(feas_idx, size=min(cfg.init_sample, feas_idx.size), replace=False), tag=0).max())
        runs.append(r)

    def finished(r: _Run) -> bool:
        n = len(r.oracle)
        return (n >= r.config.max_sample or n >= int(r.task.feasible.sum())
                or (r.stop_cell is not None and r.oracle.seen(r.stop_cell)))

    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(runs), desc=f"{name} {tasks[0].name}", unit="run", leave=False)
    t = 0
    while True:
        for r in runs:
            if not r.done and finished(r):
                r.done = True
                if bar is not None:
                    bar.update(1)
        active = [r for r in runs if not r.done]
        if not active:
            break
        t += 1
        for r in active:
            if config.restart_stall and r.seg_stall >= config.restart_stall:
                _restart(r, t)
        active = [r for r in active if not finished(r)]  # a restart's initial samples may finish a run
        groups: dict[tuple[int, int], list[_Run]] = {}
        for r in active:
            groups.setdefault((id(r.task.archs), padded_size(len(r.oracle) - r.start)), []).append(r)
        for (cells, N), members in groups.items():
            _, X_host, X_dev, ens = inputs[cells]
            for i in range(0, len(members), LANES):
                lane_runs = members[i: i + LANES]
                mu, sigma, z_best = _fit_predict(ens, X_host, X_dev, lane_runs, N, t, config.target)
                for j, r in enumerate(lane_runs):
                    budget = min(m, r.config.max_sample - len(r.oracle))
                    kr = int(r.ks[min(t - r.t0, len(r.ks)) - 1])
                    if r.stall >= config.stall_iters:  # stalled: re-widen, doubling per further stalled iteration
                        kr = kr * min(config.widen_max, 2 ** (r.stall - config.stall_iters + 1))
                    new = _acquire(r, mu[j], sigma[j], z_best[j], kr, budget, config)
                    _note(r, r.oracle.query_many(new, tag=t))
        if bar is not None:
            bar.set_postfix(iteration=t, active=len(active))
    if bar is not None:
        bar.close()
    return [r.oracle.history(name, r.seed) for r in runs]


def _fit_predict(ens, X_host: np.ndarray, X_dev, lane_runs: list[_Run], N: int, t: int, target: str):
    """Fit the ensembles of up to ``LANES`` runs (padded to ``N`` samples and ``LANES`` lanes) and predict
    every cell: ``(mu [LANES, M], sigma [LANES, M], best target [n_runs])``."""
    import jax

    D = X_host.shape[1]
    x = np.zeros((LANES, N, D), np.float32)
    y = np.zeros((LANES, N), np.float32)
    w = np.zeros((LANES, N), np.float32)
    keys = [jax.random.PRNGKey(0)] * LANES  # dummy lanes: zero weights, any key; their output is discarded
    z_best = []
    for j, r in enumerate(lane_runs):
        n = len(r.oracle) - r.start  # the current segment's queries
        x[j, :n] = X_host[r.oracle.order[r.start:]]
        y[j, :n] = fit_targets(r.oracle.observed[r.start:], target)
        w[j, :n] = 1.0
        keys[j] = jax.random.fold_in(r.key, t)
        z_best.append(y[j, :n].max())
    mu, sigma = ens.fit_predict(ens.member_keys(jax.numpy.stack(keys)), x, y, w, X_dev)
    return np.asarray(mu), np.asarray(sigma), z_best


def _note(r: _Run, vals: np.ndarray) -> None:
    """Update the run's and the segment's best value and stall counters after one iteration's queries."""
    top = float(vals.max()) if vals.size else -math.inf
    if top > r.best:
        r.best, r.stall = top, 0
    else:
        r.stall += 1
    if top > r.seg_best:
        r.seg_best, r.seg_stall = top, 0
    else:
        r.seg_stall += 1


def _restart(r: _Run, t: int) -> None:
    """Begin a new segment: fresh uniform initial samples among the unqueried feasible cells; later fits
    use only the segment's queries and its top-k schedule starts again at ``top_start``."""
    queried = np.zeros(r.task.feasible.size, dtype=bool)
    queried[r.oracle.order] = True
    cand = np.flatnonzero(r.task.feasible & ~queried)
    n = min(r.config.init_sample, cand.size, r.config.max_sample - len(r.oracle))
    r.start, r.t0 = len(r.oracle), t - 1
    vals = r.oracle.query_many(r.rng.choice(cand, size=n, replace=False), tag=t) if n > 0 else np.zeros(0)
    r.seg_best = float(vals.max()) if vals.size else -math.inf
    r.seg_stall = 0
    if vals.size and vals.max() > r.best:
        r.best, r.stall = float(vals.max()), 0


def _acquire(r: _Run, mu, sigma, z_best, k, budget, config: WeakNASConfig) -> np.ndarray:
    """Pick ``budget`` unqueried feasible cells from the top-``k`` predicted (see module docstring)."""
    if budget <= 0:
        return np.zeros(0, np.int64)
    feas = r.task.feasible
    score = np.where(feas, mu, -np.inf)
    queried = np.zeros(score.size, dtype=bool)
    queried[r.oracle.order] = True
    k = min(k, int(feas.sum()))
    top = np.argpartition(-score, k - 1)[:k]
    pool = top[~queried[top]]
    if config.sampling_method == "uniform":
        if pool.size >= budget:
            return r.rng.choice(pool, size=budget, replace=False)
        rest = np.where(queried, -np.inf, score)
        rest[pool] = -np.inf
        extra = np.argsort(-rest, kind="stable")[: budget - pool.size]
        extra = extra[np.isfinite(rest[extra])]
        return np.concatenate([pool, extra])
    # EI within the pool (pool completed with the best-predicted unqueried cells when too small)
    if pool.size < budget:
        rest = np.where(queried, -np.inf, score)
        order = np.argsort(-rest, kind="stable")
        pool = order[np.isfinite(rest[order])][: max(budget, pool.size)]
    ei = expected_improvement(mu[pool], sigma[pool], z_best, config.ei_calibration)
    return pool[np.argsort(-ei, kind="stable")[:budget]]


class WeakNASSearcher(Searcher):
    """WeakNAS with acquisition ``method`` (module docstring), registered as ``weaknas-<method>``.

    Args:
      method: the sampling method, one of :data:`METHODS` (``"uniform"``, ``"ei"``).

    Raises:
      NasjaxInputError: on another method.
    """

    kind = "query"

    def __init__(self, method: str):
        require(method in METHODS, "sampling_method", method, f"one of {METHODS}")
        self.method = method
        self.name = f"weaknas-{method}"

    def supports(self, problem: SearchProblem) -> str | None:
        """``None`` when the objective can be queried cell by cell (:func:`~nasjax.search.harness.tabular_support`).

        Args:
          problem: the :class:`~nasjax.search.base.SearchProblem`.

        Returns:
          ``None`` or the reason, in words.
        """
        return tabular_support(problem)

    def _search(self, problem: SearchProblem, seed: int, **options) -> SearchResult:
        return self.search_many(problem, [seed], **options)[0]

    def search_many(self, problems, seeds, config: WeakNASConfig | None = None, signal: str = "mean",
                    stop_at_optimum: bool = False, progress: bool = False) -> list[SearchResult]:
        """Independent WeakNAS repeats, one per seed, run together (predictors of all repeats batched).

        Each repeat depends on its own problem and seed only.

        Args:
          problems: one :class:`~nasjax.search.base.SearchProblem`, or one per seed.
          seeds: the seeds of the repeats.
          config: the :class:`WeakNASConfig` (its ``sampling_method`` is set to this searcher's).
          signal: ``"mean"`` or ``"seed"`` (see :class:`~nasjax.search.harness.Oracle`).
          stop_at_optimum: end each repeat once it has queried its optimum.
          progress: show a progress bar.

        Returns:
          One :class:`~nasjax.search.base.SearchResult` per seed, in order (``info.batch_wall_ms``: the wall
          time of the whole call).

        Raises:
          NasjaxInputError: on mismatched problems and seeds, or a problem or seed :meth:`check` refuses.
        """
        import time

        ps, ss = broadcast_problems(problems, seeds)
        for p, s in zip(ps, ss):
            self.check(p, s)
        cfg = replace(config or WeakNASConfig(), sampling_method=self.method)
        tasks = [Task.of(p) for p in ps]
        t0 = time.perf_counter()
        hs = weaknas_runs(tasks, ss, cfg, signal, [tk.optimum if stop_at_optimum else None for tk in tasks],
                          [p.query_budget for p in ps], progress)
        wall = (time.perf_counter() - t0) * 1e3
        out = []
        for p, tk, h in zip(ps, tasks, hs):
            res = tk.result(h)
            res.info["batch_wall_ms"] = wall
            out.append(self.finish(res, p, wall / len(hs)))
        return out


register(WeakNASSearcher("uniform"))
register(WeakNASSearcher("ei"))
