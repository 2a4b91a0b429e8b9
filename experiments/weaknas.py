"""WeakNAS (and its baselines) on NAS-Bench-201: ``python -m experiments.weaknas --flagfile=...``.

Thin absl entry point over :mod:`nasjax.search.weak` / :mod:`nasjax.search.baselines`. Flag names follow
WeakNAS's ``WeakNAS.py`` (``--bench --dataset --init_sample --sample_each_iter --top_start --top_end
--sampling_method --mlp_size --mlp_iter --max_sample --repeat --rand_seed --save_dir``), with its bugs fixed:

* ``--rand_seed`` must be >= 0 and the repeats use seeds ``rand_seed .. rand_seed + repeat - 1``
  (WeakNAS ran nothing for a seed >= 0 and unreproducible random seeds for a negative one; a negative
  seed is now a clear error);
* booleans (``--deterministic``, ``--stop_at_optimum``, ``--tsne``) are absl booleans
  (``--nodeterministic``), not strings where ``"False"`` is true.

Writes to ``--save_dir`` (atomically, only after the whole sweep succeeded): ``runs.csv`` (one row per
repeat), ``curve.csv`` + ``curve.png`` (best-so-far test accuracy vs queries), ``tsne.png`` (search dynamics
of the first repeat), ``summary.json``. Finished repeats are kept in ``save_dir/.repeats/<config-hash>/``,
so a killed sweep continues from them.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path

from absl import app, flags, logging

from nasjax.predictors.mlp import MLPConfig  # noqa: E402
from nasjax.search.weak import METHODS, TARGETS, WeakNASConfig  # noqa: E402

_W = WeakNASConfig()  # flag defaults = the library's tuned defaults (one source of truth)
_M = _W.mlp
FLAGS = flags.FLAGS
flags.DEFINE_enum("bench", "nasbench201", ["nasbench201", "nasbench101"], "Tabular benchmark.")
flags.DEFINE_string("dataset", "cifar10", "cifar10 | cifar100 | ImageNet16-120.")
flags.DEFINE_enum("method", "weaknas", ["weaknas", "evolution", "random", "local"],
                  "Searcher: WeakNAS (acquisition from --sampling_method) or a baseline in the same harness.")
flags.DEFINE_integer("init_sample", _W.init_sample, "Initial uniformly drawn samples.")
flags.DEFINE_integer("sample_each_iter", _W.sample_each_iter, "Cells queried per iteration.")
flags.DEFINE_integer("top_start", _W.top_start, "Top-k pool size at the first iteration.")
flags.DEFINE_integer("top_end", _W.top_end, "Top-k pool size at the last iteration.")
flags.DEFINE_integer("stall_iters", _W.stall_iters, "Iterations without a new best before the pool re-widens.")
flags.DEFINE_integer("widen_max", _W.widen_max, "Largest re-widening factor of a stalled top-k pool (1 = off).")
flags.DEFINE_integer("restart_stall", _W.restart_stall,
                     "Iterations without a new best in the current segment before a fresh restart (0 = off).")
flags.DEFINE_float("top_decay", _W.top_decay, "Exponential decay of the top-k schedule (WeakNAS's --top_decay).")
flags.DEFINE_enum("sampling_method", _W.sampling_method, list(METHODS), "Acquisition inside the top-k pool.")
flags.DEFINE_enum("target", _W.target, list(TARGETS), "Predictor regression target (z-scores or rank normal scores).")
flags.DEFINE_list("mlp_size", [str(h) for h in _M.hidden], "Hidden widths of the MLP predictor, comma separated.")
flags.DEFINE_integer("mlp_iter", _M.iters, "Full-batch AdamW steps per predictor fit.")
flags.DEFINE_float("mlp_lr", _M.lr, "Predictor learning rate.")
flags.DEFINE_integer("num_ensemble", _M.members, "Ensemble members (>= 2 for --sampling_method=ei).")
flags.DEFINE_integer("max_sample", 1000, "Query budget per repeat (unique cells).")
flags.DEFINE_integer("repeat", 100, "Independent repeats.")
flags.DEFINE_integer("rand_seed", 0, "First seed (>= 0); repeats use rand_seed .. rand_seed+repeat-1.")
flags.DEFINE_string("save_dir", None, "Output directory.")
flags.DEFINE_boolean("deterministic", True,
                     "Search signal: True = seed-mean validation accuracy; False = one random training run per query.")
flags.DEFINE_boolean("stop_at_optimum", True,
                     "End a repeat once the validation-optimal cell is queried (curves are carried forward).")
flags.DEFINE_integer("population", 10, "Regularized evolution: population size.")
flags.DEFINE_integer("tournament", 3, "Regularized evolution: tournament size.")
flags.DEFINE_string("device", None, "Constrained search: latency device of the benchmark layer (e.g. pixel3).")
flags.DEFINE_float("latency_budget", None, "Constrained search: latency budget in ms on --device.")
flags.DEFINE_integer("batch_seeds", 25, "Repeats run together (one vmapped program); also the resume granularity.")
flags.DEFINE_boolean("tsne", True, "Write tsne.png of the first repeat's search dynamics.")
flags.DEFINE_boolean("progress", True, "Show progress bars.")
flags.mark_flag_as_required("save_dir")


def _config():
    from nasjax.errors import NasjaxInputError, require
    from nasjax.search.evolution import EvolutionConfig

    if FLAGS.bench != "nasbench201":
        raise NasjaxInputError(f"bench: got {FLAGS.bench!r}, expected 'nasbench201' (NAS-Bench-101 has no full "
                               "table in the reference data, only 30 cells)")
    require(FLAGS.rand_seed >= 0, "rand_seed", FLAGS.rand_seed,
            "a seed >= 0 (WeakNAS's -1 drew unreproducible seeds; pass the first seed explicitly)")
    require(FLAGS.repeat >= 1, "repeat", FLAGS.repeat, "at least 1 repeat")
    try:
        hidden = tuple(int(h) for h in FLAGS.mlp_size)
    except ValueError as e:
        raise NasjaxInputError(f"mlp_size: got {FLAGS.mlp_size!r}, expected comma-separated integers") from e
    require((FLAGS.device is None) == (FLAGS.latency_budget is None), "device/latency_budget",
            (FLAGS.device, FLAGS.latency_budget), "both set (constrained search) or both unset")
    mlp = MLPConfig(hidden=hidden, iters=FLAGS.mlp_iter, lr=FLAGS.mlp_lr, members=FLAGS.num_ensemble)
    weak = WeakNASConfig(init_sample=FLAGS.init_sample, sample_each_iter=FLAGS.sample_each_iter,
                         top_start=FLAGS.top_start, top_end=FLAGS.top_end, top_decay=FLAGS.top_decay,
                         sampling_method=FLAGS.sampling_method, max_sample=FLAGS.max_sample,
                         target=FLAGS.target, stall_iters=FLAGS.stall_iters, widen_max=FLAGS.widen_max,
                         restart_stall=FLAGS.restart_stall, mlp=mlp)
    evo = EvolutionConfig(population=FLAGS.population, tournament=FLAGS.tournament, max_queries=FLAGS.max_sample)
    name = f"weaknas-{FLAGS.sampling_method}" if FLAGS.method == "weaknas" else FLAGS.method
    return name, weak, evo


def run() -> dict:
    from nasjax.io import write_csv, write_json
    from nasjax.plots import plot_search_curves, plot_tsne, write_curves_csv
    from nasjax.search.baselines import run_searcher
    from nasjax.search.harness import certify, curves, nb201_task, run_resumable, summarize
    from nasjax.spaces.nasbench201 import arch_to_str

    method, weak, evo = _config()
    task = nb201_task(FLAGS.dataset, device=FLAGS.device, budget=FLAGS.latency_budget)
    signal = "mean" if FLAGS.deterministic else "seed"
    stop = task.optimum if FLAGS.stop_at_optimum else None
    seeds = list(range(FLAGS.rand_seed, FLAGS.rand_seed + FLAGS.repeat))
    save = Path(FLAGS.save_dir)
    key = {"method": method, "task": task.name, "signal": signal, "stop": stop, "max": FLAGS.max_sample,
           "weak": asdict(weak) if method.startswith("weaknas") else None,
           "evo": asdict(evo) if method == "evolution" else None}
    tag = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:12]
    logging.info("%s on %s (signal=%s, optimum cell %d, %d feasible cells), %d repeats; resume cache %s",
                 method, task.name, signal, task.optimum, int(task.feasible.sum()), len(seeds), tag)

    t0 = time.perf_counter()
    hs = run_resumable(
        lambda part: run_searcher(method, task, part, signal=signal, stop_cell=stop, max_queries=FLAGS.max_sample,
                                  progress=FLAGS.progress, weak=weak, evolution=evo),
        seeds, save / ".repeats" / tag, FLAGS.batch_seeds, FLAGS.progress)
    wall = time.perf_counter() - t0

    rows = []
    for h in hs:
        pick = certify(task, h)
        rows.append([method, task.name, h.seed, h.queries_to(task.optimum) or "", len(h.order), pick,
                     arch_to_str(task.archs[pick]), round(float(task.val_mean[pick]), 4),
                     round(float(task.test[pick]), 4),
                     "" if task.resource is None else round(float(task.resource[pick]), 4)])
    summary = summarize(task, hs, n_max=FLAGS.max_sample)
    summary.update(method=method, dataset=task.name, signal=signal, seeds=[seeds[0], seeds[-1]],
                   wall_seconds_this_process=round(wall, 2), config=key)
    cur = curves(task, hs, FLAGS.max_sample)
    write_csv(save / "runs.csv", ["method", "task", "seed", "queries_to_optimum", "queries", "pick_index",
                                  "pick_arch", "pick_val", "pick_test", "pick_resource"], rows)
    write_curves_csv(save / "curve.csv", {method: cur})
    plot_search_curves(save / "curve.png", {method: cur}, f"{method} on NB201 {task.name} ({len(hs)} runs)",
                       float(task.test[task.optimum]))
    if FLAGS.tsne:
        plot_tsne(save / "tsne.png", task, hs[0])
    write_json(save / "summary.json", summary)
    return summary


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    from nasjax.errors import NasjaxInputError

    try:
        summary = run()
    except NasjaxInputError as e:
        logging.error("%s", e)
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
    print(json.dumps({k: v for k, v in summary.items() if k != "config"}))


if __name__ == "__main__":
    app.run(main)
