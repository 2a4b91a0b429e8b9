"""MobileNetV3 (OFA) search: MathNAS's stage-block exact search, and the supernet quickstart.

MathNAS modes (tables from MathNAS's published directory, devices raspberrypi / tx2cpu / tx2gpu)::

    python -m experiments.mobilenetv3_search --mode=nas --device=tx2gpu --latency_constraint=500

Quickstart (nasjax's own supernet trained on bundled MNIST, tables measured on this machine, shipped in
luts/): search under several latency budgets, then evaluate and time the found subnets for real::

    python -m experiments.mobilenetv3_search --flagfile=experiments/flags/quickstart.flags
"""

from absl import flags, logging

from experiments import _mathnas as common
from nasjax import cli
from nasjax.errors import NasjaxInputError
from nasjax.problems.mathnas import mobilenetv3_problem

common.define_flags("tx2gpu", modes=("nas", "predict", "pareto", "quickstart"))
flags.DEFINE_string("supernet_dir", None, "quickstart: directory of the embedded default (default: the shipped one).")
flags.DEFINE_list("latency_budgets", ["3.2", "4.2", "5.5"], "quickstart: latency budgets in ms per call of the default "
                  "table's batch (256 images) on this machine.")
flags.DEFINE_bool("rebuild", False, "quickstart: retrain the supernet and rebuild every table from scratch.")
flags.DEFINE_integer("seed", 0, "quickstart: random seed (training, calibration batches).")
flags.DEFINE_bool("calibrate", True, "quickstart: rescale the latency table to this machine from 3 reference "
                  "subnets timed at start.")
FLAGS = flags.FLAGS
QUICKSTART_FLAGS = {"quickstart": ["supernet_dir", "latency_budgets", "rebuild", "seed", "solver", "save_path",
                                  "calibrate"]}


def build():
    return mobilenetv3_problem(common.tables_dir_or_default(), FLAGS.device)


def quickstart() -> None:
    from experiments import _quickstart

    logging.set_verbosity(logging.WARNING)  # orbax logs every restore step at INFO
    cli.check_output_dir(FLAGS.save_path, "save_path")
    budgets = [common.parse_quantity(b, "latency_budgets", "ms") for b in FLAGS.latency_budgets]
    for _, u in budgets:
        if u != "ms":
            raise NasjaxInputError(f"latency_budgets: got unit {u!r}, expected ms (this machine's table is in ms)")
    kwargs = dict(latency_budgets_ms=[v for v, _ in budgets], save_path=FLAGS.save_path, rebuild=FLAGS.rebuild,
                  seed=FLAGS.seed, solver=FLAGS.solver, calibrate=FLAGS.calibrate)
    if FLAGS.supernet_dir:
        kwargs["luts_dir"] = FLAGS.supernet_dir
    _quickstart.run(**kwargs)


def main() -> None:
    if FLAGS.mode != "quickstart":
        return common.main_for(build, QUICKSTART_FLAGS)()
    cli.check_mode_flags("mode", {**common.MODE_FLAGS, **QUICKSTART_FLAGS})
    quickstart()


if __name__ == "__main__":
    cli.run(main)
