"""Latency lookup table of MathNAS's stage blocks, measured on this machine (MathNAS, NeurIPS 2023).

Every block is timed as the real subnet-shaped program -- a static network of that block's shape
(sliced widths, real kernel size, only the active layers), never the masked supernet, whose cost is
the largest subnet's whatever the mask. Protocol: batch 1, ``warmup`` untimed calls, then the
median of ``repeats`` timed calls (``block_until_ready``), in ms.

The table is additive (MathNAS)::

    lat(a) = base + sum_s T[s, a_s]
    T[s, c] = t(stage s with block c) - o
    base    = t(stem + first block) + t(head) - o

where ``o`` is the fixed cost of launching one program, which the end-to-end network pays once but
the seven separately timed parts pay seven times. It is estimated on two reference subnets (all
smallest, all largest blocks) timed end to end: ``o = mean_ref (sum_parts t - t(ref)) / 6``. (On this
machine ``o`` is several times the cost of an empty jitted call, so subtracting the latter is not
enough.) :func:`table_error` measures how well the sums predict end-to-end latency of whole
subnets (MAPE and Kendall tau over random subnets, each also a static program). Timings on a
shared machine are noisy; the provenance records the device, the protocol and the date.
"""

from __future__ import annotations

import datetime as _dt
import os
import platform
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from nasjax.errors import require
from nasjax.hardware.runtimes import device_name, time_call, time_calls  # noqa: F401 (re-exported)
from nasjax.spaces.mobilenetv3 import BlockSet
from nasjax.tables import Table


# --------------------------------------------------------------------------------------------
# Static (subnet-shaped) programs built from a supernet's weights
# --------------------------------------------------------------------------------------------
def _static_subnet(subnet: dict) -> dict:
    return {k: [int(x) for x in np.asarray(subnet[k]).reshape(-1)] for k in ("ks", "e", "d")}


def _program(state, body: Callable) -> Callable:
    """Jitted ``x -> body(model, x)`` with the supernet's weights baked in as constants.

    Like a deployed static subnet, the program's only argument is the image: passing the supernet's
    hundreds of weight arrays as arguments would add a per-call dispatch cost (~0.5 ms here) that has
    nothing to do with the subnet, and weight-only work (slicing, OFA's kernel transformation) is done
    once at compile time instead of on every call.
    """
    model = nnx.merge(state.graphdef, state.params, state.batch_stats)
    return jax.jit(lambda x: body(model, x))


def subnet_program(state, subnet: dict) -> Callable:
    """Jitted ``x -> logits`` of ``subnet`` as a static network (sliced weights, real shapes)."""
    sub = _static_subnet(subnet)
    return _program(state, lambda m, x: m(x, sub, "eval"))


def stage_program(state, config, stage: int, block: dict) -> Callable:
    """Jitted stage ``stage`` alone with ``block = {d, e[4], ks[4]}`` (its active layers only)."""
    D = config.max_depth
    d, ks, e = int(block["d"]), [int(k) for k in block["ks"]], [int(v) for v in block["e"]]

    def body(m, x):
        for i in range(d):
            x = m.blocks[stage * D + i](x, ks[i], e[i], True, "eval")
        return x

    return _program(state, body)


def stem_program(state) -> Callable:
    """Stem conv -> first block."""
    return _program(state, lambda m, x: m.first_block(m.first_conv(x, "eval"), "eval"))


def head_program(state) -> Callable:
    """Final expand -> pool -> feature mix -> classifier (same ops as the model's tail)."""
    from nasjax.models.layers import hswish

    def body(m, x):
        h = jnp.mean(m.final_expand(x, "eval"), axis=(1, 2))
        return hswish(h @ m.w_mix.value) @ m.w_cls.value + m.b_cls.value

    return _program(state, body)


def _overhead_program() -> Callable:
    return jax.jit(lambda x: x[:, :1, :1, :1] + 1.0)


def stage_shapes(config, resolution: int) -> list[tuple[int, int, int, int]]:
    """NHWC input shape (batch 1) of each stage and, last, of the head."""
    from nasjax.hardware.flops import stage_inputs

    w = config.widths()
    hs = stage_inputs(config, resolution)
    chans = [w["first_block"]] + list(w["stages"])
    return [(1, h, h, c) for h, c in zip(hs, chans)]


def _input(shape, seed: int) -> jax.Array:
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape).astype(np.float32))


