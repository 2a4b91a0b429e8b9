"""MobileNetV3 (OFA) search: MathNAS's stage-block exact search, and the supernet quickstart.

MathNAS modes (tables from MathNAS's published directory, devices raspberrypi / tx2cpu / tx2gpu)::

    python -m experiments.mobilenetv3_search --mode=nas --device=tx2gpu --latency_constraint=500

Quickstart (nasjax's own supernet trained on bundled MNIST, tables measured on this machine, shipped in
luts/): search under several latency budgets, then evaluate and time the found subnets for real::

    python -m experiments.mobilenetv3_search --flagfile=experiments/flags/quickstart.flags
"""

import sys

from absl import app, flags, logging

from experiments import _mathnas as common
from nasjax.errors import NasjaxInputError
from nasjax.mathnas import mobilenetv3_tables
from nasjax.problems import Problem

common.define_flags("tx2gpu", modes=("nas", "predict", "pareto", "quickstart"))
flags.DEFINE_string("supernet_dir", None, "quickstart: directory of the embedded default (default: the shipped one).")
flags.DEFINE_list("latency_budgets", ["4", "6", "8"], "quickstart: latency budgets in ms on this machine.")
flags.DEFINE_bool("rebuild", False, "quickstart: retrain the supernet and rebuild every table from scratch.")
flags.DEFINE_integer("seed", 0, "quickstart: random seed (training, calibration batches).")
FLAGS = flags.FLAGS


def build() -> Problem:
    bs, acc, res = mobilenetv3_tables(common.tables_dir_or_default(), FLAGS.device)
    acc.check_space(bs.space())
    return Problem("mobilenetv3", FLAGS.device, acc, res, bs.to_ofa, bs.from_ofa, {"block_set": bs.name})


def main(argv):
    if FLAGS.mode != "quickstart":
        return common.main_for(build)(argv)
    from nasjax import quickstart

    logging.set_verbosity(logging.WARNING)  # orbax logs every restore step at INFO
    try:
        budgets = [common.parse_quantity(b, "latency_budgets", "ms") for b in FLAGS.latency_budgets]
        for v, u in budgets:
            if u != "ms":
                raise NasjaxInputError(f"latency_budgets: got unit {u!r}, expected ms (this machine's table is in ms)")
        kwargs = dict(latency_budgets_ms=[v for v, _ in budgets], save_path=FLAGS.save_path, rebuild=FLAGS.rebuild,
                      seed=FLAGS.seed, solver=FLAGS.solver)
        if FLAGS.supernet_dir:
            kwargs["luts_dir"] = FLAGS.supernet_dir
        quickstart.run(**kwargs)
    except NasjaxInputError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2)


if __name__ == "__main__":
    app.run(main)
