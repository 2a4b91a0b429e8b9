"""Rebuild the embedded default: train nasjax's MNIST supernet and compute its tables, or re-measure only
its latency tables.

    python scripts/build_default.py [--seed=0] [--luts_dir=luts/mobilenetv3_mnist] [--work_dir=...]
    python scripts/build_default.py --latency_only      # keep the weights, re-measure latency here
    python scripts/build_default.py --provenance_only   # rewrite luts/PROVENANCE.md (e.g. after build_luts)

Shows progress (tqdm) and resumes after an interruption (training checkpoints and finished tables are
kept in --work_dir, default .cache/build_default-seed<seed>). The recipe is nasjax.default.RECIPE
(latency: ONNX Runtime, 1 thread, batch 256). Its last line is one JSON object with the build's figures.
"""

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from absl import app, flags

from nasjax.errors import NasjaxInputError

flags.DEFINE_integer("seed", 0, "Training seed (also the calibration batches and the latency-check subnets).")
flags.DEFINE_string("luts_dir", None, "Output directory (default: luts/mobilenetv3_mnist).")
flags.DEFINE_string("work_dir", None, "Resumable work directory (default: .cache/build_default-seed<seed>).")
flags.DEFINE_integer("steps", None, "Override the recipe's training steps.")
flags.DEFINE_bool("latency_only", False, "Re-measure only latency_stage.json and latency_check.json.")
flags.DEFINE_bool("provenance_only", False, "Only rewrite luts/PROVENANCE.md from the files in luts/.")
FLAGS = flags.FLAGS


def main(argv):
    from nasjax import default

    try:
        if FLAGS.provenance_only:
            d = default.load_default(FLAGS.luts_dir or default.DEFAULT_DIR)
            default.write_provenance(d["dir"], d["manifest"])
            man = d["manifest"]
        elif FLAGS.latency_only:
            man = default.remeasure_latency(FLAGS.luts_dir or default.DEFAULT_DIR, work_dir=FLAGS.work_dir)
        else:
            recipe = {"steps": FLAGS.steps} if FLAGS.steps else None
            man = default.build_default(FLAGS.luts_dir or default.DEFAULT_DIR, work_dir=FLAGS.work_dir,
                                        seed=FLAGS.seed, recipe=recipe)
    except NasjaxInputError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    print(json.dumps({"latency": man["latency"], "latency_check": man["latency_check"],
                      "build_seconds": man["build_seconds"], "final_metrics": man["training"]["final_metrics"],
                      "device": man["device"]}))


if __name__ == "__main__":
    app.run(main)
