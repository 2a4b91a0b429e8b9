"""Reduced vs full vs random-subset spaces, searched at equal budget and compared by hypervolume (CIKM 2021).

For each seed the random-mutation Pareto search (:mod:`nasjax.search.pareto_mutation`) runs in the full space,
the reduced space and ``num_random`` random subsets of the reduced space's size (seeded
``[seed, 1000 + k]``), with the same evaluation budget and the same seed: the searches' draws are coupled
(common random numbers, :mod:`nasjax.search.pareto_mutation`), so a seed's scores are paired across
variants and their differences are compared over seeds. Each front (costs ``(-acc, lat)``) is scored by its
hypervolume against one reference point ``r`` shared by every run of the problem. When the true front ``T``
is known (a tabular benchmark) the score is also normalised, ``HV / HV(T)``, and the distance to it is the
inverted generational distance in objectives scaled to ``[0, 1]`` between the ideal point ``u`` and ``r``::

    IGD(F) = (1/|T|) sum_{t in T} min_{f in F} || (t - f) / (r - u) ||_2
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from nasjax.profiling.reduce import ReducedSpace, random_subset
from nasjax.search.base import SearchProblem
from nasjax.search.pareto_mutation import hypervolume, mutation_search, nondominated


def igd(true_costs, found_costs, ideal, ref) -> float:
    """Inverted generational distance of a found front to the true one (module docstring).

    IGD(F) = (1/|T|) sum_{t in T} min_{f in F} || (t - f) / (r - u) ||_2

    Args:
      true_costs: ``[T, 2]`` costs of the true front (minimised objectives).
      found_costs: ``[F, 2]`` costs of the found front.
      ideal: the ideal point ``u`` ``[2]``.
      ref: the reference point ``r`` ``[2]``.

    Returns:
      The IGD in scaled objective units (0 when every true point is found).
    """
    t, f = np.asarray(true_costs, float), np.asarray(found_costs, float)
    scale = np.asarray(ref, float) - np.asarray(ideal, float)
    d = np.linalg.norm((t[:, None, :] - f[None, :, :]) / scale, axis=-1)
    return float(d.min(1).mean())


def true_front(costs) -> np.ndarray:
    """The non-dominated rows of every cell's costs (the true front of a tabular benchmark).

    Args:
      costs: ``[N, M]`` costs of every cell (minimised objectives).

    Returns:
      float64 ``[T, M]``: the distinct non-dominated rows, sorted (``np.unique``).
    """
    c = np.asarray(costs, float)
    return np.unique(c[nondominated(c)], axis=0)


def reference_point(costs, margin: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """``(ideal u, reference r)`` of a cost cloud: per objective min, and max plus ``margin`` of the range.

    u = min_n c_n,  r = max_n c_n + margin * (max_n c_n - min_n c_n)

    Args:
      costs: ``[N, M]`` costs (minimised objectives).
      margin: the fraction of each objective's range added beyond its maximum.

    Returns:
      ``(u [M], r [M])``.
    """
    c = np.asarray(costs, float)
    lo, hi = c.min(0), c.max(0)
    return lo, hi + margin * (hi - lo)


def compare_spaces(problem: SearchProblem, reduced: ReducedSpace, seeds: Sequence[int], ref, *, num_random: int = 3,
                   gates: dict | None = None, true: np.ndarray | None = None, ideal=None, progress: str = "",
                   **search) -> dict:
    """Hypervolume (and with ``true``: HV ratio and IGD) of full / reduced / random-subset searches.

    Args:
      problem: the two-objective problem (accuracy maximised; one constraint model, its latency, minimised).
      reduced: the reduced space.
      seeds: the search seeds.
      ref: the common reference point ``(-acc_ref, lat_ref)``.
      num_random: random subsets per seed.
      gates: ``gate_position`` / ``gate_min_choice`` of the space.
      true: the true front's costs (optional); ``ideal`` its ideal point (default: the true front's minimum).
      progress: when given, a tqdm bar over the seeds with this label (on stderr).
      **search: options of :func:`~nasjax.search.pareto_mutation.mutation_search` (init_size, iterations...).

    Returns:
      ``{"hv": {variant: [S]}, "evaluations": {variant: [S]}}`` with variants ``full``, ``reduced``,
      ``random`` (mean over the subsets of a seed), plus ``hv_ratio`` and ``igd`` when ``true`` is given.
    """
    gates = gates or {}
    out = {k: {"full": [], "reduced": [], "random": []} for k in ("hv", "evaluations", "hv_ratio", "igd")}
    hv_true = hypervolume(true, ref) if true is not None else None
    u = (np.asarray(true).min(0) if ideal is None else np.asarray(ideal)) if true is not None else None
    it = seeds
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(seeds, desc=progress, unit="seed", dynamic_ncols=True)
    for s in it:
        masks = {"full": [None], "reduced": [reduced.allowed],
                 "random": [random_subset(problem.space, reduced.allowed, [int(s), 1000 + k]).allowed
                            for k in range(num_random)]}
        for name, ms in masks.items():
            hv, ev, ratio, dist = [], [], [], []
            for m in ms:
                run = mutation_search(problem, int(s), allowed=m, **gates, **search)
                f = run.costs[run.front]
                hv.append(hypervolume(f, ref))
                ev.append(len(run.archs))
                if true is not None:
                    ratio.append(hv[-1] / hv_true)
                    dist.append(igd(true, f, u, ref))
            out["hv"][name].append(float(np.mean(hv)))
            out["evaluations"][name].append(float(np.mean(ev)))
            if true is not None:
                out["hv_ratio"][name].append(float(np.mean(ratio)))
                out["igd"][name].append(float(np.mean(dist)))
    if true is None:
        del out["hv_ratio"], out["igd"]
    return out
