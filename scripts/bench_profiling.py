"""Benchmark of block profiling (not a test): the sequence latency predictor and insight-reduced spaces.

    NASJAX_SHARED_DATA=../shared/data python scripts/bench_profiling.py [--epochs 40] [--hidden 64] [--seeds 3]
        [--readouts last,ends,mean,sum] [--bases none,additive_log,additive_ms] [--rule auto|swaps|fronts|stats]
        [--z 1.0] [--tol 0.001] [--prune_depths]
        [--parts help,machine,nb201,ofa]
        [--machine_latency FILE.csv [--machine_repeat AGAIN.csv]] [--save_predictor FILE.npz] [--out_dir DIR]

1. Sequence predictor (bidirectional GRU, read-outs ``last`` = the original's, ``ends``, ``mean``, ``sum``)
   trained on 4,000 of HELP's 5,000 OFA MobileNetV3 subnets (12 GPU settings jointly), scored on the 1,000
   held out (MAPE, Spearman, share within +-10 %, top-50 overlap of the fastest), next to the gated
   least-squares additive table fitted on the same 4,000 training subnets (in ms, the table's form, and in
   log ms). Each read-out is trained plain and, for each ``--bases`` entry other than ``none``, as the residual
   over a table the predictor fits inside (``SequenceConfig.base``: ``sequence_<readout>_<base>``). The variant
   the goals are counted for is the one with the lowest ``dev_score`` (dev-split log-latency error, one scale
   for every read-out and base) on the training subnets' dev split, never chosen on the held-out subnets;
   ``per_setting`` counts them for each setting's own lowest-dev-score variant.
   ``help_ofa_noise``: where the residual comes from (measurement drift, shared or not with the
   other GPUs). ``--machine_latency`` (a CSV ``arch,resolution,latency_ms`` of subnets measured on this
   machine, ``scripts/measure_subnets.py``) adds the same comparison for this machine (80 / 20 split);
   ``--machine_repeat`` (some of the same subnets timed again, ``measure_subnets.py --archs_from``) adds the
   measurement's own repeatability on the held-out subnets it holds, beside the table's and the chosen
   variant's error on the same subnets: the floor no predictor of one timing can go below.
2. NAS-Bench-201 across HELP's 27 and OneProxy's devices: the device groups of the block profiles.
3. Reduced vs full vs random-subset spaces (random-mutation Pareto search, 100 starts + 10 x 200 evaluations,
   ``--seeds`` seeds, 3 random subsets per seed) by hypervolume against a common reference point: on
   NAS-Bench-201 for each HELP device (true front known: HV / HV(true), IGD, and how many true-front cells
   the reduction removed), and on OFA MobileNetV3 for each HELP GPU setting (the default supernet's accuracy
   table, the sequence predictor's latency at 224 px). The reduction (``--rule``, ``nasjax.profiling.reduce``)
   is by default the sound rule for the profile (``reduce_profile``): front dominance for NAS-Bench-201's
   exhaustive profiles (margin ``--z`` standard errors with the finite-population correction, so 0 there) and
   swap dominance for OFA's sampled ones (a block goes when swapping it for another block of its group, in the
   same profiled network, is no worse in both objectives in every profiled network); ``--rule`` forces one of
   them or the older statistic dominance. On OFA the rule prunes the layers' blocks (the operations the
   original profiles, at each unit and layer) and keeps every stage depth; ``--prune_depths`` lets it remove
   depth choices too. A device whose profile
   marks nothing dominated keeps the full space and is not searched or counted. The variants of a seed share
   their random numbers, so each device also gets the paired differences over seeds (``d_reduced_full``,
   ``d_random_reduced``: mean and standard error) and the goal counts a 2-standard-error test and a
   non-inferiority test with tolerance ``--tol`` (``_goal``).

The last line is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
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
    k = min(TOPK, len(y))  # top-50 overlap of the fastest (all of them when fewer)
    return {"mape": round(metrics.mape(y, p), 3), "spearman": round(metrics.spearman(y, p), 4),
            "within10": round(metrics.within(y, p, 0.10), 4),
            f"top{k}": round(metrics.topk_overlap(y, p, k, largest=False), 3)}


def variant(readout: str, base: str = "none") -> str:
    """The bench's name of a sequence predictor: ``sequence_<readout>`` or ``sequence_<readout>_<base>``."""
    return f"sequence_{readout}" + ("" if base == "none" else f"_{base}")


