"""Latency-constrained NAS-Bench-201 search on real latency, with predicted latency in the loop (DGL, TMC 2023).

The searcher sees *predicted* latency ``l_hat`` and an accuracy table ``acc``; the truth is the measured
latency ``l`` of the device. For a budget ``b``::

    found  = argmax_{a in pool} acc(a)   s.t.  l_hat(a) <= b          (what the search returns)
    best   = argmax_{a in pool} acc(a)   s.t.  l(a) <= b              (the true optimum)
    violated = l(found) > b,   gap = acc(best) - acc(found)  (accuracy points, may be < 0 when violated)

``pool`` is every architecture with both an accuracy and a measured latency on the device (DGL's
``findnas`` is the exhaustive form over its 4000-net pool; :func:`search_pool` also runs the genetic
algorithm of :mod:`nasjax.search.genetic` restricted to the pool). Per device we report over a grid of
budgets (quantiles of the device's true latency on the pool) the *violation rate* (share of budgets whose
found architecture truly exceeds the budget) and the mean/max accuracy gap over the budgets where the
found architecture is truly feasible (and, separately, over all budgets).

Accuracy sources (:func:`nb201_accuracy`): ``"dgl_oracle"``: DGL's ``NAS/net.txt`` + ``acc.txt`` (4000
archs, CIFAR-100 test accuracy %); ``"200ep"``: the NAS-Bench-201 200-epoch per-seed mean accuracies of
all 15625 cells (../shared/data/constrained-tpe, ``cifar10-valid`` / ``cifar100`` / ``ImageNet16-120``).

:func:`dgl_devices_constrained_eval` runs it on DGL's five phones: the DGL model of A is trained on the
training split of ``a.txt`` only, the pool is the held-out architectures, and the device is described by
its 4 hardware parameters (``k = 0``) or by ``k`` measured training architectures
(:func:`~nasjax.hardware.dgl.fit_hw_params_from_k`). :func:`constrained_search_report` is generic (any
device, any predictor) for ``scripts/bench_latency_models.py``.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nasjax.errors import InfeasibleError, NasjaxInputError, require
from nasjax.io import shared_data_dir

ACC_SOURCES = ("dgl_oracle", "200ep")
_200EP_COLUMNS = {"cifar10-valid": "cifar10valid_valid_acc_mean", "cifar100": "cifar100_valtest_acc_mean",
                  "ImageNet16-120": "imagenet16_valtest_acc_mean"}
DEFAULT_QUANTILES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


def nb201_accuracy(source: str = "dgl_oracle", dataset: str = "cifar100", data_root=None,
                   nas_dir=None) -> tuple[np.ndarray, np.ndarray]:
    """``(archs [N, 6] choice indices, accuracy [N] in %)`` of NAS-Bench-201 from ``source``.

    ``data_root`` defaults to ../shared/data; ``nas_dir`` overrides DGL's ``NAS`` folder (dgl_oracle)."""
    require(source in ACC_SOURCES, "accuracy source", source, f"one of {', '.join(ACC_SOURCES)}")
    if source == "dgl_oracle":
        from nasjax.hardware.dgl import _read_floats, read_archs

        root = None if nas_dir else (Path(data_root) if data_root else shared_data_dir(required=True))
        base = Path(nas_dir) if nas_dir else root / "DGL" / "data" / "nasbench201" / "NAS"
        archs = read_archs("nasbench201", base / "net.txt")
        acc = _read_floats(base / "acc.txt", "NAS/acc.txt")
        require(acc.size == len(archs), "NAS/acc.txt", acc.size, f"{len(archs)} values, one per row of NAS/net.txt")
        return archs, acc
    require(dataset in _200EP_COLUMNS, "dataset", dataset, f"one of {', '.join(_200EP_COLUMNS)}")
    root = Path(data_root) if data_root else shared_data_dir(required=True)
    from nasjax.spaces.nasbench201 import strs_to_archs

    p = root / "constrained-tpe" / "derived" / "nb201_200ep_accuracy.csv"
    if not p.is_file():
        raise NasjaxInputError(f"200-epoch table: no file {str(p)!r}; expected ../shared/data/constrained-tpe/derived")
    with open(p, newline="") as fh:
        rows = list(csv.DictReader(fh))
    archs = strs_to_archs([r["arch_str"] for r in rows])
    acc = np.array([float(r[_200EP_COLUMNS[dataset]]) for r in rows])
    return archs, acc


