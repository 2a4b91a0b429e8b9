"""Benchmark: latency tables checked against HELP's measured OFA subnets and calibrated to new targets.

Everything is computed in one run (latency in ms; metrics from ``nasjax.metrics``: MAPE, Kendall tau,
share within +-10 %, worst error):

1. HELP check. HELP's 5,000 measured OFA MobileNetV3 subnets (ks/e/d/resolution) on its 12 GPU settings.
   (a) An imported OFA table: the published OFA-style YAML LUTs describe another network (ProxylessNAS-like
   widths 20-30-40-80-100-190-320, expand 4/5/6) on an unstated device, so none matches a HELP setting;
   reported as not applicable. (b) The additive layer model (``nasjax.hardware.calibration.ofa_fit``)
   fitted per setting on a training split (4,000 subnets, seed 0) and evaluated on the 1,000 held out.
2. Calibration to HELP's settings: the table fitted on a source setting's training split, adapted to a
   target setting from k = 0 / 1 / 5 / 10 reference subnets of the target (designed before measurement
   among the held-out subnets, ``design_from_candidates``), evaluated on the other held-out subnets. Two
   moves per target: another GPU at the same batch size (source 2080ti, or titan_rtx for 2080ti targets),
   and the same GPU at another batch size (source batch 64, or 32 for batch-64 targets). Baselines printed
   beside: k = 0 (the source unchanged) and the global scale at k = 10.
3. A move on this machine: the embedded default's stage-block table measured at batch 1
   (``measure_stage_block_table``) used for subnets run at batch ``--target_batch``. Every subnet is timed
   end to end as its own static program (compiled first, then round-robin), refs and evaluation subnets
   interleaved in one timing run, also at batch 1 (the table's own check).
4. Moves between the full-size OFA MobileNetV3 tables (224 px, batch 1) of every machine and this one: the
   evaluation subnets and each source's designed references timed end to end in the target's runtime.
   ``--tables_ks=25,50`` adds larger reference counts for the moves of ``--tables_ks_kinds`` (default: the
   moves between runtimes). Those moves are also calibrated with ``method="stage_kernel_scales"`` by name
   (from k = 10), on the same references and on references designed for that method.
5. The ceiling of a calibration of a given form, nothing timed: for every pair of this machine's full-size
   tables that differ in the runtime or the thread count, the source's cells regrouped (per stage, per
   kernel size, per block, per stage and kernel size, per stage and block) and one scale per group fitted by
   least squares to the target table's predictions of 3,000 random subnets, as if that many references had
   been timed; Kendall tau and MAPE against the target table on 2,000 others. What a form cannot reach with
   3,000 references it cannot reach with 10. Then, for the stage form and the two per-stage forms, the same
   fit from k = 10 / 25 / 50 / 100 random references only (no timing noise; the scales shrunk towards the
   references' common scale with the calibration's prior width, ``CalibrationPriors.stage_sd``), mean tau
   over 5 draws: how many references a form needs before its ceiling is in reach.

Goal: at k = 10 the moved table has MAPE <= 5 %, Kendall tau >= 0.9, >= 95 % within +-10 %.
Run ``python scripts/bench_calibration.py`` (about 2-4 minutes on 2 cores) or ``--skip_machine``. The last
line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nasjax import metrics  # noqa: E402
from nasjax.benchmarks.latency_sets import load_help_ofa  # noqa: E402
from nasjax.errors import NasjaxInputError  # noqa: E402
from nasjax.hardware.calibration import (  # noqa: E402
    METHODS,
    TableSource,
    calibrate,
    design_from_candidates,
    design_references,
    fit_ofa_layer_model,
)

KS = (0, 1, 5, 10)
MOVE_KINDS = ("own_table", "other_machine", "other_runtime", "other_threads")
GOAL = {"mape_percent": 5.0, "kendall_tau": 0.9, "within_10_percent": 0.95}


def _m(y, p) -> dict:
    r = metrics.latency_metrics(y, p)
    return {k: round(float(r[k]), 4) for k in ("mape_percent", "kendall_tau", "within_10_percent",
                                               "worst_error_percent")} | {"n": int(r["n"])}


def _meets(r: dict) -> bool:
    return (r["mape_percent"] <= GOAL["mape_percent"] and r["kendall_tau"] >= GOAL["kendall_tau"]
            and r["within_10_percent"] >= GOAL["within_10_percent"])


def _kshot(src, archs, y, pool, k_list=KS, per_method: bool = False) -> dict:
    """Error vs k of ``src`` calibrated on the first k designed refs among ``pool``, on the rest of the pool
    (with ``per_method``: also every method forced, at k = 5 and 10)."""
    order = design_from_candidates(src, archs[pool], max(k_list))
    out = {}
    rest = np.setdiff1d(pool, pool[order])  # one evaluation set for every k
    for k in k_list:
        refs = pool[order[:k]]
        c = calibrate(src, archs[refs], y[refs])
        out[f"k{k}"] = _m(y[rest], c.predict(archs[rest])) | {"method": c.method}
    g = calibrate(src, archs[pool[order]], y[pool[order]], method="global_scale")
    out["k10_global_scale"] = _m(y[rest], g.predict(archs[rest]))
    if per_method:
        for k in (5, 10):
            refs = pool[order[:k]]
            for m in METHODS[1:]:
                if (m == "kind_scales" and not hasattr(src, "kinds")) or (
                        m == "stage_kernel_scales" and getattr(src, "kernel_groups", None) is None):
                    continue
                c = calibrate(src, archs[refs], y[refs], method=m)
                out[f"k{k}_forced_{m}"] = _m(y[rest], c.predict(archs[rest]))
    return out


def help_part(seed: int, per_method: bool = False) -> dict:
    s = load_help_ofa()
    perm = np.random.default_rng(seed).permutation(len(s.archs))
    tr, te = perm[:4000], perm[4000:]
    models, check = {}, {}
    for d in s.devices:
        y = s.column(d)
        models[d] = fit_ofa_layer_model(s.archs[tr], y[tr], device=d)
        check[d] = _m(y[te], models[d].predict(s.archs[te]))
    print("1. HELP check, additive layer table fitted on 4,000 subnets, 1,000 held out (MAPE % / tau / within 10 % "
          "/ worst %):")
    for d, r in check.items():
        print(f"   {d:14s} {r['mape_percent']:6.2f} {r['kendall_tau']:6.3f} {r['within_10_percent']:6.3f} "
              f"{r['worst_error_percent']:7.2f}")
    moves = {}
    for tgt in s.devices:
        gpu, batch = tgt.rsplit("_", 1)
        other_gpu = ("titan_rtx" if gpu == "2080ti" else "2080ti") + f"_{batch}"
        other_batch = f"{gpu}_{'32' if batch == '64' else '64'}"
        y = s.column(tgt)
        for kind, src in (("other_gpu", other_gpu), ("other_batch", other_batch)):
            moves[f"{src}->{tgt}"] = {"kind": kind} | _kshot(models[src], s.archs, y, te, per_method=per_method)
    print("2. calibration to HELP settings, error vs k (MAPE % / tau / within 10 %), k=10 method; baseline k=10 "
          "global scale:")
    for name, r in moves.items():
        row = " | ".join(f"k{k} {r[f'k{k}']['mape_percent']:5.1f}/{r[f'k{k}']['kendall_tau']:.2f}/"
                         f"{r[f'k{k}']['within_10_percent']:.2f}" for k in KS)
        g = r["k10_global_scale"]
        print(f"   {name:26s} {row}  [{r['k10']['method']}]  global {g['mape_percent']:.1f}/{g['kendall_tau']:.2f}")
    summary = {}
    for kind in ("other_gpu", "other_batch"):
        rs = [r for r in moves.values() if r["kind"] == kind]
        summary[kind] = {f"k{k}_mean_mape": round(float(np.mean([r[f"k{k}"]["mape_percent"] for r in rs])), 3)
                         for k in KS}
        summary[kind]["k10_mean_tau"] = round(float(np.mean([r["k10"]["kendall_tau"] for r in rs])), 4)
        summary[kind]["k10_mean_within_10"] = round(float(np.mean([r["k10"]["within_10_percent"] for r in rs])), 4)
        summary[kind]["k10_meets_goal"] = [n for n, r in moves.items() if r["kind"] == kind and _meets(r["k10"])]
        summary[kind]["k10_global_mean_mape"] = round(float(np.mean([r["k10_global_scale"]["mape_percent"]
                                                                     for r in rs])), 3)
    for kind, v in summary.items():
        print(f"   {kind}: mean MAPE k0 {v['k0_mean_mape']:.1f} -> k10 {v['k10_mean_mape']:.1f} % (global scale "
              f"{v['k10_global_mean_mape']:.1f} %), mean tau {v['k10_mean_tau']:.3f}, within 10 % "
              f"{v['k10_mean_within_10']:.3f}; meet the goal at k=10: {len(v['k10_meets_goal'])} of "
              f"{sum(r['kind'] == kind for r in moves.values())}")
    if per_method:  # the leave-one-out choice against every method forced, over all moves
        summary["per_method"] = {}
        for k in (5, 10):
            forced = [m for m in METHODS[1:] if all(f"k{k}_forced_{m}" in r for r in moves.values())]
            row = {"loo_choice": float(np.mean([r[f"k{k}"]["mape_percent"] for r in moves.values()]))}
            row |= {m: float(np.mean([r[f"k{k}_forced_{m}"]["mape_percent"] for r in moves.values()]))
                    for m in forced}
            row["oracle"] = float(np.mean([min(r[f"k{k}_forced_{m}"]["mape_percent"] for m in forced)
                                           for r in moves.values()]))
            summary["per_method"][f"k{k}_mean_mape"] = {n: round(v, 3) for n, v in row.items()}
            print(f"   k={k} mean MAPE over all moves: " + ", ".join(f"{n} {v:.2f}" for n, v in row.items()))
    imported = {"applicable": False, "reason": "the published OFA-style YAML LUTs (sxtyzhangzk-once-for-all) "
                "describe a ProxylessNAS-like network (widths 20-30-40-80-100-190-320, expand 4/5/6) on an "
                "unstated device; HELP's subnets are OFA MobileNetV3 (expand 3/4/6) on 12 GPU settings"}
    return {"help_check": {"imported_ofa_table": imported, "fitted_layer_table": check},
            "help_calibration": {"moves": moves, "summary": summary}}


def machine_part(args) -> dict:
    import jax
    import jax.numpy as jnp
    from tqdm.auto import tqdm

    from nasjax.default import load_default
    from nasjax.hardware.latency import measure_stage_block_table, subnet_program, time_calls
    from nasjax.io import enable_jax_cache

    enable_jax_cache()
    d = load_default()
    state, cfg, bs, res = d["state"], d["config"], d["block_set"], int(d["manifest"]["resolution"])
    res = args.resolution or res
    space = bs.space()
    t0 = time.perf_counter()
    table = measure_stage_block_table(state, cfg, bs, res, warmup=args.warmup, repeats=args.repeats, progress=True)
    t_table = time.perf_counter() - t0
    refs = design_references(space, 10, seed=args.seed, table=table)
    pool = space.all_archs()
    pool = pool[~(pool[:, None, :] == refs[None]).all(-1).any(1)]
    evals = pool[np.random.default_rng(args.seed).choice(len(pool), args.eval_subnets, replace=False)]
    archs = np.concatenate([refs, evals])
    rng = np.random.default_rng(args.seed)
    out = {}
    for batch in (1, args.target_batch):
        x = jnp.asarray(rng.standard_normal((batch, res, res, cfg.in_channels)).astype(np.float32))
        calls = []
        for a in tqdm(archs, desc=f"end to end, batch {batch}: compiling", unit="program", dynamic_ncols=True):
            fn = subnet_program(state, bs.to_ofa(a))
            jax.block_until_ready(fn(x))  # compile before any timing
            calls.append((fn, (x,)))
        out[batch] = time_calls(calls, warmup=args.warmup, repeats=args.repeats)
        del calls
        jax.clear_caches()
    y1, yb = out[1][10:], out[args.target_batch]
    own = _m(y1, table.predict(evals))
    kshot = {}
    for k in KS:
        c = calibrate(table, refs[:k], yb[:k])
        kshot[f"k{k}"] = _m(yb[10:], c.predict(evals)) | {"method": c.method}
    g = calibrate(table, refs, yb[:10], method="global_scale")
    kshot["k10_global_scale"] = _m(yb[10:], g.predict(evals))
    print(f"3. this machine ({table.device}): stage-block table at batch 1, {res} px, measured in {t_table:.1f} s")
    print(f"   table vs end-to-end at batch 1 ({len(evals)} subnets, mean {y1.mean():.3f} ms): "
          f"MAPE {own['mape_percent']:.2f} %, tau {own['kendall_tau']:.3f}, within 10 % {own['within_10_percent']:.3f}")
    print(f"   moved to batch {args.target_batch} (mean {yb[10:].mean():.3f} ms):")
    for k in KS:
        r = kshot[f"k{k}"]
        print(f"   k={k:2d} {r['method']:20s} MAPE {r['mape_percent']:6.2f} %  tau {r['kendall_tau']:.3f}  within 10 % "
              f"{r['within_10_percent']:.3f}  worst {r['worst_error_percent']:.1f} %")
    gk = kshot["k10_global_scale"]
    print(f"   baseline k=10 global scale: MAPE {gk['mape_percent']:.2f} %, tau {gk['kendall_tau']:.3f}; "
          f"ratio MAPE calibrated / global = {kshot['k10']['mape_percent'] / max(gk['mape_percent'], 1e-9):.2f}")
    return {"device": table.device, "resolution": res, "source_batch": 1, "target_batch": args.target_batch,
            "eval_subnets": len(evals), "repeats": args.repeats, "table_seconds": round(t_table, 1),
            "table_check_batch1": own, "moved": kshot, "k10_meets_goal": _meets(kshot["k10"]),
            "mean_ms_batch1": round(float(y1.mean()), 4), "mean_ms_target": round(float(yb[10:].mean()), 4)}


def _table_files(luts: Path, width: float) -> list[Path]:
    """The builder's OFA layer-view tables at ``width`` (224 px, batch 1) under ``luts``, any device."""
    sub = luts / ("mobilenetv3_layers" if width == 1.0 else f"mobilenetv3_layers_w{width:g}")
    return sorted(p for p in sub.glob("cpu-*-224px-b1*.json") if not p.name.startswith("."))