def sequence_vs_additive(archs, lat, names, train, test, epochs: int, readouts, seed: int = 0,
                         hidden: int = 64, bases=("none",)) -> tuple[dict, dict]:
    """Held-out scores of every (read-out, base) sequence predictor and of both tables, and the predictors."""
    from nasjax.predictors.sequence import SequenceConfig, fit_layer_table, fit_sequence_predictor, layer_table_predict

    out, models = {}, {}
    for base in bases:
        for ro in readouts:
            if base != "none" and ro == "sum":  # a base takes last / ends / mean (SequenceConfig)
                continue
            t0 = time.perf_counter()
            p = fit_sequence_predictor(archs[train], lat[train], names, SequenceConfig(
                readout=ro, base=base, epochs=epochs, batch_size=128, seed=seed, hidden=hidden))
            pred = p.predict_all(archs[test])
            key = variant(ro, base)
            models[key] = p
            out[key] = {n: _scores(lat[test, j], pred[:, j]) for j, n in enumerate(names)}
            out[key]["_train_seconds"] = round(time.perf_counter() - t0, 1)
            out[key]["_best_epoch"] = p.info["best_epoch"]
            out[key]["_dev_loss"] = round(p.info["dev_loss"], 5)
            out[key]["_dev_score"] = round(p.info["dev_score"], 5)
            for j, n in enumerate(names):
                out[key][n]["dev_score"] = round(p.info["dev_score_per_output"][j], 5)
    add, add_log = {}, {}
    for j, n in enumerate(names):
        ok = np.isfinite(lat[train, j])
        a_tr, y_tr = archs[train][ok], lat[train, j][ok]
        add[n] = _scores(lat[test, j], layer_table_predict(fit_layer_table(a_tr, y_tr), archs[test]))
        add_log[n] = _scores(lat[test, j], np.exp(layer_table_predict(fit_layer_table(a_tr, np.log(y_tr)),
                                                                      archs[test])))
    out["additive"] = add  # the project's table form: ms add up over blocks, resolution an additive term
    out["additive_log"] = add_log  # the same fit of log ms: block costs and resolution multiply
    return out, models


def machine_repeatability(a, y, test, again_csv, models: dict, variant_name: str) -> dict:
    """The second timing of the held-out subnets found in ``again_csv`` against the first, beside the table's
    and ``variant_name``'s predictions of the first timing on the same subnets.

    ``second_timing``: the second timing taken as a prediction of the first (MAPE, Spearman, share within
    +-10 %); ``second_timing_scaled``: the same after one common scale (the median ratio: the machine's speed
    moved between the two runs, which changes no ranking). A predictor fitted on first timings can do no better
    than the first timing's own noise, which this measures (half of it is the second timing's).
    """
    from nasjax.predictors.sequence import fit_layer_table, layer_table_predict
    from nasjax.predictors.sequence_data import read_measured_csv

    a2, y2 = read_measured_csv(again_csv)
    first = {tuple(r): i for i, r in enumerate(a[test].tolist())}
    pairs = [(first[tuple(r)], j) for j, r in enumerate(a2.tolist()) if tuple(r) in first]
    if len(pairs) < 10:
        return {"rows": len(pairs), "skipped": "fewer than 10 held-out subnets in the repeat file"}
    ti, tj = np.array(pairs).T
    y1, again = y[test][ti], y2[tj]
    train = np.setdiff1d(np.arange(len(a)), test)
    table = layer_table_predict(fit_layer_table(a[train], y[train]), a[test][ti])
    scale = float(np.median(y1 / again))
    return {"rows": int(len(pairs)), "second_timing": _scores(y1, again),
            "second_timing_scaled": {**_scores(y1, scale * again), "scale": round(scale, 4)},
            "additive": _scores(y1, table),
            variant_name: _scores(y1, models[variant_name].predict_all(a[test][ti])[:, 0])}


