"""k-shot latency on DGL's unseen phones (Wang & Zhang, IEEE TMC 2023) with architectures held out.

The same splits as :func:`nasjax.protocols.dgl_unseen.dgl_unseen_device_eval`. For each split and target
phone, k references are chosen among the *training* archs (D-optimal, no target measurement used to
choose them), their measured latencies adapt the model, and R / RMSE / MAE (raw units) are scored on the
held-out archs beside the authors' shipped predictions on the same archs. The target phone is never a
training device and the held-out archs are never seen.

No HELP data shares DGL's phones' setting closely enough to help (HELP-table models reach R 0.86-0.95 here,
below DGL's own k = 0), and HELP has no FBNetV3 28-gene data at all, so the training devices are the
*other* DGL phones plus ``a.txt`` as a pseudo-device (rows flagged corrupt left out), on the features of
:func:`nasjax.hardware.dgl.features`, training archs only. The prediction is one of
:data:`DGL_KSHOT_CANDIDATES` (:func:`kshot_candidates`).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from nasjax import metrics
from nasjax.errors import require
from nasjax.hardware import dgl
from nasjax.hardware.fewshot import (
    AdditiveLogExpert,
    FewShotConfig,
    FewShotLatencyModel,
    InverseErrorBlend,
    LowRankExpert,
    SingleDeviceExperts,
)

DGL_KSHOT_CANDIDATES = ("fewshot_table", "calibrated_a", "blend")


def ridge_columns(x, y, train_rows, alphas=(1.0, 10.0, 100.0, 1000.0)) -> tuple[np.ndarray, list[float]]:
    """Feature-based prediction of every column of ``y [N, C]`` (NaN = missing) at all N rows, fitted on
    ``train_rows`` only.

    Ridge on standardised features, the penalty per column chosen by the closed-form leave-one-out error
    ``e_i = r_i / (1 - H_ii)``, ``H = Z (Z^T Z + alpha I)^-1 Z^T`` (intercept unpenalised).

    Args:
      x: ``[N, F]`` features.
      y: ``[N, C]`` targets, NaN where missing.
      train_rows: the rows the fits use (each column's missing rows skipped).
      alphas: the candidate ridge penalties.

    Returns:
      ``(predictions [N, C], chosen alpha per column)``.

    Raises:
      NasjaxInputError: when a column has fewer than 3 finite training values.
    """
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    out, chosen = np.zeros((len(x), y.shape[1])), []
    for c in range(y.shape[1]):
        rows = np.asarray(train_rows)[np.isfinite(y[train_rows, c])]
        require(len(rows) >= 3, "ridge_columns", f"column {c} has {len(rows)} training values", ">= 3")
        mu, sd = x[rows].mean(0), x[rows].std(0)
        sd = np.where(sd > 1e-9, sd, 1.0)
        z = (x - mu) / sd
        yc = y[rows, c] - y[rows, c].mean()
        u, sv, vt = np.linalg.svd(z[rows], full_matrices=False)
        best = None
        for al in alphas:
            shrink = sv / (sv ** 2 + al)
            w = vt.T @ (shrink * (u.T @ yc))
            hdiag = (u ** 2) @ (sv ** 2 / (sv ** 2 + al)) + 1.0 / len(rows)
            loo = np.mean(((yc - z[rows] @ w) / (1 - hdiag)) ** 2)
            if best is None or loo < best[0]:
                best = (loo, al, w)
        out[:, c] = z @ best[2] + y[rows, c].mean()
        chosen.append(float(best[1]))
    return out, chosen


def kshot_candidates(model, a_hat, ref, y_ref, rows) -> dict:
    """k-shot predictions (ms) at DGL rows ``rows`` of the candidates meta-validation chooses between.

    * ``fewshot_table``: the table-mode few-shot model adapted with the k refs (``ref`` rows, ``y_ref`` ms);
    * ``calibrated_a``: DGL's formula with the device constant and an offset fitted on the refs,
      ``L = c * A_hat + b`` (:func:`~nasjax.hardware.dgl.fit_hw_params_from_k`): the k = 0 A model calibrated,
      so its R equals the k = 0 R;
    * ``blend``: the two in log space with weights ``1 / e_m^2`` (:class:`InverseErrorBlend`), ``e_m`` the
      leave-one-out mean squared log error of candidate m on the k refs.

    Args:
      model: the table-mode :class:`~nasjax.hardware.fewshot.FewShotLatencyModel` over DGL rows.
      a_hat: ``[N]`` the A model's prediction at every DGL row.
      ref: the k reference rows.
      y_ref: ``[k]`` the target's measured latency on them.
      rows: the rows to predict.

    Returns:
      ``{"fewshot_table", "calibrated_a", "blend"}``: each ``[len(rows)]`` latencies (DGL's raw unit).

    Raises:
      NasjaxInputError: on fewer than 2 references (the calibration fits an offset) or bad latencies.
    """
    def calibrated(r_fit, at):
        fit = dgl.fit_hw_params_from_k(a_hat[r_fit], y_ref[np.isin(ref, r_fit)], offset=True)
        return np.maximum(fit.predict(a_hat[at]), 1e-6)

    out = {"fewshot_table": model.predict_k(rows, ref, y_ref), "calibrated_a": calibrated(ref, rows)}
    err = {"fewshot_table": [], "calibrated_a": []}
    for i in range(len(ref)):
        keep = np.delete(np.arange(len(ref)), i)
        table_i = model.predict_k(ref[i:i + 1], ref[keep], y_ref[keep])[0]
        err["fewshot_table"].append(float(np.log(table_i / y_ref[i]) ** 2))
        err["calibrated_a"].append(float(np.log(calibrated(ref[keep], ref[i:i + 1])[0] / y_ref[i]) ** 2))
    weights = InverseErrorBlend(2.0).weights({m: float(np.mean(e)) for m, e in err.items()})
    out["blend"] = np.exp(sum(w * np.log(out[m]) for m, w in weights.items()))
    return out


def _table_model(feats, log_tab, names, train_rows, a_col, seed):
    """Table-mode model over DGL training columns predicted at every row by :func:`ridge_columns` fitted on
    ``train_rows`` only, plus the A model's ``a_col`` (log A_hat)."""
    logpred, _ = ridge_columns(feats, log_tab, train_rows)
    return FewShotLatencyModel.train_table(np.exp(np.concatenate([logpred, a_col], 1)), list(names) + ["dgl_A_model"],
                                           FewShotConfig(rank=min(3, len(names)), seed=seed), row_name="dgl_row")


NET_BASIS_CONFIG = FewShotConfig(rank=3, hidden=(32, 32), steps=400, batch=256,
                                 experts=(LowRankExpert(), SingleDeviceExperts(), AdditiveLogExpert()))


def dgl_kshot_eval(space: str, k: int = 10, n_splits: int = 5, seed: int = 0, *,
                   config: FewShotConfig | None = None, data_path=None, result_path=None, test_frac: float = 0.2,
                   keep_predictions: bool = False, basis: str = "ridge", select: str = "meta") -> list[dict]:
    """k-shot evaluation on DGL's unseen phones (see the module docstring).

    ``basis="ridge"`` (default): each training column's log value is predicted at all archs by
    :func:`ridge_columns`, plus DGL's A model of the split (:func:`~nasjax.hardware.dgl.train_a_model` on the
    training rows of ``a.txt``, the k = 0 model); a table-mode model over those *predicted* columns is adapted
    with the k refs. ``select="meta"`` picks, per split and target, the candidate of highest mean R in a
    meta-validation that uses neither the target phone nor any held-out arch: the training archs are split
    again (``test_frac``), an A model and the ridge columns are fitted on the inner-training archs, each
    *other* phone in turn is the pseudo-target (training columns: the remaining phones + ``a.txt``), with k
    D-optimal refs among the inner-training archs, scored on the inner-held-out archs. ``select`` may also
    name one candidate. ``basis="net"``: a net-mode model (``config``, default :data:`NET_BASIS_CONFIG`)
    trained on the training archs' measurements.

    Args:
      space: ``nasbench201`` or ``fbnetv3``.
      k: the number of references, >= 1.
      n_splits: random architecture splits.
      seed: the seed of the splits, models and references.
      config: the net-mode model's settings (``basis="net"``).
      data_path: DGL's space folder (default the shared data's).
      result_path: the folder of the authors' shipped predictions (default the shared data's).
      test_frac: the held-out fraction of every split (and of the inner meta-validation split).
      keep_predictions: also return each split's ``(held-out rows, predictions)``.
      basis: ``"ridge"`` or ``"net"``.
      select: ``"meta"`` or one of :data:`DGL_KSHOT_CANDIDATES`.

    Returns:
      One row per phone: means over splits of ``ours_heldout_*`` / ``theirs_heldout_*`` (R, RMSE, MAE),
      every candidate's held-out R, the candidate chosen per split, ``theirs_all_*`` and ``published_R``.

    Raises:
      NasjaxInputError: on a bad ``k``, ``basis`` or ``select``, or missing or malformed DGL data.
    """
    require(isinstance(k, (int, np.integer)) and k >= 1, "k", k, "an integer >= 1")
    require(basis in ("ridge", "net"), "basis", basis, "'ridge' or 'net'")
    require(select == "meta" or select in DGL_KSHOT_CANDIDATES, "select", select,
            f"'meta' or one of {DGL_KSHOT_CANDIDATES}")
    data = dgl.load_dgl(space, data_path)
    splits = dgl.arch_splits(len(data.A), n_splits, test_frac, seed)
    theirs = {d: dgl.authors_predictions(space, d, result_path) for d in data.devices}
    per: dict[str, dict[str, list]] = {d: {} for d in data.devices}
    preds: dict[str, list] = {d: [] for d in data.devices}
    chosen: dict[str, list] = {d: [] for d in data.devices}
    cfg = config or NET_BASIS_CONFIG
    feats = dgl.features(space, data.archs).astype(np.float32)
    spec = {k2: v for k2, v in dgl.feature_spec(space).items() if k2 != "names"}
    A_col = np.where(data.corrupt, np.nan, data.A)
    log_all = np.log(np.stack([data.latency[o] for o in data.devices] + [A_col], 1))  # phones..., a.txt
    col = {name: j for j, name in enumerate(list(data.devices) + ["a.txt"])}
    for s, (tr, te) in enumerate(splits):
        s_seed = seed * 1000 + s
        if basis == "ridge":  # DGL's A model of this split (same seed as the k = 0 protocol): one more column
            a_model = dgl.train_a_model(space, data.archs[tr], data.A[tr], seed=s_seed)
            a_hat = np.maximum(a_model.predict_A(data.archs), 1e-9)
            if select == "meta":  # inner split of the training archs, inner A model
                i_tr, i_te = dgl.arch_splits(len(tr), 1, test_frac, s_seed + 7919)[0]
                tr1, tr2 = tr[i_tr], tr[i_te]
                a_in_model = dgl.train_a_model(space, data.archs[tr1], data.A[tr1], seed=s_seed)
                a_in = np.maximum(a_in_model.predict_A(data.archs), 1e-9)
        for d in data.devices:
            others = [o for o in data.devices if o != d]
            if basis == "ridge":
                names = others + ["a.txt"]
                model = _table_model(feats, log_all[:, [col[n] for n in names]], names, tr, np.log(a_hat)[:, None],
                                     s_seed)
                ref = tr[model.select_refs(tr, k)]
                cands = kshot_candidates(model, a_hat, ref, data.latency[d][ref], te)
                pick = select
                if select == "meta":
                    score = {m: [] for m in DGL_KSHOT_CANDIDATES}
                    for o in others:
                        nm = [n for n in names if n != o]
                        m_in = _table_model(feats, log_all[:, [col[n] for n in nm]], nm, tr1, np.log(a_in)[:, None],
                                            s_seed)
                        r_in = tr1[m_in.select_refs(tr1, k)]
                        c_in = kshot_candidates(m_in, a_in, r_in, data.latency[o][r_in], tr2)
                        for m, p in c_in.items():
                            score[m].append(metrics.pearson(data.latency[o][tr2], p))
                    pick = max(DGL_KSHOT_CANDIDATES, key=lambda m: float(np.mean(score[m])))
                chosen[d].append(pick)
                pred = cands[pick]
                for m, p in cands.items():  # every candidate's held-out R, for the record (not used to choose)
                    per[d].setdefault(f"candidate_{m}_heldout_R", []).append(metrics.pearson(data.latency[d][te], p))
            else:
                train_names = others + ["a.txt"]
                model = FewShotLatencyModel.train(feats[tr], np.exp(log_all[tr][:, [col[n] for n in train_names]]),
                                                  train_names, spec, dataclasses.replace(cfg, seed=s_seed))
                ref = tr[model.select_refs(feats[tr], k)]
                pred = model.predict_k(feats[te], feats[ref], data.latency[d][ref])
                chosen[d].append("net")
            require(d not in model.devices, "training devices", model.devices, f"without the target {d!r}")
            true = data.latency[d][te]
            for name, p in (("ours", pred), ("theirs", theirs[d][te])):
                for m, v in dgl.latency_scores(true, p).items():
                    per[d].setdefault(f"{name}_heldout_{m}", []).append(v)
            if keep_predictions:
                preds[d].append((te, pred))
    rows = []
    for d in data.devices:
        row = {"space": space, "device": d, "k": int(k), "n_splits": n_splits, "unit": dgl.LATENCY_UNIT, "basis": basis,
               "select": select, "chosen": chosen[d]}
        row.update({m: float(np.mean(v)) for m, v in per[d].items()})
        row["ours_R_min"] = float(np.min(per[d]["ours_heldout_R"]))
        row.update({f"theirs_all_{m}": v for m, v in dgl.latency_scores(data.latency[d], theirs[d]).items()})
        row["published_R"] = dgl.PUBLISHED_R[space].get(d)
        if keep_predictions:
            row["predictions"] = preds[d]
        rows.append(row)
    return rows
