"""Build the shipped full-size OFA MobileNetV3 latency tables (8: XLA and ONNX Runtime x width 1.0 and 1.2 x
1 thread and all threads; 224 px, batch 1, randomly initialised weights), smallest first.

    python scripts/build_luts.py [--only=SUBSTR,...] [--repeats=30] [--warmup=5]

Each table is one run of ``python -m experiments.latency_table`` in a subprocess (the XLA thread count is
fixed per process); finished tables are skipped and an interrupted table resumes from its partial file.
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
    args = ap.parse_args()
    from nasjax.hardware import lut_builder as lb

    rows = []
    for width, rt, threads in TABLES:
        out = lb.table_path(ROOT / "luts", "mobilenetv3_layers", rt, threads, 224, 1, width=width)
        if args.only and not any(f in str(out) for f in args.only.split(",") if f):
            continue
        if out.is_file():
            rows.append({"table": str(out.relative_to(ROOT)), "status": "exists"})
            continue
        print(f"[build_luts] {out.relative_to(ROOT)}: load average {os.getloadavg()}", flush=True)
        t = time.perf_counter()
        cmd = [sys.executable, "-m", "experiments.latency_table", "--space=mobilenetv3_layers", f"--runtime={rt}",
               f"--threads={threads}", f"--width={width}", "--resolution=224", "--batch_size=1",
               f"--repeats={args.repeats}", f"--warmup={args.warmup}", f"--out={out.relative_to(ROOT)}"]
        rc = subprocess.call(cmd, cwd=ROOT)
        rows.append({"table": str(out.relative_to(ROOT)), "status": "built" if rc == 0 else f"failed ({rc})",
                     "seconds": round(time.perf_counter() - t, 1), "load_average": list(os.getloadavg())})
    print(json.dumps({"tables": rows}))


if __name__ == "__main__":
    main()