def goal_counts(scores: dict, names) -> dict:
    """The sequence predictor's goals for the variant with the lowest dev score (training subnets' dev split),
    counted over the settings ``names``; ``plain``: the same for the lowest-dev-score variant without a base;
    ``per_setting``: each setting's own lowest-dev-score variant (still chosen on the dev split only)."""
    keys = [k for k, v in scores.items() if k.startswith("sequence_")]

    def counts(pick: dict) -> dict:
        seq = {n: scores[pick[n]][n] for n in names}
        return {"settings": len(names),
                "lower_mape_than_additive": sum(seq[n]["mape"] < scores["additive"][n]["mape"] for n in names),
                "lower_mape_than_additive_log": sum(seq[n]["mape"] < scores["additive_log"][n]["mape"]
                                                    for n in names),
                "lower_mape_than_both": sum(seq[n]["mape"] < min(scores["additive"][n]["mape"],
                                                                 scores["additive_log"][n]["mape"]) for n in names),
                "within10_ge_95": sum(seq[n]["within10"] >= 0.95 for n in names)}

    def one(ks) -> dict:
        k = min(ks, key=lambda k: scores[k]["_dev_score"])
        return {"variant": k, "dev_score": scores[k]["_dev_score"], **counts(dict.fromkeys(names, k))}

    out = one(keys)
    plain = [k for k in keys if k.count("_") == 1]
    if plain and out["variant"] not in plain:
        out["plain"] = one(plain)
    pick = {n: min(keys, key=lambda k: scores[k][n]["dev_score"]) for n in names}
    out["per_setting"] = {"variants": pick, **counts(pick)}
    return out


def noise_diagnosis(archs, lat, names, train, test) -> dict:
    """Where the residual of the log-additive fit comes from, per setting (a diagnosis, not a predictor).

    ``lag1``: correlation of consecutive rows' residuals in the file's (measurement) order -- a slow drift of
    the machine during measurement shows as lag1 >> 0; ``cross``: the mean correlation of the residuals with
    the other settings of the same batch size (the same 5,000 subnets on other GPUs; an architecture effect the
    model misses would be shared, measurement noise is not); ``within10_drift_removed``: the held-out share
    within +-10 % after subtracting the median residual of the 10 rows measured before and after each row
    (neighbours' labels, so it is the ceiling a drift-free measurement would allow, not a prediction).
    """
    from nasjax.predictors.sequence import fit_layer_table, layer_table_predict

    res = {}
    for j, n in enumerate(names):
        g = fit_layer_table(archs[train], np.log(lat[train, j]))
        res[n] = np.log(lat[:, j]) - layer_table_predict(g, archs)
    out = {}
    for n, r in res.items():
        k = 10
        nb = np.array([np.median(np.r_[r[max(0, i - k):i], r[i + 1:i + 1 + k]]) for i in range(len(r))])
        batch = n.rsplit("_", 1)[-1]
        cross = [float(np.corrcoef(r, res[m])[0, 1]) for m in names if m != n and m.rsplit("_", 1)[-1] == batch]
        out[n] = {"residual_sd_log": round(float(r[test].std()), 4),
                  "lag1": round(float(np.corrcoef(r[:-1], r[1:])[0, 1]), 3),
                  "cross": round(float(np.mean(cross)), 3) if cross else None,
                  "within10_fit": round(float(np.mean(np.abs(np.exp(-r[test]) - 1) <= 0.1)), 4),
                  "within10_drift_removed": round(float(np.mean(np.abs(np.exp(-(r - nb)[test]) - 1) <= 0.1)), 4)}
    return out


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


def _reduce(space, prof, rule: str, z: float, level: str, name: str, stats=None, sources=(), depths: bool = True):
    """The reduced space of a two-metric profile (accuracy, latency) by ``rule`` (auto, swaps, fronts, stats);
    ``sources``: the profile's (accuracy, latency) sources, which the swap rule evaluates swapped networks with."""
    from nasjax.profiling.reduce import reduce_profile, reduce_space

    if rule != "stats":
        return reduce_profile(space, prof, sources, rule=rule, level=level, z=z, depths=depths, name=name)
    return reduce_space(space, prof.blocks, *stats, level=level, depths=depths, name=name)


