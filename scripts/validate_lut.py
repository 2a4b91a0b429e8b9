"""Validate every shipped latency table against end-to-end timing of random subnets on this CPU.

    python scripts/validate_lut.py [--tables=SUBSTR,...] [--num_subnets=100] [--repeats=20] [--out_dir=DIR]

For each table written by ``nasjax.hardware.lut_builder`` under ``luts/`` (``--tables`` keeps those whose
path contains one of the given substrings), times ``--num_subnets`` random subnets of its space as static
programs in its runtime, batch size, resolution and thread count, and prints MAPE, Kendall tau, the share
within +-10 % and the worst error of the plain table sum, and of the sum with a linear correction fitted
on half of the subnets (metrics on the other, held-out half). Each table runs in its own subprocess,
started with the XLA thread flags the table needs. The first ``--repeat_subnets`` subnets are timed a second
time: Kendall tau and MAPE between the two measurements are the machine's own repeatability, the ceiling
of any latency model on it (on a virtual machine whose host is shared it can be far below the goals).
With ``--previous_dir`` (an earlier run's ``--out_dir``, same ``--seed`` and ``--num_subnets``), each table's
measurement is also compared with that run's: the machine's agreement with itself from one session to the
next (``between_runs``), the ceiling that matters for a table built once and used later. A table refined on
end-to-end subnets (``python -m experiments.latency_table --refine=FILE``) says so, with the refinement's
date; any validation subnet among those a table was fitted on is counted (``fitted_overlap``; 0 with the
default seeds). The table's anchor subnet is timed in every chunk; ``anchor_scaled`` is the table moved to the
machine's speed of the run by that one subnet (its time now over its time when the table's level was set),
with no validation subnet fitted on: what a table predicts on a host whose speed has drifted since the build.
Writes ``<out_dir>/<table>-measured.csv``
(``arch,resolution,latency_ms``) and ``<out_dir>/<table>-validation.json``. The load average is printed
before and after each table. Last line: one JSON object ``{"tables": [{space, runtime, resolution, batch,
threads, clock, width, mape_percent, kendall_tau, within_10_percent, worst_error_percent, ...}], ...}``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def shipped_tables(luts_root: Path, filters: list[str]) -> list[Path]:
    """Table files written by the builder (provenance.method = build_table) under ``luts_root``."""
    out = []
    for p in sorted(luts_root.rglob("*.json")):
        if p.name.startswith(".") or (filters and not any(f in str(p) for f in filters)):
            continue
        try:
            d = json.loads(p.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if isinstance(d, dict) and d.get("provenance", {}).get("method") == "nasjax.hardware.lut_builder.build_table":
            out.append(p)
    return out


def split_by_device(tables: list[Path], device: str) -> tuple[list[Path], list[Path]]:
    """``(tables built on device, tables built elsewhere)``: another machine's table is not validated against
    this one's timing (``scripts/bench_calibration.py`` moves it here from k measurements)."""
    here, other = [], []
    for p in tables:
        d = json.loads(p.read_text())
        (here if d.get("device", d["provenance"].get("device")) == device else other).append(p)
    return here, other


