"""Evaluation protocols of the few-shot latency model: leave-one-device-out, unseen tables, HELP's split.

* :func:`evaluate_lodo`: every device of a complete table in turn is the target of a model trained on the
  others (HELP's 27 NAS-Bench-201 / FBNet devices), adapted with k references, scored by Spearman and MAPE.
* :func:`evaluate_unseen_table`: a model scored on devices measured on a subset of its rows (OneProxy's 18
  devices, BRP-NAS's i7 on a HELP-trained model).
* :func:`evaluate_help_split`: HELP's own split (13 training / 6 test devices, Lee et al., NeurIPS 2021,
  Table 2) scored on all rows, on HELP's evaluation rows (:func:`help_query_rows`) with HELP's 10 refs,
  and with HELP's information (its refs + 10 fine-tuning samples).

Baselines (:mod:`nasjax.protocols.fewshot_baselines`) are scored on the same rows with the same refs.
"""

from __future__ import annotations

import numpy as np

from nasjax import metrics
from nasjax.benchmarks.latency_sets import (
    HELP_REPORTED_SPEARMAN_NB201,
    HELP_TEST_DEVICES_NB201,
    HELP_TRAIN_DEVICES_NB201,
)
from nasjax.errors import require
from nasjax.hardware.fewshot import DOptimalRefs, FewShotConfig, FewShotLatencyModel, OpCostMember
from nasjax.hardware.fewshot.model import check_latency
from nasjax.protocols.fewshot_baselines import baselines

#: HELP's NAS-Bench-201 meta-test protocol (its ``main.py`` / ``loader.py`` at commit 45f70eb, README command):
#: ``--num_meta_train_sample 900``, ``--num_query 1000`` (default), ``remove_outlier=True``.
HELP_NB201_PROTOCOL = {"num_meta_train_sample": 900, "num_query": 1000, "trim": 0.1, "num_samples": 10}


def help_query_rows(latency_ms, num_meta_train_sample: int = 900, num_query: int = 1000, trim: float = 0.1):
    """HELP's evaluation rows for one device, as its loader builds them.

    The query pool is rows ``[num_meta_train_sample, num_meta_train_sample + num_query)`` (NAS-Bench-201
    index order) and, with HELP's ``remove_outlier``, only the middle ``1 - 2 trim`` of that pool by *this
    device's* latency is kept (800 of 1,000 rows). HELP's reported Spearman is computed on these rows. HELP's
    fine-tuning pool is rows ``[0, num_meta_train_sample)`` trimmed the same way; HELP draws its
    ``num_samples`` fine-tuning architectures from it *in addition to* its 10 reference architectures.

    Args:
      latency_ms: ``[N]`` the device's latency of every row, ms.
      num_meta_train_sample: the size of the fine-tuning pool (the rows before the query pool).
      num_query: the size of the query pool.
      trim: the fraction cut from each end of a pool by latency, in [0, 0.5).

    Returns:
      ``(query_rows, finetune_pool)``, both sorted int64.

    Raises:
      NasjaxInputError: on a ``trim`` outside [0, 0.5) or pools beyond the ``N`` rows.
    """
    y = np.asarray(latency_ms, np.float64).reshape(-1)
    require(0 <= trim < 0.5, "trim", trim, "a fraction in [0, 0.5)")
    require(num_meta_train_sample + num_query <= len(y), "num_query", num_query,
            f"num_meta_train_sample + num_query <= {len(y)} rows")

    def middle(rows):
        order = rows[np.argsort(y[rows], kind="stable")]
        return np.sort(order[int(len(rows) * trim):int(len(rows) * (1 - trim))])

    pool = np.arange(num_meta_train_sample, dtype=np.int64)
    query = np.arange(num_meta_train_sample, num_meta_train_sample + num_query, dtype=np.int64)
    return middle(query), middle(pool)


def lodo_split(devices, target: str, twins: dict | None = None) -> list[str]:
    """Training devices for held-out ``target``: every device except the target and its listed twins.

    Args:
      devices: all device names.
      target: the held-out device.
      twins: ``{device: devices holding the same measurements}``, or ``None`` (e.g.
        :data:`~nasjax.benchmarks.latency_sets.ONEPROXY_TWINS`).

    Returns:
      The training devices, in the order of ``devices``.

    Raises:
      NasjaxInputError: when ``target`` is not among ``devices``.
    """
    devices = list(devices)
    require(target in devices, "target device", target, f"one of {devices}")
    drop = {target, *((twins or {}).get(target, ()))}
    return [d for d in devices if d not in drop]


