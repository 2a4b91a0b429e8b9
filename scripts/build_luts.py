"""Build the shipped full-size OFA MobileNetV3 latency tables (8: XLA and ONNX Runtime x width 1.0 and 1.2 x
1 thread and all threads; 224 px, batch 1, randomly initialised weights), smallest first.

    python scripts/build_luts.py [--only=SUBSTR,...] [--repeats=30] [--warmup=5] [--refine_subnets=100]

Each table is one run of ``python -m experiments.latency_table`` in a subprocess (the XLA thread count is
fixed per process), then one run of its ``--refine`` (``--refine_subnets`` random subnets timed end to end
refine the cells, ``nasjax.hardware.lut_refine``; 0: no refinement); finished tables are skipped, a built
table not yet refined is refined, and an interrupted build or refinement resumes from its partial file.
Prints the load average before each table; last line: one JSON object listing the tables and their times.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TABLES = [(w, rt, t) for w in (1.0, 1.2) for t in (1, 0) for rt in ("onnxruntime", "xla")]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", default="", help="Comma-separated substrings of the output paths to build.")
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--refine_subnets", type=int, default=100,
                    help="Subnets timed end to end to refine each table (0: no refinement).")
    args = ap.parse_args()
    from nasjax.hardware import lut_builder as lb

    rows = []
    for width, rt, threads in TABLES:
        out = lb.table_path(ROOT / "luts", "mobilenetv3_layers", rt, threads, 224, 1, width=width)
        if args.only and not any(f in str(out) for f in args.only.split(",") if f):
            continue
        rel = str(out.relative_to(ROOT))
        steps = []
        if not out.is_file():
            steps.append(("built", ["--space=mobilenetv3_layers", f"--runtime={rt}", f"--threads={threads}",
                                    f"--width={width}", "--resolution=224", "--batch_size=1",
                                    f"--repeats={args.repeats}", f"--warmup={args.warmup}", f"--out={rel}"]))
        if args.refine_subnets and not (out.is_file() and "refinement" in json.loads(out.read_text())["provenance"]):
            steps.append(("refined", [f"--refine={rel}", f"--refine_subnets={args.refine_subnets}"]))
        if not steps:
            rows.append({"table": rel, "status": "exists"})
            continue
        for status, flags in steps:
            print(f"[build_luts] {rel} ({status}): load average {os.getloadavg()}", flush=True)
            t = time.perf_counter()
            rc = subprocess.call([sys.executable, "-m", "experiments.latency_table", *flags], cwd=ROOT)
            rows.append({"table": rel, "status": status if rc == 0 else f"failed ({rc})",
                         "seconds": round(time.perf_counter() - t, 1), "load_average": list(os.getloadavg())})
            if rc != 0:
                break
    print(json.dumps({"tables": rows}))


if __name__ == "__main__":
    main()
