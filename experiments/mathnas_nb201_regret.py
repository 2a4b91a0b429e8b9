"""MathNAS on real NAS-Bench-201 accuracies: additive block contributions measured on the benchmark table,
exact latency-constrained search on each of HELP's 27 devices, regret against the table's true optimum.

    python -m experiments.mathnas_nb201_regret --datasets=cifar10,cifar100,ImageNet16-120 --bases=ref,20,all

Prints one summary line per dataset x bases and writes them as JSON to ``--save_path`` (the last line
printed is the same JSON object). The protocol is :mod:`nasjax.protocols.regret`.
"""

import json
from pathlib import Path

from absl import flags

from nasjax import cli
from nasjax.errors import NasjaxInputError
from nasjax.io import write_json
from nasjax.search import exact_searchers

flags.DEFINE_list("datasets", ["cifar10", "cifar100", "ImageNet16-120"], "NAS-Bench-201 datasets.")
flags.DEFINE_list("bases", ["ref", "20", "all"],
                  "Base cells: 'ref' (all nor_conv_3x3), an int (random bases) or 'all'.")
flags.DEFINE_enum("solver", "mckp", exact_searchers(), "Exact searcher for each budget.")
flags.DEFINE_integer("seed", 0, "Seed of the random bases.")
flags.DEFINE_string("save_path", "results/nasbench201/mathnas_regret.json", "Where the summary JSON goes.")
FLAGS = flags.FLAGS


def main():
    from nasjax.protocols.regret import report

    for b in FLAGS.bases:
        if b not in ("ref", "all") and not (b.isdigit() and int(b) >= 1):
            raise NasjaxInputError(f"bases: got {b!r}, expected 'ref', 'all' or a positive integer")
    save = Path(FLAGS.save_path)
    if save.is_dir() or str(FLAGS.save_path).endswith("/"):
        raise NasjaxInputError(f"save_path: {str(save)!r} is a directory, expected a JSON file path")
    cli.check_output_dir(save.parent, "save_path")
    out = report(FLAGS.datasets, FLAGS.bases, FLAGS.solver, FLAGS.seed)
    if save.parent.is_dir():
        cli.remove_stale_temporaries(save.parent)  # what a run killed during its write left behind
    write_json(save, out)
    print(json.dumps(out))


if __name__ == "__main__":
    cli.run(main)