def score_k(model, f_eval, true_eval, ref_rows, ref_ms, ks, exclude=()) -> dict:
    """Adapt with the first k refs for each k and score on the evaluation rows.

    Args:
      model: the trained :class:`~nasjax.hardware.fewshot.FewShotLatencyModel`.
      f_eval: the evaluation rows' ``features_cache``.
      true_eval: their measured latencies on the target, ms.
      ref_rows: the reference architectures (features or row ids), in design order.
      ref_ms: their measured latencies on the target, ms.
      ks: the reference counts to score (each ``<= len(ref_rows)``; 0 adapts with none).
      exclude: training device names removed from the device experts and members.

    Returns:
      ``{k: {"spearman", "MAPE" (%), "pred" [N] ms, "adapted"}}``.

    Raises:
      NasjaxInputError: when a k exceeds the number of references, or on bad latencies.
    """
    out = {}
    for k in ks:
        require(k <= len(ref_rows), "k", k, f"<= {len(ref_rows)} reference architectures")
        ad = model.adapt(ref_rows[:k] if k else None, ref_ms[:k] if k else None, exclude=exclude)
        pred = np.exp(model.predict_log(ad, f_eval))
        out[k] = {"spearman": metrics.spearman(true_eval, pred), "MAPE": metrics.mape(true_eval, pred), "pred": pred,
                  "adapted": ad}
    return out


def _candidate_rows(model) -> dict:
    best = model.choices()[0]
    return {"tau": best.tau, "blend_rule": str(best.rule), "experts": [e.name for e in best.experts],
            "choices": [[[e.name for e in c.experts], c.tau, str(c.rule)] for c in model.choices()]}


def evaluate_lodo(latency_ms, devices, refs, ks=(0, 1, 5, 10), targets=None, config: FewShotConfig | None = None,
                  twins: dict | None = None, train_devices=None, keep_predictions: bool = False, progress: bool = False,
                  arch_features=None, additive_features=None) -> list[dict]:
    """Leave-one-device-out on a complete table ``latency_ms [N, D]`` (ms).

    For each target, a table-mode model trained on the other devices (``train_devices`` if given) is adapted
    with the first k references and scored (Spearman, MAPE %) on every row except the ``max(ks)`` references.
    The references: ``refs`` (rows, a fixed design such as HELP's) unless the target's model chose a
    :class:`~nasjax.hardware.fewshot.DOptimalRefs` design by meta-validation on its training devices, then the
    rows it designs; ``refs=None``: always the model's design. With fixed rows given,
    ``k{max(ks)}_spearman_fixed_refs`` scores the same model adapted with them. Baselines at ``max(ks)`` on
    the same rows. ``k{max(ks)}_members``: each blend member's Spearman alone on the same rows, its
    leave-one-out error on the refs and its blend weight (a diagnostic).

    Args:
      latency_ms: ``[N, D]`` latencies in ms, no NaN.
      devices: the ``D`` device names.
      refs: fixed reference rows (at least ``max(ks)``), or ``None`` for the model's design.
      ks: the reference counts scored.
      targets: the held-out devices, default every device.
      config: the model's settings (default :class:`~nasjax.hardware.fewshot.FewShotConfig`).
      twins: ``{device: devices holding the same measurements}``, left out with the target.
      train_devices: the training devices (minus the target), instead of :func:`lodo_split`.
      keep_predictions: also return each k's predictions and the evaluated rows.
      progress: show a tqdm bar over the targets.
      arch_features: ``[N, F]`` features for the additive and per-op cost members (see ``train_table``).
      additive_features: ``[N, F']`` features for the additive-in-ms member.

    Returns:
      One dict per target: ``k{k}_spearman`` / ``k{k}_MAPE``, the references and design, the chosen
      candidates, ``k{max(ks)}_members`` and ``baseline_*``.

    Raises:
      NasjaxInputError: on bad latencies, too few fixed references, ``refs=None`` without a D-optimal design, or
        an unknown target.
    """
    cfg = config or FewShotConfig()
    lat = check_latency(latency_ms, "latency_ms", allow_nan=False)
    devices = list(devices)
    kmax = max(ks)
    only_design = refs is None
    if only_design:
        require(all(isinstance(d, DOptimalRefs) for d in cfg.candidate_designs()), "config.ref_designs",
                cfg.ref_designs, "designed references (DOptimalRefs) for refs=None")
    else:
        fixed_refs = np.asarray(refs, dtype=np.int64)
        require(kmax <= len(fixed_refs), "k", kmax, f"<= {len(fixed_refs)} reference architectures")
    targets = list(targets) if targets is not None else devices
    it = targets
    if progress:
        from tqdm import tqdm

        it = tqdm(targets, desc="leave-one-device-out", leave=False)
    out = []
    for t in it:
        tr = lodo_split(devices, t, twins) if train_devices is None else [d for d in train_devices if d != t]
        require(t not in tr, "training devices", tr, f"without the held-out target {t!r}")
        cols = [devices.index(d) for d in tr]
        model = FewShotLatencyModel.train_table(lat[:, cols], tr, cfg, row_name="row", arch_features=arch_features,
                                                additive_features=additive_features)
        y = lat[:, devices.index(t)]
        design = model.ref_design
        rows_ref = (model.select_refs(np.arange(len(lat)), kmax, design) if isinstance(design, DOptimalRefs)
                    else fixed_refs)
        rows_eval = np.setdiff1d(np.arange(len(lat)), rows_ref[:kmax])
        f_eval = model.features_cache(rows_eval)
        sc = score_k(model, f_eval, y[rows_eval], rows_ref, y[rows_ref], ks)
        ad = sc[kmax]["adapted"]
        logs = model.member_logs(ad, f_eval)
        mw = ad.member_weights()
        members = {n: {"spearman": metrics.spearman(y[rows_eval], v), **mw.get(n, {"weight": 0.0, "loo": None})}
                   for n, v in logs.items()}
        row = {"device": t, "train_devices": tr, "refs": [int(r) for r in rows_ref[:kmax]], "ref_design": str(design),
               f"k{kmax}_members": members, **_candidate_rows(model)}
        for k, v in sc.items():
            row[f"k{k}_spearman"], row[f"k{k}_MAPE"] = v["spearman"], v["MAPE"]
            if keep_predictions:
                row[f"k{k}_pred"] = v["pred"]
        if not only_design:  # the same model adapted with the fixed refs instead (comparison)
            ev_f = np.setdiff1d(np.arange(len(lat)), fixed_refs[:kmax])
            row[f"k{kmax}_spearman_fixed_refs"] = metrics.spearman(
                y[ev_f], model.predict_k(ev_f, fixed_refs[:kmax], y[fixed_refs[:kmax]]))
        b = baselines(lat[:, cols], rows_eval, y[rows_eval], rows_ref[:kmax], y[rows_ref[:kmax]], cfg.rank)
        b["hindsight_device"] = tr[b.pop("hindsight_device_index")]
        b["ref_proxy_device"] = tr[b.pop("ref_proxy_index")]
        row.update({f"baseline_{k}": v for k, v in b.items()})
        if keep_predictions:
            row["rows_eval"] = rows_eval
        out.append(row)
    return out


