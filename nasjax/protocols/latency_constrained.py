"""Latency-constrained NAS-Bench-201 search on real latency, with predicted latency in the loop (DGL, TMC 2023).

The searcher sees *predicted* latency ``l_hat`` and an accuracy table ``acc``; the truth is the measured
latency ``l`` of the device. For a budget ``b``::

    found  = argmax_{a in pool} acc(a)   s.t.  l_hat(a) <= b          (what the search returns)
    best   = argmax_{a in pool} acc(a)   s.t.  l(a) <= b              (the true optimum)
    violated = l(found) > b,   gap = acc(best) - acc(found)  (accuracy points, may be < 0 when violated)

``pool`` is every architecture with both an accuracy and a measured latency on the device (DGL's
``findnas`` is the exhaustive form over its 4000-net pool; :func:`search_pool` also runs DGL's genetic
algorithm restricted to the pool). Per device we report over a grid of budgets (quantiles of the device's
true latency on the pool) the *violation rate* (share of budgets whose found architecture truly exceeds
the budget) and the mean/max accuracy gap over the budgets where the found architecture is truly feasible.

Accuracy sources (:func:`nb201_accuracy`): ``"dgl_oracle"``: DGL's ``NAS/net.txt`` + ``acc.txt`` (4000 archs,
CIFAR-100 test accuracy %, :func:`nasjax.benchmarks.dgl.read_nas_pool`); ``"200ep"``: the NAS-Bench-201
200-epoch run-mean validation accuracies of all 15625 cells (:func:`nasjax.benchmarks.nb201_accuracy.read_200ep`).

:func:`dgl_devices_constrained_eval` runs it on DGL's five phones; :func:`dgl_nb201_nas` and
:func:`dgl_fbnetv3_nas` are DGL's NAS modes. Every genetic search goes through :func:`_genetic`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from nasjax.benchmarks.dgl import default_data_path, read_nas_pool
from nasjax.benchmarks.nasbench201 import canonical_dataset
from nasjax.benchmarks.nb201_accuracy import read_200ep
from nasjax.constraints import Constraint
from nasjax.errors import InfeasibleError, NasjaxInputError, require
from nasjax.search import FunctionModel, SearchProblem, run_search
from nasjax.search.genetic import GAConfig
from nasjax.spaces import get_space
from nasjax.spaces.nasbench201 import arch_to_str, strs_to_archs

ACC_SOURCES = ("dgl_oracle", "200ep")
DEFAULT_QUANTILES = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)


#: the settings of the pool search of the constrained-search protocol
POOL_GENETIC = GAConfig(population_size=50, epochs=20)


def _genetic(space, fitness, constraints, settings: GAConfig, seed: int, init_population=None):
    """One genetic search (the registry's ``genetic`` searcher): maximise ``fitness(archs) -> [N]`` subject
    to ``constraints`` (``(name, fn, bound, unit)``: ``fn(archs) <= bound``). Returns ``{"arch", "resources",
    "evaluations", "best_per_epoch", "search_ms"}``; :class:`~nasjax.errors.InfeasibleError` when nothing is
    feasible."""
    cons = tuple(Constraint(FunctionModel(fn, name, unit), float(bound), unit) for name, fn, bound, unit in constraints)
    problem = SearchProblem(space, FunctionModel(fitness, "score", "1"), cons)
    r = run_search("genetic", problem, seed, config=settings, init_population=init_population)
    return {"arch": r.arch, "resources": r.resources, "evaluations": r.info["evaluations"],
            "best_per_epoch": list(r.info["best_per_epoch"]), "search_ms": r.solve_time_ms}


def nb201_accuracy(source: str = "dgl_oracle", dataset: str = "cifar100", data_root=None,
                   nas_dir=None) -> tuple[np.ndarray, np.ndarray]:
    """``(archs [N, 6] choice indices, accuracy [N] in %)`` of NAS-Bench-201 from ``source``.

    ``data_root`` defaults to ../shared/data; ``nas_dir`` overrides DGL's ``NAS`` folder (``dgl_oracle``);
    ``dataset`` (``200ep``): ``cifar10-valid``, ``cifar100`` or ``ImageNet16-120``.

    Args:
      source: ``"dgl_oracle"`` (DGL's 4000-arch pool, CIFAR-100 test accuracy) or ``"200ep"`` (all 15625
        cells, 200-epoch run-mean validation accuracy).
      dataset: the dataset of ``"200ep"`` (aliases accepted).
      data_root: the reference data folder.
      nas_dir: DGL's ``NAS`` folder.

    Returns:
      ``(archs int64 [N, 6], accuracy float64 [N])``.

    Raises:
      NasjaxInputError: on an unknown source or dataset, or missing or malformed files.
    """
    require(source in ACC_SOURCES, "accuracy source", source, f"one of {', '.join(ACC_SOURCES)}")
    if source == "dgl_oracle":
        if nas_dir is None:
            base = Path(data_root) / "DGL" / "data" / "nasbench201" if data_root else default_data_path("nasbench201")
            nas_dir = base / "NAS"
        return read_nas_pool(nas_dir)
    table = read_200ep(data_root)
    return strs_to_archs(list(table.arch_strings)), table.val_mean[canonical_dataset(dataset)]


def match_rows(space, archs_a: np.ndarray, archs_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(i, j)`` with ``archs_a[i] == archs_b[j]`` (each architecture once).

    Args:
      space: the search space of both sets.
      archs_a: ``[N, P]`` choice vectors.
      archs_b: ``[M, P]`` choice vectors.

    Returns:
      ``(i, j)``: int64 index arrays of equal length, sorted by the architectures' mixed-radix index.
    """
    ia, ib = space.index_of(archs_a), space.index_of(archs_b)
    _, i, j = np.intersect1d(ia, ib, return_indices=True)
    return i, j


def budgets_from_quantiles(true_latency, quantiles: Sequence[float] = DEFAULT_QUANTILES) -> np.ndarray:
    """Budgets at the given quantiles (fractions in (0, 1)) of the true latencies.

    Args:
      true_latency: the measured latencies of the pool.
      quantiles: fractions in (0, 1).

    Returns:
      float64 ``[len(quantiles)]`` budgets, in the latencies' unit (numpy's linear quantiles).

    Raises:
      NasjaxInputError: when ``quantiles`` is empty or a value is outside (0, 1).
    """
    q = np.asarray(quantiles, np.float64)
    require(q.size > 0 and bool(np.all((q > 0) & (q < 1))), "quantiles", q.tolist(), "fractions in (0, 1)")
    return np.quantile(np.asarray(true_latency, np.float64), q)


def search_pool(archs: np.ndarray, accuracy: np.ndarray, predicted_latency: np.ndarray, budget: float, *,
                searcher: str = "exhaustive", seed: int = 0, genetic: GAConfig = POOL_GENETIC,
                details: bool = False):
    """Index into the pool of the most accurate architecture with ``predicted_latency <= budget``.

    ``searcher="exhaustive"`` scans the pool (ties: lowest index); ``"genetic"`` runs DGL's GA over
    NAS-Bench-201 seeded from the pool, with membership of the pool and the predicted budget as constraints.
    ``None`` when nothing qualifies. With ``details``, returns ``(index, info)`` (GA: evaluations and best
    fitness per generation).

    Args:
      archs: ``[N, 6]`` the pool's choice vectors.
      accuracy: ``[N]`` their accuracy.
      predicted_latency: ``[N]`` their latency as the search sees it.
      budget: the latency budget, in the latencies' unit.
      searcher: ``"exhaustive"`` or ``"genetic"``.
      seed: the GA's seed.
      genetic: the GA's settings.
      details: also return the search's details.

    Returns:
      The pool index (or ``None``), or ``(index, info)`` with ``details``.

    Raises:
      NasjaxInputError: on an unknown searcher.
    """
    acc = np.asarray(accuracy, np.float64)
    lat = np.asarray(predicted_latency, np.float64)
    if searcher == "exhaustive":
        ok = lat <= budget
        idx = int(np.argmax(np.where(ok, acc, -np.inf))) if ok.any() else None
        info = {"evaluations": len(acc)}
    elif searcher == "genetic":
        space = get_space("nasbench201")
        pos = {int(k): n for n, k in enumerate(space.index_of(archs))}

        def lookup(a, table, missing):
            return np.array([table[pos[int(i)]] if int(i) in pos else missing for i in space.index_of(a)])

        cons = [("pool", lambda a: np.array([0.0 if int(i) in pos else 1.0 for i in space.index_of(a)]), 0.0, "1"),
                ("latency", lambda a: lookup(a, lat, np.inf), float(budget), "ms")]
        try:
            r = _genetic(space, lambda a: lookup(a, acc, -np.inf), cons, genetic, seed, init_population=archs)
            idx = pos[int(space.index_of(r["arch"][None])[0])]
            info = {"evaluations": r["evaluations"], "best_per_epoch": r["best_per_epoch"]}
        except InfeasibleError:
            idx, info = None, {"evaluations": None}
    else:
        raise NasjaxInputError(f"searcher: got {searcher!r}, expected 'exhaustive' or 'genetic'")
    return (idx, info) if details else idx


def constrained_search_report(archs, accuracy, true_latency, predicted_latency, budgets, *, device: str = "",
                              searcher: str = "exhaustive", seed: int = 0,
                              genetic: GAConfig = POOL_GENETIC) -> dict[str, Any]:
    """Search each budget with the predicted latency and score it against the measured one.

    Args:
      archs: ``[N, 6]`` the pool's choice vectors.
      accuracy: ``[N]`` their accuracy (%).
      true_latency: ``[N]`` their measured latency.
      predicted_latency: ``[N]`` their predicted latency (same unit), finite.
      budgets: the latency budgets.
      device: the device's name, recorded in the report.
      searcher: ``"exhaustive"`` or ``"genetic"`` (the truth is always exhaustive on measured latency).
      seed: the GA's seed.
      genetic: the GA's settings.

    Returns:
      ``{"device", "n_pool", "budgets": [per-budget dicts], "violation_rate", "mean_gap_feasible",
      "max_gap_feasible", "mean_gap_all", "n_not_found"}`` (gaps in accuracy points).

    Raises:
      NasjaxInputError: when the arrays differ in length or are not 1-D, or a prediction is not finite.
    """
    acc = np.asarray(accuracy, np.float64)
    lt = np.asarray(true_latency, np.float64)
    lp = np.asarray(predicted_latency, np.float64)
    require(acc.shape == lt.shape == lp.shape and acc.ndim == 1, "pool arrays",
            (acc.shape, lt.shape, lp.shape), "accuracy, true and predicted latency of the same length")
    require(bool(np.all(np.isfinite(lp))), "predicted latency", "NaN/inf", "finite predictions")
    per = []
    for b in np.asarray(budgets, np.float64):
        best = search_pool(archs, acc, lt, b)  # the truth: exhaustive on measured latency
        found = search_pool(archs, acc, lp, b, searcher=searcher, seed=seed, genetic=genetic)
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
        "mean_gap_all": (float(np.mean([r["gap"] for r in found_rows if r["gap"] is not None])) if found_rows
                         else float("nan")),
    }


