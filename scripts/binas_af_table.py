"""BINAS A-F-style result table on nasjax's trained BINAS supernet, and the estimator's coefficient picture.

    python scripts/binas_af_table.py --measure_dir=results/binas_measure --weights=results/binas_train/out/weights \\
        --latency_table=luts/binas_w0.25/<device>-onnxruntime-32px-b<batch>-t1.json \\
        [--picture=docs/img/binas_coefficients.png]

Reads the files of ``experiments.binas_measure`` (fit / test subnets, contributions, and for the MFLOPs cost
the supernet's FLOPs table). For six budgets spread over the cost range it finds the certified optimum
(``binas-exact``) of the contribution estimator and of the stage-coupled bilinear predictor on the layers'
attributes (``fit_predictors``'s ``bilinear``) under the
budget, and measures the found architectures: accuracy on the supernet (batched evaluation, BN
recalibrated, with the validation images, BN calibration batch and dataset options recorded in
``test_subnets.json``'s provenance unless given: as the held-out subnets were measured) and cost.

The cost (``--cost``):

* ``latency`` (the default when ``--latency_table`` is given): a measured latency table of the supernet
  (``python -m experiments.latency_table --space=binas``) read as BINAS's latency model
  ``T(alpha, beta)`` in ms per call of the table's batch size
  (:func:`nasjax.hardware.binas_latency.latency_from_table`); every found architecture is then timed end to
  end as its own static program in the table's runtime, batch size, resolution and threads
  (:func:`nasjax.hardware.lut_binas.measure_found`), next to the prediction. Before the search the table is
  calibrated to the machine's speed now from its reference subnets
  (:func:`nasjax.hardware.lut_binas.calibrate_found_table`, as the quickstart does at start;
  ``--no_calibrate``: the table as built);
* ``mflops``: the supernet's MFLOPs per image (``nasjax.hardware.flops.binas_flops``, ``flops_table.json``);
  predicted and counted cost agree by construction (exactly additive over the active layers).

``--weights=random`` runs everything on a randomly initialised supernet (the latency table's geometry, or
the CPU recipe's: width 0.25, 10 classes, 1 channel), for trying the script out. Prints the table
(markdown), the insight figures, the load average and as the last line one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nasjax import metrics  # noqa: E402
from nasjax.constraints import Constraint  # noqa: E402
from nasjax.errors import NasjaxInputError, require  # noqa: E402
from nasjax.hardware.binas_latency import latency_from_table, latency_model  # noqa: E402
from nasjax.predictors.bilinear import fit_predictors, read_contributions, read_measured  # noqa: E402
from nasjax.predictors.binas_insight import insight_figures, plot_coefficients  # noqa: E402
from nasjax.search import SearchProblem, run_search  # noqa: E402
from nasjax.spaces.binas import DEFAULT, active, binas_space, layer_choices, to_string  # noqa: E402
from nasjax.tables import Table  # noqa: E402


def _supernet(weights: str, table):
    """``(state, config)``: the trained supernet, or random weights of the table's (or the CPU recipe's) shape."""
    if weights != "random":
        from nasjax.train.trainer import load_weights

        state, sc, _ = load_weights(weights)
        return state, sc
    from nasjax.hardware.lut_builder import LUT_SPACES
    from nasjax.models.mobilenetv3 import SupernetConfig
    from nasjax.train.trainer import init_state

    sc = (SupernetConfig.from_dict(table.provenance["supernet_config"]) if table is not None
          else LUT_SPACES.get("binas").supernet_config(0.25, 10, 1))
    return init_state(sc, 0), sc


def _blocks(a) -> str:
    return " / ".join(
        ",".join(f"e{c.expansion}k{c.kernel}" + ("s" if c.se else "")
                 for c in (DEFAULT.configs[int(a[DEFAULT.layer_position(s, j)])]
                           for j in range(DEFAULT.depths[int(a[DEFAULT.depth_position(s)])])))
        for s in range(DEFAULT.num_stages))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--measure_dir", required=True)
    ap.add_argument("--weights", required=True, help="the trained supernet's weights directory, or 'random'")
    ap.add_argument("--latency_table", help="a binas latency table (luts/binas_w*/...json) as the cost")
    ap.add_argument("--cost", choices=("latency", "mflops"), help="default: latency with --latency_table, else "
                    "mflops")
    ap.add_argument("--dataset", default="mnist_clutter")
    ap.add_argument("--picture")
    ap.add_argument("--val_images", type=int, help="default: as the held-out subnets were measured")
    ap.add_argument("--calib_images", type=int, help="default: as the held-out subnets were measured")
    ap.add_argument("--no_calibrate", action="store_true",
                    help="with --cost=latency: the table as built, not calibrated to the machine's speed now")
    ap.add_argument("--latency_repeats", type=int, default=20, help="timed rounds per end-to-end measurement")
    args = ap.parse_args()
    try:
        run(args)
    except NasjaxInputError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None


def run(args):
    cost_kind = args.cost or ("latency" if args.latency_table else "mflops")
    require(cost_kind == "mflops" or bool(args.latency_table), "latency_table", args.latency_table,
            "a binas latency table file with --cost=latency")
    d = Path(args.measure_dir)
    prov = json.loads((d / "test_subnets.json").read_text()).get("provenance", {})
    val_images = args.val_images or int(prov.get("val_images", 2000))
    calib_images = args.calib_images or int(prov.get("calib_images", 128))
    calib_seed = int(prov.get("calib_seed", prov.get("seed", 1)))
    ds_opts = {"val_copies": int(prov["val_copies"])} if "val_copies" in prov else {}
    fit, test = read_measured(d / "fit_subnets.json"), read_measured(d / "test_subnets.json")
    est = read_contributions(d / "contributions.json")
    table = Table.load(args.latency_table) if args.latency_table else None
    calibration = None
    if cost_kind == "latency":
        if not args.no_calibrate:
            from nasjax.hardware.lut_binas import calibrate_found_table, report_calibration

            cal = calibrate_found_table(table, repeats=args.latency_repeats)
            table = cal["table"]
            calibration = report_calibration(cal)
        lat = latency_from_table(table)
        cost_label = f"latency, ms per call of {table.provenance['batch_size']} images"
    else:
        cost = json.loads((d / "flops_table.json").read_text())
        lat = latency_model(float(cost["fixed"]), np.asarray(cost["layers"]), cost["unit"],
                            provenance={"source": "supernet FLOPs (nasjax.hardware.flops.binas_flops)"})
        cost_label = "MFLOPs per image"
    fitted = fit_predictors(*fit)
    bil = fitted["bilinear"]
    ranking = {}
    for name, m in (("estimator", est), ("bilinear", bil)):
        p = m.predict(test[0])
        ranking[name] = {"kendall": metrics.kendall(test[1], p), "spearman": metrics.spearman(test[1], p),
                         "pearson": metrics.pearson(test[1], p)}
    insight = insight_figures(est)
    # the same figures read from the fitted additive model on the layers' attributes (a check on the estimator's)
    insight_fitted = insight_figures(fitted["additive"])
    if args.picture:
        Path(args.picture).parent.mkdir(parents=True, exist_ok=True)
        plot_coefficients(est, args.picture, "BINAS contribution estimator, nasjax supernet (cluttered MNIST)")
    lo, hi = lat.bounds()
    budgets = [lo + f * (hi - lo) for f in (0.1, 0.2, 0.3, 0.45, 0.6, 0.8)]
    space = binas_space()
    rows, archs = [], []
    for obj_name, obj in (("estimator", est), ("bilinear", bil)):
        for b in budgets:
            r = run_search("binas-exact", SearchProblem(space, obj, (Constraint(lat, b, lat.unit),)))
            archs.append(np.asarray(r.arch))
            rows.append({"objective": obj_name, "budget": b, "unit": lat.unit, "binas": to_string(r.arch),
                         "predicted_accuracy": float(r.objective),
                         "predicted_cost": float(r.resources["latency"])})
    # measure the found architectures on the supernet

    from nasjax.data.datasets import load_dataset
    from nasjax.train.binas import calibration_batches, measure_archs, validation_batches

    state, sc = _supernet(args.weights, table)
    ds = load_dataset(args.dataset, **ds_opts)
    val = validation_batches(ds.val, val_images)
    calib = calibration_batches(ds.train, calib_images, calib_seed)
    print(f"measuring on {val_images} validation images {ds_opts}, BN calibration on {calib_images} training "
          f"images (seed {calib_seed})", flush=True)
    acc = measure_archs(state, DEFAULT.to_dict(), np.stack(archs), val, calib, progress=False)
    if cost_kind == "latency":
        from nasjax.hardware.lut_binas import measure_found

        uniq, inv = np.unique(np.stack(archs), axis=0, return_inverse=True)
        found = measure_found(table, uniq, state, repeats=args.latency_repeats)
        counted = found["measured_ms"][np.ravel(inv)]
        latency_info = {k: found[k] for k in ("runtime", "threads", "clock", "batch_size", "resolution", "rounds",
                                              "unit")}
    else:
        from nasjax.hardware.flops import binas_flops

        fixed, layers = binas_flops(sc, ds.image_shape[0], DEFAULT.to_dict()["configs"])
        counted = [fixed + sum(layers[lay, c] for lay, (c, on) in enumerate(zip(layer_choices(a)[0], active(a)[0]))
                               if on) for a in archs]
        latency_info = None
    for r, m, c in zip(rows, acc, counted):
        r["measured_accuracy"] = float(m)
        r["measured_cost" if cost_kind == "latency" else "counted_cost"] = float(c)
        r["cost_error_percent"] = 100.0 * (r["predicted_cost"] - float(c)) / float(c)
    what = "measured" if cost_kind == "latency" else "counted"
    print(f"cost: {cost_label}" + (f" ({latency_info['runtime']}, {latency_info['threads']} thread(s), "
                                   f"{latency_info['resolution']} px)" if latency_info else ""))
    print(f"| objective | budget | stages (layer: expansion e, kernel k, s = SE) | predicted / {what} cost "
          "| predicted / measured acc. (%) |")
    print("| --- | --- | --- | --- | --- |")
    for r, a in zip(rows, archs):
        print(f"| {r['objective']} | {r['budget']:.3f} | {_blocks(a)} | {r['predicted_cost']:.3f} / "
              f"{r[what + '_cost']:.3f} ({r['cost_error_percent']:+.1f} %) | {r['predicted_accuracy']:.2f} / "
              f"{r['measured_accuracy']:.2f} |")
    corr = {o: metrics.spearman([r["measured_accuracy"] for r in rows if r["objective"] == o],
                                [r["predicted_accuracy"] for r in rows if r["objective"] == o])
            for o in ("estimator", "bilinear")}
    within = float(np.mean([abs(r["cost_error_percent"]) <= 10.0 for r in rows]))
    print(f"ranking on the held-out subnets: {ranking}")
    print(f"insight: {insight}")
    for name, ins in (("estimator", insight), ("additive fit on the attributes", insight_fitted)):
        print(f"{name}: depth gain per stage " + " ".join(f"{x:.2f}" for x in ins["depth_gain"])
              + f" (Spearman with the stage {ins['depth_gain_vs_stage_spearman']:.2f}); mean width gain per stage "
              + " ".join(f"{np.mean(x):.2f}" for x in ins["width_gain"])
              + f" (Spearman {ins['width_gain_vs_stage_spearman']:.2f}); width gain of a resolution stage's first "
              f"layer {ins['width_gain_first_of_resolution']:.3f} vs other layers {ins['width_gain_other_layers']:.3f}"
              f" {ins['unit']}")
    print(f"found architectures with predicted cost within 10 % of the {what} one: {100 * within:.0f} %; "
          f"worst {max(abs(r['cost_error_percent']) for r in rows):.1f} %")
    print(f"load average {os.getloadavg()}")
    print(json.dumps({"cost": cost_kind, "cost_label": cost_label, "latency_measurement": latency_info,
                      "calibration": calibration,
                      "rows": rows, "ranking": ranking, "insight": insight, "insight_fitted_additive": insight_fitted,
                      "found_spearman": corr,
                      "cost_within_10_percent": within, "load_average": list(os.getloadavg())}, default=float))


if __name__ == "__main__":
    main()