def _previous_record(prev_file: Path) -> dict | None:
    """An earlier run's validation record of the same table (read before any timing), or ``None`` when that
    run has none; a record from before records carried their date gets its file's time."""
    from nasjax.errors import NasjaxInputError
    from nasjax.io import utc_stamp

    if not prev_file.is_file():
        print(f"[validate_lut] previous_dir: no {prev_file.name}; not compared", flush=True)
        return None
    try:
        previous = json.loads(prev_file.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise NasjaxInputError(f"previous_dir: {prev_file} is not a readable validation record ({e}); "
                               "expected the JSON that validate_lut.py wrote") from None
    if isinstance(previous, dict) and "date" not in previous:
        previous["date"] = utc_stamp(prev_file.stat().st_mtime)
    return previous


def validate_one(path: Path, args) -> dict:
    """In this process: load the table, rebuild its supernet, time subnets, write CSV/JSON, return figures."""
    from experiments.latency_table import table_lut_space
    from nasjax.hardware import lut_validate as lv
    from nasjax.hardware.runtimes import get_runtime
    from nasjax.io import enable_jax_cache, utc_stamp, write_csv, write_json
    from nasjax.tables import Table

    table = Table.load(path)
    prov = table.provenance
    runtime = get_runtime(prov["runtime"], int(prov["threads"]), prov.get("clock", "wall"))
    enable_jax_cache()
    lspace = table_lut_space(table)
    stem = f"{path.parent.name}-{path.stem}"
    previous = _previous_record(Path(args.previous_dir) / f"{stem}-validation.json") if args.previous_dir else None
    load0 = os.getloadavg()
    res = lv.validate_table(lspace, runtime, table, num_subnets=args.num_subnets, seed=args.seed,
                            warmup=args.warmup, repeats=args.repeats, chunk_size=args.chunk_size,
                            progress=not args.noprogress, repeat_subnets=args.repeat_subnets)
    load1 = os.getloadavg()
    out = Path(args.out_dir)
    between = None
    if previous is not None:
        between = {k: (round(v, 4) if isinstance(v, float) else v) for k, v in
                   lv.between_runs(previous, res["archs"], res["predicted_ms"], res["measured_ms"]).items()}
    write_csv(out / f"{stem}-measured.csv", ["arch", "resolution", "latency_ms"],
              lv.measurements_csv_rows(res["archs"], res["resolution"], res["measured_ms"]))
    m, c = res["metrics"], res["corrected"]
    row = {"table": str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path),
           "space": res["space"], "runtime": res["runtime"], "resolution": res["resolution"],
           "batch": res["batch_size"], "threads": res["threads"], "clock": res["clock"], "width": prov.get("width"),
           "weights": prov.get("weights", "random"), "n": m["n"],
           "mape_percent": round(m["mape_percent"], 3), "kendall_tau": round(m["kendall_tau"], 4),
           "within_10_percent": round(m["within_10_percent"], 4),
           "worst_error_percent": round(m["worst_error_percent"], 3),
           "mean_measured_ms": round(m["mean_true"], 4), "mean_predicted_ms": round(m["mean_pred"], 4),
           "meets_goals": res["meets_goals"],
           "corrected_held_out": _rounded(c["held_out"]),
           "correction": {"alpha": round(c["alpha"], 4), "beta_ms": round(c["beta"], 4)},
           "calibrated_held_out": _rounded(res["calibrated"]["held_out"]),
           "calibration": {"k": res["calibrated"]["k"], "scale": round(res["calibrated"]["scale"], 4)},
           "calibrated_meets_goals": res["calibrated_meets_goals"],
           "anchor_scaled": _anchor_summary(res["anchor_scaled"]),
           "anchor_scaled_meets_goals": res["anchor_scaled_meets_goals"],
           "repeatability": None if res["repeatability"] is None else {
               k: round(v, 4) for k, v in res["repeatability"].items()},
           "corrected_meets_goals": res["corrected_meets_goals"], "between_runs": between,
           "fitted_overlap": res["fitted_overlap"], "refinement": _refinement_summary(prov),
           "date": utc_stamp(),
           "load_average_before": [round(x, 2) for x in load0], "load_average_after": [round(x, 2) for x in load1]}
    write_json(out / f"{stem}-validation.json", {**row, "archs": res["archs"], "predicted_ms": res["predicted_ms"],
                                                 "measured_ms": res["measured_ms"]})
    return row


def _refinement_summary(prov: dict) -> dict | None:
    """The table's refinement on end-to-end subnets (``nasjax.hardware.lut_refine``): model, subnets, date and
    its own cross-validation; ``None`` for an unrefined table."""
    r = prov.get("refinement")
    if not r:
        return None
    return {"method": r["method"], "n_subnets": r["n_subnets"], "seed": r["seed"], "date": r["date"],
            "cross_validated": r["cross_validated"]}


_SUMMARY_KEYS = ("mape_percent", "kendall_tau", "within_10_percent", "worst_error_percent", "n")


def _rounded(m: dict) -> dict:
    """The goal metrics of a ``latency_metrics`` result, rounded for the JSON line."""
    return {k: round(m[k], 4) for k in _SUMMARY_KEYS}


def _anchor_summary(a) -> dict | None:
    if a is None:
        return None
    return {"speed_ratio": round(a["speed_ratio"], 4), "anchor_ms": round(a["anchor_ms"], 4),
            "table_anchor_ms": round(a["table_anchor_ms"], 4), **_rounded(a["metrics"])}


def _anchor_text(a) -> str:
    if a is None:
        return ""
    return (f"; anchor-scaled (machine speed x{a['speed_ratio']:.3f}) MAPE {a['mape_percent']:.2f} % "
            f"within10 {100 * a['within_10_percent']:.0f} % worst {a['worst_error_percent']:.1f} %")


def _repeat_text(rep) -> str:
    if rep is None:
        return ""
    return (f"; measured twice ({rep['n']} subnets): tau {rep['kendall_tau']:.3f}, MAPE {rep['mape_percent']:.2f} %, "
            f"speed ratio {rep['speed_ratio']:.3f}")


def _refined_text(r, overlap: int) -> str:
    warn = f"; WARNING: {overlap} validation subnets are among the fitted ones" if overlap else ""
    if not r:
        return warn
    return (f"; refined ({r['method']}) on {r['n_subnets']} subnets on {r['date'][:10]}{warn}")


