"""The runtime's candidate subnets, chosen from the tables and compiled ahead of time.

Candidates (all by the tables, before anything runs):

* the Pareto front of (accuracy table, cost table) (:func:`nasjax.search.pareto.pareto_front`), thinned
  to at most ``max_front`` points evenly spread over the cost range (both ends kept);
* optionally the *chain*: from the fastest architecture (every stage at its cheapest choice), repeatedly
  the one-stage, one-choice move with the best accuracy gained per cost added, up to the slowest. Any two
  consecutive chain points are one light move apart, so the light search always has somewhere to go.

Each candidate is sliced from the supernet as a static program, its BN statistics recalibrated once,
and compiled ahead for the serving input shape: ``jax.jit(f).lower(x).compile()``. A switch selects one
of these executables: nothing is traced or compiled at switch time.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import jax
import numpy as np

from nasjax.errors import require
from nasjax.runtime import adapter
from nasjax.tables import Table


def choice_order(cost: Table) -> list[list[int]]:
    """Per position, its choices from cheapest to most expensive under ``cost`` (ties: index order)."""
    out = []
    for i in range(cost.shape[0]):
        valid = np.flatnonzero(cost.mask[i])
        out.append([int(c) for c in valid[np.argsort(cost.values[i, valid], kind="stable")]])
    return out


def chain(accuracy: Table, cost: Table) -> np.ndarray:
    """The greedy chain of one-stage, one-choice moves from the cheapest to the dearest architecture.

    At each step, of the moves ``a_s: order_s[r] -> order_s[r + 1]`` it takes the one maximising
    ``(acc(a') - acc(a)) / max(cost(a') - cost(a), eps)``.

    Args:
      accuracy: the accuracy table.
      cost: the cost table (latency or a proxy).

    Returns:
      ``[1 + sum_s (K_s - 1), P]`` int64 architectures, cheapest first.
    """
    order = choice_order(cost)
    rank = np.zeros(len(order), np.int64)
    a = np.array([o[0] for o in order], np.int64)
    out = [a.copy()]
    while any(rank[s] < len(order[s]) - 1 for s in range(len(order))):
        best, best_s = -np.inf, -1
        for s in range(len(order)):
            if rank[s] == len(order[s]) - 1:
                continue
            b = a.copy()
            b[s] = order[s][rank[s] + 1]
            gain = float(accuracy.predict(b)) - float(accuracy.predict(a))
            dc = max(float(cost.predict(b)) - float(cost.predict(a)), 1e-12)
            if gain / dc > best:
                best, best_s = gain / dc, s
        rank[best_s] += 1
        a[best_s] = order[best_s][rank[best_s]]
        out.append(a.copy())
    return np.stack(out)


def select_candidates(accuracy: Table, cost: Table, *, max_front: int = 12, with_chain: bool = True) -> np.ndarray:
    """Candidate architectures (module docstring), unique, sorted by cost.

    Args:
      accuracy: the accuracy table.
      cost: the cost table.
      max_front: at most this many Pareto-front points (>= 2).
      with_chain: add the greedy chain.

    Returns:
      ``[M, P]`` int64 architectures.
    """
    from nasjax.search.pareto import pareto_front

    require(isinstance(max_front, (int, np.integer)) and max_front >= 2, "max_front", max_front, "an integer >= 2")
    f = pareto_front(accuracy, cost)
    archs, res = np.asarray(f.archs, np.int64), np.asarray(f.resource, np.float64)
    if len(archs) > max_front:
        targets = np.linspace(res[0], res[-1], max_front)
        keep = sorted({int(np.argmin(np.abs(res - t))) for t in targets} | {0, len(archs) - 1})
        archs = archs[keep]
    if with_chain:
        archs = np.concatenate([archs, chain(accuracy, cost)])
    archs = np.unique(archs, axis=0)
    return archs[np.argsort(cost.predict(archs), kind="stable")]


@dataclass
class CompiledCandidates:
    """Candidates compiled ahead: ``executables[i]`` runs ``archs[i]`` on inputs of ``input_shape``."""

    archs: np.ndarray
    subnets: list
    executables: list
    accuracy: np.ndarray
    cost: np.ndarray
    input_shape: tuple
    timings: dict = field(default_factory=dict)

    def __post_init__(self):
        self._row = {tuple(int(x) for x in a): i for i, a in enumerate(self.archs)}

    def __len__(self) -> int:
        return len(self.archs)

    def row(self, arch) -> int:
        """Index of ``arch`` among the candidates (KeyError when it was not compiled)."""
        return self._row[tuple(int(x) for x in arch)]

    def executable(self, arch):
        """The compiled executable of ``arch``: a dictionary look-up, nothing is compiled."""
        return self.executables[self._row[tuple(int(x) for x in arch)]]


def compile_candidates(source: adapter.Source, archs: np.ndarray, batch_size: int, *,
                       progress: bool = True) -> CompiledCandidates:
    """Slice, recalibrate BN once and compile ahead every candidate of ``archs`` for ``batch_size`` inputs.

    Args:
      source: the supernet and its data (:class:`nasjax.runtime.adapter.Source`).
      archs: ``[M, P]`` candidate architectures.
      batch_size: the serving batch size (the executables' input shape).
      progress: show a progress bar.

    Returns:
      The :class:`CompiledCandidates`.
    """
    require(isinstance(batch_size, (int, np.integer)) and batch_size >= 1, "batch_size", batch_size,
            "a positive integer")
    archs = np.asarray(archs, np.int64)
    subnets = [source.block_set.to_ofa(a) for a in archs]
    t0 = time.perf_counter()
    states = adapter.recalibrated_states(source.state, subnets, source.calib)
    t1 = time.perf_counter()
    shape = (int(batch_size), source.resolution, source.resolution, int(source.config.in_channels))
    x = jax.ShapeDtypeStruct(shape, np.float32)
    it = list(zip(states, subnets))
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(it, desc="compiling candidates ahead", unit="subnet", dynamic_ncols=True)
    exes = [adapter.static_program(st, sn).lower(x).compile() for st, sn in it]
    zeros = jax.device_put(np.zeros(shape, np.float32))
    for e in exes:  # the first execution of a program pays one-time set-up: keep it out of serving
        jax.block_until_ready(e(zeros))
    t2 = time.perf_counter()
    return CompiledCandidates(archs, subnets, exes, np.asarray(source.accuracy.predict(archs), np.float64),
                              np.asarray(source.latency.predict(archs), np.float64), shape,
                              {"recalibrate_s": t1 - t0, "compile_s": t2 - t1})