def _op_cost_member(model) -> OpCostMember:
    return next((m for m in model.config.members if isinstance(m, OpCostMember)), OpCostMember())


def evaluate_unseen_table(model: FewShotLatencyModel, train_tab, target_ms, target_rows, devices, ref_idx,
                          ks=(0, 1, 5, 10), exclude=(), draws: int = 1, seed: int = 0) -> list[dict]:
    """Score a table-mode ``model`` on further unseen devices measured on a subset of its rows.

    Args:
      model: a table-mode model; ``train_tab``: its training table (for the baselines).
      target_ms: ``[M, T]`` latencies (ms, NaN = missing) at model rows ``target_rows [M]``.
      devices: the T device names (none of them a training device of the model).
      ref_idx: the references, indices into the M rows (the first k used for each k): an array (fixed refs;
        rows a device has not measured are skipped), a :class:`~nasjax.hardware.fewshot.DOptimalRefs` (per
        device, designed among its measured rows) or ``"random"`` (per device and draw, ``max(ks)`` random
        measured rows; ``draws`` draws from ``seed``, metrics averaged over draws).
    Returns:
      One dict per device (``members``: the per-op cost member's blend weight per draw).
    """
    target_ms = np.asarray(target_ms, np.float64)
    target_rows = np.asarray(target_rows, np.int64)
    for d in devices:
        require(d not in model.devices, "unseen device", d, "a device absent from the model's training devices")
    random_refs = isinstance(ref_idx, str)
    if random_refs:
        require(ref_idx == "random", "ref_idx", ref_idx, "reference rows, a DOptimalRefs design or 'random'")
    op_cost = _op_cost_member(model)
    rng = np.random.default_rng(seed)
    out = []
    for j, d in enumerate(devices):
        y = target_ms[:, j]
        ok = np.isfinite(y)
        cand = np.flatnonzero(ok)
        acc: dict[str, list] = {}
        members = []
        for _ in range(draws if random_refs else 1):
            if random_refs:
                refs_d = rng.choice(cand, size=min(max(ks), len(cand)), replace=False)
            elif isinstance(ref_idx, DOptimalRefs):
                refs_d = cand[model.select_refs(target_rows[cand], min(max(ks), len(cand)), ref_idx)]
            else:
                refs_d = np.array([i for i in np.asarray(ref_idx, np.int64) if ok[i]], np.int64)
            kmax = min(max(ks), len(refs_d))
            ev = np.setdiff1d(cand, refs_d[:kmax])
            f_ev = model.features_cache(target_rows[ev])
            sc = score_k(model, f_ev, y[ev], target_rows[refs_d], y[refs_d], [k for k in ks if k <= kmax],
                         exclude=exclude)
            for k, v in sc.items():
                acc.setdefault(f"k{k}_spearman", []).append(v["spearman"])
                acc.setdefault(f"k{k}_MAPE", []).append(v["MAPE"])
            ad = (sc[kmax]["adapted"] if kmax in sc
                  else model.adapt(target_rows[refs_d[:kmax]], y[refs_d[:kmax]], exclude=exclude))
            members.append(f"{ad.member_weights().get(OpCostMember.name, {'weight': 0.0})['weight']:.2f}")
            b = baselines(train_tab, target_rows[ev], y[ev], target_rows[refs_d[:kmax]], y[refs_d[:kmax]],
                          model.arrays["coef_log"].shape[1] - 1)
            b["hindsight_device"] = model.devices[b.pop("hindsight_device_index")]
            b["ref_proxy_device"] = model.devices[b.pop("ref_proxy_index")]
            if "table_x" in model.arrays:  # the per-op cost regression alone, fitted on the same refs
                xa = model.features_cache(target_rows[refs_d[:kmax]])["xa"]
                w = op_cost.fit_ms(xa, y[refs_d[:kmax]])
                b["opcost_alone"] = metrics.spearman(y[ev], f_ev["xa"] @ w)
            for k, v in b.items():
                acc.setdefault(f"baseline_{k}", []).append(v)
        row = {"device": d, "n_eval": int(len(ev)), "draws": len(members), "members": members}
        for k, v in acc.items():
            row[k] = float(np.mean(v)) if not isinstance(v[0], str) else v[0]
        out.append(row)
    return out