def _move_kind(src: dict, tgt: dict) -> str | None:
    """How a source table differs from the target (one thing at a time), or ``None`` (not a single move)."""
    same = {k: src[k] == tgt[k] for k in ("device", "runtime", "threads")}
    if all(same.values()):
        return "own_table"
    if sum(not v for v in same.values()) != 1:
        return None
    return {"device": "other_machine", "runtime": "other_runtime", "threads": "other_threads"}[
        next(k for k, v in same.items() if not v)]


def _table_ks(args) -> tuple[int, ...]:
    """Part 4's reference counts (``--tables_ks``): 0, 1, 5, 10 always, and any larger ones asked for."""
    try:
        extra = [int(k) for k in args.tables_ks.split(",") if k.strip()]
    except ValueError:
        raise NasjaxInputError(f"tables_ks: got {args.tables_ks!r}, expected comma-separated integers") from None
    bad = [k for k in extra if not 0 <= k <= 300]
    if bad:
        raise NasjaxInputError(f"tables_ks: got {bad[0]}, expected reference counts in 0..300 (the candidate pool)")
    unknown = [k for k in args.tables_ks_kinds.split(",") if k and k not in MOVE_KINDS]
    if unknown:
        raise NasjaxInputError(f"tables_ks_kinds: got {unknown[0]!r}, expected some of {', '.join(MOVE_KINDS)}")
    return tuple(sorted(set(KS) | set(extra)))