def dgl_devices_constrained_eval(source: str = "200ep", *, dataset: str = "cifar100", k: int = 0, n_splits: int = 3,
                                 seed: int = 0, quantiles: Sequence[float] = DEFAULT_QUANTILES,
                                 searcher: str = "exhaustive", data_root=None, model_config=None,
                                 genetic: GAConfig = POOL_GENETIC) -> list[dict]:
    """Budget-violation rate and accuracy gap per DGL NAS-Bench-201 phone.

    For each split: train the A model (``model_config``, default the NB201 recipe) on the training rows of
    ``a.txt``; pool = held-out archs that have an accuracy in ``source``; predicted latency = DGL's formula
    with the phone's hardware parameters (``k = 0``) or the constant fitted on ``k`` random *training*
    archs' measured latency (``k > 0``, :func:`~nasjax.hardware.dgl.fit_hw_params_from_k`). One row per
    device, averaged over splits.

    Args:
      source: the accuracy source (:data:`ACC_SOURCES`).
      dataset: the dataset of ``"200ep"``.
      k: measured training archs per phone for the constant (0: the hardware parameters).
      n_splits: random architecture splits.
      seed: the seed of the splits, models, references and searches.
      quantiles: the budgets, as quantiles of each phone's true latency on the pool.
      searcher: ``"exhaustive"`` or ``"genetic"``.
      data_root: the reference data folder.
      model_config: the A model's configuration.
      genetic: the GA's settings.

    Returns:
      One dict per phone: ``violation_rate``, ``mean_gap_feasible``, ``max_gap_feasible``, ``mean_gap_all``,
      ``n_not_found``, ``n_pool_mean`` and the settings.

    Raises:
      NasjaxInputError: on a negative ``k``, an unknown source, or missing or malformed data.
    """
    from nasjax.hardware import dgl

    require(isinstance(k, int) and k >= 0, "k", k, "an integer >= 0")
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
        model = dgl.train_a_model("nasbench201", data.archs[tr], data.A[tr], model_config, seed=seed * 1000 + s)
        pool = te[np.isfinite(acc_of[te])]
        A_pool = model.predict_A(data.archs[pool])
        for d in data.devices:
            if k == 0:
                pred = dgl.dgl_latency(A_pool, data.hardware[d], d)
            else:
                ref = rng.choice(tr, size=k, replace=False)
                fit = dgl.fit_hw_params_from_k(model.predict_A(data.archs[ref]), data.latency[d][ref], offset=k >= 2)
                pred = fit.predict(A_pool)
            true = data.latency[d][pool]
            rep = constrained_search_report(data.archs[pool], acc_of[pool], true, pred,
                                            budgets_from_quantiles(true, quantiles), device=d, searcher=searcher,
                                            seed=seed + s, genetic=genetic)
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


