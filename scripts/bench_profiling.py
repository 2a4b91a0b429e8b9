"""Benchmark of block profiling (not a test): the sequence latency predictor and insight-reduced spaces.

    NASJAX_SHARED_DATA=../shared/data python scripts/bench_profiling.py [--epochs 40] [--seeds 3]
        [--machine_latency FILE.csv] [--save_predictor FILE.npz] [--out_dir DIR]

1. Sequence predictor (bidirectional GRU, read-outs ``last`` = the original's, ``ends``, ``mean``) trained on
   4,000 of HELP's 5,000 OFA MobileNetV3 subnets (12 GPU settings jointly), scored on the 1,000 held out
   (MAPE, Spearman, share within +-10 %, top-50 overlap of the fastest), next to the gated least-squares
   additive table fitted on the same 4,000 training subnets. ``--machine_latency`` (a CSV ``arch,
   resolution, latency_ms`` of subnets measured on this machine) adds the same comparison for this machine.
2. NAS-Bench-201 across HELP's 27 and OneProxy's devices: the device groups of the block profiles.
3. Reduced vs full vs random-subset spaces (random-mutation Pareto search, 100 starts + 10 x 200 evaluations,
   ``--seeds`` seeds, 3 random subsets per seed) by hypervolume against a common reference point: on
   NAS-Bench-201 for each HELP device (true front known: HV / HV(true) and IGD), and on OFA MobileNetV3 for
   each HELP GPU setting (the default supernet's accuracy table, the sequence predictor's latency at 224 px).

The last line is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nasjax import metrics  # noqa: E402
from nasjax.constraints import Constraint  # noqa: E402
from nasjax.search.base import SearchProblem  # noqa: E402
from nasjax.spaces import get_space  # noqa: E402

TOPK = 50


def _scores(y, p) -> dict:
    return {"mape": round(metrics.mape(y, p), 3), "spearman": round(metrics.spearman(y, p), 4),
            "within10": round(metrics.within(y, p, 0.10), 4),
            "top50": round(metrics.topk_overlap(y, p, TOPK, largest=False), 3)}


def sequence_vs_additive(archs, lat, names, train, test, epochs: int, readouts, seed: int = 0) -> tuple[dict, dict]:
    from nasjax.predictors.additive_fit import fit_additive
    from nasjax.predictors.sequence import SequenceConfig, fit_sequence_predictor
    from nasjax.profiling.structure import structure_of

    space = get_space("mobilenetv3_layers")
    st = structure_of(space)
    out, models = {}, {}
    for ro in readouts:
        t0 = time.perf_counter()
        p = fit_sequence_predictor(archs[train], lat[train], names,
                                   SequenceConfig(readout=ro, epochs=epochs, batch_size=128, seed=seed))
        pred = p.predict_all(archs[test])
        models[ro] = p
        out[f"sequence_{ro}"] = {n: _scores(lat[test, j], pred[:, j]) for j, n in enumerate(names)}
        out[f"sequence_{ro}"]["_train_seconds"] = round(time.perf_counter() - t0, 1)
        out[f"sequence_{ro}"]["_best_epoch"] = p.info["best_epoch"]
    add = {}
    for j, n in enumerate(names):
        ok = np.isfinite(lat[train, j])
        f = fit_additive(archs[train][ok, :25], lat[train, j][ok], space.num_choices, gate_position=st.gate_position,
                         gate_min_choice=st.gate_min_choice, extra=archs[train][ok, 25:])
        add[n] = _scores(lat[test, j], f.predict(archs[test, :25], archs[test, 25:]))
    out["additive"] = add
    return out, models


def nb201_devices(out_dir) -> tuple[dict, object, object, list]:
    from nasjax.benchmarks import nasbench201 as nb
    from nasjax.profiling.devices import device_profiles, nb201_columns

    t = nb.load()
    space = get_space("nasbench201")
    acc, lats, src = nb201_columns(t)
    dp = device_profiles(space, acc, lats, src)
    if out_dir:
        from nasjax.profiling.plots import plot_device_profiles

        dp.write_csv(Path(out_dir) / "nb201_devices.csv")
        plot_device_profiles(dp, Path(out_dir) / "nb201_devices.png")
    groups = {}
    for d, g in zip(dp.devices, dp.groups):
        groups.setdefault(int(g), []).append(d)
    exp = {}
    for row in dp.most_expensive():
        exp.setdefault(row["device"], set()).add(row["block"])
    return ({"devices": len(dp.devices), "groups": groups,
             "most_expensive_op": {d: sorted(v) for d, v in exp.items()}}, dp, acc, lats)


def nb201_reduced(dp, acc, lats, seeds, num_random) -> dict:
    from nasjax.profiling.compare import compare_spaces, reference_point, true_front
    from nasjax.profiling.reduce import reduce_space

    space = get_space("nasbench201")
    res = {}
    for i, (dev, src) in enumerate(zip(dp.devices, dp.sources)):
        if src != "HELP":  # a search needs every cell measured
            continue
        lat = lats[i]
        red = reduce_space(space, dp.blocks, *dp.reduce_inputs(i), name=f"reduced/{dev}")
        prob = SearchProblem(space, acc, (Constraint(lat, float(np.nanmax(lat.values)) * 2, "ms"),))
        costs = np.stack([-acc.values, lat.values], 1)
        ideal, ref = reference_point(costs)
        r = compare_spaces(prob, red, seeds, ref, num_random=num_random, true=true_front(costs), ideal=ideal)
        res[dev] = {"removed": red.num_removed, "removed_ops": sorted({k.split("/")[-1] for k in red.removed}),
                    **{f"{k}_{v}": [round(float(np.mean(r[k][v])), 5), round(float(np.std(r[k][v])), 5)]
                       for k in ("hv_ratio", "igd") for v in ("full", "reduced", "random")},
                    "evaluations": {v: float(np.mean(r["evaluations"][v])) for v in r["evaluations"]}}
    return res


def ofa_reduced(predictor, seeds, num_random, num_archs: int = 20) -> dict:
    from nasjax.default import load_default
    from nasjax.profiling.compare import compare_spaces, reference_point
    from nasjax.profiling.profiles import profile_blocks
    from nasjax.profiling.reduce import reduce_space
    from nasjax.profiling.structure import structure_of

    space = get_space("mobilenetv3_layers")
    st = structure_of(space)
    acc_t = load_default()["tables"]["accuracy_layers"]
    gates = {"gate_position": st.gate_position, "gate_min_choice": st.gate_min_choice}
    res = {}
    for name in predictor.outputs:
        lat = predictor.model_for(name, 224)
        prof = profile_blocks(space, [acc_t, lat], num_archs, seed=0, structure=st)
        a = np.stack([prof.stat("mean", "accuracy"), prof.stat("q95", "accuracy")], 1)
        m = prof.metrics[1]
        med = float(np.median(prof.baseline[:, 1]))
        t = np.stack([prof.stat("rel_mean", m), prof.stat("q05", m) / med], 1)
        red = reduce_space(space, prof.blocks, a, t, level="unit", name=f"reduced/{name}")
        base = np.stack([-prof.baseline[:, 0], prof.baseline[:, 1]], 1)
        _, ref = reference_point(base)
        prob = SearchProblem(space, acc_t, (Constraint(lat, 1e9, "ms"),))
        r = compare_spaces(prob, red, seeds, ref, num_random=num_random, gates=gates)
        full = float(np.mean(r["hv"]["full"]))
        res[name] = {"removed": red.num_removed, "log10_size": round(red.size_log10, 2),
                     **{f"hv_{v}": [round(float(np.mean(r["hv"][v])) / full, 5),
                                    round(float(np.std(r["hv"][v])) / full, 5)] for v in ("full", "reduced", "random")}}
    return res


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--readouts", default="last,ends,mean")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--num_random", type=int, default=3)
    ap.add_argument("--machine_latency", default="", help="CSV arch,resolution,latency_ms measured on this machine")
    ap.add_argument("--save_predictor", default="", help="write the 'mean' read-out HELP predictor here (.npz)")
    ap.add_argument("--out_dir", default="", help="write the NB201 cross-device CSV and picture here")
    ap.add_argument("--skip_ofa_search", action="store_true")
    args = ap.parse_args(argv)
    from nasjax.benchmarks import latency_sets as ls
    from nasjax.predictors.sequence_data import help_ofa_archs, read_measured_csv

    t0 = time.perf_counter()
    result: dict = {}
    help_set = ls.load_help_ofa()
    archs, lat = help_ofa_archs(help_set.archs), help_set.latency_ms
    perm = np.random.default_rng(0).permutation(len(archs))
    test, train = perm[:1000], perm[1000:]
    readouts = [r for r in args.readouts.split(",") if r]
    help_scores, models = sequence_vs_additive(archs, lat, help_set.devices, train, test, args.epochs, readouts)
    result["help_ofa"] = help_scores
    best = "mean" if "mean" in models else readouts[-1]
    seq = help_scores[f"sequence_{best}"]
    result["help_ofa_goal"] = {
        "readout": best,
        "lower_mape_than_additive": sum(seq[n]["mape"] < help_scores["additive"][n]["mape"] for n in help_set.devices),
        "within10_ge_95": sum(seq[n]["within10"] >= 0.95 for n in help_set.devices), "settings": len(help_set.devices)}
    if args.save_predictor:
        models[best].save(args.save_predictor)
    if args.machine_latency:
        a, y = read_measured_csv(args.machine_latency)
        p = np.random.default_rng(0).permutation(len(a))
        k = max(1, len(a) // 5)
        result["machine"], _ = sequence_vs_additive(a, y[:, None], ("this_machine",), p[k:], p[:k], args.epochs,
                                                    readouts)
    else:
        result["machine"] = "skipped: no --machine_latency file (subnets measured on this machine)"
    if args.out_dir:
        Path(args.out_dir).mkdir(parents=True, exist_ok=True)
    result["nb201_devices"], dp, acc, lats = nb201_devices(args.out_dir)
    seeds = list(range(args.seeds))
    result["nb201_reduced"] = nb201_reduced(dp, acc, lats, seeds, args.num_random)
    nb = result["nb201_reduced"]
    result["nb201_goal"] = {
        "devices": len(nb), "with_dominated_block": sum(v["removed"] > 0 for v in nb.values()),
        "reduced_ge_full": sum(v["hv_ratio_reduced"][0] >= v["hv_ratio_full"][0] for v in nb.values()),
        "random_below_reduced": sum(v["hv_ratio_random"][0] < v["hv_ratio_reduced"][0] for v in nb.values())}
    if not args.skip_ofa_search:
        result["ofa_reduced"] = ofa_reduced(models[best], seeds, args.num_random)
        ofa = result["ofa_reduced"]
        result["ofa_goal"] = {
            "settings": len(ofa), "with_dominated_block": sum(v["removed"] > 0 for v in ofa.values()),
            "reduced_ge_full": sum(v["hv_reduced"][0] >= v["hv_full"][0] for v in ofa.values()),
            "random_below_reduced": sum(v["hv_random"][0] < v["hv_reduced"][0] for v in ofa.values())}
    result["seconds"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
