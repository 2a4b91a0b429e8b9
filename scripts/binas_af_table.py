"""BINAS A-F-style result table on nasjax's trained BINAS supernet, and the estimator's coefficient picture.

    python scripts/binas_af_table.py --measure_dir=results/binas_measure --weights=results/binas_train/out/weights \\
        --picture=docs/img/binas_coefficients.png

Reads the files of ``experiments.binas_measure`` (fit / test subnets, contributions, the supernet's FLOPs
table). For six budgets spread over the cost range it finds the certified optimum (``binas-exact``) of
the contribution estimator and of the stage-coupled bilinear predictor under the budget, and measures
the found architectures on the supernet as the held-out subnets were measured (batched evaluation,
the validation images, BN calibration batch and dataset options recorded in ``test_subnets.json``'s
provenance, unless given). The cost model is the supernet's MFLOPs per image (``nasjax.hardware.flops.binas_flops``),
a stand-in for a measured latency table: predicted and counted cost agree by construction (the FLOPs of
a subnet are exactly additive over its active layers). Prints the table (markdown), the insight figures,
and as the last line one JSON object.
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
from nasjax.hardware.binas_latency import latency_model  # noqa: E402
from nasjax.predictors.bilinear import fit_bilinear, read_contributions, read_measured  # noqa: E402
from nasjax.predictors.binas_insight import insight_figures, plot_coefficients  # noqa: E402
from nasjax.search import SearchProblem, run_search  # noqa: E402
from nasjax.spaces.binas import DEFAULT, active, binas_space, layer_choices, to_string  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--measure_dir", required=True)
    ap.add_argument("--weights", required=True)
    ap.add_argument("--dataset", default="mnist_clutter")
    ap.add_argument("--picture")
    ap.add_argument("--val_images", type=int, help="default: as the held-out subnets were measured")
    ap.add_argument("--calib_images", type=int, help="default: as the held-out subnets were measured")
    args = ap.parse_args()
    d = Path(args.measure_dir)
    prov = json.loads((d / "test_subnets.json").read_text()).get("provenance", {})
    val_images = args.val_images or int(prov.get("val_images", 2000))
    calib_images = args.calib_images or int(prov.get("calib_images", 128))
    calib_seed = int(prov.get("calib_seed", prov.get("seed", 1)))
    ds_opts = {"val_copies": int(prov["val_copies"])} if "val_copies" in prov else {}
    fit, test = read_measured(d / "fit_subnets.json"), read_measured(d / "test_subnets.json")
    est = read_contributions(d / "contributions.json")
    cost = json.loads((d / "flops_table.json").read_text())
    lat = latency_model(float(cost["fixed"]), np.asarray(cost["layers"]), cost["unit"],
                        provenance={"source": "supernet FLOPs (nasjax.hardware.flops.binas_flops)"})
    bil = fit_bilinear(*fit)
    ranking = {}
    for name, m in (("estimator", est), ("bilinear", bil)):
        p = m.predict(test[0])
        ranking[name] = {"kendall": metrics.kendall(test[1], p), "spearman": metrics.spearman(test[1], p),
                         "pearson": metrics.pearson(test[1], p)}
    insight = insight_figures(est)
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
    from nasjax.hardware.flops import binas_flops
    from nasjax.train.binas import calibration_batches, measure_archs, validation_batches
    from nasjax.train.trainer import load_weights

    state, sc, _ = load_weights(args.weights)
    ds = load_dataset(args.dataset, **ds_opts)
    val = validation_batches(ds.val, val_images)
    calib = calibration_batches(ds.train, calib_images, calib_seed)
    print(f"measuring on {val_images} validation images {ds_opts}, BN calibration on {calib_images} training "
          f"images (seed {calib_seed})", flush=True)
    acc = measure_archs(state, DEFAULT.to_dict(), np.stack(archs), val, calib, progress=False)
    fixed, layers = binas_flops(sc, ds.image_shape[0], DEFAULT.to_dict()["configs"])
    for r, a, m in zip(rows, archs, acc):
        r["measured_accuracy"] = float(m)
        act = active(a)[0]
        lc = layer_choices(a)[0]
        r["counted_cost"] = float(fixed + sum(layers[lay, lc[lay]] for lay in range(len(lc)) if act[lay]))
    print("| objective | budget (MFLOPs) | stages (layer: expansion e, kernel k, s = SE) | predicted / counted MFLOPs "
          "| predicted / measured acc. (%) |")
    print("| --- | --- | --- | --- | --- |")
    for r, a in zip(rows, archs):
        blocks = " / ".join(
            ",".join(f"e{c.expansion}k{c.kernel}" + ("s" if c.se else "")
                     for c in (DEFAULT.configs[int(a[DEFAULT.layer_position(s, j)])]
                               for j in range(DEFAULT.depths[int(a[DEFAULT.depth_position(s)])])))
            for s in range(DEFAULT.num_stages))
        print(f"| {r['objective']} | {r['budget']:.2f} | {blocks} | {r['predicted_cost']:.2f} / "
              f"{r['counted_cost']:.2f} | {r['predicted_accuracy']:.2f} / {r['measured_accuracy']:.2f} |")
    corr = {o: metrics.spearman([r["measured_accuracy"] for r in rows if r["objective"] == o],
                                [r["predicted_accuracy"] for r in rows if r["objective"] == o])
            for o in ("estimator", "bilinear")}
    print(f"ranking on the held-out subnets: {ranking}")
    print(f"insight: {insight}")
    print(f"load average {os.getloadavg()}")
    print(json.dumps({"rows": rows, "ranking": ranking, "insight": insight, "found_spearman": corr,
                      "load_average": list(os.getloadavg())}, default=float))


if __name__ == "__main__":
    main()