# --- DGL's NAS modes --------------------------------------------------------------------------------------


def dgl_nb201_nas(model, hw, budget: float, *, archs, accuracy, device: str = "target", searcher: str = "genetic",
                  genetic: GAConfig = GAConfig(), seed: int = 0, latency_offset: float = 0.0,
                  measured=None) -> dict:
    """DGL's NAS-Bench-201 NAS: the most accurate architecture of the pool ``(archs, accuracy)`` whose
    predicted latency (``model`` of A, DGL's formula with ``hw``, plus ``latency_offset``) is within ``budget``.

    Args:
      measured: ``(archs [M, 6], latency [M])`` measured on the device, to report the found architecture's
        true latency when it was measured.
    Returns:
      ``arch`` (string), ``arch_choices``, ``accuracy``, ``predicted_latency``, the exact pool optimum under
      the predicted budget, the search details (and ``measured_latency`` / ``truly_meets_budget``); an
      infeasible budget is an error naming the smallest predicted latency.
    """
    require(genetic.gene_length in (None, 6), "GENE_LENGTH", genetic.gene_length, "6 for nasbench201 (or unset)")
    lat = model.predict_latency(archs, hw, device) + latency_offset
    t0 = time.perf_counter()
    idx, info = search_pool(archs, accuracy, lat, budget, searcher=searcher, seed=seed, genetic=genetic, details=True)
    search_ms = (time.perf_counter() - t0) * 1e3
    exact = search_pool(archs, accuracy, lat, budget)
    if idx is None:
        raise NasjaxInputError(f"latency_constraint: {budget:g} is infeasible on {device!r}; the smallest predicted "
                               f"latency among the {len(archs)} candidates is {lat.min():.1f}")
    a = archs[idx]
    out = {"arch": arch_to_str(a), "arch_choices": a.tolist(), "accuracy": float(accuracy[idx]),
           "predicted_latency": float(lat[idx]), "searcher": searcher, "search_ms": search_ms,
           "exact_pool_optimum_accuracy": float(accuracy[exact]), "n_candidates": len(archs), **info}
    if measured is not None:
        hit = np.flatnonzero((np.asarray(measured[0]) == a).all(1))
        if hit.size:
            true = float(measured[1][hit[0]])
            out.update({"measured_latency": true, "truly_meets_budget": bool(true <= budget)})
    return out


