"""Query accounting for searches on a tabular benchmark (NAS-Bench-201): one harness for every searcher.

A *task* is a finite space whose every cell has a known validation accuracy (per training seed and
seed-mean), a test accuracy and optionally a hardware resource (latency in ms, energy in mJ) with a
budget. A searcher only learns accuracies through an :class:`Oracle`, which

* returns the seed-mean validation accuracy of a cell (``signal="mean"``, the signal WeakNAS's code
  effectively used), or, with ``signal="seed"``, one training seed's value drawn at random the first
  time the cell is queried (what a real run would see); a repeated query returns the cached value;
* counts *unique* queries: the query count of a search is the number of distinct cells evaluated;
* refuses cells outside the feasible set of a constrained task (a searcher bug, never silent).

The search's *optimum* is the feasible cell with the highest seed-mean validation accuracy; the
figure of merit is the number of unique queries until it is queried (``queries_to_optimum``, the
optimum itself included), and the test accuracy of the best-so-far cell after ``n`` queries, where
"best" is judged by the values the searcher saw.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from nasjax.errors import InfeasibleError, NasjaxInputError, require

SIGNALS = ("mean", "seed")


@dataclass
class Task:
    """A tabular search problem over ``M`` cells.

    Attributes:
      name: label (dataset, and the budget for constrained tasks).
      archs: ``[M, P]`` int choice vectors, row ``i`` = cell ``i``.
      num_choices: ``[P]`` choices per position.
      val_mean: ``[M]`` seed-mean validation accuracy (%).
      test: ``[M]`` test accuracy (%) reported for the found cell.
      val_seeds: optional ``[M, R]`` per-seed validation accuracy (%), NaN where a seed is missing.
      resource: optional ``[M]`` hardware cost (NaN = not measured, never feasible);
        ``resource_name``/``resource_unit`` describe it.
      budget: optional bound: a cell is feasible iff ``resource <= budget``.
    """

    name: str
    archs: np.ndarray
    num_choices: np.ndarray
    val_mean: np.ndarray
    test: np.ndarray
    val_seeds: np.ndarray | None = None
    resource: np.ndarray | None = None
    resource_name: str = ""
    resource_unit: str = ""
    budget: float | None = None
    feasible: np.ndarray = field(init=False)

    def __post_init__(self):
        self.archs = np.asarray(self.archs, dtype=np.int64)
        self.num_choices = np.asarray(self.num_choices, dtype=np.int64)
        M = self.archs.shape[0]
        require(self.archs.ndim == 2 and M >= 1, "archs", self.archs.shape, "[M, P] with M >= 1")
        require(self.num_choices.shape == (self.archs.shape[1],), "num_choices", self.num_choices.shape,
                f"({self.archs.shape[1]},)")
        self.val_mean = np.asarray(self.val_mean, dtype=np.float64)
        self.test = np.asarray(self.test, dtype=np.float64)
        for nm, v in (("val_mean", self.val_mean), ("test", self.test)):
            require(v.shape == (M,), nm, v.shape, f"({M},)")
            require(bool(np.isfinite(v).all()), nm, "NaN/inf entries", "finite accuracies")
        if self.val_seeds is not None:
            self.val_seeds = np.asarray(self.val_seeds, dtype=np.float64)
            require(self.val_seeds.ndim == 2 and self.val_seeds.shape[0] == M, "val_seeds", self.val_seeds.shape,
                    f"({M}, R)")
            require(bool(np.isfinite(self.val_seeds).any(axis=1).all()), "val_seeds", "a row with no finite seed",
                    "at least one finite seed value per cell")
        self.feasible = np.ones(M, dtype=bool)
        if self.budget is not None:
            require(self.resource is not None, "budget", self.budget, "a task with a resource array")
            self.resource = np.asarray(self.resource, dtype=np.float64)
            require(self.resource.shape == (M,), "resource", self.resource.shape, f"({M},)")
            require(bool(np.isfinite(self.resource).any()), "resource", "no finite entry", "measured costs")
            require(np.isfinite(self.budget), "budget", self.budget, "a finite bound")
            # a cell whose cost was not measured (NaN) is never feasible: feasibility must be certain
            self.feasible = np.isfinite(self.resource) & (self.resource <= self.budget)
            if not self.feasible.any():
                lo = float(np.nanmin(self.resource))
                raise InfeasibleError(
                    f"{self.resource_name or 'resource'}_budget: {self.budget:g} {self.resource_unit} is infeasible;"
                    f" the smallest achievable is {lo:.4f} {self.resource_unit}",
                    {self.resource_name or "resource": lo},
                )

    @property
    def size(self) -> int:
        return int(self.archs.shape[0])

    @property
    def feasible_idx(self) -> np.ndarray:
        return np.flatnonzero(self.feasible)

    @property
    def optimum(self) -> int:
        """Index of the feasible cell with the highest seed-mean validation accuracy."""
        v = np.where(self.feasible, self.val_mean, -np.inf)
        return int(np.argmax(v))

    def constrained(self, resource, budget: float, name: str = "latency", unit: str = "ms") -> Task:
        """The same task restricted to ``resource <= budget``."""
        return Task(f"{self.name}|{name}<={budget:g}{unit}", self.archs, self.num_choices, self.val_mean, self.test,
                    self.val_seeds, np.asarray(resource, np.float64), name, unit, float(budget))

    def onehot(self) -> np.ndarray:
        """``[M, sum(num_choices)]`` float32 one-hot encoding of every cell (the predictor input)."""
        offs = np.concatenate([[0], np.cumsum(self.num_choices)[:-1]])
        x = np.zeros((self.size, int(self.num_choices.sum())), dtype=np.float32)
        x[np.arange(self.size)[:, None], self.archs + offs] = 1.0
        return x

    def _lookup(self) -> tuple[np.ndarray, np.ndarray]:
        """(radix ``[P]``, table ``[prod(num_choices)]``): mixed-radix key -> cell row (-1 if absent)."""
        if getattr(self, "_lut", None) is None:
            radix = np.concatenate([np.cumprod(self.num_choices[::-1])[::-1][1:], [1]]).astype(np.int64)
            table = np.full(int(np.prod(self.num_choices)), -1, dtype=np.int64)
            table[self.archs @ radix] = np.arange(self.size)
            self._lut = (radix, table)
        return self._lut

    def cell_of(self, archs) -> np.ndarray:
        """Row index of each choice vector (``[N, P]`` -> ``[N]``; -1 when the cell is not in the task)."""
        radix, table = self._lookup()
        return table[np.atleast_2d(np.asarray(archs, np.int64)) @ radix]

    def neighbours(self) -> np.ndarray:
        """``[M, sum(num_choices - 1)]`` indices of the cells one position-change away (for local moves)."""
        cols = []
        for p, k in enumerate(self.num_choices):
            for d in range(1, int(k)):
                moved = self.archs.copy()
                moved[:, p] = (moved[:, p] + d) % k
                cols.append(self.cell_of(moved))
        out = np.stack(cols, axis=1)
        require(bool((out >= 0).all()), "archs", "an incomplete product space", "every cell of the space present")
        return out


class Oracle:
    """Answers accuracy queries for one search run and keeps the query log.

    ``query(i)`` returns the signal of cell ``i`` (see module docstring). ``order`` lists the unique
    cells in the order first queried; ``observed`` the value the searcher saw for each.
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
        return int(i) in self._seen

    def query(self, i: int, tag: int = 0) -> float:
        i = int(i)
        if i in self._seen:
            return self._seen[i]
        if not (0 <= i < self.task.size):
            raise NasjaxInputError(f"query: cell {i}, expected an index in 0..{self.task.size - 1}")
        if not self.task.feasible[i]:
            raise NasjaxInputError(
                f"query: cell {i} has {self.task.resource_name} {self.task.resource[i]:.4f} {self.task.resource_unit}"
                f" > budget {self.task.budget:g}; expected a feasible cell"
            )
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
        return np.array([self.query(i, tag) for i in np.asarray(idx).reshape(-1)], dtype=np.float64)

    def history(self, method: str, seed: int) -> History:
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
        """``(val_seen[n_max], test[n_max])``: after ``n`` queries (index ``n - 1``) the best value seen and
        the test accuracy of that cell; carried forward after the run ended (NaN before the first query)."""
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
        """Unique queries until ``cell`` was queried (inclusive), or None if it never was."""
        hit = np.flatnonzero(self.order == cell)
        return int(hit[0]) + 1 if hit.size else None

    def to_dict(self) -> dict:
        return {"method": self.method, "seed": self.seed, "order": self.order.tolist(),
                "observed": self.observed.tolist(), "tags": self.tags.tolist()}

    @staticmethod
    def from_dict(d: dict) -> History:
        try:
            return History(str(d["method"]), int(d["seed"]), np.asarray(d["order"], np.int64),
                           np.asarray(d["observed"], np.float64), np.asarray(d["tags"], np.int64))
        except (KeyError, TypeError, ValueError) as e:
            raise NasjaxInputError(f"history record: {e!r}; expected keys method, seed, order, observed, tags") from e


