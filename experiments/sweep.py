"""Flag sweeps over any experiment on Ray Tune (:mod:`nasjax.sweep`): one process per setting.

    python -m experiments.sweep --experiment=experiments.binas_search \\
        --flagfile=experiments/flags/binas_search_synthetic.flags \\
        --grid="inference_time_limit=35ms,40ms,45ms;nas_optimizer=exact,bcfw" --save_dir=results/sweep_binas
    python -m experiments.sweep --sweep_flagfile=experiments/flags/sweep_binas_synthetic.flags   # a recipe

``--flagfile`` names the experiment's base flagfile (the sweep's own flags go on the command line or in
``--sweep_flagfile``). ``--random=N --space="lr=loguniform:1e-4:1e-1"`` draws settings instead of (or
times) a grid; ``--ray_address=host:port`` runs the settings on a Ray cluster (the project directory must
exist on every node at the same path). Finished settings are not run again: rerunning the command reuses
``<save_dir>/runs/<key>/result.json`` (the key covers every flag of the base flagfile and every swept value).
Writes ``results.csv``, ``results.png`` and ``summary.json`` (last) to ``--save_dir``.
"""

from __future__ import annotations

import sys

from nasjax import cli
from nasjax.sweep import SweepConfig, route_flagfiles, run_sweep

cli.define_config_flags(SweepConfig)


def main() -> None:
    cfg = cli.config_from_flags(SweepConfig)
    cli.check_output_dir(cfg.save_dir, "save_dir")
    summary = run_sweep(cfg)
    print(f"{summary['settings']} settings: {summary['status']} ({summary['cached']} from earlier runs) in "
          f"{summary['seconds']:.1f} s; wrote {cfg.save_dir}/results.csv, results.png, summary.json")


if __name__ == "__main__":
    sys.argv = route_flagfiles(sys.argv)
    cli.run(main)