def _summary(r: dict, keys, variants=("full", "reduced", "random")) -> dict:
    return {f"{k}_{v}": [round(float(np.mean(r[k][v])), 5), round(float(np.std(r[k][v])), 5)]
            for k in keys for v in variants}


def _paired(r: dict, key: str, scale: float = 1.0) -> dict:
    """Paired differences over seeds (the same seed's runs share their random numbers): ``[mean, se]`` of
    ``reduced - full`` and of ``random - reduced``, ``se = sd / sqrt(S)`` (``ddof = 1``), in units of ``scale``;
    ``r_full_reduced``: the correlation over seeds of the full and reduced scores (what the pairing gains)."""
    f, r_ = np.asarray(r[key]["full"]), np.asarray(r[key]["reduced"])
    ok = f.size > 2 and f.std() > 0 and r_.std() > 0
    out = {"r_full_reduced": round(float(np.corrcoef(f, r_)[0, 1]), 3) if ok else None}
    for name, (a, b) in {"d_reduced_full": ("reduced", "full"), "d_random_reduced": ("random", "reduced")}.items():
        d = (np.asarray(r[key][a]) - np.asarray(r[key][b])) / scale
        se = float(d.std(ddof=1) / np.sqrt(d.size)) if d.size > 1 else float("nan")
        out[name] = [round(float(d.mean()), 6), round(se, 6)]
    return out


def nb201_reduced(dp, acc, lats, seeds, num_random, rule: str = "auto", z: float = 1.0) -> dict:
    from nasjax.profiling.compare import compare_spaces, reference_point, true_front
    from nasjax.profiling.profiles import profile_cells
    from nasjax.search.base import ColumnModel
    from nasjax.search.pareto_mutation import nondominated

    space = get_space("nasbench201")
    res = {}
    for i, (dev, src) in enumerate(zip(dp.devices, dp.sources)):
        if src != "HELP":  # a search needs every cell measured
            continue
        lat = lats[i]
        sources = [acc, ColumnModel(space, lat.archs, lat.values, "latency", "ms", dev)]
        prof = profile_cells(space, acc.archs, sources, blocks=dp.blocks)
        red = _reduce(space, prof, rule, z, "position", f"reduced/{dev}", dp.reduce_inputs(i), sources)
        prob = SearchProblem(space, acc, (Constraint(lat, float(np.nanmax(lat.values)) * 2, "ms"),))
        costs = np.stack([-acc.values, lat.values], 1)
        ideal, ref = reference_point(costs)
        tf = true_front(costs)
        kept = np.all(red.allowed[np.arange(space.num_positions)[None, :], acc.archs], 1)
        row = {"removed": red.num_removed, "removed_blocks": sorted(red.removed),
               "cells": int(kept.sum()), "true_front_cells_lost": int(np.sum(nondominated(costs) & ~kept))}
        if red.num_removed:  # nothing dominated: the reduced space is the full space, nothing to compare
            r = compare_spaces(prob, red, seeds, ref, num_random=num_random, true=tf, ideal=ideal,
                               progress=f"nb201 {dev}")
            row.update(_summary(r, ("hv_ratio", "igd")))
            row.update(_paired(r, "hv_ratio"))
            row["evaluations"] = {v: float(np.mean(r["evaluations"][v])) for v in r["evaluations"]}
        res[dev] = row
    return res


