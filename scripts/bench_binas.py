"""Benchmark of BINAS's search side: predictors on held-out subnets, and per latency budget the certified
optimum against BCFW and evolution.

    python scripts/bench_binas.py                       # synthetic stand-ins for the supernet's data
    python scripts/bench_binas.py --fit_subnets=F --test_subnets=T --contributions=C --lut_filename=L \\
        [--measured_latency=M]                          # the model side's files
    python scripts/bench_binas.py --write_synthetic=DIR # write the synthetic files (experiment inputs)
    python scripts/bench_binas.py --latency_table=luts/binas_w0.25/...json  # a measured table as the cost

Data (the model side provides these files; without them a synthetic stand-in is used, see below):
measured subnets for fitting and for testing (nasjax JSON or BINAS's accuracy LUT pickle), the estimator's
measured contributions (JSON, :func:`nasjax.predictors.bilinear.read_contributions`), a latency model (BINAS
LUT pickle in seconds, or a nasjax latency table), and optionally measured latencies of found
architectures (JSON ``{binas string: ms}``). With a measured latency table (``--latency_table``, made by
``python -m experiments.latency_table --space=binas``) and no ``--measured_latency``, the found
architectures are timed end to end as static programs in the table's runtime, batch size, resolution and
threads (:func:`nasjax.hardware.lut_binas.measure_found`, random weights of the table's supernet), and the
measured vs predicted latency of each is reported (``--no_measure_latency`` skips it). Before the search the
table is calibrated to the machine's speed now from its reference subnets
(:func:`nasjax.hardware.lut_binas.calibrate_found_table`, as the quickstart does at start; a VM's host runs
10 % faster or slower from one hour to the next); the budgets and predictions are the calibrated table's
(``--no_calibrate``: the table as built; no calibration either when the found architectures are not timed,
``--no_measure_latency`` or ``--measured_latency``).

Synthetic stand-in (no supernet yet): a "true" accuracy ``80 - 30 exp(-capacity / 18)`` of a capacity that
adds per active layer ``w_s log(e) + 0.4 [k = 5] + 0.5 [SE]`` (``w_s`` growing with the stage and larger
for a resolution stage's first layer), minus ``0.08 e_j e_{j+1} / 36`` for neighbouring layers, plus
measurement noise N(0, 0.15); 500 + 500 uniform subnets; the estimator's contributions are Monte-Carlo
means of the truth with one option forced (256 draws); latency from
:func:`nasjax.hardware.binas_latency.synthetic_latency` (a MAC-based LUT, written and read back in BINAS's
format).

Per budget (six, spread over the latency range) it reports the predicted accuracy and wall time of
``binas-exact`` (stage-wise), ``binas-milp`` (HiGHS), ``bcfw`` and evolution (``genetic`` with BINAS's
settings), for the estimator and the bilinear predictor (on the layers' attributes) as objectives, and the
heuristics' gap to the certified optimum, and the estimator's insight figures (:mod:`nasjax.predictors.binas_insight`;
``--picture=PNG`` draws its coefficients). The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from nasjax import metrics  # noqa: E402
from nasjax.benchmarks.binas_lut import write_latency_lut  # noqa: E402
from nasjax.constraints import Constraint  # noqa: E402
from nasjax.hardware.binas_latency import (  # noqa: E402
    latency_from_lut,
    latency_from_table,
    latency_model,
    synthetic_latency,
)
from nasjax.io import write_json  # noqa: E402
from nasjax.predictors.bilinear import (  # noqa: E402
    contribution_estimator,
    fit_bilinear,
    fit_predictors,
    read_contributions,
    read_measured,
    write_measured,
    write_predictors,
)
from nasjax.predictors.binas_insight import insight_figures, plot_coefficients  # noqa: E402
from nasjax.search import SearchProblem, run_search  # noqa: E402
from nasjax.search.genetic import binas_evolution  # noqa: E402
from nasjax.spaces import binas as bs  # noqa: E402
from nasjax.tables import Table  # noqa: E402

ST = bs.DEFAULT
SPACE = bs.binas_space(ST)


def synthetic_truth(archs: np.ndarray) -> np.ndarray:
    """The synthetic stand-in's noiseless accuracy (module docstring), vectorised."""
    a = np.atleast_2d(archs)
    lay, act = bs.layer_choices(a, ST), bs.active(a, ST)
    e = np.array([c.expansion for c in ST.configs])[lay]
    k5 = np.array([c.kernel == 5 for c in ST.configs])[lay]
    se = np.array([c.se > 0 for c in ST.configs])[lay]
    w = 0.6 + 0.25 * ST.layer_stage + 0.5 * ((ST.layer_index == 0) & np.isin(ST.layer_stage, [0, 1, 2, 4]))
    cap = (act * (w * np.log(e) + 0.4 * k5 + 0.5 * se)).sum(1)
    inter = (act[:, 1:] * act[:, :-1] * (ST.layer_stage[1:] == ST.layer_stage[:-1]) * e[:, 1:] * e[:, :-1]).sum(1)
    return 80.0 - 30.0 * np.exp(-cap / 18.0) - 0.08 * inter / 36.0


