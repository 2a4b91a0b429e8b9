"""Measure random OFA MobileNetV3 subnets end to end on this machine (for the sequence predictor; not a test).

    python scripts/measure_subnets.py --out subnets.csv [--num_subnets 600] [--runtime onnxruntime]
        [--threads 1] [--resolution 224] [--batch_size 1] [--width 1.0] [--seed 0] [--repeats 20]
        [--archs_from EARLIER.csv [--rows 960:1200]]

Draws ``--num_subnets`` uniform random ``mobilenetv3_layers`` architectures (full-size supernet at ``--width``,
random weights) and times each as its own static program in the runtime
(:func:`nasjax.hardware.lut_validate.measure_archs`: chunks of interleaved rounds, an anchor subnet in every
chunk bringing all chunks to one machine speed). Writes the CSV ``arch,resolution,latency_ms`` (atomically)
that ``scripts/bench_profiling.py --machine_latency`` and
:func:`nasjax.predictors.sequence_data.read_measured_csv` read. The last line is one JSON object (the
settings, the load average before and after, the seconds).

``--archs_from`` times the subnets of an earlier CSV again instead of drawing new ones (``--rows START:STOP``
of its data rows; the resolution must be the file's): ``bench_profiling.py --machine_repeat`` compares the two
timings, the measurement's own repeatability, which no predictor can beat.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _archs_from(path: str, rows: str, resolution: int):
    """The architectures of an earlier measurement CSV, rows ``START:STOP`` of it (all when ``rows`` is empty)."""
    from nasjax.errors import require
    from nasjax.predictors.sequence_data import read_measured_csv

    a, _ = read_measured_csv(path)
    require(bool((a[:, -1] == resolution).all()), "--resolution", resolution,
            f"the resolution of {path!r} ({sorted(set(a[:, -1].tolist()))})")
    start, stop = 0, len(a)
    if rows:
        parts = rows.split(":")
        ok = len(parts) == 2 and all(p.strip().isdigit() for p in parts)
        require(ok, "--rows", rows, "START:STOP, two non-negative integers")
        start, stop = int(parts[0]), int(parts[1])
        require(0 <= start < stop <= len(a), "--rows", rows, f"0 <= START < STOP <= {len(a)} (the file's data rows)")
    return a[start:stop, :-1]


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
    ap.add_argument("--archs_from", default="", help="time the subnets of this earlier CSV again (arch,resolution,"
                    "latency_ms) instead of drawing --num_subnets new ones")
    ap.add_argument("--rows", default="", help="with --archs_from: START:STOP, a slice of its data rows")
    args = ap.parse_args(argv)
    from nasjax.errors import NasjaxInputError, require

    try:
        require(args.num_subnets >= 1, "--num_subnets", args.num_subnets, "a positive integer")
        require(32 <= args.resolution <= 1024, "--resolution", args.resolution, "32..1024 pixels")
        require(args.batch_size >= 1, "--batch_size", args.batch_size, "a positive integer")
        require(bool(args.archs_from) or not args.rows, "--rows", args.rows, "empty without --archs_from")
        given = _archs_from(args.archs_from, args.rows, args.resolution) if args.archs_from else None
        from experiments.latency_table import supernet
        from nasjax.hardware import lut_builder as lb
        from nasjax.hardware import lut_validate as lv
        from nasjax.hardware.runtimes import get_runtime
        from nasjax.io import write_csv

        runtime = get_runtime(args.runtime, args.threads, args.clock)
        state, cfg, bs = supernet("random", args.width)
        lspace = lb.lut_space("mobilenetv3_layers", state, cfg, bs)
        archs = given if given is not None else lspace.space().random(args.seed, args.num_subnets)
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
           "seed": args.seed, "archs_from": args.archs_from or None, "rows": args.rows or None,
           "mean_ms": round(float(ms.mean()), 4), "min_ms": round(float(ms.min()), 4),
           "max_ms": round(float(ms.max()), 4), "load_average_before": [round(x, 2) for x in load0],
           "load_average_after": [round(x, 2) for x in load1], "seconds": round(time.perf_counter() - t0, 1)}
    print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