def tables_target(args) -> dict:
    """In this process (its XLA threads already set): time the evaluation subnets and every source's designed
    references end to end in the target runtime, and calibrate each source table to them."""
    from experiments.latency_table import supernet
    from nasjax.hardware import lut_builder as lb
    from nasjax.hardware.lut_validate import measure_archs
    from nasjax.hardware.runtimes import device_name, get_runtime
    from nasjax.io import enable_jax_cache
    from nasjax.spaces.mobilenetv3 import mobilenetv3_layers_space
    from nasjax.tables import Table

    rt, threads, width = args.tables_target.split(":")
    threads, width = int(threads), float(width)
    tgt = {"device": device_name(), "runtime": rt, "threads": threads}
    sources = {}
    for p in _table_files(Path(args.luts_dir), width):
        t = Table.load(p)
        d = {"device": t.provenance.get("device", t.device), "runtime": t.provenance["runtime"],
             "threads": int(t.provenance["threads"])}
        kind = _move_kind(d, tgt)
        if kind is not None:
            sources[p.name] = (kind, t)
    space = mobilenetv3_layers_space()
    evals = space.random(args.seed + 1, args.table_eval_subnets)
    pool = space.random(args.seed + 2, 300)
    ks = _table_ks(args)
    kinds_more = {k for k in args.tables_ks_kinds.split(",") if k}
    ks_of = {n: ks if kind in kinds_more else KS for n, (kind, _) in sources.items()}
    designs = {n: pool[design_from_candidates(t, pool, max(ks_of[n]))] for n, (_, t) in sources.items()}
    # the moves that also get stage_kernel_scales by name: with these refs and with a design of its own
    by_name = [n for n, (kind, t) in sources.items() if kind in kinds_more and TableSource(t).kernel_groups is not None]
    designs_sk = {n: pool[design_from_candidates(sources[n][1], pool, max(ks_of[n]), method="stage_kernel_scales")]
                  for n in by_name}
    archs = np.unique(np.concatenate([evals] + list(designs.values()) + list(designs_sk.values())), axis=0)
    # np.unique sorts; timed in that order, each chunk of measure_archs would hold subnets alike in their first
    # layers, and a chunk's residual speed error would follow the architecture. Time them in a seeded order.
    archs = archs[np.random.default_rng(args.seed + 3).permutation(len(archs))]
    enable_jax_cache()
    state, cfg, bs = supernet("random", width)
    lspace = lb.lut_space("mobilenetv3_layers", state, cfg, bs)
    runtime = get_runtime(rt, threads)
    load0 = os.getloadavg()
    y = measure_archs(lspace, runtime, archs, batch_size=1, resolution=224, warmup=args.warmup,
                      repeats=args.repeats, progress=True)
    row = {a.tobytes(): v for a, v in zip(archs.astype(np.int64), y)}
    meas = lambda A: np.array([row[a.tobytes()] for a in np.asarray(A, np.int64)])  # noqa: E731
    ye = meas(evals)
    out = {"target": tgt | {"width": width, "clock": runtime.clock}, "eval_subnets": len(evals),
           "mean_measured_ms": round(float(ye.mean()), 4), "load_average": [list(load0), list(os.getloadavg())],
           "moves": {}}
    for n, (kind, t) in sources.items():
        r = {"kind": kind}
        for k in ks_of[n]:
            c = calibrate(t, designs[n][:k], meas(designs[n][:k]))
            r[f"k{k}"] = _m(ye, c.predict(evals)) | {"method": c.method}
            if k >= 10 and n in by_name:
                for key, d in ((f"k{k}_stage_kernel_scales", designs[n]),
                               (f"k{k}_stage_kernel_scales_own_design", designs_sk[n])):
                    c = calibrate(t, d[:k], meas(d[:k]), method="stage_kernel_scales")
                    r[key] = _m(ye, c.predict(evals))
        g = calibrate(t, designs[n][:10], meas(designs[n][:10]), method="global_scale")
        r["k10_global_scale"] = _m(ye, g.predict(evals))
        out["moves"][n] = r
    return out