def evaluate_help_split(help_set, config: FewShotConfig, draws: int, seed: int, arch_features=None,
                        additive_features=None) -> tuple[FewShotLatencyModel, dict]:
    """HELP's split on its NAS-Bench-201 set: one model on HELP's 13 training devices (meta-validated on them),
    adapted to each of the 6 test devices with HELP's 10 refs.

    Spearman (a) on every row but the refs (``ours_all_rows``), (b) on HELP's evaluation rows
    (:func:`help_query_rows`, refs removed) with HELP's 10 refs only (``ours_help_rows``: stricter, half
    the measurements HELP uses), and (c) on the same rows with the information HELP's model gets, the 10 refs
    plus ``num_samples`` random rows of HELP's fine-tuning pool (``ours_help_info``, mean over ``draws``
    draws from ``seed``): the like-for-like comparison with HELP's reported figure.

    Args:
      help_set: HELP's NAS-Bench-201 :class:`~nasjax.benchmarks.latency_sets.LatencySet` (with its refs).
      config: the model's settings.
      draws: the number of random fine-tuning draws of (c).
      seed: the seed of the draws.
      arch_features: ``[N, F]`` features for the additive and per-op cost members.
      additive_features: ``[N, F']`` features for the additive-in-ms member.

    Returns:
      ``(model, {device: figures})``: figures ``ours_all_rows``, ``ours_help_rows``, ``ours_help_info``,
      ``help_reported``, ``beats_on_help_rows``, ``beats_with_help_info``, ``n_help_rows``.
    """
    refs = np.asarray(help_set.refs, np.int64)
    tr = list(HELP_TRAIN_DEVICES_NB201)
    model = FewShotLatencyModel.train_table(help_set.latency_ms[:, [help_set.device_index(d) for d in tr]], tr, config,
                                            row_name="nb201_index", arch_features=arch_features,
                                            additive_features=additive_features)
    rng = np.random.default_rng(seed)
    out = {}
    every = np.setdiff1d(np.arange(len(help_set.latency_ms)), refs)
    for t in HELP_TEST_DEVICES_NB201:
        y = help_set.column(t)
        query, pool = help_query_rows(y, **{k: v for k, v in HELP_NB201_PROTOCOL.items() if k != "num_samples"})
        query = np.setdiff1d(query, refs)
        ad = model.adapt(refs, y[refs])
        s_all = metrics.spearman(y[every], model.predict(every, ad))
        s_q = metrics.spearman(y[query], model.predict(query, ad))
        s_info = []
        for _ in range(draws):
            extra = rng.choice(np.setdiff1d(pool, refs), HELP_NB201_PROTOCOL["num_samples"], replace=False)
            rr = np.concatenate([refs, extra])
            s_info.append(metrics.spearman(y[query], model.predict_k(query, rr, y[rr])))
        rep = HELP_REPORTED_SPEARMAN_NB201[t]
        out[t] = {"ours_all_rows": s_all, "ours_help_rows": s_q, "ours_help_info": float(np.mean(s_info)),
                  "help_reported": rep, "beats_on_help_rows": bool(s_q > rep),
                  "beats_with_help_info": bool(np.mean(s_info) > rep), "n_help_rows": len(query)}
    return model, out