def synthetic_data(seed: int = 0):
    rng = np.random.default_rng(seed)
    fit = bs.canonical(SPACE.random(rng, 500), ST)
    test = bs.canonical(SPACE.random(rng, 500), ST)
    noisy = lambda a: synthetic_truth(a) + rng.normal(0, 0.15, len(a))  # noqa: E731
    y_fit, y_test = noisy(fit), noisy(test)
    R = 256
    sample = SPACE.random(rng, R)
    base = float(synthetic_truth(sample).mean())
    layers = np.zeros((ST.num_layers, ST.num_configs))
    for i, pos in enumerate(ST.layer_positions):
        for c in range(ST.num_configs):
            s = sample.copy()
            s[:, pos] = c
            layers[i, c] = synthetic_truth(s).mean()
    depths = np.zeros((ST.num_stages, len(ST.depths)))
    for s_, pos in enumerate(ST.depth_positions):
        for d in range(len(ST.depths)):
            s = sample.copy()
            s[:, pos] = d
            depths[s_, d] = synthetic_truth(s).mean()
    general, lay = synthetic_latency(ST, seed)
    return {"fit": (fit, y_fit), "test": (test, y_test), "contributions": (base, layers, depths),
            "lut": (general, lay)}


def write_synthetic(out: Path) -> None:
    d = synthetic_data()
    out.mkdir(parents=True, exist_ok=True)
    write_measured(out / "measured_fit.json", *d["fit"], source="synthetic stand-in (scripts/bench_binas.py)")
    write_measured(out / "measured_test.json", *d["test"], source="synthetic stand-in (scripts/bench_binas.py)")
    base, layers, depths = d["contributions"]
    write_json(out / "contributions.json", {"format": "nasjax.binas.contributions/1", "unit": "%", "base": base,
                                            "layers": layers.tolist(), "depths": depths.tolist(),
                                            "provenance": {"source": "synthetic stand-in"}})
    write_predictors(out, *d["fit"], contribution_estimator(base, layers, depths, ST, {"source": "synthetic stand-in"}),
                     ST)
    write_latency_lut(out / "LUT_synthetic.pkl", *d["lut"], ST)
    print(f"wrote {sorted(p.name for p in out.iterdir())} to {out}")