def tables_part(args) -> dict:
    """Every target (runtime x threads, width 1.0, this machine) in its own subprocess (XLA's thread flags)."""
    from nasjax.hardware.runtimes import run_json_with_threads

    targets = [t for t in args.tables_targets.split(",") if t]
    res = {}
    print("4. moves between the full-size OFA MobileNetV3 tables (224 px, batch 1) and this machine, error vs k "
          "on the evaluation subnets (MAPE % / tau / within 10 %):")
    for t in targets:
        rt, threads, _ = t.split(":")
        rc, r = run_json_with_threads(rt, int(threads), [__file__, f"--tables_target={t}"] + [
            a for a in sys.argv[1:] if not a.startswith("--tables_targets")], "tables_out")
        if rc != 0:
            raise NasjaxInputError(f"tables_targets: measuring target {t!r} failed with exit code {rc}")
        res[t] = r
        print(f"   target {t} (mean {r['mean_measured_ms']:.3f} ms, {r['eval_subnets']} subnets, load "
              f"{[round(x, 2) for x in r['load_average'][1]]}):")
        for n, m in r["moves"].items():
            row = " | ".join(f"k{k} {m[f'k{k}']['mape_percent']:5.1f}/{m[f'k{k}']['kendall_tau']:.3f}/"
                             f"{m[f'k{k}']['within_10_percent']:.2f}" for k in _table_ks(args) if f"k{k}" in m)
            g = m["k10_global_scale"]
            print(f"     {m['kind']:14s} {n:52s} {row} [{m['k10']['method']}] global {g['mape_percent']:.1f}/"
                  f"{g['kendall_tau']:.3f}{'  MEETS' if _meets(m['k10']) else ''}")
            for suffix, label in (("_stage_kernel_scales", "these refs"), ("_stage_kernel_scales_own_design",
                                                                             "its own design")):
                sk = [(key.split("_")[0], v) for key, v in m.items() if key.endswith(suffix)]
                if sk:
                    print(f"       stage_kernel_scales by name, {label}: " + " | ".join(
                        f"{k} {v['mape_percent']:.1f}/{v['kendall_tau']:.3f}/{v['within_10_percent']:.2f}"
                        for k, v in sk))
    moves = [m | {"target": t, "source": n} for t, r in res.items() for n, m in r["moves"].items()]
    summary = {kind: {"n": sum(m["kind"] == kind for m in moves),
                      "k10_meets_goal": [f"{m['source']}->{m['target']}" for m in moves
                                         if m["kind"] == kind and _meets(m["k10"])],
                      "k10_mean_mape": round(float(np.mean([m["k10"]["mape_percent"] for m in moves
                                                            if m["kind"] == kind] or [np.nan])), 3)}
               for kind in MOVE_KINDS}
    return {"targets": res, "summary": summary}


