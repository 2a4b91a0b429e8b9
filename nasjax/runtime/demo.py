"""A dynamic run end to end: candidates, compilation ahead, the window schedule, both policies.

:func:`prepare` chooses and compiles the candidates of a :class:`~nasjax.runtime.adapter.Source` and
measures the reference latency (the most accurate candidate's median over ``max(3 check_every, 30)``
batches), which
turns relative windows into ms. :func:`run_policies` serves the same schedule with nasjax's policy
(``ahead``) and/or MathNAS's (``mathnas``) and returns their traces and summaries.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import jax
import numpy as np

from nasjax.runtime.adapter import Source
from nasjax.runtime.candidates import CompiledCandidates, choice_order, compile_candidates, select_candidates
from nasjax.runtime.controller import AheadPolicy, CpuBurner, DynamicConfig, JitOnSwitchPolicy, RunResult, serve
from nasjax.runtime.estimate import ScaleEstimator
from nasjax.runtime.search import WindowSearch
from nasjax.search.base import TabularObjective


@dataclass
class Prepared:
    """What :func:`prepare` built: compiled candidates, serving batches, the start subnet, the reference."""

    source: Source
    compiled: CompiledCandidates
    order: list
    images: list
    start: np.ndarray
    reference_ms: float
    windows_ms: list
    seconds: float


def serving_batches(source: Source, batch_size: int, seed: int, count: int = 8) -> list:
    """``count`` device batches ``[batch_size, H, W, C]`` drawn (seeded) from the source's images."""
    rng = np.random.default_rng(seed)
    n = len(source.images)
    return [jax.device_put(source.images[rng.integers(0, n, batch_size)]) for _ in range(count)]


def prepare(source: Source, cfg: DynamicConfig, *, progress: bool = True) -> Prepared:
    """Candidates compiled ahead, serving batches, start subnet, reference latency and windows in ms.

    Args:
      source: the supernet and its tables.
      cfg: the run's settings.
      progress: progress bars.

    Returns:
      A :class:`Prepared`.
    """
    t0 = time.perf_counter()
    archs = select_candidates(source.accuracy, source.latency, max_front=cfg.max_front, with_chain=cfg.chain)
    compiled = compile_candidates(source, archs, cfg.batch_size, progress=progress)
    images = serving_batches(source, cfg.batch_size, cfg.seed)
    start = compiled.archs[int(np.argmax(compiled.accuracy))]
    exe = compiled.executable(start)
    jax.block_until_ready(exe(images[0]))
    ts = []
    for i in range(max(3 * cfg.check_every, 30)):
        t = time.perf_counter()
        jax.block_until_ready(exe(images[i % len(images)]))
        ts.append((time.perf_counter() - t) * 1e3)
    ref = float(np.median(ts))
    k = ref if cfg.window_relative else 1.0
    windows = [(b, lo * k, hi * k) for b, lo, hi in cfg.window_schedule]
    return Prepared(source, compiled, choice_order(source.latency), images, start, ref, windows,
                    time.perf_counter() - t0)


def run_policies(prep: Prepared, cfg: DynamicConfig, *, progress: bool = True) -> list[RunResult]:
    """Serve the schedule with the configured policies (``cfg.policy``: ahead, mathnas or both).

    Args:
      prep: from :func:`prepare`.
      cfg: the run's settings.
      progress: progress bars.

    Returns:
      One :class:`RunResult` per policy, ``ahead`` first.
    """
    src, comp = prep.source, prep.compiled
    space = src.block_set.space()
    out = []
    names = ("ahead", "mathnas") if cfg.policy == "both" else (cfg.policy,)
    for name in names:
        est = ScaleEstimator(src.latency)
        if name == "ahead":
            obj = TabularObjective(space, comp.archs, comp.accuracy, comp.accuracy, name="compiled candidates")
            search = WindowSearch(space, obj, est, prep.order, margin=cfg.margin, exact="enumerate")
            policy = AheadPolicy(comp)
        else:
            search = WindowSearch(space, src.accuracy, est, prep.order, margin=0.0, exact="mckp")
            policy = JitOnSwitchPolicy(src, comp.input_shape)
        burner = CpuBurner(cfg.slowdown_procs, cfg.max_burn_s) if cfg.slowdown_schedule else None
        res = serve(policy, search, est, prep.images, prep.windows_ms, cfg.slowdown_schedule, batches=cfg.batches,
                    check_every=cfg.check_every, start_arch=prep.start, burner=burner,
                    statistic=cfg.statistic if name == "ahead" else "mean",
                    coverage=cfg.coverage if name == "ahead" else 0.0, progress=progress)
        res.summary["loadavg_after"] = list(os.getloadavg())
        out.append(res)
    return out


def run_info(prep: Prepared) -> dict:
    """The run's setting in figures (candidates, compile times, reference latency, windows in ms)."""
    c = prep.compiled
    return {"source": prep.source.name, "source_info": prep.source.info, "candidates": len(c),
            "candidate_archs": ["-".join(str(int(x)) for x in a) for a in c.archs],
            "recalibrate_s": c.timings["recalibrate_s"], "compile_ahead_s": c.timings["compile_s"],
            "input_shape": list(c.input_shape), "start_subnet": "-".join(str(int(x)) for x in prep.start),
            "reference_ms": prep.reference_ms,
            "windows_ms": [[b, lo, hi] for b, lo, hi in prep.windows_ms], "prepare_s": prep.seconds}


def publish(save_dir, results: list[RunResult], info: dict, title: str) -> list:
    """Write ``trace.csv``, ``trace.png`` and, last, ``summary.json`` into ``save_dir`` as one set.

    Args:
      save_dir: the output directory (checked by the caller with :func:`nasjax.cli.check_output_dir`).
      results: the policies' :class:`RunResult` objects.
      info: the run's setting (:func:`run_info`) and anything else for the summary.
      title: the plot's title.

    Returns:
      The published paths (nothing is published when writing fails).
    """
    from nasjax.cli import ResultSet
    from nasjax.runtime.trace import plot_trace, write_trace_csv

    with ResultSet(save_dir, manifest="summary.json") as rs:
        write_trace_csv(rs.path("trace.csv"), results)
        plot_trace(rs.path("trace.png"), results, title)
        rs.summary.update({"run": info, "policies": {r.policy: r.summary for r in results}})
    return rs.files