def ofa_reduced(predictor, seeds, num_random, num_archs: int = 20, rule: str = "auto", z: float = 1.0,
                depths: bool = True) -> dict:
    from nasjax.default import load_default
    from nasjax.profiling.compare import compare_spaces, reference_point
    from nasjax.profiling.profiles import profile_blocks
    from nasjax.spaces.structure import structure_of

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
        red = _reduce(space, prof, rule, z, "unit", f"reduced/{name}", (a, t), (acc_t, lat), depths)
        row = {"removed": red.num_removed, "log10_size": round(red.size_log10, 2),
               "removed_blocks": sorted(red.removed)}
        if red.num_removed:
            base = np.stack([-prof.baseline[:, 0], prof.baseline[:, 1]], 1)
            _, ref = reference_point(base)
            prob = SearchProblem(space, acc_t, (Constraint(lat, 1e9, "ms"),))
            r = compare_spaces(prob, red, seeds, ref, num_random=num_random, gates=gates, progress=f"ofa {name}")
            full = float(np.mean(r["hv"]["full"]))
            row.update({f"hv_{v}": [round(float(np.mean(r["hv"][v])) / full, 5),
                                    round(float(np.std(r["hv"][v])) / full, 5)] for v in ("full", "reduced", "random")})
            row.update(_paired(r, "hv", full))
        res[name] = row
    return res