def certify(task: Task, history: History) -> int:
    """The run's final pick, checked feasible (raises if a searcher ever returned an infeasible cell)."""
    pick = history.best()
    if not task.feasible[pick]:
        raise NasjaxInputError(
            f"final pick: cell {pick} has {task.resource_name} {task.resource[pick]:.4f} > budget {task.budget:g}"
        )
    return pick


CHECKPOINTS = (50, 100, 200, 500)


def summarize(task: Task, histories: list[History], checkpoints=CHECKPOINTS, n_max: int | None = None) -> dict:
    """Queries-to-optimum over runs and the mean test accuracy of the best-so-far cell at each checkpoint.

    A run that never queried the optimum (it hit its query cap) counts with the number of queries it
    made: ``queries_*`` are then lower bounds, and ``found_fraction < 1`` says so."""
    require(len(histories) > 0, "histories", 0, "at least one run")
    opt = task.optimum
    q = np.array([h.queries_to(opt) or len(h.order) for h in histories], dtype=np.float64)
    found = np.array([h.queries_to(opt) is not None for h in histories])
    n_max = n_max or max(max(checkpoints), max(len(h.order) for h in histories))
    tests = np.stack([h.best_so_far(task, n_max)[1] for h in histories])
    out = {
        "runs": len(histories),
        "found_fraction": float(found.mean()),
        "queries_mean": float(q.mean()),
        "queries_std": float(q.std()),
        "queries_median": float(np.median(q)),
        "queries_min": int(q.min()),
        "queries_max": int(q.max()),
        "optimum_index": opt,
        "optimum_val": float(task.val_mean[opt]),
        "optimum_test": float(task.test[opt]),
    }
    for c in checkpoints:
        col = tests[:, min(c, n_max) - 1]
        out[f"test_at_{c}"] = float(np.nanmean(col)) if np.isfinite(col).any() else None
    return out


