"""MathNAS on real NAS-Bench-201 accuracies and device latencies: regret of the exact additive search.

MathNAS (NeurIPS 2023) predicts a cell's accuracy and latency as sums of per-edge block terms and solves the
resulting integer program exactly. Here the block terms come from the real benchmark table
(:mod:`nasjax.benchmarks.nasbench201`) by MathNAS's one-edge-replacement procedure
(:func:`nasjax.predictors.additive.block_contributions`, reference op ``nor_conv_3x3`` on every edge, as in
MathNAS's published NB201 table):

* accuracy: the 200-epoch seed-mean validation accuracy of ``dataset`` (the search signal);
* latency on a device: the device's measured latency column (ms), fitted the same way;
* ``bases``: ``"ref"`` = MathNAS's single all-nor_conv_3x3 base (25 measured cells per metric),
  ``n`` = ``n`` seeded random bases, ``"all"`` = every cell (the least-squares additive fit; an upper bound
  on what any additive table can do, using all 15,625 measurements).

For a budget ``T`` (ms) on a device the search is::

    a* = argmax_a  Acc_hat(a)   s.t.  Lat_hat(a) <= T          (solved exactly: run_search(solver, ...))

and its quality is judged on the TRUE table::

    feasible_true = Lat(a*) <= T
    regret_val    = max_{a: Lat(a) <= T} ValAcc(a)  - ValAcc(a*)     (accuracy points)
    regret_test   = max_{a: Lat(a) <= T} TestAcc(a) - TestAcc(a*)

A found cell that violates the true budget is reported as such (its regret can then be negative); the
summary gives the mean and worst regret over the truly feasible answers and the violation count.
Energy: no per-cell energy table exists in the shared data, so ``resource="energy"`` raises naming the
(empty) list of energy devices.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence

import numpy as np

from nasjax.benchmarks.nasbench201 import NB201Table, canonical_dataset
from nasjax.constraints import Constraint
from nasjax.errors import InfeasibleError, NasjaxInputError
from nasjax.metrics import spearman
from nasjax.predictors.additive import AdditivePredictor, block_contributions
from nasjax.search import SearchProblem, exact_searchers, run_search
from nasjax.spaces.nasbench201 import OPS, arch_to_str, nasbench201_space

REF_OP = OPS.index("nor_conv_3x3")
NB201_REF = np.full(6, REF_OP, dtype=np.int64)
DEFAULT_QUANTILES = (0.1, 0.25, 0.5, 0.75, 0.9)
_UNITS = {"lat": "ms", "energy": "mJ"}
_METRIC = {"lat": "latency", "energy": "energy"}


def _column_fn(column: np.ndarray, table: NB201Table):
    return lambda archs: column[table.index_of(archs)]


def _resource_column(table: NB201Table, device: str, resource: str) -> tuple[np.ndarray, str]:
    if resource not in ("latency", "energy"):
        raise NasjaxInputError(f"resource: got {resource!r}, expected 'latency' or 'energy'")
    kind = "lat" if resource == "latency" else "energy"
    col = table.latency(device) if kind == "lat" else table.energy(device)
    return col, kind


def nb201_additive(
    table: NB201Table,
    dataset: str,
    devices: Sequence[str] = (),
    bases="ref",
    seed: int = 0,
    resource: str = "latency",
) -> AdditivePredictor:
    """MathNAS's additive tables of NAS-Bench-201, measured on the benchmark table.

    ``Acc_hat(a) = F0 - sum_i D[i, a_i]`` with ``D`` from one-edge replacements
    (:func:`nasjax.predictors.additive.block_contributions`, reference op ``nor_conv_3x3``), and the same
    for each device's resource column.

    Args:
      table: the NAS-Bench-201 table.
      dataset: the dataset whose seed-mean validation accuracy (%) is fitted.
      devices: devices whose ``resource`` column is fitted.
      bases: ``"ref"``, ``"all"`` or a number of random bases.
      seed: seed of the random bases.
      resource: ``"latency"`` (ms) or ``"energy"``.

    Returns:
      An :class:`~nasjax.predictors.additive.AdditivePredictor`: the accuracy table and one table per
      device, keyed ``"<resource>/<device>"``.
    """
    ds = canonical_dataset(dataset)
    acc = block_contributions(_column_fn(table.val_acc(ds), table), [len(OPS)] * 6, NB201_REF, bases, seed)
    acc_t = acc.table("accuracy", "%", space="nasbench201", source=f"val_acc/{ds}/mean")
    res = {}
    for dev in devices:
        col, kind = _resource_column(table, dev, resource)
        c = block_contributions(_column_fn(col, table), [len(OPS)] * 6, NB201_REF, bases, seed)
        res[f"{resource}/{dev}"] = c.table(
            _METRIC[kind], _UNITS[kind], device=dev, space="nasbench201", source=f"{kind}/{dev}"
        )
    return AdditivePredictor(acc_t, res)


def default_budgets(table: NB201Table, device: str, quantiles=DEFAULT_QUANTILES,
                    resource: str = "latency") -> list[float]:
    """Budgets at quantiles of the device's true per-cell values.

    Args:
      table: the NAS-Bench-201 table.
      device: a device of the table.
      quantiles: values in (0, 1].
      resource: ``"latency"`` or ``"energy"``.

    Returns:
      One budget per quantile, in the resource's unit (ms for latency), over the measured cells.
    """
    col, _ = _resource_column(table, device, resource)
    q = np.asarray(quantiles, dtype=np.float64)
    if q.ndim != 1 or q.size == 0 or np.any(~np.isfinite(q)) or np.any(q <= 0) or np.any(q > 1):
        raise NasjaxInputError(f"quantiles: got {quantiles!r}, expected values in (0, 1]")
    return [float(x) for x in np.quantile(col[np.isfinite(col)], q)]


def true_best(table: NB201Table, dataset: str, device: str, budget: float, resource: str = "latency") -> dict:
    """The truly feasible optimum under ``budget``: ``argmax_{a: r(a) <= budget} ValAcc(a)`` (and TestAcc).

    Args:
      table: the NAS-Bench-201 table.
      dataset: the dataset.
      device: the device whose measured ``resource`` bounds the cells.
      budget: the bound, in the resource's unit.
      resource: ``"latency"`` or ``"energy"``.

    Returns:
      ``{"n_feasible", "best_val_row", "best_val", "best_val_test", "best_test_row", "best_test"}``.
    """
    col, _ = _resource_column(table, device, resource)
    feas = np.isfinite(col) & (col <= budget)
    if not feas.any():
        lo = float(np.nanmin(col))
        raise InfeasibleError(
            f"budget: {budget:g} on {device!r} is below every measured cell (smallest {lo:.4f})", {resource: lo}
        )
    ds = canonical_dataset(dataset)
    rv = table.best(f"val_acc/{ds}/mean", feas)
    rt = table.best(f"test_acc/{ds}", feas)
    return {
        "n_feasible": int(feas.sum()),
        "best_val_row": rv,
        "best_val": float(table.val_acc(ds)[rv]),
        "best_val_test": float(table.test_acc(ds)[rv]),
        "best_test_row": rt,
        "best_test": float(table.test_acc(ds)[rt]),
    }


def _solve(pred: AdditivePredictor, key: str, budget: float, solver: str):
    """The exact searcher ``solver`` on ``max Acc_hat s.t. Lat_hat <= budget`` (a CVXPY program is compiled
    once per device and re-solved per budget)."""
    t = pred.resources[key]
    problem = SearchProblem(nasbench201_space(), pred.accuracy, (Constraint(t, budget, t.unit),))
    return run_search(solver, problem)


def regret_sweep(
    table: NB201Table,
    devices: Sequence[str] | None,
    budgets_per_device: Mapping[str, Sequence[float]] | None,
    dataset: str,
    bases="ref",
    seed: int = 0,
    solver: str = "mckp",
    resource: str = "latency",
    quantiles=DEFAULT_QUANTILES,
) -> list[dict]:
    """One row per (device, budget): the MathNAS answer and its regret on the true table.

    Args:
      table: the NAS-Bench-201 table.
      devices: device names (``None`` = HELP's 27).
      budgets_per_device: ``{device: [budget, ...]}`` in the resource's unit (ms); a device missing from it
        (or ``None``) gets :func:`default_budgets` at ``quantiles``.
      dataset: the dataset whose seed-mean validation accuracy is the objective.
      bases: the block-contribution bases (``"ref"``, ``"all"`` or an int).
      seed: seed of the random bases.
      solver: an exact searcher of the registry (``mckp``, ``highs``, ``gurobi``, ``enumerate``).
      resource: ``"latency"`` or ``"energy"``.
      quantiles: the default budgets' quantiles.

    Returns:
      Plain dict rows: budget, the true optimum, the found cell, ``regret_val = max_{Lat(a) <= T} ValAcc(a)
      - ValAcc(a*)``, ``regret_test`` likewise, ``feasible_true`` (module docstring).
    """
    if solver not in exact_searchers():
        raise NasjaxInputError(f"solver: got {solver!r}, expected one of {', '.join(exact_searchers())}")
    ds = canonical_dataset(dataset)
    devices = list(table.devices(source="HELP") if devices is None else devices)
    if not devices:
        raise NasjaxInputError("devices: got an empty list, expected at least one device")
    t_fit = time.perf_counter()
    pred = nb201_additive(table, ds, devices, bases, seed, resource)
    fit_s = time.perf_counter() - t_fit
    val, test = table.val_acc(ds), table.test_acc(ds)
    bases_desc = pred.accuracy.provenance["bases"]
    measured = pred.accuracy.provenance["measured_architectures"]
    rows = []
    for dev in devices:
        key = f"{resource}/{dev}"
        col, _ = _resource_column(table, dev, resource)
        budgets = (budgets_per_device or {}).get(dev)
        budgets = default_budgets(table, dev, quantiles, resource) if budgets is None else list(budgets)
        for budget in budgets:
            if not np.isfinite(budget):
                raise NasjaxInputError(f"budgets_per_device[{dev!r}]: got {budget!r}, expected finite numbers")
            best = true_best(table, ds, dev, float(budget), resource)
            row = dict(
                dataset=ds, device=dev, resource=resource, budget=float(budget), unit=pred.resources[key].unit,
                bases=bases_desc, measured_per_metric=measured, solver=solver, **best,
            )
            try:
                res = _solve(pred, key, float(budget), solver)
            except InfeasibleError as e:
                row.update(status="infeasible (predicted)", found_row=-1, found_arch="", feasible_true=False,
                           pred_acc=np.nan, pred_resource=np.nan, true_resource=np.nan, found_val=np.nan,
                           found_test=np.nan, regret_val=np.nan, regret_test=np.nan, solve_ms=np.nan, note=str(e))
                rows.append(row)
                continue
            r = int(table.index_of(res.arch)[0])
            true_r = float(col[r])
            row.update(
                status="ok",
                found_row=r,
                found_arch=arch_to_str(res.arch),
                pred_acc=float(res.objective),
                pred_resource=float(res.resources[pred.resources[key].metric]),
                true_resource=true_r,
                feasible_true=bool(np.isfinite(true_r) and true_r <= budget),
                found_val=float(val[r]),
                found_test=float(test[r]),
                regret_val=best["best_val"] - float(val[r]),
                regret_test=best["best_test"] - float(test[r]),
                solve_ms=float(res.solve_time_ms),
                note="",
            )
            rows.append(row)
    for row in rows:
        row["fit_seconds"] = round(fit_s, 4)
    return rows


def fit_errors(table: NB201Table, pred: AdditivePredictor, dataset: str) -> dict:
    """How well the additive tables reproduce the true columns over every measured cell.

    Args:
      table: the NAS-Bench-201 table.
      pred: tables from :func:`nb201_additive`.
      dataset: the dataset whose seed-mean validation accuracy the accuracy table is compared with.

    Returns:
      ``{name: {"rmse", "max_abs", "spearman", "cells"}}`` for ``"accuracy"`` and every resource table, with
      ``rmse = sqrt(mean (pred - true)^2)`` and :func:`nasjax.metrics.spearman` ``(true, pred)``.
    """
    truth = {"accuracy": table.val_acc(canonical_dataset(dataset))}
    tabs = {"accuracy": pred.accuracy}
    for key, t in pred.resources.items():
        kind, dev = key.split("/", 1)
        truth[key] = _resource_column(table, dev, kind)[0]
        tabs[key] = t
    out = {}
    for k, y in truth.items():
        ok = np.isfinite(y)
        p = np.asarray(tabs[k].predict(table.archs[ok]))
        e = p - y[ok]
        rho = spearman(y[ok], p)
        out[k] = {"rmse": float(np.sqrt(np.mean(e**2))), "max_abs": float(np.abs(e).max()), "spearman": rho,
                  "cells": int(ok.sum())}
    return out


def summarize(rows: Sequence[dict]) -> dict:
    """Mean / worst regret (accuracy points) over the truly feasible answers, and the violations.

    Args:
      rows: rows of :func:`regret_sweep`.

    Returns:
      ``{"runs", "solved", "truly_feasible", "violations", "infeasible_predicted", "mean_regret_val",
      "worst_regret_val", "mean_regret_test", "worst_regret_test", "optimal_found", "mean_solve_ms"}``.
    """
    ok = [r for r in rows if r["status"] == "ok"]
    feas = [r for r in ok if r["feasible_true"]]

    def stat(key, rs):
        v = np.array([r[key] for r in rs], dtype=np.float64)
        return (float(v.mean()), float(v.max())) if v.size else (float("nan"), float("nan"))

    mv, wv = stat("regret_val", feas)
    mt, wt = stat("regret_test", feas)
    return {
        "runs": len(rows),
        "solved": len(ok),
        "truly_feasible": len(feas),
        "violations": len(ok) - len(feas),
        "infeasible_predicted": len(rows) - len(ok),
        "mean_regret_val": mv,
        "worst_regret_val": wv,
        "mean_regret_test": mt,
        "worst_regret_test": wt,
        "optimal_found": sum(1 for r in feas if r["found_row"] == r["best_val_row"]),
        "mean_solve_ms": float(np.mean([r["solve_ms"] for r in ok])) if ok else float("nan"),
    }


def report(datasets, bases_list, solver: str = "mckp", seed: int = 0, log=print) -> dict:
    """The sweep over HELP's devices at the default budget quantiles, one summary line per dataset x bases.

    Args:
      datasets: NAS-Bench-201 datasets.
      bases_list: ``"ref"``, ``"all"`` or integers (as strings) of random bases.
      solver: the exact searcher of every budget.
      seed: seed of the random bases.
      log: where the summary lines go.

    Returns:
      ``{"<dataset>/<bases>": summary}``: :func:`summarize` plus the accuracy and mean latency Spearman of
      the tables and the seconds the row took.
    """
    from nasjax.benchmarks import nasbench201 as nb

    table = nb.load()
    devices = table.devices(source="HELP")
    out = {}
    for ds in datasets:
        for b in bases_list:
            bases = b if b in ("ref", "all") else int(b)
            t0 = time.perf_counter()
            rows = regret_sweep(table, devices, None, ds, bases=bases, seed=seed, solver=solver)
            s = summarize(rows)
            fe = fit_errors(table, nb201_additive(table, ds, devices, bases, seed), ds)
            s["acc_spearman"] = fe["accuracy"]["spearman"]
            s["lat_spearman_mean"] = float(np.mean([v["spearman"] for k, v in fe.items() if k != "accuracy"]))
            s["seconds"] = time.perf_counter() - t0
            log(
                f"{canonical_dataset(ds):15s} bases={b:4s} measured/metric={rows[0]['measured_per_metric']:5d} "
                f"acc rho={s['acc_spearman']:.3f} lat rho={s['lat_spearman_mean']:.3f} | {s['runs']} runs: "
                f"{s['truly_feasible']} truly feasible, {s['violations']} violate, {s['infeasible_predicted']} "
                f"predicted infeasible | regret val mean/worst {s['mean_regret_val']:.2f}/{s['worst_regret_val']:.2f}"
                f" test {s['mean_regret_test']:.2f}/{s['worst_regret_test']:.2f} pts ({s['seconds']:.2f} s)"
            )
            out[f"{canonical_dataset(ds)}/{b}"] = {k: round(v, 4) if isinstance(v, float) else v for k, v in s.items()}
    return out
