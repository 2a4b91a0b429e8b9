"""Benchmark: data-parallel supernet training steps/s and sharded batched evaluation subnets/s on 1, 2, 4, 8
XLA host devices.

Each device count runs in its own process (``XLA_FLAGS=--xla_force_host_platform_device_count=N``, the
count is fixed when JAX starts). In that process, side by side on the same supernet, batch and subnets:

  (a) nasjax on a mesh of N devices: the sandwich training step (:func:`nasjax.train.trainer.make_train_step`
      with ``mesh``; batch split, state replicated) and :func:`nasjax.train.evaluate.evaluate_subnets` with
      ``shard="subnets"`` (BN recalibration included);
  (b) the same programs without a mesh (default single-device placement): the baseline of that process.

Compilation is excluded (``--warmup`` calls first). Printed per device count: (a), (b), their ratio, and the
load average; the scaling curve is (a) at N over (a) at 1. The last line is one JSON object.

On a CPU machine the host devices are threads sharing the same cores (2 here): the curve shows the mechanism
(partitioned programs, all-reduces) and its overhead, not a speed-up. On a GPU / TPU machine the same script
(with real devices instead of ``--xla_force_host_platform_device_count``) gives the figure.

    python scripts/bench_scale.py                                  # 1, 2, 4, 8 devices
    python scripts/bench_scale.py --devices=1,8 --steps=3 --subnets=16   # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--devices", default="1,2,4,8", help="comma-separated device counts")
    p.add_argument("--steps", type=int, default=10, help="timed training steps")
    p.add_argument("--warmup", type=int, default=2, help="untimed training steps / evaluation calls first")
    p.add_argument("--batch_size", type=int, default=64, help="global training batch (a multiple of every count)")
    p.add_argument("--image_size", type=int, default=16, help="input resolution (px)")
    p.add_argument("--width_mult", type=float, default=0.25, help="supernet width multiplier")
    p.add_argument("--subnets", type=int, default=32, help="subnets evaluated per timed evaluation")
    p.add_argument("--eval_images", type=int, default=128, help="evaluation images per subnet")
    p.add_argument("--chunk_size", type=int, default=8, help="subnets per vmapped chunk")
    p.add_argument("--repeats", type=int, default=2, help="timed evaluation calls (the median is reported)")
    p.add_argument("--timeout", type=float, default=1800, help="seconds per device count")
    p.add_argument("--worker", type=int, default=0, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def worker(a) -> dict:
    import statistics

    import jax
    import numpy as np

    from nasjax.io import enable_jax_cache
    from nasjax.models import SupernetConfig
    from nasjax.train.evaluate import evaluate_subnets
    from nasjax.train.mesh import device_mesh, replicate
    from nasjax.train.trainer import TrainConfig, init_state, make_optimizer, make_train_step, sample_subnets

    enable_jax_cache()
    n = a.worker
    assert jax.device_count() == n, (jax.device_count(), n)
    cfg = SupernetConfig(width_mult=a.width_mult, num_classes=10, in_channels=1, ks_list=(3, 5), expand_list=(3, 6),
                         depth_list=(1, 2), dropout_rate=0.1)
    tc = TrainConfig(steps=a.warmup + a.steps + 1, batch_size=a.batch_size, warmup_steps=1)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(a.batch_size, a.image_size, a.image_size, 1)).astype(np.float32)
    y = rng.integers(0, 10, a.batch_size).astype(np.int32)
    ms = init_state(cfg, 0)
    opt = make_optimizer(tc)
    out = {"devices": n, "load_average_start": [round(v, 2) for v in os.getloadavg()]}

    def train_rate(mesh):
        step = make_train_step(ms.graphdef, cfg, tc, opt, mesh)
        p, s, o = ms.params, ms.batch_stats, opt.init(ms.params)
        p, s, o = replicate((p, s, o), mesh) if mesh is not None else jax.tree_util.tree_map(jax.numpy.asarray,
                                                                                                (p, s, o))
        t = time.perf_counter()
        for i in range(a.warmup):
            p, s, o, m = step(p, s, o, x, y, i)
        jax.block_until_ready(p)
        compile_s = time.perf_counter() - t
        t = time.perf_counter()
        for i in range(a.warmup, a.warmup + a.steps):
            p, s, o, m = step(p, s, o, x, y, i)
        jax.block_until_ready(p)
        return a.steps / (time.perf_counter() - t), compile_s

    subs = sample_subnets(cfg, jax.random.key(1), a.subnets)
    ex = rng.normal(size=(a.eval_images, a.image_size, a.image_size, 1)).astype(np.float32)
    ey = rng.integers(0, 10, a.eval_images).astype(np.int32)
    data, calib = [(ex, ey)], [ex[:64]]

    def eval_rate(mesh):
        for _ in range(a.warmup):
            acc = evaluate_subnets(ms, subs, data, calib, chunk_size=a.chunk_size, mesh=mesh, shard="subnets")
        times = []
        for _ in range(a.repeats):
            t = time.perf_counter()
            acc = evaluate_subnets(ms, subs, data, calib, chunk_size=a.chunk_size, mesh=mesh, shard="subnets")
            times.append(time.perf_counter() - t)
        return a.subnets / statistics.median(times), acc

    mesh = device_mesh(n)
    out["train_steps_per_s"], out["train_compile_s"] = train_rate(mesh)
    out["train_steps_per_s_baseline"], _ = train_rate(None)
    out["eval_subnets_per_s"], acc_mesh = eval_rate(mesh)
    out["eval_subnets_per_s_baseline"], acc_plain = eval_rate(None)
    out["eval_equal_to_baseline"] = bool(np.array_equal(acc_mesh, acc_plain))
    out["train_ratio_vs_baseline"] = out["train_steps_per_s"] / out["train_steps_per_s_baseline"]
    out["eval_ratio_vs_baseline"] = out["eval_subnets_per_s"] / out["eval_subnets_per_s_baseline"]
    out["load_average_end"] = [round(v, 2) for v in os.getloadavg()]
    return out


def main() -> None:
    a = _args()
    if a.worker:
        print(json.dumps(worker(a)))
        return
    counts = [int(c) for c in a.devices.split(",") if c.strip()]
    if any(c < 1 or a.batch_size % c for c in counts):
        raise SystemExit(f"error: devices: got {counts}, expected positive counts dividing --batch_size={a.batch_size}")
    rows = []
    for n in counts:
        env = dict(os.environ, JAX_PLATFORMS="cpu", PYTHONPATH=str(ROOT),
                   XLA_FLAGS=f"--xla_force_host_platform_device_count={n}")
        cmd = [sys.executable, __file__, f"--worker={n}"] + [f"--{k}={v}" for k, v in vars(a).items()
                                                           if k not in ("worker", "devices", "timeout")]
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                start_new_session=True)
        try:
            so, se = proc.communicate(timeout=a.timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            so, se = proc.communicate()
        if proc.returncode != 0:
            print(f"[{n} devices] failed (exit {proc.returncode}): {se[-1500:]}", file=sys.stderr)
            rows.append({"devices": n, "error": se[-300:]})
            continue
        r = json.loads(so.strip().splitlines()[-1])
        rows.append(r)
        print(f"[{n} device(s)] train {r['train_steps_per_s']:.3f} steps/s (no mesh "
              f"{r['train_steps_per_s_baseline']:.3f}, ratio {r['train_ratio_vs_baseline']:.2f}; compile "
              f"{r['train_compile_s']:.1f} s) | eval "
              f"{r['eval_subnets_per_s']:.2f} subnets/s (no mesh {r['eval_subnets_per_s_baseline']:.2f}, ratio "
              f"{r['eval_ratio_vs_baseline']:.2f}, equal {r['eval_equal_to_baseline']}) | load "
              f"{r['load_average_start']} -> {r['load_average_end']}", flush=True)
    ok = [r for r in rows if "error" not in r]
    one = next((r for r in ok if r["devices"] == 1), None)
    curve = {}
    if one is not None:
        curve = {str(r["devices"]): {"train_speedup_vs_1": round(r["train_steps_per_s"] / one["train_steps_per_s"], 3),
                                     "eval_speedup_vs_1": round(r["eval_subnets_per_s"] / one["eval_subnets_per_s"], 3)}
                 for r in ok}
    rnd = lambda v: round(v, 4) if isinstance(v, float) else v  # noqa: E731
    print(json.dumps({"benchmark": "bench_scale", "cpu_count": os.cpu_count(), "batch_size": a.batch_size,
                      "image_size": a.image_size, "width_mult": a.width_mult, "subnets": a.subnets,
                      "steps": a.steps, "per_device_count": [{k: rnd(v) for k, v in r.items()} for r in rows],
                      "scaling_vs_1_device": curve, "load_average": [round(v, 2) for v in os.getloadavg()]}))


if __name__ == "__main__":
    main()
