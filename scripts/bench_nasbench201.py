"""Benchmark: WeakNAS vs regularized evolution vs random search on NAS-Bench-201, and MathNAS's exact
additive search vs constrained WeakNAS under device latency budgets.

Part 1, per dataset (CIFAR-10, CIFAR-100, ImageNet16-120) and searcher of the registry, over ``--seeds``
repeats (seeds ``--seed_offset`` .. ``--seed_offset + n - 1``: 0.. for the reported figures; tune on
others, e.g. ``--seed_offset=1000``), all through the same query harness (:mod:`nasjax.search.harness`:
seed-mean validation signal, unique-query accounting) on :func:`nasjax.problems.nasbench201.nb201_problem`:
queries until the validation-optimal cell is queried (mean, std, median, max, fraction of runs that found
it within the searcher's query cap; a run that hit the cap counts at the cap, so the mean is then a lower
bound), mean test accuracy of the best cell found after 50/100/200/500 queries, and the wall time of the
whole sweep in this process. A seed's WeakNAS run is the same here as in ``experiments/weaknas.py`` with
the same settings, whatever the batching.

Part 2, per dataset: MathNAS-on-NB201 regret (:func:`nasjax.protocols.regret.regret_sweep`: block
contributions from the table, exact ``mckp`` search under each HELP device's latency budget at the 10/25/
50/75/90% quantiles) next to constrained WeakNAS with 100 queries under the same budgets (on
``--constrained_devices``, ``--constrained_seeds`` repeats each, all runs in one ``search_many`` call).
Regret = validation (and test) accuracy points below the truly feasible validation-optimal cell.

The goals of the project brief are printed next to the figures. The last line is one JSON object.
Run ``python scripts/bench_nasbench201.py`` (full) or ``--seeds=10 --datasets=cifar100`` (reduced).
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

GOALS_QUERIES = {"cifar10": 150, "cifar100": 78, "ImageNet16-120": 111}
PAPER_QUERIES = {"cifar10": 182, "cifar100": 78, "ImageNet16-120": 111}
SKLEARN_REFERENCE = {  # a scikit-learn / numpy implementation of the same searches on the same data
    "random": "~7,400-7,700", "evolution": {"cifar10": 420, "cifar100": 350, "ImageNet16-120": 810},
    "weaknas-sklearn-256x3": {"cifar10": 190, "cifar100": 160, "ImageNet16-120": 170},
}
DEFAULT_CONSTRAINED_DEVICES = "pixel3,raspi4,eyeriss,fpga,gold_6226,titanx_1"


def _args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, default=100, help="repeats per method and dataset (seeds offset..offset+n-1)")
    p.add_argument("--seed_offset", type=int, default=0,
                   help="first seed of part 1 (tune on e.g. 1000; the reported benchmark uses 0)")
    p.add_argument("--datasets", default="cifar10,cifar100,ImageNet16-120")
    p.add_argument("--methods", default="weaknas-uniform,weaknas-ei,evolution,random")
    p.add_argument("--weak_max", type=int, default=1000, help="WeakNAS query cap per run")
    p.add_argument("--evo_max", type=int, default=15625, help="evolution / random query cap per run")
    p.add_argument("--ei_members", type=int, default=3, help="ensemble size of WeakNAS-EI")
    p.add_argument("--regret", action=argparse.BooleanOptionalAction, default=True,
                   help="part 2: MathNAS regret vs constrained WeakNAS")
    p.add_argument("--regret_devices", default="", help="comma list (default: HELP's 27 devices)")
    p.add_argument("--constrained_devices", default=DEFAULT_CONSTRAINED_DEVICES)
    p.add_argument("--constrained_seeds", type=int, default=5)
    p.add_argument("--constrained_queries", type=int, default=100)
    p.add_argument("--quantiles", default="0.1,0.25,0.5,0.75,0.9", help="budgets at these latency quantiles")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True)
    a = p.parse_args(argv)
    if a.seeds < 1 or a.constrained_seeds < 1:
        p.error("--seeds and --constrained_seeds must be >= 1")
    if a.seed_offset < 0:
        p.error("--seed_offset must be >= 0")
    return a


def _fmt(x, nd=1):
    return "-" if x is None else f"{x:.{nd}f}"


def part1(a, table, datasets, methods):
    from dataclasses import replace

    from nasjax.problems.nasbench201 import nb201_problem
    from nasjax.search import get_searcher
    from nasjax.search.harness import Task
    from nasjax.search.repeats import summarize
    from nasjax.search.weak import WeakNASConfig

    weak = WeakNASConfig()
    weak_ei = replace(weak, sampling_method="ei", mlp=replace(weak.mlp, members=max(2, a.ei_members)))
    out = {}
    seeds = list(range(a.seed_offset, a.seed_offset + a.seeds))
    for ds in datasets:
        base = nb201_problem(ds, table)
        task = Task.of(base)
        opt = task.optimum
        out[ds] = {"optimum": {"index": opt, "val": float(task.val_mean[opt]), "test": float(task.test[opt])}}
        print(f"\n== {ds}: optimum cell {opt} (val {task.val_mean[opt]:.2f}%, test {task.test[opt]:.2f}%), "
              f"{len(seeds)} seeds ({seeds[0]}..{seeds[-1]})", flush=True)
        print(f"{'method':18s} {'q-mean':>7s} {'q-std':>6s} {'q-med':>6s} {'q-max':>6s} {'found':>6s} "
              f"{'t@50':>6s} {'t@100':>6s} {'t@200':>6s} {'t@500':>6s} {'wall s':>7s}")
        for meth in methods:
            cap = a.weak_max if meth.startswith("weaknas") else a.evo_max
            options = {"stop_at_optimum": True, "progress": a.progress}
            if meth.startswith("weaknas"):
                options["config"] = weak_ei if meth == "weaknas-ei" else weak
            t0 = time.perf_counter()
            hs = [r.history for r in get_searcher(meth).search_many(replace(base, query_budget=cap), seeds, **options)]
            wall = time.perf_counter() - t0
            s = summarize(task, hs, n_max=max(500, cap))
            s["wall_seconds"] = round(wall, 1)
            s["query_cap"] = cap
            out[ds][meth] = s
            print(f"{meth:18s} {_fmt(s['queries_mean']):>7s} {_fmt(s['queries_std']):>6s} "
                  f"{_fmt(s['queries_median'], 0):>6s} {str(s['queries_max']):>6s} {s['found_fraction']:6.2f} "
                  f"{_fmt(s['test_at_50'], 2):>6s} {_fmt(s['test_at_100'], 2):>6s} {_fmt(s['test_at_200'], 2):>6s} "
                  f"{_fmt(s['test_at_500'], 2):>6s} {wall:7.1f}", flush=True)
        w, e = out[ds].get("weaknas-uniform"), out[ds].get("evolution")
        if w and w["queries_mean"]:
            ratio = (e["queries_mean"] / w["queries_mean"]) if e and e["queries_mean"] else None
            out[ds]["goal"] = {
                "weaknas_uniform_queries": w["queries_mean"], "goal_queries": GOALS_QUERIES.get(ds),
                "paper_queries": PAPER_QUERIES.get(ds), "all_runs_found_optimum": w["found_fraction"] == 1.0,
                "meets_queries_goal": w["queries_mean"] <= GOALS_QUERIES[ds] and w["found_fraction"] == 1.0,
                "evolution_over_weaknas": ratio, "meets_3x_goal": None if ratio is None else ratio >= 3.0,
                "sweep_wall_seconds": w["wall_seconds"], "meets_time_goal": w["wall_seconds"] <= 600,
            }
            print(f"goal: WeakNAS-uniform {w['queries_mean']:.1f} queries (goal <= {GOALS_QUERIES[ds]}, paper "
                  f"{PAPER_QUERIES[ds]}, sklearn ref {SKLEARN_REFERENCE['weaknas-sklearn-256x3'][ds]}); "
                  f"evolution/WeakNAS = {_fmt(ratio, 2)}x (goal >= 3x); sweep {w['wall_seconds']:.0f} s "
                  "(goal <= 600 s)")
    return out


def part2(a, table, datasets):
    from nasjax.problems.nasbench201 import nb201_problem
    from nasjax.protocols.regret import default_budgets, regret_sweep
    from nasjax.protocols.regret import summarize as regret_summary
    from nasjax.search import get_searcher
    from nasjax.search.harness import Task

    quant = [float(q) for q in a.quantiles.split(",")]
    reg_devices = [d for d in a.regret_devices.split(",") if d] or table.devices(source="HELP")
    con_devices = [d for d in a.constrained_devices.split(",") if d]
    out = {}
    for ds in datasets:
        t0 = time.perf_counter()
        rows = regret_sweep(table, reg_devices, None, ds, quantiles=quant)
        math_all = regret_summary(rows)
        math_sub = regret_summary([r for r in rows if r["device"] in con_devices])
        math_s = time.perf_counter() - t0
        base = nb201_problem(ds, table)
        problems, seeds = [], []
        for dev in con_devices:
            for b in default_budgets(table, dev, quant):
                p = nb201_problem(ds, table, dev, b, query_budget=a.constrained_queries, objective=base.objective)
                problems += [p] * a.constrained_seeds
                seeds += list(range(a.constrained_seeds))
        t0 = time.perf_counter()
        results = get_searcher("weaknas-uniform").search_many(problems, seeds, stop_at_optimum=True,
                                                               progress=a.progress)
        weak_s = time.perf_counter() - t0
        reg_v, reg_t, hit, infeasible = [], [], 0, 0
        for p, r in zip(problems, results):
            ct = Task.of(p)
            pick = r.history.best()
            infeasible += int(not ct.feasible[pick])
            opt = ct.optimum
            reg_v.append(ct.val_mean[opt] - ct.val_mean[pick])
            reg_t.append(ct.test[opt] - ct.test[pick])
            hit += int(pick == opt)
        weak_sum = {"runs": len(results), "infeasible_picks": infeasible, "mean_regret_val": float(np.mean(reg_v)),
                    "worst_regret_val": float(np.max(reg_v)), "mean_regret_test": float(np.mean(reg_t)),
                    "worst_regret_test": float(np.max(reg_t)), "optimal_found": hit, "wall_seconds": round(weak_s, 1)}
        out[ds] = {"mathnas_all_help_devices": math_all, "mathnas_constrained_devices": math_sub,
                   "mathnas_wall_seconds": round(math_s, 2), "constrained_weaknas_100q": weak_sum,
                   "devices_all": reg_devices, "devices_constrained": con_devices, "quantiles": quant}
        print(f"\n== {ds}: regret in accuracy points below the truly feasible validation-optimal cell")
        print(f"MathNAS (exact additive, {len(reg_devices)} HELP devices x {len(quant)} budgets): val mean "
              f"{math_all['mean_regret_val']:.2f} worst {math_all['worst_regret_val']:.2f}; test mean "
              f"{math_all['mean_regret_test']:.2f} worst {math_all['worst_regret_test']:.2f}; optimal "
              f"{math_all['optimal_found']}/{math_all['truly_feasible']}; violations {math_all['violations']}")
        print(f"MathNAS on the constrained-WeakNAS devices ({len(con_devices)} x {len(quant)}): val mean "
              f"{math_sub['mean_regret_val']:.2f} worst {math_sub['worst_regret_val']:.2f}; test mean "
              f"{math_sub['mean_regret_test']:.2f} worst {math_sub['worst_regret_test']:.2f}")
        print(f"constrained WeakNAS, {a.constrained_queries} queries ({len(con_devices)} devices x {len(quant)} "
              f"budgets x {a.constrained_seeds} seeds): val mean {weak_sum['mean_regret_val']:.2f} worst "
              f"{weak_sum['worst_regret_val']:.2f}; test mean {weak_sum['mean_regret_test']:.2f} worst "
              f"{weak_sum['worst_regret_test']:.2f}; optimal {hit}/{len(results)}; infeasible picks {infeasible}; "
              f"{weak_s:.0f} s", flush=True)
    return out


def main(argv=None):
    a = _args(argv)
    from nasjax.benchmarks.nasbench201 import canonical_dataset, load

    table = load()
    datasets = [canonical_dataset(d) for d in a.datasets.split(",") if d]
    methods = [m for m in a.methods.split(",") if m]
    t0 = time.perf_counter()
    res = {"seeds": a.seeds, "seed_offset": a.seed_offset, "part1": part1(a, table, datasets, methods)}
    if a.regret:
        res["part2"] = part2(a, table, datasets)
    res["total_wall_seconds"] = round(time.perf_counter() - t0, 1)
    res["goals"] = {"weaknas_uniform_queries_max": GOALS_QUERIES, "paper": PAPER_QUERIES,
                    "evolution_over_weaknas_min": 3.0, "sweep_seconds_max": 600, "sklearn_reference": SKLEARN_REFERENCE}
    res["note"] = "timings are from one process on a shared 2-core machine; noisy"
    print(json.dumps(res, default=float))


if __name__ == "__main__":
    main()
