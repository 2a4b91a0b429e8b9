"""A measured latency table refined on subnets timed end to end: the per-cell correction the sum misses.

A builder table (:func:`nasjax.hardware.lut_builder.build_table`) times every cell alone and corrects the sum
with a few in-network terms fitted on a few dozen subnets. What those terms cannot express -- a cell that
is cheaper or dearer inside a network than its program alone, differently for every cell, as happens when
two threads share the work of small layers -- stays in the table. :func:`refine_table` times ``n`` more
random subnets end to end (another seed than the builder's references, context subnets and the validation's
subnets) and fits the calibration model of :func:`nasjax.hardware.calibration.calibrate` to them, the table
itself as the prior::

    T'[p, c] = u[p, c] T[p, c]        base' = c0 + u_0 base

with ``u`` one global scale, an affine scale and overhead, one scale per stage, or one scale per cell
(Bayesian linear regression centred on the table, prior width 30 %), the model and its noise level chosen by
leave-one-out error on the ``n`` subnets. The result is again an additive (depth-gated) table, so exact
solvers keep working. Its provenance keeps the unrefined cells, the subnets and their times, the chosen
model and a k-fold cross-validation of the refinement on the ``n`` subnets (metrics of the unrefined and the
refined table on the held-out fold of every split), so :func:`nasjax.hardware.lut_builder.refit_table`
re-applies it and a reader sees what it bought. A table is always refined from its unrefined cells: a
second refinement replaces the first.

Timing is chunked like the builder's: every chunk of subnets is timed interleaved with the table's anchor
subnet, chunks are brought to one machine speed by the anchor, and each finished chunk is kept in a partial
file next to the output, so an interrupted refinement continues where it stopped.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import numpy as np

from nasjax.errors import require
from nasjax.hardware.calibration import TableSource, calibrate
from nasjax.hardware.lut_builder import LutSpace, _load_partial, drift_factors
from nasjax.hardware.lut_validate import check_one_thread_xla, measure_chunk, table_statistic
from nasjax.hardware.runtimes import Runtime, machine_provenance
from nasjax.io import write_json
from nasjax.metrics import latency_metrics
from nasjax.tables import Table

#: seed of the refinement's random subnets (the validation's default is 1, the context subnets' 54321)
REFINE_SEED = 20261203
REFINE_SUBNETS = 100
REFINE_CHUNK = 25
REFINE_FOLDS = 5
PARTIAL_FORMAT = "nasjax.lut_refine.partial/1"
_KEEP = ("mape_percent", "kendall_tau", "within_10_percent", "worst_error_percent", "n")


def refine_partial_path(out) -> Path:
    """The partial file kept next to ``out`` while a refinement runs: ``.<name>.refine.partial.json``."""
    out = Path(out)
    return out.parent / f".{out.stem}.refine.partial.json"


def unrefined(table: Table) -> Table:
    """``table`` without its refinement (the cells and base it had before :func:`refine_table`); the table itself
    when it has none."""
    r = table.provenance.get("refinement")
    if r is None:
        return table
    values = np.asarray(r.get("unrefined_values"), dtype=np.float64)
    require(values.shape == table.values.shape and np.all(np.isfinite(values)), "table.provenance.refinement."
            "unrefined_values", values.shape, f"a finite {list(table.values.shape)} grid like the table's values")
    base = r.get("unrefined_base")
    require(isinstance(base, (int, float)) and np.isfinite(base), "table.provenance.refinement.unrefined_base", base,
            "a finite number (ms)")
    prov = {k: v for k, v in table.provenance.items() if k != "refinement"}
    return replace(table, values=values, base=float(base), provenance=prov)


def _metrics(y, p) -> dict:
    m = latency_metrics(y, p)
    return {k: (int(m[k]) if k == "n" else round(float(m[k]), 4)) for k in _KEEP}


def _cross_validated(src: TableSource, archs: np.ndarray, y: np.ndarray, folds: int, seed: int) -> dict:
    """Metrics of the unrefined table (``src``) and the refined one on held-out folds of the refinement subnets
    (the refinement refitted without each fold)."""
    order = np.random.default_rng(seed).permutation(len(y))
    pred = np.empty(len(y))
    for f in np.array_split(order, folds):
        train = np.setdiff1d(order, f)
        pred[f] = calibrate(src, archs[train], y[train]).predict(archs[f])
    return {"folds": int(folds), "unrefined": _metrics(y, src.predict(archs)), "refined": _metrics(y, pred)}


def apply_refinement(table: Table, archs, measured_ms, *, seed: int = REFINE_SEED, folds: int = REFINE_FOLDS,
                     extra: dict | None = None) -> Table:
    """``table`` (refined or not) refined from its unrefined cells on ``archs`` timed end to end (no timing).

    Args:
      table: a latency table in ms (a builder table: additive or depth-gated).
      archs: ``[n, P]`` the subnets timed end to end (at least ``2 * folds``).
      measured_ms: ``[n]`` their latency, ms, finite and positive.
      seed: the subnets' seed (recorded) and the cross-validation's split.
      folds: splits of the cross-validation recorded in the provenance.
      extra: merged into the provenance's ``refinement`` record (timing protocol, anchor times, ...).

    Returns:
      The refined table; its provenance has ``refinement`` (module docstring).
    """
    base_table = unrefined(table)
    require(base_table.unit == "ms", "table.unit", base_table.unit, "'ms' (the subnets are timed in ms)")
    a = np.atleast_2d(np.asarray(archs)).astype(np.int64)
    y = np.asarray(measured_ms, dtype=np.float64).reshape(-1)
    require(isinstance(folds, int) and folds >= 2, "folds", folds, "an integer >= 2")
    require(len(a) == len(y) and len(y) >= 2 * folds, "archs/measured_ms", (a.shape, y.shape),
            f"one latency per architecture, at least {2 * folds} subnets")
    src = TableSource(base_table)
    cal = calibrate(src, a, y)
    refined = cal.table
    prov = {k: v for k, v in refined.provenance.items() if k != "calibration"}
    mp = machine_provenance()
    prov["refinement"] = {
        "formula": "T'[p, c] = u[p, c] T[p, c], base' = c0 + u_0 base; u and c0 from "
                   "nasjax.hardware.calibration.calibrate on subnets timed end to end (the table as prior; model and "
                   "noise level by leave-one-out)",
        "method": cal.method, "tau": cal.tau, "loo_msle": cal.loo, "intercept_ms": float(cal.intercept),
        "scale_min": float(cal.multipliers.min()), "scale_max": float(cal.multipliers.max()),
        "n_subnets": int(len(y)), "seed": int(seed),
        "in_sample": {"unrefined": _metrics(y, src.predict(a)), "refined": _metrics(y, cal.predict(a))},
        "cross_validated": _cross_validated(src, a, y, folds, seed),
        "archs": a.tolist(), "end_to_end_ms": [float(v) for v in y],
        "unrefined_values": base_table.values.tolist(), "unrefined_base": float(base_table.base),
        "date": mp["date"], "command": mp["command"], "load_average": mp.get("load_average"),
        **(extra or {}),
    }
    return replace(refined, provenance=prov)


def refine_table(lspace: LutSpace, runtime: Runtime, table: Table, *, num_subnets: int = REFINE_SUBNETS,
                 seed: int = REFINE_SEED, out=None, progress: bool = True, chunk_size: int = REFINE_CHUNK) -> Table:
    """Time ``num_subnets`` random subnets of ``lspace`` end to end in ``runtime`` and refine ``table`` on them
    (:func:`apply_refinement`).

    The subnets are timed with the table's own protocol (batch size, resolution, warm-up, repeats, statistic)
    in chunks of ``chunk_size``, each with the table's anchor subnet; with ``out`` every finished chunk is kept
    in :func:`refine_partial_path` ``(out)`` and a rerun with the same settings continues; the refined table
    is written to ``out`` atomically and the partial file removed.

    Returns:
      The refined table.
    """
    prov = table.provenance
    require(prov.get("method") == "nasjax.hardware.lut_builder.build_table", "table provenance.method",
            prov.get("method"), "a table written by nasjax.hardware.lut_builder.build_table")
    require(prov.get("space") == lspace.name, "table.provenance.space", prov.get("space"), repr(lspace.name))
    require(prov.get("runtime") == runtime.name and int(prov.get("threads", -1)) == runtime.threads,
            "runtime", runtime.label, f"the table's runtime {prov.get('runtime')!r} with threads={prov.get('threads')}")
    require(prov.get("clock", "wall") == runtime.clock, "runtime.clock", runtime.clock,
            f"the table's clock {prov.get('clock', 'wall')!r}")
    check_one_thread_xla(table, runtime)
    require(isinstance(num_subnets, (int, np.integer)) and num_subnets >= 2 * REFINE_FOLDS, "num_subnets",
            num_subnets, f"an integer >= {2 * REFINE_FOLDS}")
    require(isinstance(chunk_size, int) and chunk_size >= 1, "chunk_size", chunk_size, "a positive integer")
    bs, res = int(prov["batch_size"]), int(prov["resolution"])
    warmup, repeats, stat = int(prov["warmup"]), int(prov["repeats"]), table_statistic(table)
    archs = lspace.space().random(int(seed), int(num_subnets))
    anchor_arch = np.asarray(prov.get("anchor_arch", lspace.anchor_arch()), np.int64)
    settings = {"space": lspace.name, "runtime": runtime.name, "threads": runtime.threads, "clock": runtime.clock,
                "batch_size": bs, "resolution": res, "warmup": warmup, "repeats": repeats, "statistic": stat,
                "seed": int(seed), "num_subnets": int(num_subnets), "chunk_size": int(chunk_size),
                "anchor_arch": anchor_arch.tolist()}
    ppath = refine_partial_path(out) if out is not None else None
    done = _load_partial(ppath, settings, PARTIAL_FORMAT) if ppath is not None else {}
    spans = [(lo, min(lo + chunk_size, len(archs))) for lo in range(0, len(archs), chunk_size)]
    names = [f"subnets {lo}-{hi - 1}" for lo, hi in spans]
    todo = [(n, s) for n, s in zip(names, spans) if n not in done]
    bar = None
    if progress and todo:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(archs), initial=len(archs) - sum(hi - lo for _, (lo, hi) in todo),
                   desc=f"refining {lspace.name} ({runtime.label})", unit="subnet", dynamic_ncols=True)
    anchor = None
    for name, (lo, hi) in todo:
        if anchor is None:
            anchor = runtime.prepare(lspace.pieces.subnet(lspace.to_subnet(anchor_arch)), bs, res)
        t, a_ms = measure_chunk(lspace, runtime, anchor, archs[lo:hi], batch_size=bs, resolution=res, warmup=warmup,
                                repeats=repeats, statistic=stat, bar=bar)
        done[name] = {"keys": list(range(lo, hi)), "time_ms": [float(v) for v in t.times_ms],
                      "median_ms": [float(v) for v in t.medians_ms], "spread_ms": [float(v) for v in t.spread_ms],
                      "anchor_ms": a_ms}
        if ppath is not None:
            write_json(ppath, {"format": PARTIAL_FORMAT, "settings": settings, "chunks": done})
    if bar is not None:
        bar.close()
    drift = drift_factors([done[n]["anchor_ms"] for n in names])
    meas = np.concatenate([np.asarray(done[n]["time_ms"]) * f for n, f in zip(names, drift)])
    refined = apply_refinement(table, archs, meas, seed=int(seed), extra={
        "protocol": f"{stat} of {repeats} interleaved rounds after {warmup} warm-up rounds per chunk of "
                    f"{chunk_size} subnets, each chunk with the anchor subnet (brought to one machine speed)",
        "anchor_ms_per_chunk": {n: float(done[n]["anchor_ms"]) for n in names}})
    if out is not None:
        refined.save(out)
        if ppath.exists():
            os.unlink(ppath)
    return refined
