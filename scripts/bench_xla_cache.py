"""Does an XLA program loaded from the persistent compilation cache time like the compiled program? Random
full-size OFA MobileNetV3 subnets (224 px, batch 1), each timed as ``--copies`` freshly compiled programs
(what ``XlaRuntime.prepare`` times, ``nasjax.io.fresh_compilation``) and as ``--copies`` programs loaded from
a persistent cache, for each of three writers of that cache:

- ``this process``: written by one compilation of the subnet in the timing process just before;
- ``same setting``: written by a child process started with the timing's thread setting (for one thread:
  pinned to one core, with the single-thread ``XLA_FLAGS``);
- ``flags only`` (one thread only): written by a child with the same ``XLA_FLAGS`` but not pinned, so it
  compiled with every core available. Its cache entries carry the same key (the key holds the flags, not the
  process's cores), so a pinned process loads them.

All copies of all kinds are timed interleaved in one process, the way the table builder and the
validation time (one warm run before each timed run; the runtime's clock).

    python scripts/bench_xla_cache.py [--width=1.0] [--subnets=8] [--copies=4] [--repeats=30] [--threads=1]

Prints per subnet the fresh time and each loaded kind's ratio to it (geometric mean over copies), and per
kind the spread between copies of one subnet (sd of log time); then the load average. Last line: one JSON
object with, per loaded kind, the loaded over fresh ratio (geometric mean and largest over subnets), the
copy spreads and the cache hits counted.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _subnet_pieces(args):
    import numpy as np

    from nasjax.hardware.lut_builder import lut_space
    from nasjax.models.mobilenetv3 import SupernetConfig
    from nasjax.train.trainer import init_state

    cfg = SupernetConfig(width_mult=args.width)
    ls = lut_space("mobilenetv3_layers", init_state(cfg, 0), cfg)
    archs = ls.space().random(np.random.default_rng(args.seed), args.subnets)
    return [ls.pieces.subnet(ls.to_subnet(a)) for a in archs]


def _write_cache(args):
    """Child: compile each subnet once with the cache at ``--write_cache`` (whatever cores this process has)."""
    import jax
    import numpy as np

    from nasjax.io import enable_jax_cache

    enable_jax_cache(0.0, args.write_cache)
    for piece in _subnet_pieces(args):
        jax.block_until_ready(piece.jax_fn()(np.zeros(piece.input_shape(1, 224), np.float32)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--width", type=float, default=1.0)
    ap.add_argument("--subnets", type=int, default=8)
    ap.add_argument("--copies", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--threads", type=int, default=1, help="1 (this process pinned to one core) or 0 (all cores).")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--write_cache", default=None, help=argparse.SUPPRESS)  # the writer child's mode
    args = ap.parse_args()
    if args.write_cache:
        return _write_cache(args)
    from nasjax.errors import require

    for name in ("subnets", "copies", "repeats"):
        require(getattr(args, name) >= (2 if name == "copies" else 1), name, getattr(args, name),
                "at least 2" if name == "copies" else "a positive integer")
    from nasjax.hardware.runtimes import get_runtime, xla_child_options, xla_thread_env

    rt = get_runtime("xla", args.threads)  # before JAX starts: pins this process for one thread
    import numpy as np
    from jax import monitoring

    from nasjax.hardware.lut_builder import WARM_CALLS
    from nasjax.hardware.runtimes import XlaRuntime, time_interleaved
    from nasjax.io import enable_jax_cache

    tmp = Path(tempfile.mkdtemp(prefix="nasjax-bench-xla-cache-"))
    writers = {"same setting": xla_child_options(rt.threads)}
    if rt.threads == 1:
        writers["flags only"] = {"env": xla_thread_env(1), "preexec_fn": None}
    child = [sys.executable, __file__, f"--width={args.width}", f"--subnets={args.subnets}", f"--seed={args.seed}"]
    for i, (kind, opts) in enumerate(writers.items()):
        print(f"[bench_xla_cache] writing the cache of '{kind}' in a child process", flush=True)
        subprocess.run(child + [f"--write_cache={tmp / str(i)}"], check=True, **opts)

    hits = []
    monitoring.register_event_listener(lambda e, **kw: hits.append(e) if e.endswith("/cache_hits") else None)
    via_cache = XlaRuntime(rt.threads, persistent_cache=True)
    pieces = _subnet_pieces(args)
    cache_of = {"this process": tmp / "this", **{k: tmp / str(i) for i, k in enumerate(writers)}}
    kinds = ["fresh", *cache_of]
    calls = {k: [] for k in kinds}
    hits_of = {}
    for k, d in cache_of.items():
        enable_jax_cache(0.0, d)  # every program written; loads from d from now on
        n0 = len(hits)
        for piece in pieces:
            if k == "this process":
                via_cache.prepare(piece, 1, 224)  # compiled once, written to the cache
            calls[k] += [via_cache.prepare(piece, 1, 224) for _ in range(args.copies)]  # loaded from it
        hits_of[k] = len(hits) - n0
        print(f"[bench_xla_cache] '{k}': {hits_of[k]} programs loaded from the cache", flush=True)
    for piece in pieces:
        calls["fresh"] += [rt.prepare(piece, 1, 224) for _ in range(args.copies)]
    load0 = os.getloadavg()
    t = time_interleaved([c for k in kinds for c in calls[k]], warmup=5, repeats=args.repeats,
                         clock=rt.timer_clock, warm_calls=WARM_CALLS)
    load1 = os.getloadavg()
    logs = np.log(t.times_ms.reshape(len(kinds), args.subnets, args.copies))
    spread = (logs - logs.mean(axis=2, keepdims=True)).std(axis=2, ddof=1).mean(axis=1)  # per kind
    mean_ms = np.exp(logs.mean(axis=2))  # [kind, subnet]
    ratio = mean_ms[1:] / mean_ms[0]
    for i in range(args.subnets):
        print(f"subnet {i + 1}: fresh {mean_ms[0, i]:.3f} ms; loaded/fresh "
              + ", ".join(f"{k} {ratio[j, i]:.3f}" for j, k in enumerate(kinds[1:])))
    print("spread between copies (sd of log time): " + ", ".join(f"{k} {s:.4f}" for k, s in zip(kinds, spread)))
    print(f"load average {load0} before timing, {load1} after")
    summary = {k: {"loaded_over_fresh_geomean": round(float(np.exp(np.log(ratio[j]).mean())), 4),
                   "loaded_over_fresh_max": round(float(ratio[j].max()), 4),
                   "copy_spread": round(float(spread[j + 1]), 4), "cache_hits": hits_of[k],
                   "loaded_ms": [round(float(v), 3) for v in mean_ms[j + 1]]}
               for j, k in enumerate(kinds[1:])}
    for k, s in summary.items():
        print(f"loaded ({k}) / fresh: geometric mean {s['loaded_over_fresh_geomean']:.3f}, "
              f"largest {s['loaded_over_fresh_max']:.3f}")
    print(json.dumps({"width": args.width, "threads": rt.threads, "clock": rt.timer_clock, "subnets": args.subnets,
                      "copies": args.copies, "repeats": args.repeats,
                      "fresh_ms": [round(float(v), 3) for v in mean_ms[0]],
                      "copy_spread_fresh": round(float(spread[0]), 4), "loaded": summary,
                      "load_average": [list(load0), list(load1)]}))


if __name__ == "__main__":
    main()