#: part 5's groupings of the cells of a ``mobilenetv3_layers`` table (the fixed part is always its own group)
CEILING_FORMS = ("stage", "kernel", "block", "stage+block", "stage x kernel", "stage x block")


CEILING_K_FORMS = ("stage", "stage x kernel", "stage x block")
CEILING_KS = (10, 25, 50, 100)


def _shrunk_fit(F, y) -> np.ndarray:
    """Group scales (and an intercept, the last column of ``F [k, q]``) fitted to ``y [k]`` in relative error
    by the calibration's Bayesian regression (:func:`~nasjax.hardware.fewshot.bayes.blr`) and its priors
    (``CalibrationPriors``): each scale centred on the references' common scale ``s0`` with sd
    ``stage_sd * s0``, the intercept on 0 with sd ``intercept_sd`` times the mean latency, noise ``noise_sd``."""
    from nasjax.hardware.calibration import CalibrationPriors
    from nasjax.hardware.fewshot.bayes import blr

    pr = CalibrationPriors()
    s0 = float(np.exp(np.mean(np.log(y / F[:, :-1].sum(1)))))
    m = np.r_[np.full(F.shape[1] - 1, s0), 0.0]
    sd = np.r_[np.full(F.shape[1] - 1, pr.stage_sd * s0), pr.intercept_sd * y.mean()]
    return blr(F / y[:, None], np.ones(len(y)), m, np.diag(sd ** 2), pr.noise_sd ** 2)[0]