def _between_text(b) -> str:
    if b is None:
        return ""
    return (f"; against the run of {b['previous_date'] or 'an earlier day'} ({b['n']} subnets): measured tau "
            f"{b['kendall_tau']:.3f}, speed ratio {b['speed_ratio']:.3f}, table tau vs both runs "
            f"{b['table_tau_vs_both']:.3f}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tables", default="", help="Comma-separated substrings of table paths to validate (default all).")
    ap.add_argument("--num_subnets", type=int, default=100)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--chunk_size", type=int, default=25)
    ap.add_argument("--repeat_subnets", type=int, default=25,
                    help="Time this many of the subnets a second time: the measurement's own repeatability (0: off).")
    ap.add_argument("--luts_dir", default=str(ROOT / "luts"))
    ap.add_argument("--out_dir", default=str(ROOT / "results" / "validate_lut"))
    ap.add_argument("--noprogress", action="store_true")
    ap.add_argument("--any_device", action="store_true", help="Also validate tables built on other machines.")
    ap.add_argument("--previous_dir", default="",
                    help="An earlier run's --out_dir: compare each table's measurement with that run's (same subnets).")
    ap.add_argument("--one", default="", help=argparse.SUPPRESS)  # internal: validate this file, JSON to --one_out
    ap.add_argument("--one_out", default="", help=argparse.SUPPRESS)
    args = ap.parse_args()
    from nasjax.errors import NasjaxInputError

    if args.num_subnets < 4:
        print(f"error: num_subnets: got {args.num_subnets}, expected at least 4", file=sys.stderr)
        raise SystemExit(2)
    try:
        if args.one:
            Path(args.one_out).write_text(json.dumps(validate_one(Path(args.one), args)))
            return
        from nasjax.hardware.runtimes import run_json_with_threads

        if args.previous_dir and not Path(args.previous_dir).is_dir():
            raise NasjaxInputError(f"previous_dir: {args.previous_dir!r} is not a directory; expected an earlier "
                                   "run's --out_dir")

        tables = shipped_tables(Path(args.luts_dir), [f for f in args.tables.split(",") if f])
        if not args.any_device:
            from nasjax.hardware.runtimes import device_name

            tables, other = split_by_device(tables, device_name())
            for p in other:
                print(f"[validate_lut] {p.relative_to(ROOT) if p.is_relative_to(ROOT) else p}: built on another "
                      f"machine, not {device_name()}; skipped (--any_device validates it here anyway)", flush=True)
        if not tables:
            raise NasjaxInputError(f"tables: no builder table of this machine under {args.luts_dir!r} matches "
                                   f"{args.tables!r} (--any_device for other machines' tables)")
        rows, failed = [], []
        for p in tables:
            prov = json.loads(p.read_text())["provenance"]
            print(f"[validate_lut] {p.relative_to(ROOT) if p.is_relative_to(ROOT) else p}: load average "
                  f"{os.getloadavg()}", flush=True)
            rc, row = run_json_with_threads(prov["runtime"], int(prov["threads"]), [__file__, f"--one={p}"] + [
                a for a in sys.argv[1:] if not a.startswith("--tables")], "one_out")
            if rc != 0:
                print(f"[validate_lut] {p}: failed with exit code {rc}", file=sys.stderr)
                failed.append(str(p))
                continue
            rows.append(row)
            ch, cb = row["corrected_held_out"], row["calibrated_held_out"]
            print(f"{row['space']:>18} {row['runtime']:>11} w{row['width']} {row['resolution']}px b{row['batch']} "
                  f"t{row['threads']} {row['clock']}: MAPE {row['mape_percent']:.2f} %  tau {row['kendall_tau']:.3f}  "
                  "within10 "
                  f"{100 * row['within_10_percent']:.0f} %  worst {row['worst_error_percent']:.1f} %  (mean measured "
                  f"{row['mean_measured_ms']:.3f} ms; corrected held-out MAPE "
                  f"{ch['mape_percent']:.2f} % tau {ch['kendall_tau']:.3f} within10 "
                  f"{100 * ch['within_10_percent']:.0f} %; calibrated k={row['calibration']['k']} held-out MAPE "
                  f"{cb['mape_percent']:.2f} % tau {cb['kendall_tau']:.3f} within10 "
                  f"{100 * cb['within_10_percent']:.0f} %{_anchor_text(row.get('anchor_scaled'))})"
                  f"{_repeat_text(row['repeatability'])}"
                  f"{_between_text(row.get('between_runs'))}"
                  f"{_refined_text(row.get('refinement'), row['fitted_overlap'])}  "
                  f"load {row['load_average_after']}", flush=True)
    except NasjaxInputError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    print(json.dumps({"tables": rows, "failed": failed, "num_subnets": args.num_subnets,
                      "load_average_end": list(os.getloadavg())}))
    if failed:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
