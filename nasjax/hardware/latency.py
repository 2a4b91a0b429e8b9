"""MathNAS's stage-block latency table at batch 1 in XLA (MathNAS, NeurIPS 2023), in the terms of the
table builder.

The measurement itself lives in :mod:`nasjax.hardware.lut_builder`: blocks timed as static subnet-shaped
programs (:class:`~nasjax.hardware.lut_builder.MobileNetV3Pieces`, built from :mod:`nasjax.export.static`),
interleaved timing (:mod:`nasjax.hardware.runtimes`), and the additive formula::

    lat(a) = base + sum_s T[s, a_s],   T[s, c] = t(stage s with block c) - o,   base = t(stem) + t(head) - o

with ``o`` the per-program launch cost estimated on reference subnets timed end to end. This module
keeps the short names used for XLA at batch 1: :func:`measure_stage_block_table`,
:func:`measure_subnets` and :func:`table_error`.
"""

from __future__ import annotations

import numpy as np

from nasjax.hardware.runtimes import device_name, time_call, time_calls  # noqa: F401 (re-exported)
from nasjax.spaces.mobilenetv3 import BlockSet
from nasjax.tables import Table


def _xla():
    from nasjax.hardware.runtimes import XlaRuntime, xla_threads_of_env

    return XlaRuntime(xla_threads_of_env())


def subnet_program(state, subnet: dict):
    """Jitted ``x -> logits`` of ``subnet`` as a static network (:func:`nasjax.export.static.static_subnet`: only
    its own weights, real shapes), the weights baked in as constants like a deployed network.

    Args:
      state: the supernet's ``ModelState``.
      subnet: an OFA ``ks/e/d`` dict.

    Returns:
      The jitted function of a batch ``[N, R, R, C]``.
    """
    from nasjax.export.static import compiled, static_subnet

    return compiled(static_subnet(state, subnet))


def measure_stage_block_table(state, config, block_set: BlockSet, resolution: int, *, warmup: int = 3,
                              repeats: int = 20, progress: bool = True) -> Table:
    """The stage-block latency table (ms, batch 1) in XLA with this process's thread setting.

    Args:
        state: the supernet (``ModelState``).
        config: its ``SupernetConfig``.
        block_set: the stage blocks (MathNAS's 5 stages x choices).
        resolution: input pixels (8..1024).
        warmup, repeats: untimed and timed interleaved rounds per chunk.
        progress: tqdm bars.

    Returns:
        :func:`nasjax.hardware.lut_builder.build_table`'s table.
    """
    from nasjax.hardware import lut_builder as lb

    return lb.build_table(lb.lut_space("mobilenetv3", state, config, block_set), _xla(), batch_size=1,
                          resolution=resolution, warmup=warmup, repeats=repeats, progress=progress)


def measure_subnets(state, config, subnets: list[dict], resolution: int, *, warmup: int = 3, repeats: int = 20,
                    progress: bool = True) -> np.ndarray:
    """End-to-end latency (ms, batch 1, XLA) of each subnet (OFA dicts ``ks/e/d``) as its own static program,
    all timed interleaved."""
    from nasjax.hardware.lut_builder import MobileNetV3Pieces
    from nasjax.hardware.runtimes import time_interleaved

    rt, pieces = _xla(), MobileNetV3Pieces(state, config)
    it = subnets
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(subnets, desc="end-to-end latency: compiling", unit="program", dynamic_ncols=True)
    calls = [rt.prepare(pieces.subnet(s), 1, resolution) for s in it]
    return time_interleaved(calls, warmup=warmup, repeats=repeats).medians_ms


def table_error(predicted: np.ndarray, measured: np.ndarray) -> dict:
    """MAPE (%), Kendall tau and the other :func:`nasjax.metrics.latency_metrics` of predicted vs measured,
    plus ``mean_predicted_ms`` and ``mean_measured_ms``."""
    from nasjax.errors import require
    from nasjax.metrics import latency_metrics

    p, m = np.asarray(predicted, float), np.asarray(measured, float)
    require(p.shape == m.shape and p.size >= 2, "predicted/measured", (p.shape, m.shape),
            "two equal-length arrays of at least 2 values")
    out = latency_metrics(m, p)
    return {**out, "mean_predicted_ms": out["mean_pred"], "mean_measured_ms": out["mean_true"]}