def measure_stage_block_table(state, config, block_set: BlockSet, resolution: int, *, warmup: int = 3,
                              repeats: int = 20, progress: bool = True, seed: int = 0) -> Table:
    """Measure the stage-block latency table (ms, batch 1) on this machine (see module docstring).

    All programs are compiled first (progress bar), then timed round-robin (:func:`time_calls`).
    """
    require(isinstance(resolution, (int, np.integer)) and resolution >= 8, "resolution", resolution,
            "an integer >= 8 (pixels)")
    shapes = stage_shapes(config, resolution)
    x_img = _input((1, resolution, resolution, config.in_channels), seed)
    cells = [(s, c) for s in range(5) for c in range(block_set.num_choices[s])]
    builders = [lambda: (_overhead_program(), (x_img,)), lambda: (stem_program(state), (x_img,)),
                lambda: (head_program(state), (_input(shapes[5], seed),))]
    builders += [lambda s=s, c=c: (stage_program(state, config, s, block_set.configs[s][c]), (_input(shapes[s], seed),))
                 for s, c in cells]
    K = max(block_set.num_choices)
    refs = [[0] * 5, [k - 1 for k in block_set.num_choices]]  # smallest and largest blocks
    builders += [lambda a=a: (subnet_program(state, block_set.to_ofa(a)), (x_img,)) for a in refs]
    calls = _compile_all(builders, progress, "latency table: compiling")
    ms = time_calls(calls, warmup=warmup, repeats=repeats)
    t0, stem, head = ms[:3]
    stage_ms = np.zeros((5, K))
    for (s, c), v in zip(cells, ms[3:3 + len(cells)]):
        stage_ms[s, c] = v
    e2e_ref = ms[3 + len(cells):]
    # per-program overhead o: the 7 separately timed parts of a network cost (7 - 1) o more than the
    # network as one program; estimated on the two reference subnets
    parts = [stem + head + sum(stage_ms[s, a[s]] for s in range(5)) for a in refs]
    o = float(np.mean([(p - e) / 6.0 for p, e in zip(parts, e2e_ref)]))
    mask = np.zeros((5, K), bool)
    for s, c in cells:
        mask[s, c] = True
    vals = np.where(mask, stage_ms - o, 0.0)
    base = stem + head - o
    prov = {
        "method": "nasjax.hardware.latency.measure_stage_block_table",
        "protocol": f"batch 1, {warmup} warm-up calls, median of {repeats} round-robin timed calls, static "
                    "subnet-shaped programs with baked weights, jax.jit on CPU; T[s,c] = t(stage) - o, "
                    "base = t(stem+first block) + t(head) - o, o = per-program overhead estimated on the "
                    "smallest and largest subnets timed end to end",
        "per_program_overhead_ms_o": o, "empty_program_ms_t0": float(t0), "stem_ms": float(stem),
        "head_ms": float(head), "reference_subnets": refs, "reference_end_to_end_ms": [float(v) for v in e2e_ref],
        "stage_ms_raw": stage_ms.tolist(),
        "resolution": int(resolution), "supernet_config": config.to_dict(), "block_set": block_set.to_dict(),
        "jax": jax.__version__, "platform": platform.platform(), "cpu_count": os.cpu_count(),
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "note": "measured on a shared machine: timings are noisy",
    }
    return Table(vals, mask, "latency", "ms", float(base), 1, device_name(), "mobilenetv3", prov)


def _compile_all(builders, progress: bool, desc: str) -> list[tuple[Callable, tuple]]:
    """Build and compile (first call) every program; returns ``(fn, args)`` pairs."""
    it = builders
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(builders, desc=desc, unit="program", dynamic_ncols=True)
    calls = []
    for b in it:
        fn, args = b()
        jax.block_until_ready(fn(*args))
        calls.append((fn, args))
    return calls


def measure_subnets(state, subnets: list[dict], resolution: int, in_channels: int, *, warmup: int = 3,
                    repeats: int = 20, progress: bool = True, seed: int = 0) -> np.ndarray:
    """End-to-end latency (ms, batch 1) of each subnet (OFA dicts) as its own static program
    (compiled first, then timed round-robin)."""
    x = _input((1, resolution, resolution, in_channels), seed)
    builders = [lambda s=s: (subnet_program(state, s), (x,)) for s in subnets]
    calls = _compile_all(builders, progress, "end-to-end latency: compiling")
    return time_calls(calls, warmup=warmup, repeats=repeats)


def table_error(predicted: np.ndarray, measured: np.ndarray) -> dict:
    """MAPE (%) and Kendall tau of predicted vs measured latencies."""
    from scipy.stats import kendalltau

    predicted, measured = np.asarray(predicted, float), np.asarray(measured, float)
    require(predicted.shape == measured.shape and predicted.size >= 2, "predicted/measured",
            (predicted.shape, measured.shape), "two equal-length arrays of at least 2 values")
    mape = float(np.mean(np.abs(predicted - measured) / measured) * 100.0)
    tau = float(kendalltau(predicted, measured).statistic)
    return {"mape_percent": mape, "kendall_tau": tau, "n": int(predicted.size),
            "mean_predicted_ms": float(predicted.mean()), "mean_measured_ms": float(measured.mean())}
