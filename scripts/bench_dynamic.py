"""Benchmark of the dynamic runtime against MathNAS's own policy, side by side in one process.

    python scripts/bench_dynamic.py [--batches 600] [--decisions 300]

1. Decision time per check on the embedded default's tables: windows placed around a light move of the
   running candidate (the light search answers) and around a far candidate (the light search finds
   nothing, the exact fallback answers); also MathNAS's decision over the whole space (light search, then
   ``mckp`` on the rescaled table). Goals: <= 1 ms light, <= 10 ms with the fallback.
2. The demonstration of experiments/flags/dynamic_default.flags (window relaxes / tightens / relaxes,
   CPU-burner slowdowns) served by nasjax's policy (compiled ahead) and MathNAS's (jit on every switch):
   switch time (goal: nothing compiled, < 1 ms beyond the next batch), fraction of batches whose served
   latency is inside the window (goal >= 95 %), compilations while serving.

Prints the figures with the load average; the LAST line is one JSON object.
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


def decision_times(source, n: int, seed: int = 0) -> dict:
    from nasjax.runtime.candidates import choice_order, select_candidates
    from nasjax.runtime.estimate import ScaleEstimator
    from nasjax.runtime.search import WindowSearch, light_moves
    from nasjax.search.base import TabularObjective

    acc, lat = source.accuracy, source.latency
    space = source.block_set.space()
    order = choice_order(lat)
    cands = select_candidates(acc, lat, max_front=12, with_chain=True)
    obj = TabularObjective(space, cands, acc.predict(cands), acc.predict(cands), name="candidates")
    est = ScaleEstimator(lat)
    ahead = WindowSearch(space, obj, est, order, margin=0.15)
    est_m = ScaleEstimator(lat)
    mathnas = WindowSearch(space, acc, est_m, order, margin=0.0, exact="mckp")
    rows = {tuple(a): i for i, a in enumerate(cands)}
    rng = np.random.default_rng(seed)
    out = {"light": [], "exact": [], "mathnas": []}
    kinds = {"light": [], "exact": []}
    for _ in range(n):
        cur = cands[rng.integers(len(cands))]
        scale = float(rng.uniform(0.5, 2.0))
        est.scale = est_m.scale = scale
        pred = est.predict(cands)
        moves = [rows[tuple(m)] for m in light_moves(cur, order)[1:] if tuple(m) in rows]
        near = set(moves) | {rows[tuple(cur)]}
        far = [i for i in range(len(cands)) if i not in near]
        for kind, pool in (("light", moves), ("exact", far)):
            if not pool:
                continue
            p = pred[int(rng.choice(pool))]
            lo, hi = p * 0.99 - 1e-9, p * 1.01 + 1e-9  # margin 0.15 keeps the target around p
            d = ahead.decide(cur, lo, hi)
            out[kind].append(d.decision_ms)
            kinds[kind].append(d.how)
        p = float(est_m.predict(cur)[0]) * float(rng.uniform(0.5, 0.95))
        out["mathnas"].append(mathnas.decide(cur, 0.5 * p, p).decision_ms)

    def stats(v):
        v = np.asarray(v)
        return {"median_ms": float(np.median(v)), "p95_ms": float(np.percentile(v, 95)), "n": int(v.size)}

    return {"candidates": len(cands), **{k: stats(v) for k, v in out.items()},
            "light_answered": float(np.mean([h == "light" for h in kinds["light"]])),
            "fallback_answered": float(np.mean([h == "exact" for h in kinds["exact"]]))}


def switch_cost(compiled, images, pairs: int = 200, seed: int = 0) -> dict:
    """Run time of a batch right after a switch vs right after a batch of the same subnet.

    For random pairs of different candidates ``(a, b)``: time ``b`` after ``a`` ran (a switch: selecting
    ``b``'s executable, then running it) and ``b`` after ``b`` ran (no switch), interleaved; the switch's
    cost beyond the next batch is the median of the differences.
    """
    import jax

    rng = np.random.default_rng(seed)
    exes = compiled.executables
    x = images[0]
    diffs, sel = [], []
    for _ in range(pairs):
        i, j = rng.choice(len(exes), 2, replace=False)
        jax.block_until_ready(exes[i](x))
        t = time.perf_counter()
        e = compiled.executable(compiled.archs[j])
        sel.append((time.perf_counter() - t) * 1e3)
        jax.block_until_ready(e(x))
        after_switch = time.perf_counter() - t
        t = time.perf_counter()
        jax.block_until_ready(exes[j](x))
        same = time.perf_counter() - t
        diffs.append((after_switch - same) * 1e3)
    return {"select_ms_median": float(np.median(sel)), "excess_ms_median": float(np.median(diffs)),
            "excess_ms_p25": float(np.percentile(diffs, 25)),
            "excess_ms_p75": float(np.percentile(diffs, 75)), "pairs": pairs}


def jitter(prep, n: int = 300) -> dict:
    """Percentiles (5, 50, 95) of the batch latency of the fastest and the slowest candidate, ``n``
    batches each: the machine's own spread, which no choice of subnet removes."""
    import jax

    comp = prep.compiled
    out = {}
    for name, i in (("fastest", int(np.argmin(comp.cost))), ("slowest", int(np.argmax(comp.cost)))):
        e, ts = comp.executables[i], []
        for k in range(n):
            t = time.perf_counter()
            jax.block_until_ready(e(prep.images[k % len(prep.images)]))
            ts.append((time.perf_counter() - t) * 1e3)
        p5, p50, p95 = np.percentile(ts, [5, 50, 95])
        out[name] = {"p5_ms": float(p5), "p50_ms": float(p50), "p95_ms": float(p95), "p95_over_p5": float(p95 / p5)}
    return out


def simulated(prep, cfg, sigma: float = 0.1, factor: float = 2.0) -> dict:
    """The same controller and schedule against :class:`SimulatedDevice` (latency = k t(a), x ``factor``
    during slowdowns, lognormal jitter ``sigma``), ``k`` set so the start subnet's latency is the
    measured reference: the controller's own figure, apart from this machine's load."""
    from nasjax.runtime.controller import AheadPolicy, SimulatedDevice, serve
    from nasjax.runtime.estimate import ScaleEstimator
    from nasjax.runtime.search import WindowSearch
    from nasjax.search.base import TabularObjective

    src, comp = prep.source, prep.compiled
    space = src.block_set.space()
    k = prep.reference_ms / float(src.latency.predict(prep.start))
    dev = SimulatedDevice(src.latency, k, cfg.slowdown_schedule, factor=factor, sigma=sigma, seed=cfg.seed)
    est = ScaleEstimator(src.latency)
    obj = TabularObjective(space, comp.archs, comp.accuracy, comp.accuracy, name="compiled candidates")
    search = WindowSearch(space, obj, est, prep.order, margin=cfg.margin)
    r = serve(AheadPolicy(comp), search, est, prep.images, prep.windows_ms, cfg.slowdown_schedule,
              batches=cfg.batches, check_every=cfg.check_every, start_arch=prep.start, statistic=cfg.statistic,
              timer=dev, coverage=cfg.coverage, progress=False)
    return {**r.summary, "sigma": sigma, "factor": factor}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--batches", type=int, default=600)
    ap.add_argument("--decisions", type=int, default=300)
    ap.add_argument("--batch_size", type=int, default=32)
    ap.add_argument("--no_progress", action="store_true")
    args = ap.parse_args()

    from nasjax.io import enable_jax_cache
    from nasjax.runtime import adapter, demo
    from nasjax.runtime.controller import DynamicConfig

    enable_jax_cache()
    t0 = time.perf_counter()
    src = adapter.load_embedded(calib_size=256)
    print(f"loaded the embedded default in {time.perf_counter() - t0:.1f} s; load average {os.getloadavg()}")
    dec = decision_times(src, args.decisions)
    load_dec = os.getloadavg()
    print(f"decision time ({dec['candidates']} compiled candidates, load average {load_dec}):")
    for k in ("light", "exact", "mathnas"):
        print(f"  {k:8s} median {dec[k]['median_ms']:.3f} ms  p95 {dec[k]['p95_ms']:.3f} ms  (n={dec[k]['n']})")
    print(f"  light search answered {100 * dec['light_answered']:.0f} % of light windows; the fallback "
          f"{100 * dec['fallback_answered']:.0f} % of far windows")
    b = args.batches
    cfg = DynamicConfig(batches=b, batch_size=args.batch_size, check_every=5,
                        windows=("0:0.6:1.6", f"{b // 3}:0.3:0.75", f"{2 * b // 3}:0.6:1.6"),
                        slowdowns=(f"{b // 6}:{b // 6 + b // 7}", f"{3 * b // 4}:{3 * b // 4 + b // 7}"),
                        slowdown_procs=1, max_burn_s=300.0, margin=0.15, max_front=12, chain=True, policy="both")
    prep = demo.prepare(src, cfg, progress=not args.no_progress)
    info = demo.run_info(prep)
    print(f"compiled {info['candidates']} candidates ahead in {info['compile_ahead_s']:.1f} s "
          f"(BN recalibration {info['recalibrate_s']:.1f} s); reference latency {info['reference_ms']:.3f} ms")
    sc = switch_cost(prep.compiled, prep.images)
    print(f"switch cost (interleaved pairs, load average {os.getloadavg()}): selecting an executable "
          f"{1e3 * sc['select_ms_median']:.2f} us; the batch after a switch runs {sc['excess_ms_median']:+.3f} ms "
          f"(p25 {sc['excess_ms_p25']:+.3f}, p75 {sc['excess_ms_p75']:+.3f}) vs the same subnet's next batch")
    jit = jitter(prep)
    print(f"machine jitter (load average {os.getloadavg()}): " + "; ".join(
        f"{k} candidate p5 {v['p5_ms']:.2f} / p50 {v['p50_ms']:.2f} / p95 {v['p95_ms']:.2f} ms (p95/p5 "
        f"{v['p95_over_p5']:.1f})" for k, v in jit.items()))
    sim = simulated(prep, cfg)
    print(f"simulated device (x{sim['factor']:g} slowdowns, {100 * sim['sigma']:.0f} % jitter): "
          f"{100 * sim['fraction_inside']:.1f} % of batches inside, {sim['switches']} switches, "
          f"decisions {sim['decisions_by_kind']}")
    res = {r.policy: r.summary for r in demo.run_policies(prep, cfg, progress=not args.no_progress)}
    a, m = res["ahead"], res["mathnas"]
    for name, s in res.items():
        normal = 100 * (s["fraction_inside_normal"] or 0)
        print(f"{name:8s} inside {100 * s['fraction_inside']:5.1f} % (normal {normal:.1f}"
              f" %, slowdown {100 * (s['fraction_inside_slowdown'] or 0):.1f} %)  switches {s['switches']}  "
              f"switch ms median {s['switch_ms_median']}  first-batch excess ms {s['first_batch_excess_ms_median']}  "
              f"compiles while serving {s['compiles_while_serving']} (traces {s['traces_while_serving']})  "
              f"load average after {s['loadavg_after']}")
    ratio_sw = None
    if a["switch_ms_median"] and m["switch_ms_median"]:
        ratio_sw = m["switch_ms_median"] / a["switch_ms_median"]
    print(f"ratio mathnas/nasjax switch time: {ratio_sw}; inside-window nasjax {100 * a['fraction_inside']:.1f} % vs "
          f"mathnas {100 * m['fraction_inside']:.1f} %")
    out = {
        "bench": "dynamic", "loadavg_decisions": list(load_dec), "loadavg_end": list(os.getloadavg()),
        "decision_light_median_ms": dec["light"]["median_ms"], "decision_light_p95_ms": dec["light"]["p95_ms"],
        "decision_fallback_median_ms": dec["exact"]["median_ms"], "decision_fallback_p95_ms": dec["exact"]["p95_ms"],
        "decision_mathnas_median_ms": dec["mathnas"]["median_ms"],
        "light_answered": dec["light_answered"], "fallback_answered": dec["fallback_answered"],
        "candidates": info["candidates"], "compile_ahead_s": info["compile_ahead_s"],
        "recalibrate_s": info["recalibrate_s"], "reference_ms": info["reference_ms"], "batches": b,
        "batch_size": args.batch_size,
        "nasjax_switch_ms_median": a["switch_ms_median"], "nasjax_switch_ms_max": a["switch_ms_max"],
        "nasjax_first_batch_excess_ms": a["first_batch_excess_ms_median"],
        "switch_select_ms": sc["select_ms_median"], "switch_excess_ms_interleaved": sc["excess_ms_median"],
        "nasjax_compiles_while_serving": a["compiles_while_serving"],
        "nasjax_traces_while_serving": a["traces_while_serving"],
        "nasjax_fraction_inside": a["fraction_inside"], "nasjax_switches": a["switches"],
        "nasjax_decisions_by_kind": a["decisions_by_kind"],
        "mathnas_switch_ms_median": m["switch_ms_median"], "mathnas_switch_ms_total": m["switch_ms_total"],
        "mathnas_compiles_while_serving": m["compiles_while_serving"], "mathnas_fraction_inside": m["fraction_inside"],
        "mathnas_switches": m["switches"],
        "nasjax_fraction_checks_inside": a["fraction_checks_inside"],
        "mathnas_fraction_checks_inside": m["fraction_checks_inside"],
        "jitter": jit, "simulated_fraction_inside": sim["fraction_inside"], "simulated_switches": sim["switches"],
        "switch_time_ratio_mathnas_over_nasjax": ratio_sw,
        "goals": {"light_le_1ms": dec["light"]["median_ms"] <= 1.0,
                  "fallback_le_10ms": dec["exact"]["median_ms"] <= 10.0,
                  "switch_compiles_nothing": a["traces_while_serving"] == 0 and a["compiles_while_serving"] == 0,
                  "switch_lt_1ms_beyond_next_batch": sc["excess_ms_median"] < 1.0,
                  "inside_ge_95pct": a["fraction_inside"] >= 0.95,
                  "simulated_inside_ge_95pct": sim["fraction_inside"] >= 0.95},
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