def dgl_fbnetv3_nas(model, hw, budget: float, *, objective: str = "macs", device: str = "target",
                    genetic: GAConfig = GAConfig(), seed: int = 0, latency_offset: float = 0.0) -> dict:
    """DGL's FBNetV3 NAS with the largest network as objective (DGL's accuracy predictor is not published).

    maximise log MACs(a) (or log params(a))  s.t.  model.predict_latency(a, hw) + latency_offset <= budget

    Args:
      model: the trained :class:`~nasjax.hardware.dgl.DGLLatencyModel` of FBNetV3.
      hw: the target device's 4 hardware parameters.
      budget: the latency budget, DGL's raw latency unit.
      objective: ``"macs"`` or ``"params"``.
      device: the device's name, for messages.
      genetic: the genetic search's settings.
      seed: the search seed.
      latency_offset: added to every predicted latency.

    Returns:
      ``genes`` (the 28 gene values), ``objective``, ``MACs``, ``params``, ``predicted_latency``,
      ``evaluations``, ``search_ms`` and ``best_per_epoch``.

    Raises:
      NasjaxInputError: on another objective, or a budget no architecture meets
        (:class:`~nasjax.errors.InfeasibleError`).
    """
    from nasjax.hardware import dgl

    require(objective in ("macs", "params"), "objective", objective, "'macs' or 'params'")
    space = get_space("fbnetv3")

    def fitness(a):
        c = dgl.fbnetv3_costs(dgl.arch_to_genes(a))
        return np.log(c[:, 0] if objective == "macs" else c[:, 1])

    pred_lat = lambda a: model.predict_latency(a, hw, device) + latency_offset
    r = _genetic(space, fitness, [("latency", pred_lat, budget, dgl.LATENCY_UNIT)], genetic, seed)
    genes = dgl.arch_to_genes(r["arch"])
    costs = dgl.fbnetv3_costs(genes)[0]
    return {"genes": genes.tolist(), "objective": objective, "MACs": float(costs[0]), "params": float(costs[1]),
            "predicted_latency": r["resources"]["latency"], "evaluations": r["evaluations"],
            "search_ms": r["search_ms"], "best_per_epoch": r["best_per_epoch"]}