def match_rows(space, archs_a: np.ndarray, archs_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(i, j)`` with ``archs_a[i] == archs_b[j]`` (each architecture once)."""
    ia, ib = space.index_of(archs_a), space.index_of(archs_b)
    common, i, j = np.intersect1d(ia, ib, return_indices=True)
    return i, j


def budgets_from_quantiles(true_latency, quantiles: Sequence[float] = DEFAULT_QUANTILES) -> np.ndarray:
    q = np.asarray(quantiles, np.float64)
    require(bool(np.all((q > 0) & (q < 1))), "quantiles", q.tolist(), "fractions in (0, 1)")
    return np.quantile(np.asarray(true_latency, np.float64), q)


def search_pool(archs: np.ndarray, accuracy: np.ndarray, predicted_latency: np.ndarray, budget: float, *,
                searcher: str = "exhaustive", seed: int = 0, ga_config=None, details: bool = False):
    """Index into the pool of the most accurate architecture with ``predicted_latency <= budget``.

    ``searcher="exhaustive"`` scans the pool (ties: lowest index); ``"genetic"`` runs
    :class:`~nasjax.search.genetic.GeneticSearch` over NAS-Bench-201 seeded from the pool, with
    membership of the pool and the predicted budget as constraints. ``None`` when nothing qualifies.
    With ``details``, returns ``(index, info)`` (GA: evaluations and best fitness per generation).
    """
    idx, info = _search_pool(archs, accuracy, predicted_latency, budget, searcher, seed, ga_config)
    return (idx, info) if details else idx


def _search_pool(archs, accuracy, predicted_latency, budget, searcher, seed, ga_config):
    acc = np.asarray(accuracy, np.float64)
    lat = np.asarray(predicted_latency, np.float64)
    if searcher == "exhaustive":
        ok = lat <= budget
        if not ok.any():
            return None, {"evaluations": len(acc)}
        return int(np.argmax(np.where(ok, acc, -np.inf))), {"evaluations": len(acc)}
    if searcher != "genetic":
        raise NasjaxInputError(f"searcher: got {searcher!r}, expected 'exhaustive' or 'genetic'")
    from nasjax.search.genetic import FnConstraint, GAConfig, genetic_search
    from nasjax.spaces import get_space

    space = get_space("nasbench201")
    key = space.index_of(archs)
    pos = {int(k): n for n, k in enumerate(key)}

    def lookup(a, table, missing):
        ids = space.index_of(a)
        return np.array([table[pos[int(i)]] if int(i) in pos else missing for i in ids])

    cons = [FnConstraint("pool", lambda a: np.array([0.0 if int(i) in pos else 1.0 for i in space.index_of(a)]), 0.0),
            FnConstraint("latency", lambda a: lookup(a, lat, np.inf), float(budget))]
    try:
        r = genetic_search(space, lambda a: lookup(a, acc, -np.inf), cons, ga_config or GAConfig(population_size=50, epochs=20),
                           seed=seed, init_population=archs)
    except InfeasibleError:
        return None, {"evaluations": None}
    return pos[int(space.index_of(r.arch[None])[0])], {"evaluations": r.evaluations, "best_per_epoch": r.best_per_epoch}


def constrained_search_report(archs, accuracy, true_latency, predicted_latency, budgets, *, device: str = "",
                              searcher: str = "exhaustive", seed: int = 0, ga_config=None) -> dict[str, Any]:
    """Search each budget with the predicted latency and score it against the measured one.

    Returns ``{"device", "n_pool", "budgets": [per-budget dicts], "violation_rate", "mean_gap_feasible",
    "max_gap_feasible", "mean_gap_all", "n_not_found"}`` (gaps in accuracy points)."""
    acc = np.asarray(accuracy, np.float64)
    lt = np.asarray(true_latency, np.float64)
    lp = np.asarray(predicted_latency, np.float64)
    require(acc.shape == lt.shape == lp.shape and acc.ndim == 1, "pool arrays",
            (acc.shape, lt.shape, lp.shape), "accuracy, true and predicted latency of the same length")
    require(bool(np.all(np.isfinite(lp))), "predicted latency", "NaN/inf", "finite predictions")
    per = []
    for b in np.asarray(budgets, np.float64):
        best = search_pool(archs, acc, lt, b)  # the truth: exhaustive on measured latency
        found = search_pool(archs, acc, lp, b, searcher=searcher, seed=seed, ga_config=ga_config)
        row = {"budget": float(b), "best_acc": None if best is None else float(acc[best]),
               "found_acc": None if found is None else float(acc[found]),
               "found_true_latency": None if found is None else float(lt[found]),
               "found_pred_latency": None if found is None else float(lp[found])}
        row["violated"] = bool(found is not None and lt[found] > b)
        row["gap"] = None if (found is None or best is None) else float(acc[best] - acc[found])
        per.append(row)
    found_rows = [r for r in per if r["found_acc"] is not None]
    feas = [r for r in found_rows if not r["violated"] and r["gap"] is not None]
    return {
        "device": device,
        "n_pool": len(acc),
        "searcher": searcher,
        "budgets": per,
        "violation_rate": float(np.mean([r["violated"] for r in per])) if per else float("nan"),
        "n_not_found": int(len(per) - len(found_rows)),
        "mean_gap_feasible": float(np.mean([r["gap"] for r in feas])) if feas else float("nan"),
        "max_gap_feasible": float(np.max([r["gap"] for r in feas])) if feas else float("nan"),
        "mean_gap_all": float(np.mean([r["gap"] for r in found_rows if r["gap"] is not None])) if found_rows else float("nan"),
    }


def dgl_devices_constrained_eval(source: str = "200ep", *, dataset: str = "cifar100", k: int = 0, n_splits: int = 3,
                                 seed: int = 0, quantiles: Sequence[float] = DEFAULT_QUANTILES,
                                 searcher: str = "exhaustive", data_root=None,
                                 model_kwargs: Mapping | None = None, ga_config=None) -> list[dict]:
    """Budget-violation rate and accuracy gap per DGL NAS-Bench-201 phone (see module docstring).

    For each split: train the A model on the training rows of ``a.txt``; pool = held-out archs that have
    an accuracy in ``source``; predicted latency = DGL's formula with the phone's hardware parameters
    (``k = 0``) or the constant fitted on ``k`` random *training* archs' measured latency (``k > 0``).
    One row per device, averaged over splits."""
    from nasjax.hardware import dgl
    from nasjax.spaces import get_space

    space = get_space("nasbench201")
    data_path = (Path(data_root) / "DGL" / "data" / "nasbench201") if data_root else None
    data = dgl.load_dgl("nasbench201", data_path)
    acc_archs, acc_vals = nb201_accuracy(source, dataset, data_root)
    i_data, j_acc = match_rows(space, data.archs, acc_archs)
    acc_of = np.full(len(data.archs), np.nan)
    acc_of[i_data] = acc_vals[j_acc]
    rng = np.random.default_rng(seed)
    out: dict[str, list[dict]] = {d: [] for d in data.devices}
    for s, (tr, te) in enumerate(dgl.arch_splits(len(data.archs), n_splits, 0.2, seed)):
        model = dgl.train_a_model("nasbench201", data.archs[tr], data.A[tr], seed=seed * 1000 + s, **dict(model_kwargs or {}))
        pool = te[np.isfinite(acc_of[te])]
        A_pool = model.predict_A(data.archs[pool])
        for d in data.devices:
            if k == 0:
                pred = dgl.dgl_latency(A_pool, data.hardware[d])
            else:
                ref = rng.choice(tr, size=k, replace=False)
                fit = dgl.fit_hw_params_from_k(model.predict_A(data.archs[ref]), data.latency[d][ref], offset=k >= 2)
                pred = fit.predict(A_pool)
            true = data.latency[d][pool]
            rep = constrained_search_report(data.archs[pool], acc_of[pool], true, pred, budgets_from_quantiles(true, quantiles),
                                            device=d, searcher=searcher, seed=seed + s, ga_config=ga_config)
            out[d].append(rep)
    rows = []
    for d, reps in out.items():
        rows.append({
            "device": d, "k": k, "source": source, "dataset": dataset, "n_splits": n_splits, "searcher": searcher,
            "n_pool_mean": float(np.mean([r["n_pool"] for r in reps])), "n_budgets": len(quantiles),
            "violation_rate": float(np.mean([r["violation_rate"] for r in reps])),
            "mean_gap_feasible": float(np.nanmean([r["mean_gap_feasible"] for r in reps])),
            "max_gap_feasible": float(np.nanmax([r["max_gap_feasible"] for r in reps])),
            "mean_gap_all": float(np.nanmean([r["mean_gap_all"] for r in reps])),
            "n_not_found": int(sum(r["n_not_found"] for r in reps)),
        })
    return rows
