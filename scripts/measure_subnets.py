"""Measure random OFA MobileNetV3 subnets end to end on this machine (for the sequence predictor; not a test).

    python scripts/measure_subnets.py --out subnets.csv [--num_subnets 600] [--runtime onnxruntime]
        [--threads 1] [--resolution 224] [--batch_size 1] [--width 1.0] [--seed 0] [--repeats 20]

Draws ``--num_subnets`` uniform random ``mobilenetv3_layers`` architectures (full-size supernet at ``--width``,
random weights) and times each as its own static program in the runtime
(:func:`nasjax.hardware.lut_validate.measure_archs`: chunks of interleaved rounds, an anchor subnet in every
chunk bringing all chunks to one machine speed). Writes the CSV ``arch,resolution,latency_ms`` (atomically)
that ``scripts/bench_profiling.py --machine_latency`` and
:func:`nasjax.predictors.sequence_data.read_measured_csv` read. The last line is one JSON object (the
settings, the load average before and after, the seconds).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="the CSV to write")
    ap.add_argument("--num_subnets", type=int, default=600)
    ap.add_argument("--runtime", default="onnxruntime")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--clock", default="auto", help="auto (CPU time with one thread), cpu or wall")
    ap.add_argument("--resolution", type=int, default=224)
    ap.add_argument("--batch_size", type=int, default=1)
    ap.add_argument("--width", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--chunk_size", type=int, default=25)
    ap.add_argument("--noprogress", action="store_true")
    args = ap.parse_args(argv)
    from nasjax.errors import NasjaxInputError, require

    try:
        require(args.num_subnets >= 1, "--num_subnets", args.num_subnets, "a positive integer")
        require(32 <= args.resolution <= 1024, "--resolution", args.resolution, "32..1024 pixels")
        require(args.batch_size >= 1, "--batch_size", args.batch_size, "a positive integer")
        from experiments.latency_table import supernet
        from nasjax.hardware import lut_builder as lb
        from nasjax.hardware import lut_validate as lv
        from nasjax.hardware.runtimes import get_runtime
        from nasjax.io import write_csv

        runtime = get_runtime(args.runtime, args.threads, args.clock)
        state, cfg, bs = supernet("random", args.width)
        lspace = lb.lut_space("mobilenetv3_layers", state, cfg, bs)
        archs = lspace.space().random(args.seed, args.num_subnets)
        load0, t0 = os.getloadavg(), time.perf_counter()
        ms = lv.measure_archs(lspace, runtime, archs, batch_size=args.batch_size, resolution=args.resolution,
                              warmup=args.warmup, repeats=args.repeats, chunk_size=args.chunk_size,
                              progress=not args.noprogress)
        load1 = os.getloadavg()
        write_csv(args.out, ["arch", "resolution", "latency_ms"], lv.measurements_csv_rows(archs, args.resolution, ms))
    except NasjaxInputError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    out = {"out": args.out, "num_subnets": int(len(archs)), "runtime": runtime.label, "threads": args.threads,
           "clock": runtime.clock, "resolution": args.resolution, "batch_size": args.batch_size, "width": args.width,
           "seed": args.seed, "mean_ms": round(float(ms.mean()), 4), "min_ms": round(float(ms.min()), 4),
           "max_ms": round(float(ms.max()), 4), "load_average_before": [round(x, 2) for x in load0],
           "load_average_after": [round(x, 2) for x in load1], "seconds": round(time.perf_counter() - t0, 1)}
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