def curves(task: Task, histories: list[History], n_max: int) -> dict[str, np.ndarray]:
    """Mean / std / 25-75 percentiles over runs of the best-so-far test accuracy, per query count."""
    t = np.stack([h.best_so_far(task, n_max)[1] for h in histories])
    return {
        "queries": np.arange(1, n_max + 1),
        "mean": np.nanmean(t, axis=0),
        "std": np.nanstd(t, axis=0),
        "p25": np.nanpercentile(t, 25, axis=0),
        "p75": np.nanpercentile(t, 75, axis=0),
    }


def seed_sequences(seed: int, n: int = 2) -> list[np.random.SeedSequence]:
    """Independent streams of one run: [searcher, oracle]."""
    require(int(seed) >= 0, "rand_seed", seed, "a seed >= 0")
    return np.random.SeedSequence(int(seed)).spawn(n)


def nb201_task(dataset: str, table=None, device: str | None = None, budget: float | None = None,
               resource: str = "latency") -> Task:
    """The NAS-Bench-201 search task of ``dataset`` from the benchmark layer
    (:func:`nasjax.benchmarks.nasbench201.load`): seed-mean and per-run 200-epoch validation accuracy
    (the signal), 200-epoch test accuracy (reported); with ``device`` and ``budget`` the constrained task
    ``latency(device) <= budget`` (ms) or ``energy(device) <= budget`` (mJ)."""
    from nasjax.benchmarks import nasbench201 as nb
    from nasjax.spaces.nasbench201 import nasbench201_space

    t = nb.load() if table is None else table
    ds = nb.canonical_dataset(dataset)
    task = Task(ds, t.archs, nasbench201_space().num_choices, t.val_acc(ds), t.test_acc(ds), t.val_acc_runs(ds))
    if device is None and budget is None:
        return task
    require(device is not None and budget is not None, "device/budget", (device, budget),
            "both a device and a budget for a constrained task")
    require(resource in ("latency", "energy"), "resource", resource, "'latency' or 'energy'")
    col = t.latency(device) if resource == "latency" else t.energy(device)
    unit = "ms" if resource == "latency" else "mJ"
    return task.constrained(col, float(budget), f"{resource}[{device}]", unit)