def _timed(fn, repeats: int = 1):
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return out, statistics.median(times)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--fit_subnets")
    ap.add_argument("--test_subnets")
    ap.add_argument("--contributions")
    ap.add_argument("--lut_filename")
    ap.add_argument("--latency_table")
    ap.add_argument("--cost_table", help="a cost model of the supernet instead of a latency one: JSON {unit, fixed, "
                    "layers [L][K]} (experiments.binas_measure writes flops_table.json)")
    ap.add_argument("--measured_latency")
    ap.add_argument("--no_measure_latency", action="store_true",
                    help="with --latency_table: do not time the found architectures end to end")
    ap.add_argument("--no_calibrate", action="store_true",
                    help="with --latency_table: search and predict with the table as built, not calibrated to the "
                         "machine's speed now from its reference subnets")
    ap.add_argument("--noise", help="the measurements' repeat noise (noise.json of experiments.binas_measure): "
                    "prints the Kendall tau ceiling it sets beside the predictors'")
    ap.add_argument("--write_synthetic")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--evo_generations", type=int, default=500)
    ap.add_argument("--mlp", action="store_true", help="also fit the MLP predictor (JAX; slower)")
    ap.add_argument("--picture", help="write the estimator's coefficient picture (PNG) here")
    args = ap.parse_args()
    if args.write_synthetic:
        return write_synthetic(Path(args.write_synthetic))
    synthetic = not (args.fit_subnets and args.test_subnets and args.contributions)
    data = synthetic_data() if synthetic else None
    fit = data["fit"] if synthetic else read_measured(args.fit_subnets, ST)
    test = data["test"] if synthetic else read_measured(args.test_subnets, ST)
    est = (contribution_estimator(*data["contributions"], ST) if synthetic else read_contributions(args.contributions))
    calibration = None
    if args.lut_filename:
        lat = latency_from_lut(args.lut_filename, structure=ST).to_unit("ms")
    elif args.latency_table:
        lat_table = Table.load(args.latency_table)
        if not (args.no_calibrate or args.no_measure_latency or args.measured_latency):
            from nasjax.hardware.lut_binas import calibrate_found_table, report_calibration

            cal = calibrate_found_table(lat_table)
            lat_table = cal["table"]
            calibration = report_calibration(cal)
        lat = latency_from_table(lat_table, ST)
    elif args.cost_table:
        ct = json.loads(Path(args.cost_table).read_text())
        lat = latency_model(float(ct["fixed"]), np.asarray(ct["layers"], np.float64), str(ct["unit"]), structure=ST,
                            provenance={"source": str(args.cost_table)})
    else:
        path = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench_binas_lut_{os.getpid()}.pkl"
        write_latency_lut(path, *synthetic_latency(ST, 0), ST)
        lat = latency_from_lut(path, structure=ST).to_unit("ms")
        path.unlink()
    measured_lat = json.loads(Path(args.measured_latency).read_text()) if args.measured_latency else {}
    print(f"data: {'synthetic stand-in' if synthetic else 'model side files'}; {len(fit[0])} fit / {len(test[0])} "
          f"test subnets; accuracy span of all measured {np.ptp(np.concatenate([fit[1], test[1]])):.2f} points; "
          f"latency model {lat.unit}, range {lat.bounds()[0]:.2f}..{lat.bounds()[1]:.2f}")
    test_span = float(np.ptp(test[1]))
    print(f"held-out subnets: {test[1].min():.2f}..{test[1].max():.2f} (span {test_span:.2f} points, sd "
          f"{np.std(test[1], ddof=1):.2f})")
    noise = json.loads(Path(args.noise).read_text()) if args.noise else None
    if noise is not None:
        print(f"repeat noise of a measurement ({noise['subnets']} subnets, {noise['val_images']} images, "
              f"{noise['calib_images']} calibration images): BN calibration draw {noise['calib_sd']:.3f}, "
              f"image sample {noise['images_sd']:.3f}, together {noise['repeat_sd']:.3f} points (binomial "
              f"{noise['binomial_sd']:.3f}); ceiling of a noiseless predictor: Kendall tau "
              f"{noise['ceiling']['kendall']:.3f}, Pearson {noise['ceiling']['pearson']:.3f}")

    models, fit_ms = {"estimator": est}, {}
    t0 = time.perf_counter()
    fitted = fit_predictors(*fit, ST)  # bilinear / additive on the layers' attributes, bilinear_configs, quadratic
    fit_all_ms = 1e3 * (time.perf_counter() - t0)
    for name in ("bilinear", "additive", "bilinear_configs"):
        models[name] = fitted[name]
    for name, fn in (("bilinear_configs_full", lambda: fit_bilinear(*fit, ST, coupling="full")),
                     ("additive_configs", lambda: fit_bilinear(*fit, ST, coupling="none"))):
        models[name], fit_ms[name] = _timed(fn)
    models["quadratic"] = fitted["quadratic"]
    if args.mlp:
        from nasjax.predictors.binas_mlp import MLPPredictor

        models["mlp"], fit_ms["mlp"] = _timed(lambda: MLPPredictor.fit(*fit, ST))
    ranking = {}
    print(f"predictors (nasjax.predictors.bilinear.fit_predictors, {fit_all_ms:.0f} ms for its four fits): bilinear "
          "and additive on the layers' attributes (expansion, kernel, SE), *_configs on BINAS's per-configuration "
          "features")
    print(f"{'predictor':22s} {'kendall':>8s} {'spearman':>8s} {'pearson':>8s} {'fit ms':>8s}")
    for name, m in models.items():
        p = m.predict(test[0])
        ranking[name] = {"kendall": metrics.kendall(test[1], p), "spearman": metrics.spearman(test[1], p),
                         "pearson": metrics.pearson(test[1], p), "fit_ms": fit_ms.get(name)}
        r = ranking[name]
        print(f"{name:22s} {r['kendall']:8.4f} {r['spearman']:8.4f} {r['pearson']:8.4f} "
              f"{'-' if r['fit_ms'] is None else format(r['fit_ms'], '8.0f'):>8s}")

    insight = insight_figures(est)
    print("estimator insight: depth gain per stage " + " ".join(f"{x:.2f}" for x in insight["depth_gain"])
          + f" (Spearman with the stage {insight['depth_gain_vs_stage_spearman']:.2f}); width gain per stage "
          + " ".join(f"{np.mean(x):.2f}" for x in insight["width_gain"])
          + f" (Spearman {insight['width_gain_vs_stage_spearman']:.2f}); width gain of a resolution stage's first "
          f"layer {insight['width_gain_first_of_resolution']:.3f} vs other layers "
          f"{insight['width_gain_other_layers']:.3f} {est.unit}")
    if args.picture:
        plot_coefficients(est, args.picture, "contribution estimator" + (" (synthetic stand-in)" if synthetic else ""))
        print(f"wrote {args.picture}")
    lo, hi = lat.bounds()
    budgets = [lo + f * (hi - lo) for f in (0.1, 0.2, 0.3, 0.45, 0.6, 0.8)]
    rows, found = [], []
    evo_cfg = binas_evolution(epochs=args.evo_generations)
    for obj_name in ("estimator", "bilinear"):
        obj = models[obj_name]
        run_search("binas-milp", SearchProblem(SPACE, obj, (Constraint(lat, hi, lat.unit),)))  # compile once
        for b in budgets:
            prob = SearchProblem(SPACE, obj, (Constraint(lat, b, lat.unit),))
            ex, t_ex = _timed(lambda p=prob: run_search("binas-exact", p), args.repeats)
            mi, t_mi = _timed(lambda p=prob: run_search("binas-milp", p), max(1, args.repeats // 2))
            bc, t_bc = _timed(lambda p=prob: run_search("bcfw", p, 0))
            ev, t_ev = _timed(lambda p=prob: run_search("genetic", p, 0, config=evo_cfg))
            assert abs(ex.objective - mi.objective) < 1e-6 * max(1.0, abs(ex.objective)), (ex, mi)
            assert bc.objective <= ex.objective + 1e-9 and ev.objective <= ex.objective + 1e-9
            row = {"objective": obj_name, "budget": b, "unit": lat.unit, "binas": bs.to_string(ex.arch, ST),
                   "exact": ex.objective, "exact_ms": t_ex, "milp": mi.objective, "milp_ms": t_mi,
                   "bcfw": bc.objective, "bcfw_ms": t_bc, "bcfw_gap": ex.objective - bc.objective,
                   "evo": ev.objective, "evo_ms": t_ev, "evo_gap": ex.objective - ev.objective,
                   "evo_evaluations": ev.info["evaluations"], "predicted_latency": ex.resources["latency"],
                   "measured_latency": measured_lat.get(bs.to_string(ex.arch, ST))}
            if synthetic:
                row["true_accuracy"] = float(synthetic_truth(ex.arch)[0])
            rows.append(row)
            found.append(np.asarray(ex.arch, np.int64))
            print(f"{obj_name:9s} budget {b:6.2f} {lat.unit}: exact {ex.objective:.3f} ({t_ex:.1f} ms) milp "
                  f"{mi.objective:.3f} ({t_mi:.0f} ms) bcfw {bc.objective:.3f} (gap {row['bcfw_gap']:.3f}, "
                  f"{t_bc:.0f} ms) evo {ev.objective:.3f} (gap {row['evo_gap']:.3f}, {t_ev:.0f} ms)")
    if args.latency_table and not args.measured_latency and not args.no_measure_latency:
        from nasjax.hardware.lut_binas import measure_found

        uniq, inv = np.unique(np.stack(found), axis=0, return_inverse=True)
        m = measure_found(lat_table, uniq)
        print(f"measured vs predicted latency of the found architectures ({m['runtime']}, {m['threads']} thread(s), "
              f"batch {m['batch_size']}, {m['resolution']} px, ms per call):")
        for r, j in zip(rows, np.ravel(inv)):
            r["measured_latency"] = float(m["measured_ms"][j])
            print(f"  {r['objective']:9s} budget {r['budget']:8.3f}: predicted {r['predicted_latency']:8.3f} "
                  f"measured {r['measured_latency']:8.3f} ({m['error_percent'][j]:+.1f} %)")
    with_meas = [r for r in rows if r["measured_latency"] is not None]
    goals = {"exact_le_50ms": all(r["exact_ms"] <= 50 for r in rows),
             "milp_le_1s": all(r["milp_ms"] <= 1000 for r in rows),
             "predictor_kendall_ge_0.84": max(v["kendall"] for k, v in ranking.items() if k != "estimator") >= 0.84,
             "measured_latency_within_10pct": (all(abs(r["measured_latency"] - r["predicted_latency"])
                                                   <= 0.1 * r["measured_latency"] for r in with_meas)
                                               if with_meas else None)}
    load = os.getloadavg()[0]
    print(f"goals: {goals}; load average {load:.2f}")
    print(json.dumps({"data": "synthetic" if synthetic else "model side", "ranking": ranking, "insight": insight,
                      "accuracy_span": float(np.ptp(np.concatenate([fit[1], test[1]]))), "test_span": test_span,
                      "noise": None if noise is None else {k: noise[k] for k in (
                          "calib_sd", "images_sd", "repeat_sd", "binomial_sd", "ceiling")}, "budgets": rows,
                      "calibration": calibration, "goals_met": goals, "load_average": load}))


if __name__ == "__main__":
    main()
