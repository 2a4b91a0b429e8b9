"""WeakNAS (and its baselines) on NAS-Bench-201: ``python -m experiments.weaknas --flagfile=...``.

Thin absl entry point over the searcher registry (``weaknas-uniform`` / ``weaknas-ei`` of
:mod:`nasjax.search.weak`, ``evolution``, ``random``, ``local``) on the problem of
:func:`nasjax.problems.nasbench201.nb201_problem`. The loop's flags are derived from
:class:`~nasjax.search.weak.WeakNASConfig`, :class:`~nasjax.predictors.mlp_config.MLPConfig` and
:class:`~nasjax.search.evolution.EvolutionConfig`, with WeakNAS's names (``--init_sample
--sample_each_iter --top_start --top_end --top_decay --sampling_method --target --stall_iters --widen_max
--restart_stall --mlp_size --mlp_iter --mlp_lr --num_ensemble --max_sample``); the sweep's own flags are
WeakNAS's too (``--bench --dataset --repeat --rand_seed --save_dir``), with its bugs fixed:

* ``--rand_seed`` must be >= 0 and the repeats use seeds ``rand_seed .. rand_seed + repeat - 1``
  (WeakNAS ran nothing for a seed >= 0 and unreproducible random seeds for a negative one);
* booleans (``--deterministic``, ``--stop_at_optimum``, ``--tsne``) are absl booleans
  (``--nodeterministic``), not strings where ``"False"`` is true.

A flag of one method given with another (``--init_sample`` with ``--method=evolution``) is an error. Writes
to ``--save_dir``, as one set published after the whole sweep succeeded: ``runs.csv`` (one row per repeat),
``curve.csv`` + ``curve.png`` (best-so-far test accuracy vs queries), ``tsne.png`` (search dynamics of the
first repeat), then ``summary.json`` (last, listing the others). Finished repeats are kept in
``save_dir/.repeats/<hash of the settings that change a result>/``, so a killed sweep continues from them;
a repeat's result does not depend on ``--batch_seeds``.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict

from absl import flags, logging

from nasjax import cli
from nasjax.errors import require
from nasjax.search.evolution import EvolutionConfig
from nasjax.search.weak import LANES, WeakNASConfig

FLAGS = flags.FLAGS
WEAK_FLAGS = cli.define_config_flags(WeakNASConfig)
EVOLUTION_FLAGS = cli.define_config_flags(EvolutionConfig)
flags.DEFINE_enum("bench", "nasbench201", ["nasbench201"], "Tabular benchmark (the one with every cell measured).")
flags.DEFINE_string("dataset", "cifar10", "cifar10 | cifar100 | ImageNet16-120.")
flags.DEFINE_enum("method", "weaknas", ["weaknas", "evolution", "random", "local"],
                  "Searcher: WeakNAS (acquisition from --sampling_method) or a baseline in the same harness.")
flags.DEFINE_integer("repeat", 100, "Independent repeats.")
flags.DEFINE_integer("rand_seed", 0, "First seed (>= 0); repeats use rand_seed .. rand_seed+repeat-1.")
flags.DEFINE_string("save_dir", None, "Output directory.")
flags.DEFINE_boolean("deterministic", True,
                     "Search signal: True = seed-mean validation accuracy; False = one random training run per query.")
flags.DEFINE_boolean("stop_at_optimum", True,
                     "End a repeat once the validation-optimal cell is queried (curves are carried forward).")
flags.DEFINE_string("device", None, "Constrained search: latency device of the benchmark layer (e.g. pixel3).")
flags.DEFINE_float("latency_budget", None, "Constrained search: latency budget in ms on --device.")
flags.DEFINE_integer("batch_seeds", 25, "Repeats per call (WeakNAS fits them together); the resume granularity.")
flags.DEFINE_boolean("tsne", True, "Write tsne.png of the first repeat's search dynamics.")
flags.DEFINE_boolean("progress", True, "Show progress bars.")
flags.mark_flag_as_required("save_dir")

RESUME_FORMAT = 2  # bump when a change of the code changes the repeats' results


def main() -> None:
    from nasjax.io import write_csv
    from nasjax.plots import plot_search_curves, plot_tsne, write_curves_csv
    from nasjax.problems.nasbench201 import nb201_problem
    from nasjax.search import get_searcher
    from nasjax.search.harness import Task, certify
    from nasjax.search.repeats import curves, run_resumable, summarize
    from nasjax.spaces.nasbench201 import arch_to_str

    cli.check_mode_flags("method", {"weaknas": [f for f in WEAK_FLAGS if f != "max_sample"],
                                    "evolution": EVOLUTION_FLAGS})
    require(FLAGS.rand_seed >= 0, "rand_seed", FLAGS.rand_seed,
            "a seed >= 0 (WeakNAS's -1 drew unreproducible seeds; pass the first seed explicitly)")
    require(FLAGS.repeat >= 1, "repeat", FLAGS.repeat, "at least 1 repeat")
    require((FLAGS.device is None) == (FLAGS.latency_budget is None), "device/latency_budget",
            (FLAGS.device, FLAGS.latency_budget), "both set (constrained search) or both unset")
    require(FLAGS.batch_seeds >= 1, "batch_seeds", FLAGS.batch_seeds, "a positive number of repeats per call")
    weak = cli.config_from_flags(WeakNASConfig)
    evolution = cli.config_from_flags(EvolutionConfig)
    save = cli.check_output_dir(FLAGS.save_dir, "save_dir")

    require(FLAGS.latency_budget is None or FLAGS.latency_budget > 0, "latency_budget", FLAGS.latency_budget,
            "a latency > 0 in ms")
    with cli.reported_as("latency_constraint", "latency_budget"):
        problem = nb201_problem(FLAGS.dataset, device=FLAGS.device, budget=FLAGS.latency_budget,
                                query_budget=weak.max_sample)
    task = Task.of(problem)
    method = f"weaknas-{weak.sampling_method}" if FLAGS.method == "weaknas" else FLAGS.method
    searcher = get_searcher(method)
    signal = "mean" if FLAGS.deterministic else "seed"
    config = {"weaknas": weak, "evolution": evolution}.get(FLAGS.method)
    options = {"signal": signal, "stop_at_optimum": FLAGS.stop_at_optimum, "progress": FLAGS.progress,
               **({"config": config} if config is not None else {})}
    seeds = list(range(FLAGS.rand_seed, FLAGS.rand_seed + FLAGS.repeat))
    key = {"format": RESUME_FORMAT, "method": method, "problem": problem.name, "signal": signal,
           "stop_at_optimum": FLAGS.stop_at_optimum, "query_budget": problem.query_budget,
           "config": asdict(config) if config is not None else None,
           "lanes": LANES if FLAGS.method == "weaknas" else None}
    tag = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:12]
    logging.info("%s on %s (signal=%s, optimum cell %d, %d feasible cells), %d repeats; resume cache %s",
                 method, task.name, signal, task.optimum, int(task.feasible.sum()), len(seeds), tag)

    t0 = time.perf_counter()
    hs = run_resumable(lambda part: [r.history for r in searcher.search_many(problem, part, **options)],
                       seeds, save / ".repeats" / tag, FLAGS.batch_seeds, FLAGS.progress)
    wall = time.perf_counter() - t0

    rows = []
    for h in hs:
        pick = certify(task, h)
        rows.append([method, task.name, h.seed, h.queries_to(task.optimum) or "", len(h.order), pick,
                     arch_to_str(task.archs[pick]), round(float(task.val_mean[pick]), 4),
                     round(float(task.test[pick]), 4),
                     round(float(task.constraint_values[pick, 0]), 4) if problem.constraints else ""])
    summary = summarize(task, hs, n_max=weak.max_sample)
    summary.update(method=method, dataset=task.name, signal=signal, seeds=[seeds[0], seeds[-1]],
                   wall_seconds_this_process=round(wall, 2), config=key)
    cur = curves(task, hs, weak.max_sample)
    with cli.ResultSet(save, manifest="summary.json") as rs:
        write_csv(rs.path("runs.csv"), ["method", "task", "seed", "queries_to_optimum", "queries", "pick_index",
                                        "pick_arch", "pick_val", "pick_test", "pick_resource"], rows)
        write_curves_csv(rs.path("curve.csv"), {method: cur})
        plot_search_curves(rs.path("curve.png"), {method: cur}, f"{method} on NB201 {task.name} ({len(hs)} runs)",
                           float(task.test[task.optimum]))
        if FLAGS.tsne:
            plot_tsne(rs.path("tsne.png"), task, hs[0])
        rs.summary = summary
    print(json.dumps({k: v for k, v in summary.items() if k != "config"}))


if __name__ == "__main__":
    cli.run(main)
