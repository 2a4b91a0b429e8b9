"""MathNAS on real NAS-Bench-201 accuracies: additive block contributions measured on the benchmark table,
exact latency-constrained search on each of HELP's 27 devices, regret against the table's true optimum.

    python -m experiments.mathnas_nb201_regret --datasets=cifar10,cifar100,ImageNet16-120 --bases=ref,20,all

Prints one summary line per dataset x bases and writes them as JSON to ``--save_path`` (the last line
printed is the same JSON object).
"""

import json
import sys

from absl import app, flags

from nasjax.errors import NasjaxInputError
from nasjax.io import write_json

flags.DEFINE_list("datasets", ["cifar10", "cifar100", "ImageNet16-120"], "NAS-Bench-201 datasets.")
flags.DEFINE_list("bases", ["ref", "20", "all"], "Base cells: 'ref' (all nor_conv_3x3), an int (random bases) or 'all'.")
flags.DEFINE_enum("solver", "mckp", ["mckp", "ilp"], "Exact solver for each budget.")
flags.DEFINE_integer("seed", 0, "Seed of the random bases.")
flags.DEFINE_string("save_path", "results/nasbench201/mathnas_regret.json", "Where the summary JSON goes.")
FLAGS = flags.FLAGS


def main(argv):
    from nasjax.search.regret import report

    for b in FLAGS.bases:
        if b not in ("ref", "all") and not b.isdigit():
            print(f"error: bases: got {b!r}, expected 'ref', 'all' or a positive integer", file=sys.stderr)
            raise SystemExit(2)
    try:
        out = report(FLAGS.datasets, FLAGS.bases, FLAGS.solver, FLAGS.seed)
    except NasjaxInputError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2)
    write_json(FLAGS.save_path, out)
    print(json.dumps(out))


if __name__ == "__main__":
    app.run(main)
