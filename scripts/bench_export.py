"""Benchmark: forward time of an exported subnet against the masked supernet it came from, side by side in
one process, and the equality of their logits.

For the largest, the smallest and ``--random`` random subnets of a randomly initialised OFA MobileNetV3
(``--width_mult``, ``--resolution``; BN statistics recalibrated per subnet on a random batch, as OFA deploys
a subnet, so that logits are not trivially small), at each batch size of ``--batches``:

  (a) the masked supernet, ``nasjax.models.apply`` (one compiled program for every subnet, weights as
      arguments): what search and training run;
  (b) the static Flax subnet, ``nasjax.export.static_subnet`` under ``jax.jit`` with its weights baked in;
  (c) the ONNX export, ``nasjax.export.subnet_onnx``, in onnxruntime's CPU provider (symbolic batch).

All calls of one batch size are timed round-robin (``nasjax.hardware.latency.time_calls``: median of
``--repeats`` after warm-up), so a slow phase of the shared machine hits every program alike. Printed:
ms per call, the ratio (a)/(b) and (a)/(c), and max |export - supernet| for (b) and (c). The last line is
one JSON object. Compilation is not timed.

  python scripts/bench_export.py                                   (width 1.0, 64 px, batches 1 and 64)
  python scripts/bench_export.py --width_mult=0.25 --resolution=32 --repeats=5   (a quick run)
"""

from __future__ import annotations

import json
import os
import platform

import numpy as np
from absl import app, flags

flags.DEFINE_float("width_mult", 1.0, "supernet width multiplier (OFA: 1.0, 1.2)")
flags.DEFINE_integer("resolution", 64, "input resolution (px)")
flags.DEFINE_list("batches", ["1", "64"], "batch sizes")
flags.DEFINE_integer("random", 1, "random subnets besides the largest and the smallest")
flags.DEFINE_integer("repeats", 10, "timed calls per program (median)")
flags.DEFINE_integer("warmup", 2, "untimed calls per program")
flags.DEFINE_integer("seed", 0, "seed of weights, subnets and inputs")
FLAGS = flags.FLAGS


def main(argv):
    del argv
    import jax
    import jax.numpy as jnp
    import onnxruntime as ort
    from flax import nnx

    from nasjax.export import compiled, static_subnet, subnet_onnx
    from nasjax.hardware.latency import time_calls
    from nasjax.io import enable_jax_cache
    from nasjax.models import (
        OFAMobileNetV3,
        SupernetConfig,
        apply,
        calib_stats,
        max_subnet,
        min_subnet,
        random_subnets,
        split_model,
        subnet_arrays,
        subnet_to_ofa,
    )
    from nasjax.models.mobilenetv3 import ModelState

    enable_jax_cache()
    cfg = SupernetConfig(width_mult=FLAGS.width_mult, num_classes=1000)
    R = FLAGS.resolution
    st = split_model(OFAMobileNetV3(cfg, rngs=nnx.Rngs(FLAGS.seed)))
    rng = np.random.default_rng(FLAGS.seed)
    x_cal = jnp.asarray(rng.standard_normal((16, R, R, 3)), jnp.float32)
    names = ["max", "min"] + [f"random{i}" for i in range(FLAGS.random)]
    subs = [subnet_to_ofa(max_subnet(cfg)), subnet_to_ofa(min_subnet(cfg))]
    if FLAGS.random:
        rs = random_subnets(cfg, FLAGS.random, FLAGS.seed + 1)
        subs += [subnet_to_ofa(rs, i) for i in range(FLAGS.random)]

    rows = []
    arrays = [subnet_arrays(s, cfg) for s in subs]
    # per subnet, BN statistics recalibrated for it (as OFA deploys a subnet)
    states = [ModelState(st.graphdef, st.params, calib_stats(st.graphdef, st.params, st.batch_stats, a, x_cal))
              for a in arrays]
    statics = [compiled(static_subnet(sti, s)) for sti, s in zip(states, subs)]
    sessions = [ort.InferenceSession(subnet_onnx(sti, s, batch_size=None, resolution=R).SerializeToString(),
                                     providers=["CPUExecutionProvider"]) for sti, s in zip(states, subs)]

    def masked(i, x):
        return apply(st.graphdef, st.params, states[i].batch_stats, arrays[i], x)

    def onnx_run(sess, xn):
        return sess.run(None, {"input": xn})[0]

    for b in [int(v) for v in FLAGS.batches]:
        x = jnp.asarray(rng.standard_normal((b, R, R, 3)), jnp.float32)
        xn = np.ascontiguousarray(np.asarray(x).transpose(0, 3, 1, 2))
        calls = []
        for i in range(len(subs)):
            calls += [(masked, (i, x)), (statics[i], (x,)), (onnx_run, (sessions[i], xn))]
        for fn, args in calls:  # compile before timing
            jax.block_until_ready(fn(*args))
        diffs = []
        for i in range(len(subs)):
            ref = np.asarray(masked(i, x))
            diffs.append((float(np.abs(np.asarray(statics[i](x)) - ref).max()),
                          float(np.abs(onnx_run(sessions[i], xn) - ref).max()), float(np.abs(ref).max())))
        ms = time_calls(calls, warmup=FLAGS.warmup, repeats=FLAGS.repeats)
        for i, name in enumerate(names):
            tm, ts, to = ms[3 * i:3 * i + 3]
            row = {"subnet": name, "batch": b, "masked_ms": round(float(tm), 3), "static_flax_ms": round(float(ts), 3),
                   "onnxruntime_ms": round(float(to), 3), "masked_over_static": round(float(tm / ts), 2),
                   "masked_over_onnx": round(float(tm / to), 2), "static_max_abs_diff": diffs[i][0],
                   "onnx_max_abs_diff": diffs[i][1], "logit_scale": diffs[i][2],
                   "static_rel_diff": diffs[i][0] / max(1.0, diffs[i][2]),
                   "onnx_rel_diff": diffs[i][1] / max(1.0, diffs[i][2])}
            rows.append(row)
            print(f"batch {b:3d} {name:8s} masked {tm:9.3f} ms  static {ts:9.3f} ms ({tm / ts:5.2f}x)  "
                  f"onnxruntime {to:9.3f} ms ({tm / to:5.2f}x)  |diff| static {diffs[i][0]:.2g} onnx "
                  f"{diffs[i][1]:.2g} (logits up to {diffs[i][2]:.3g})  load {os.getloadavg()[0]:.2f}", flush=True)
    out = {"benchmark": "bench_export", "width_mult": FLAGS.width_mult, "resolution": R, "repeats": FLAGS.repeats,
           "rows": rows, "loadavg": [round(v, 2) for v in os.getloadavg()], "cpu_count": os.cpu_count(),
           "jax": jax.__version__, "onnxruntime": ort.__version__, "platform": platform.platform()}
    print(json.dumps(out))


if __name__ == "__main__":
    app.run(main)
