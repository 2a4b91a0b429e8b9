"""The quickstart's report: search and measure with :func:`nasjax.default.search_and_measure`, print
predicted vs measured per found subnet, and write the result set (ymls, Pareto plot and CSV, summary)."""

from __future__ import annotations

import sys
from pathlib import Path

from nasjax import cli
from nasjax.default import DEFAULT_DIR, SPEED_CHANGE_TOLERANCE, search_and_measure
from nasjax.io import write_yaml


def run(*, luts_dir=DEFAULT_DIR, latency_budgets_ms, save_path, rebuild: bool = False, seed: int = 0,
        solver: str = "mckp", calibrate: bool = True, progress: bool = True) -> dict:
    """Run the quickstart and publish its files as one set under ``<save_path>/mobilenetv3/quickstart``.

    Returns the summary (``results``, ``files``, ``device``, ``calibration_scale``, ``seconds``). Bad input
    raises before anything is written (the output directory is checked first).
    """
    cli.check_output_dir(save_path)
    out = cli.check_output_dir(Path(save_path) / "mobilenetv3" / "quickstart")
    res = search_and_measure(latency_budgets_ms=latency_budgets_ms, luts_dir=luts_dir, rebuild=rebuild, seed=seed,
                             solver=solver, calibrate=calibrate, progress=progress)
    rows, d, cal, ls = res["rows"], res["default"], res["calibration"], res["latency"]
    man, cfg, lat_t = d["manifest"], d["config"], d["tables"]["latency_stage"]
    unit = f"ms per batch of {ls['batch_size']}"
    print(f"nasjax quickstart: supernet {man['dataset']} {man['resolution']}px (width {cfg.width_mult}), latency "
          f"table from {lat_t.device} in {ls['runtime']} ({ls['threads'] or 'all'} thread(s), batch "
          f"{ls['batch_size']}), solver {res['solver']}")
    if cal is not None:
        print(f"calibrated to this machine ({res['device']}): scale {cal['scale']:.3f} from "
              f"{len(cal['reference_archs'])} reference subnets (measured "
              f"{', '.join(f'{v:.2f}' for v in cal['reference_measured_ms'])} ms)")
    print(f"{'budget':>8} {'encodearch':>17} {'pred acc %':>10} {'meas acc %':>10} {'pred ms':>8} {'meas ms':>8} "
          f"{'err %':>6} {'MFLOPs':>7}   ({unit})")
    for rc in res.get("recalibrations", []):
        print(f"recalibrated: the reference subnets, re-timed with the found ones, took {rc['speed_change']:.2f}x "
              f"their calibration time (scale {rc['scale_before']:.3f} -> {cal['scale']:.3f}); searched and "
              f"measured again")
    if res["speed_change"] is not None and abs(res["speed_change"] - 1.0) > SPEED_CHANGE_TOLERANCE:
        print(f"note: this machine's speed changed during the run: the reference subnets, re-timed with the found "
              f"ones, took {res['speed_change']:.2f}x their calibration time")
    for bad in res["infeasible"]:
        print(f"{bad['budget_ms']:8.3f}   infeasible on this machine: {bad['message']}")
    for r in rows:
        p, m = r["predicted"], r["measured"]
        err = 100.0 * (p["latency_ms"] - m["latency_ms"]) / m["latency_ms"]
        print(f"{r['budget_ms']:8.3f} {r['encodearch']!s:>17} {p['accuracy_percent']:10.2f} "
              f"{m['accuracy_percent']:10.2f} {p['latency_ms']:8.3f} {m['latency_ms']:8.3f} {err:6.1f} "
              f"{p['flops_mflops']:7.3f}")
    summary = {"device": res["device"], "table_device": lat_t.device, "solver": res["solver"], "latency": ls,
               "latency_unit": unit, "calibration_scale": cal["scale"] if cal is not None else None,
               "results": rows, "infeasible": res["infeasible"], "speed_change": res["speed_change"],
               "recalibrations": res.get("recalibrations", []),
               "pareto_points": len(res["front"])}
    with cli.ResultSet(out, manifest="summary.json") as rs:
        for r in rows:
            y = {**r["arch"], "predicted": {"accuracy": f"{r['predicted']['accuracy_percent']:.4f} %",
                                            "latency": f"{r['predicted']['latency_ms']:.4f} ms",
                                            "flops": f"{r['predicted']['flops_mflops']:.4f} MFLOPs"},
                 "measured": {"accuracy": f"{r['measured']['accuracy_percent']:.4f} %",
                              "latency": f"{r['measured']['latency_ms']:.4f} ms", "device": res["device"]},
                 "solve_time_ms": round(r["solve_time_ms"], 4), "space": "mobilenetv3",
                 "device": lat_t.device, "constraints": {"latency": f"{r['budget_ms']:g} ms"},
                 "latency_protocol": {"runtime": ls["runtime"], "threads": ls["threads"],
                                      "batch_size": ls["batch_size"]}}
            write_yaml(rs.path(f"{r['budget_ms']:g}ms.yml"), y)
        measured = [(r["measured"]["latency_ms"], r["measured"]["accuracy_percent"]) for r in rows]
        res["front"].plot(rs.path("pareto.png"), title=f"nasjax quickstart: MNIST supernet, latency on {res['device']}",
                          measured=measured)
        res["front"].write_csv(rs.path("pareto.csv"), codec=lambda a: str([int(x) for x in a]))
        summary["seconds"] = res["seconds"]
        rs.summary = summary
    summary["files"] = [str(p) for p in rs.files]
    print(f"wrote {len(rs.files)} files to {out} in {res['seconds']:.1f} s", file=sys.stdout)
    return summary