def _goal(rows: dict, key: str, tol: float) -> dict:
    """Counts of the reduced-space goals over the devices whose profile marks a block as dominated.

    ``reduced_ge_full`` / ``random_below_reduced`` compare the means over seeds (the goals as stated). With the
    paired difference ``d = reduced - full`` (mean and standard error over seeds, :func:`_paired`):
    ``reduced_above_full_2se`` counts ``mean(d) - 2 se > 0`` and ``reduced_below_full_2se`` (named)
    ``mean(d) + 2 se < 0`` (a significant gain or loss at about 5 %); ``reduced_noninferior`` counts the
    tolerance test ``mean(d) - 2 se >= -tol`` (no loss larger than ``tol`` of the score, at about 2.5 % one-sided);
    ``random_below_reduced_2se`` counts ``mean(random - reduced) + 2 se < 0``.
    """
    dom = {k: v for k, v in rows.items() if v["removed"] > 0}

    def lo(v, d):
        return v[d][0] - 2 * v[d][1]

    def hi(v, d):
        return v[d][0] + 2 * v[d][1]
    return {"devices": len(rows), "with_dominated_block": len(dom), "tol": tol,
            "reduced_ge_full": sum(v[f"{key}_reduced"][0] >= v[f"{key}_full"][0] for v in dom.values()),
            "random_below_reduced": sum(v[f"{key}_random"][0] < v[f"{key}_reduced"][0] for v in dom.values()),
            "reduced_below_full": sorted(k for k, v in dom.items() if v[f"{key}_reduced"][0] < v[f"{key}_full"][0]),
            "reduced_above_full_2se": sum(lo(v, "d_reduced_full") > 0 for v in dom.values()),
            "reduced_below_full_2se": sorted(k for k, v in dom.items() if hi(v, "d_reduced_full") < 0),
            "reduced_noninferior": sum(lo(v, "d_reduced_full") >= -tol for v in dom.values()),
            "random_below_reduced_2se": sum(hi(v, "d_random_reduced") < 0 for v in dom.values())}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=40)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--readouts", default="last,ends,mean,sum")
    ap.add_argument("--bases", default="none,additive_log,additive_ms",
                    help="comma list of SequenceConfig.base values (none = the plain GRU)")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--num_random", type=int, default=3)
    ap.add_argument("--rule", default="auto", choices=("auto", "swaps", "fronts", "stats"),
                    help="the reduction rule (auto: fronts for an exhaustive profile, swaps for a sampled one)")
    ap.add_argument("--z", type=float, default=1.0, help="front rule margin, in standard errors")
    ap.add_argument("--prune_depths", action="store_true",
                    help="OFA: let the rule remove stage depths too (default: only the layers' blocks, the "
                         "operations the original profiles, are pruned; every depth is kept)")
    ap.add_argument("--tol", type=float, default=0.001,
                    help="tolerance of the non-inferiority test (fraction of the true front's HV, or of the full "
                         "space's mean HV on OFA)")
    ap.add_argument("--parts", default="help,machine,nb201,ofa",
                    help="comma list of help (HELP OFA predictors), machine, nb201, ofa (the OFA search needs help)")
    ap.add_argument("--machine_latency", default="", help="CSV arch,resolution,latency_ms measured on this machine")
    ap.add_argument("--machine_repeat", default="",
                    help="CSV of some of the --machine_latency subnets timed again (measure_subnets.py --archs_from)")
    ap.add_argument("--save_predictor", default="", help="write the chosen variant's HELP predictor here (.npz)")
    ap.add_argument("--out_dir", default="", help="write the NB201 cross-device CSV and picture here")
    ap.add_argument("--skip_ofa_search", action="store_true")
    args = ap.parse_args(argv)
    from nasjax.errors import require

    parts = {p for p in args.parts.split(",") if p}
    require(parts <= {"help", "machine", "nb201", "ofa"}, "--parts", args.parts, "a comma list of help, machine, "
            "nb201, ofa")
    require("ofa" not in parts or "help" in parts, "--parts", args.parts, "help with ofa (its latency predictor)")
    readouts = [r for r in args.readouts.split(",") if r]
    bases = [b for b in args.bases.split(",") if b]
    t0 = time.perf_counter()
    result: dict = {"load_average_start": [round(x, 2) for x in os.getloadavg()],
                    "config": {"epochs": args.epochs, "hidden": args.hidden, "readouts": readouts, "bases": bases,
                               "rule": args.rule, "z": args.z, "keep_depths": not args.prune_depths, "tol": args.tol,
                               "seeds": args.seeds, "num_random": args.num_random}}
    best = None
    if "help" in parts:
        from nasjax.benchmarks import latency_sets as ls
        from nasjax.predictors.sequence_data import help_ofa_archs

        help_set = ls.load_help_ofa()
        archs, lat = help_ofa_archs(help_set.archs), help_set.latency_ms
        perm = np.random.default_rng(0).permutation(len(archs))
        test, train = perm[:1000], perm[1000:]
        help_scores, models = sequence_vs_additive(archs, lat, help_set.devices, train, test, args.epochs, readouts,
                                                   hidden=args.hidden, bases=bases)
        result["help_ofa"] = help_scores
        # the variant is chosen on the training subnets' dev split, never on the held-out ones
        result["help_ofa_goal"] = goal_counts(help_scores, help_set.devices)
        best = result["help_ofa_goal"]["variant"]
        result["help_ofa_noise"] = noise_diagnosis(archs, lat, help_set.devices, train, test)
        if args.save_predictor:
            models[best].save(args.save_predictor)
    if "machine" in parts:
        if args.machine_latency:
            from nasjax.predictors.sequence_data import read_measured_csv

            a, y = read_measured_csv(args.machine_latency)
            p = np.random.default_rng(0).permutation(len(a))
            k = max(1, len(a) // 5)
            m_scores, m_models = sequence_vs_additive(a, y[:, None], ("this_machine",), p[k:], p[:k], args.epochs,
                                                      readouts, hidden=args.hidden, bases=bases)
            result["machine_goal"] = goal_counts(m_scores, ("this_machine",))
            m_scores["train_rows"], m_scores["test_rows"] = int(len(a) - k), int(k)
            result["machine"] = m_scores
            if args.machine_repeat:
                result["machine_repeatability"] = machine_repeatability(
                    a, y, p[:k], args.machine_repeat, m_models, result["machine_goal"]["variant"])
        else:
            result["machine"] = "skipped: no --machine_latency file (subnets measured on this machine)"
    if args.out_dir:
        Path(args.out_dir).mkdir(parents=True, exist_ok=True)
    seeds = list(range(args.seeds))
    if "nb201" in parts:
        result["nb201_devices"], dp, acc, lats = nb201_devices(args.out_dir)
        result["nb201_reduced"] = nb201_reduced(dp, acc, lats, seeds, args.num_random, args.rule, args.z)
        result["nb201_goal"] = _goal(result["nb201_reduced"], "hv_ratio", args.tol)
    if "ofa" in parts and not args.skip_ofa_search:
        result["ofa_reduced"] = ofa_reduced(models[best], seeds, args.num_random, rule=args.rule, z=args.z,
                                            depths=args.prune_depths)
        result["ofa_goal"] = _goal(result["ofa_reduced"], "hv", args.tol)
    result["load_average_end"] = [round(x, 2) for x in os.getloadavg()]
    result["seconds"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
