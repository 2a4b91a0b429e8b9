"""Which batch size lets the network, not the per-call overhead, set a latency table's time.

    python scripts/lut_batch_scaling.py --space=binas --width=0.25 --num_classes=10 --in_channels=1 \\
        --resolution=32 --runtime=onnxruntime --threads=1 --batches=1,8,32,64,128,256

For the space's smallest, anchor (middle choice everywhere) and largest subnets, and for the smallest and
largest layer program of the last stage (the cheapest cells of the table), times each at every batch size as
a static program (interleaved, ``--repeats`` rounds; random weights) and prints the time per call and per
image. A batch is large enough when the time per image is within ``--tolerance`` of the largest batch's
(the fixed cost of a call no longer matters) for every program; the smallest such batch is printed as
``chosen_batch``. Last line: one JSON object (with the load average).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--space", default="binas")
    ap.add_argument("--width", type=float, default=0.25)
    ap.add_argument("--num_classes", type=int, default=10)
    ap.add_argument("--in_channels", type=int, default=1)
    ap.add_argument("--resolution", type=int, default=32)
    ap.add_argument("--runtime", default="onnxruntime")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batches", default="1,8,32,64,128,256")
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--tolerance", type=float, default=0.1)
    args = ap.parse_args()
    from nasjax.errors import NasjaxInputError

    try:
        out = run(args)
    except NasjaxInputError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    print(json.dumps(out))


def run(args) -> dict:
    from experiments.latency_table import supernet
    from nasjax.errors import require
    from nasjax.hardware import lut_builder as lb
    from nasjax.hardware.runtimes import get_runtime, time_interleaved

    batches = [int(b) for b in args.batches.split(",") if b]
    require(len(batches) >= 2 and all(b >= 1 for b in batches), "batches", args.batches,
            "at least two positive batch sizes, comma-separated")
    runtime = get_runtime(args.runtime, args.threads)
    state, cfg, bs = supernet("random", args.width, args.space, args.num_classes, args.in_channels)
    ls = lb.lut_space(args.space, state, cfg, bs)
    res = ls.check_resolution(args.resolution)
    sp = ls.space()
    archs = {"smallest": [0] * sp.num_positions, "anchor": ls.anchor_arch(), "largest": [k - 1 for k in sp.num_choices]}
    pieces = {n: ls.pieces.subnet(ls.to_subnet(np.asarray(a))) for n, a in archs.items()}
    last = ls.cell_chunks()[-1]
    pieces["cheapest layer"], pieces["dearest layer"] = last.pieces[0], last.pieces[-1]
    names = list(pieces)
    per_call = {n: [] for n in names}
    for b in batches:
        calls = [runtime.prepare(pieces[n], b, res) for n in names]
        t = time_interleaved(calls, warmup=3, repeats=args.repeats, clock=runtime.timer_clock)
        for n, m in zip(names, t.medians_ms):
            per_call[n].append(float(m))
        print(f"batch {b:4d}: " + "  ".join(f"{n} {m:.3f} ms ({1e3 * m / b:.1f} us/img)"
                                              for n, m in zip(names, t.medians_ms)), flush=True)
    per_image = {n: [1e3 * m / b for m, b in zip(v, batches)] for n, v in per_call.items()}
    ok = [all(abs(per_image[n][i] / per_image[n][-1] - 1.0) <= args.tolerance for n in names)
          for i in range(len(batches))]
    chosen = next((b for b, good in zip(batches, ok) if good and all(ok[batches.index(b):])), batches[-1])
    load = os.getloadavg()
    print(f"chosen batch {chosen} (time per image within {100 * args.tolerance:.0f} % of batch {batches[-1]}'s for "
          f"every program); load average {load}")
    return {"space": args.space, "runtime": runtime.name, "threads": runtime.threads, "clock": runtime.clock,
            "resolution": res, "batches": batches, "ms_per_call": per_call, "us_per_image": per_image,
            "chosen_batch": chosen, "tolerance": args.tolerance, "load_average": list(load)}


if __name__ == "__main__":
    main()
