"""Does XLA's CPU thread setting take effect? The largest full-size OFA MobileNetV3 subnet (w1.0, 224 px,
batch 1) timed in XLA with one thread (``nasjax.hardware.runtimes.xla_child_options(1)``: the process pinned
to one core with the single-thread ``XLA_FLAGS``; the flags alone left two threads computing)
and with all threads, each in its own process, side by side with ONNX Runtime at the same settings.

    python scripts/bench_xla_threads.py [--repeats=30]

Prints, per setting, the median wall time, the process's CPU time per wall second while timing (about 1
with one thread, up to the core count with all) and the load average. Last line: one JSON object.
"""

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def child(runtime: str, threads: int, repeats: int) -> dict:
    import time

    from nasjax.hardware.lut_builder import MobileNetV3Pieces
    from nasjax.hardware.runtimes import get_runtime, time_interleaved
    from nasjax.models.mobilenetv3 import SupernetConfig
    from nasjax.train.trainer import init_state

    rt = get_runtime(runtime, threads, clock="wall")
    cfg = SupernetConfig(width_mult=1.0)
    call = rt.prepare(MobileNetV3Pieces(init_state(cfg, 0), cfg).subnet(
        {"ks": [7] * 20, "e": [6] * 20, "d": [4] * 5}), 1, 224)
    c0, w0 = time.process_time(), time.perf_counter()
    t = time_interleaved([call], warmup=3, repeats=repeats)
    ratio = (time.process_time() - c0) / (time.perf_counter() - w0)
    return {"runtime": runtime, "threads": threads, "median_ms": round(float(t.medians_ms[0]), 3),
            "spread_ms": round(float(t.spread_ms[0]), 3), "cpu_per_wall": round(ratio, 2),
            "load_average": [round(x, 2) for x in os.getloadavg()]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--child", default="", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        rt, t = args.child.split(":")
        print(json.dumps(child(rt, int(t), args.repeats)))
        return
    from nasjax.hardware.runtimes import xla_child_options

    rows = []
    for rt, t in (("xla", 1), ("xla", 0), ("onnxruntime", 1), ("onnxruntime", 0)):
        out = subprocess.run([sys.executable, __file__, f"--child={rt}:{t}", f"--repeats={args.repeats}"],
                             **xla_child_options(t if rt == "xla" else 0), capture_output=True, text=True,
                             check=True)
        row = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(f"{rt:>11} threads={t or 'all'}: {row['median_ms']:.2f} ms (IQR {row['spread_ms']:.2f}), CPU/wall "
              f"{row['cpu_per_wall']:.2f}, load {row['load_average']}", flush=True)
    ms = {(x["runtime"], x["threads"]): x["median_ms"] for x in rows}
    ratio = {r: ms[(r, 1)] / ms[(r, 0)] for r in ("xla", "onnxruntime")}
    print(json.dumps({"rows": rows, "one_thread_over_all_threads": {k: round(v, 3) for k, v in ratio.items()},
                      "cpu_count": os.cpu_count()}))


if __name__ == "__main__":
    main()
