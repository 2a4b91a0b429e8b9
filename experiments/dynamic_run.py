"""MathNAS's dynamic runtime: serve batches under a latency window that tightens and relaxes, with
injected slowdowns, switching between subnets compiled ahead (``python -m experiments.dynamic_run``).

Embedded default (trained width-0.25 supernet, its tables)::

    python -m experiments.dynamic_run --flagfile=experiments/flags/dynamic_default.flags

Full-size width-1.0 supernet with random weights (cost table: analytic MFLOPs, rescaled to ms)::

    python -m experiments.dynamic_run --flagfile=experiments/flags/dynamic_fullsize.flags

Settings come from :class:`nasjax.runtime.controller.DynamicConfig` (``--batches --batch_size
--check_every --windows --window_relative --slowdowns --slowdown_procs --max_burn_s --margin --max_front
--chain --policy --seed``) plus the source flags below. Writes ``trace.csv``, ``trace.png`` and
``summary.json`` (last) into ``--save_dir`` as one set. A bad window (min > max, NaN) exits 2 before
anything is loaded.
"""

from __future__ import annotations

import os

from absl import flags, logging

from nasjax import cli
from nasjax.runtime.controller import DynamicConfig

FLAGS = flags.FLAGS
CONFIG_FLAGS = cli.define_config_flags(DynamicConfig)
flags.DEFINE_enum("source", "default", ["default", "random"],
                  "default: the embedded default; random: a full-size supernet with random weights.")
flags.DEFINE_string("supernet_dir", None, "default: directory of the embedded default (default: the shipped one).")
flags.DEFINE_float("width_mult", 1.0, "random: width multiplier.")
flags.DEFINE_integer("resolution", 128, "random: image size in pixels.")
flags.DEFINE_integer("calib_size", 256, "Images for the BN recalibration of each candidate (0: none).")
flags.DEFINE_string("save_dir", None, "Output directory.")
flags.DEFINE_boolean("progress", True, "Show progress bars.")
flags.mark_flag_as_required("save_dir")


def main() -> None:
    from nasjax.io import enable_jax_cache
    from nasjax.runtime import adapter, demo

    cli.check_mode_flags("source", {"default": ["supernet_dir"], "random": ["width_mult", "resolution"]})
    cfg = cli.config_from_flags(DynamicConfig)
    out = cli.check_output_dir(FLAGS.save_dir, "save_dir")
    logging.set_verbosity(logging.WARNING)
    enable_jax_cache()
    if FLAGS.source == "default":
        src = adapter.load_embedded(FLAGS.supernet_dir, calib_size=FLAGS.calib_size, seed=cfg.seed)
    else:
        src = adapter.random_fullsize(width_mult=FLAGS.width_mult, resolution=FLAGS.resolution, seed=cfg.seed,
                                      calib_size=FLAGS.calib_size)
    load0 = list(os.getloadavg())
    prep = demo.prepare(src, cfg, progress=FLAGS.progress)
    results = demo.run_policies(prep, cfg, progress=FLAGS.progress)
    info = {**demo.run_info(prep), "config": {f: getattr(FLAGS, f) for f in CONFIG_FLAGS}, "loadavg_before": load0}
    files = demo.publish(out, results, info, f"nasjax dynamic runtime: {src.name}, batch {cfg.batch_size}")
    for r in results:
        s = r.summary
        print(f"{r.policy:8s} inside window {100 * s['fraction_inside']:5.1f} %  switches {s['switches']:3d}  "
              f"decisions {s['decisions']:3d} (median ms {s['decision_ms_median_by_kind']})  "
              f"switch ms median {s['switch_ms_median']}  compiles while serving {s['compiles_while_serving']}")
    print(f"wrote {len(files)} files to {out}; load average {os.getloadavg()}")


if __name__ == "__main__":
    cli.run(main)