def run_resumable(run_chunk, seeds, cache_dir=None, chunk: int = 25, progress: bool = False) -> list[History]:
    """Run a sweep of repeats in chunks, keeping each finished repeat as ``cache_dir/seed_<s>.json``.

    ``run_chunk(list_of_seeds) -> list[History]`` runs some repeats (WeakNAS runs a chunk in lockstep).
    A killed sweep re-run with the same ``cache_dir`` loads the finished repeats and runs only the rest.
    A cache file that cannot be read raises :class:`NasjaxInputError` naming it (delete it to recompute).
    """
    import json
    from pathlib import Path

    from nasjax.io import write_json

    seeds = [int(s) for s in seeds]
    require(int(chunk) >= 1, "batch_seeds", chunk, "a positive chunk size")
    done: dict[int, History] = {}
    if cache_dir is not None:
        cache_dir = Path(cache_dir)
        for s in seeds:
            f = cache_dir / f"seed_{s}.json"
            if f.is_file():
                try:
                    h = History.from_dict(json.loads(f.read_text()))
                except (json.JSONDecodeError, NasjaxInputError) as e:
                    raise NasjaxInputError(f"resume file {f}: unreadable ({e}); expected a finished repeat's JSON "
                                           "(delete it to recompute that repeat)") from e
                require(h.seed == s, str(f), h.seed, f"seed {s}")
                done[s] = h
    todo = [s for s in seeds if s not in done]
    bar = None
    if progress and len(seeds) > 1:
        from tqdm import tqdm

        bar = tqdm(total=len(seeds), initial=len(seeds) - len(todo), desc="repeats", unit="repeat")
    for i in range(0, len(todo), int(chunk)):
        part = todo[i: i + int(chunk)]
        hs = run_chunk(part)
        require(len(hs) == len(part), "run_chunk", len(hs), f"{len(part)} histories")
        for s, h in zip(part, hs):
            done[s] = h
            if cache_dir is not None:
                write_json(cache_dir / f"seed_{s}.json", h.to_dict(), indent=None)
        if bar is not None:
            bar.update(len(part))
    if bar is not None:
        bar.close()
    return [done[s] for s in seeds]


def synthetic_task(num_choices=(4, 4, 3, 3), seed: int = 0, runs: int = 3, noise: float = 0.3) -> Task:
    """A small random product-space task (tests and demos): accuracy = additive + pairwise terms,
    ``runs`` noisy training runs per cell (std ``noise``), test = mean + independent noise, and a random
    positive "latency" (ms) for constrained runs (``task.constrained(task.resource, budget)``)."""
    rng = np.random.default_rng(seed)
    nc = np.asarray(num_choices, np.int64)
    grids = np.meshgrid(*[np.arange(k) for k in nc], indexing="ij")
    archs = np.stack([g.reshape(-1) for g in grids], axis=1)
    P = nc.size
    val = 70.0 + sum(rng.normal(0, 2, int(k))[archs[:, p]] for p, k in enumerate(nc))
    for p in range(P - 1):
        val = val + rng.normal(0, 1, (int(nc[p]), int(nc[p + 1])))[archs[:, p], archs[:, p + 1]]
    seeds = val[:, None] + rng.normal(0, noise, (archs.shape[0], runs))
    task = Task("synthetic", archs, nc, seeds.mean(1), seeds.mean(1) + rng.normal(0, noise, archs.shape[0]), seeds)
    task.resource = 1.0 + sum(rng.uniform(0, 1, int(k))[archs[:, p]] for p, k in enumerate(nc))
    task.resource_name, task.resource_unit = "latency", "ms"
    return task