def _cell_groups(src: TableSource, form: str) -> np.ndarray:
    """``[1 + P K]`` group of every cell of ``src.cells`` under ``form`` (0 = the fixed part): the source's
    stages and (stage, kernel size) groups, or the blocks of the layer choices' ``k<kernel>e<expansion>``
    labels, a depth position's cells being one further block."""
    if form == "stage":
        return src.groups
    if form == "stage x kernel":
        return src.kernel_groups
    from nasjax.spaces.mobilenetv3 import mobilenetv3_layers_space

    sp = mobilenetv3_layers_space()
    P, K = src.table.shape
    labels = [sp.choices[i][c] if c < len(sp.choices[i]) else sp.choices[i][0] for i in range(P) for c in range(K)]
    blocks = sorted({lab for lab in labels if lab.startswith("k")}) + ["depth"]
    block = np.array([blocks.index(lab if lab.startswith("k") else "depth") for lab in labels])
    kernel = np.array([int(lab[1]) if lab.startswith("k") else 0 for lab in labels])
    key = {"kernel": kernel, "block": block, "stage x block": src.groups[1:] * 100 + block}[form]
    return np.concatenate([[0], 1 + np.unique(key, return_inverse=True)[1]])


def ceiling_part(args) -> dict:
    """Part 5 (module docstring): tau / MAPE of each calibration form with unlimited references."""
    from nasjax.hardware.runtimes import device_name
    from nasjax.spaces.mobilenetv3 import mobilenetv3_layers_space
    from nasjax.tables import Table

    space = mobilenetv3_layers_space()
    fit_archs, eval_archs = space.random(args.seed + 4, 3000), space.random(args.seed + 5, 2000)
    print("5. ceiling of each calibration form between this machine's full-size tables (scales fitted to the "
          "target table on 3,000 subnets; Kendall tau / MAPE % on 2,000 others):")
    out = {}
    for width in (1.0, 1.2):
        tables = {}
        for p in _table_files(Path(args.luts_dir), width):
            t = Table.load(p)
            if t.provenance.get("device", t.device) == device_name():
                tables[p.name] = t
        for sn, st in tables.items():
            for tn, tt in tables.items():
                if sn == tn:
                    continue
                kind = _move_kind(*({"device": device_name(), "runtime": t.provenance["runtime"],
                                     "threads": int(t.provenance["threads"])} for t in (st, tt)))
                if kind is None:  # runtime and thread count both differ: not a single move
                    continue
                src, tgt = TableSource(st), TableSource(tt)
                y_fit, y_eval = tgt.predict(fit_archs), tgt.predict(eval_archs)
                X_fit, X_eval = src.cells(fit_archs), src.cells(eval_archs)
                r = {"kind": kind, "width": width, "as_is": _m(y_eval, X_eval.sum(1))}
                for form in ("stage", "kernel", "block", "stage x kernel", "stage x block", "stage+block"):
                    if form == "stage+block":  # the stage scales and the block scales, both
                        g1, g2 = _cell_groups(src, "stage"), _cell_groups(src, "block")
                        agg = [(g1 == q) for q in np.unique(g1)] + [(g2 == q) for q in np.unique(g2) if q > 0]
                    else:
                        g = _cell_groups(src, form)
                        agg = [(g == q) for q in np.unique(g)]
                    A = np.stack(agg, 1).astype(float)
                    # relative least squares (errors relative to the target), with a per-call intercept
                    F_fit, F_eval = (np.concatenate([X @ A, np.ones((len(X), 1))], 1) for X in (X_fit, X_eval))
                    w = np.linalg.lstsq(F_fit / y_fit[:, None], np.ones(len(y_fit)), rcond=None)[0]
                    r[form] = _m(y_eval, F_eval @ w) | {"parameters": int(F_fit.shape[1])}
                    if form in CEILING_K_FORMS:
                        r[form]["tau_from_k_refs"] = {
                            f"k{k}": round(float(np.mean([metrics.kendall(y_eval, F_eval @ _shrunk_fit(
                                F_fit[j], y_fit[j])) for j in (np.random.default_rng(args.seed + d).choice(
                                    len(y_fit), k, replace=False) for d in range(5))])), 4) for k in CEILING_KS}
                name = f"{sn.removesuffix('.json')} -> {tn.removesuffix('.json')}"
                out[f"w{width:g} {name}"] = r
                forms = " | ".join(f"{f} ({r[f]['parameters']}) {r[f]['kendall_tau']:.3f}/{r[f]['mape_percent']:.1f}"
                                   for f in CEILING_FORMS)
                need = " | ".join(f"{f} " + " ".join(f"{k} {v:.3f}" for k, v in r[f]["tau_from_k_refs"].items())
                                  for f in CEILING_K_FORMS)
                print(f"   {kind:13s} w{width:g} {name}: as is {r['as_is']['kendall_tau']:.3f}/"
                      f"{r['as_is']['mape_percent']:.1f} | {forms}\n      from k refs: {need}")
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--skip_help", action="store_true")
    ap.add_argument("--skip_machine", action="store_true")
    ap.add_argument("--per_method", action="store_true",
                    help="HELP moves: also every calibration method forced at k = 5 and 10 (mean MAPE, oracle)")
    ap.add_argument("--target_batch", type=int, default=16)
    ap.add_argument("--resolution", type=int, default=0, help="0: the default's own resolution")
    ap.add_argument("--eval_subnets", type=int, default=40)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--skip_tables", action="store_true", help="skip part 4 (moves between the full-size tables)")
    ap.add_argument("--skip_ceiling", action="store_true", help="skip part 5 (the ceiling of each calibration form)")
    ap.add_argument("--tables_targets", default="onnxruntime:1:1.0,xla:1:1.0,onnxruntime:0:1.0,xla:0:1.0",
                    help="part 4 targets, runtime:threads:width, comma-separated")
    ap.add_argument("--table_eval_subnets", type=int, default=100)
    ap.add_argument("--tables_ks", default="", help="part 4: further reference counts beyond 0,1,5,10 (e.g. 25,50)")
    ap.add_argument("--tables_ks_kinds", default="other_runtime",
                    help="part 4: the moves that get the further reference counts (own_table, other_machine, "
                         "other_runtime, other_threads; comma-separated)")
    ap.add_argument("--luts_dir", default=str(Path(__file__).resolve().parents[1] / "luts"))
    ap.add_argument("--tables_target", default="", help=argparse.SUPPRESS)  # internal: one target, JSON to --tables_out
    ap.add_argument("--tables_out", default="", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.tables_target:
        Path(args.tables_out).write_text(json.dumps(tables_target(args)))
        return 0
    if args.target_batch < 1 or args.eval_subnets < 5 or args.repeats < 1 or args.resolution < 0:
        print("error: target_batch >= 1, eval_subnets >= 5, repeats >= 1, resolution >= 0 expected", file=sys.stderr)
        return 2
    try:
        _table_ks(args)
    except NasjaxInputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    print(f"load average at start: {os.getloadavg()}")
    result: dict = {"goal_k10": GOAL}
    try:
        if not args.skip_help:
            result.update(help_part(args.seed, args.per_method))
        if not args.skip_machine:
            result["machine_move"] = machine_part(args)
        if not args.skip_tables:
            result["table_moves"] = tables_part(args)
        if not args.skip_ceiling:
            result["calibration_ceiling"] = ceiling_part(args)
    except NasjaxInputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    result["seconds"] = round(time.perf_counter() - t0, 1)
    result["loadavg_end"] = [round(x, 2) for x in os.getloadavg()]
    print(f"load average at end: {os.getloadavg()}; {result['seconds']} s")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
