"""DGL's unseen-device protocol at k = 0 (Wang & Zhang, IEEE TMC 2023): only the 4 hardware parameters.

* :func:`score_devices` is DGL's test mode: a trained model of A, DGL's formula with each test device's
  hardware parameters, R / RMSE / MAE (raw units) on all architectures and on the model's held-out ones,
  beside the authors' shipped predictions scored the same way.
* :func:`dgl_unseen_device_eval` holds architectures out: over ``n_splits`` random splits it trains on
  ``a.txt`` of the training architectures only and scores the held-out ones on every test device, beside
  the authors' shipped predictions on the same architectures (``theirs_heldout_*``) and on all of them as
  published (``theirs_all_*``, which reproduces the paper's R).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from nasjax.errors import require
from nasjax.hardware import dgl


def train_on_split(space: str, data: dgl.DGLData, A=None, config=None, *, holdout_frac: float = 0.2, seed: int = 0,
                   info: dict | None = None) -> dgl.DGLLatencyModel:
    """DGL's train mode: hold out ``holdout_frac`` of the architectures (:func:`~nasjax.hardware.dgl.arch_splits`,
    one split from ``seed``) and train the model of A (``config``, default the space's recipe) on the rest.

    Args:
      data: the space's data (:func:`~nasjax.hardware.dgl.load_dgl`); ``A``: the target, default ``data.A``.
    Returns:
      The model; its ``info`` records ``train_rows`` / ``heldout_rows`` (what :func:`score_devices` scores).
    """
    A = data.A if A is None else A
    tr, te = dgl.arch_splits(len(A), 1, holdout_frac, seed)[0]
    info = {**(info or {}), "train_rows": tr.tolist(), "heldout_rows": te.tolist(), "holdout_frac": holdout_frac}
    return dgl.train_a_model(space, data.archs[tr], A[tr], config, seed=seed, info=info)


def score_devices(model: dgl.DGLLatencyModel, data: dgl.DGLData, result_path=None) -> tuple[list[dict], dict]:
    """DGL's test mode on every device of ``data`` (all archs; held-out rows from ``model.info``).

    Args:
      model: the trained :class:`~nasjax.hardware.dgl.DGLLatencyModel` (``info["heldout_rows"]`` optional).
      data: DGL's data with the devices to score.
      result_path: the folder of the authors' shipped predictions (default the shared data's).

    Returns:
      ``(rows, predictions)``: per device ``all_*`` / ``heldout_*`` R, RMSE, MAE of the model and, where the
      authors shipped predictions for the device, ``theirs_all_*`` / ``theirs_heldout_*`` of those (raw
      units), the published R; predictions ``{device: [N]}``.

    Raises:
      NasjaxInputError: when ``data`` has no device, or a shipped prediction file is malformed.
    """
    require(bool(data.devices), "test_devices", data.devices, "at least one device")
    held = np.asarray(model.info.get("heldout_rows", []), np.int64)
    A_hat = model.predict_A(data.archs)
    rows, preds = [], {}
    for d in data.devices:
        pred = dgl.dgl_latency(A_hat, data.hardware[d], d)
        preds[d] = pred
        row: dict[str, Any] = {"device": d, "hardware": " ".join(f"{x:g}" for x in data.hardware[d])}
        scored = [("", pred)]
        if dgl.has_authors_predictions(data.space, d, result_path):
            scored.append(("theirs_", dgl.authors_predictions(data.space, d, result_path)))
        for who, p in scored:
            row.update({f"{who}all_{k}": v for k, v in dgl.latency_scores(data.latency[d], p).items()})
            if held.size >= 2:
                scores = dgl.latency_scores(data.latency[d][held], p[held])
                row.update({f"{who}heldout_{k}": v for k, v in scores.items()})
        row["published_R"] = dgl.PUBLISHED_R[data.space].get(d)
        rows.append(row)
    return rows, preds


def absolute_error_diagnostics(model: dgl.DGLLatencyModel, data: dgl.DGLData, result_path=None,
                               scales=np.arange(0.5, 1.5005, 0.001)) -> dict:
    """What decides RMSE / MAE at k = 0, per device of ``data`` (all archs).

    * ``formula_ratio``: ``median_a latency(a) / (A(a) c(hw))`` with ``a.txt``'s A (rows not flagged corrupt):
      the device's bias against DGL's formula, which its 4 hardware parameters do not carry;
    * ``bias``, ``theirs_bias``: mean error ``mean(pred - latency)`` of the model and of the authors' predictions;
    * ``theirs_midpoint_RMSE`` / ``_MAE``: the authors' files decoded at the middle of their truncation interval
      (``(int(L / 100) + 0.5) * 100``);
    * ``scale_range``: the interval of one constant ``s`` (on the grid ``scales``) for which ``s * pred`` has
      RMSE and MAE at most the authors' (a diagnostic fitted on the device's own latencies, not a predictor).

    Args:
      model: the trained :class:`~nasjax.hardware.dgl.DGLLatencyModel`.
      data: DGL's data with the devices to diagnose.
      result_path: the folder of the authors' shipped predictions (default the shared data's).
      scales: the grid of constants ``s``.

    Returns:
      ``{device: {"formula_ratio", "bias", ...}}`` (the ``theirs_*`` entries and ``scale_range`` only where the
      authors shipped predictions; ``scale_range`` is ``None`` when no grid value qualifies).
    """
    A_hat = model.predict_A(data.archs)
    out = {}
    for d in data.devices:
        true = data.latency[d]
        c = dgl.device_constant(data.hardware[d], d)
        pred = A_hat * c
        ok = ~data.corrupt if data.corrupt is not None else np.ones(len(true), bool)
        row: dict[str, Any] = {"formula_ratio": float(np.median(true[ok] / (data.A[ok] * c))),
                               "bias": float(np.mean(pred - true))}
        if dgl.has_authors_predictions(data.space, d, result_path):
            theirs = dgl.authors_predictions(data.space, d, result_path)
            mid = dgl.latency_scores(true, theirs + dgl.A_SCALE / 2)
            rmse_t, mae_t = dgl.latency_scores(true, theirs)["RMSE"], dgl.latency_scores(true, theirs)["MAE"]
            err = pred[None, :] * scales[:, None] - true[None, :]
            fits = scales[(np.sqrt((err ** 2).mean(1)) <= rmse_t) & (np.abs(err).mean(1) <= mae_t)]
            row.update({"theirs_bias": float(np.mean(theirs - true)), "theirs_midpoint_RMSE": mid["RMSE"],
                        "theirs_midpoint_MAE": mid["MAE"],
                        "scale_range": [float(fits.min()), float(fits.max())] if fits.size else None})
        out[d] = row
    return out


def dgl_unseen_device_eval(space: str, n_splits: int = 5, seed: int = 0, *, data_path=None, result_path=None,
                           test_frac: float = 0.2, model_config: dgl.AModelConfig | None = None,
                           dgl_mlp_config: dgl.DGLMLPConfig | None = None, progress: bool = False,
                           devices: Sequence[str] | None = None) -> list[dict]:
    """k = 0 evaluation on DGL's unseen devices with architectures held out.

    For each of ``n_splits`` random arch splits (:func:`~nasjax.hardware.dgl.arch_splits`, ``test_frac`` held
    out), train on ``a.txt`` of the training archs only (seed ``seed * 1000 + split``), predict the held-out
    archs' latency on each test device with DGL's formula and its 4 hardware parameters, and score R / RMSE /
    MAE (raw units).

    Args:
      space: ``nasbench201`` or ``fbnetv3``.
      model_config: nasjax's model (default the space's recipe).
      dgl_mlp_config: also re-train DGL's MLP on the same splits (``dglmlp_heldout_*``; about 50 s per split
        on 2 CPU cores at DGL's 50000 steps).
      devices: default every device with a latency file.
    Returns:
      One row per device: metrics are means over splits (``*_R_std`` their standard deviation;
      ``ours_R_min`` the worst split), ``published_R`` and ``ours_beats_published``.
    """
    data = dgl.load_dgl(space, data_path, devices)
    require(bool(data.devices), "test_devices", data.devices, "at least one device")
    splits = dgl.arch_splits(len(data.A), n_splits, test_frac, seed)
    per: dict[str, dict[str, list]] = {d: {} for d in data.devices}
    theirs = {d: dgl.authors_predictions(space, d, result_path) for d in data.devices}
    it = enumerate(splits)
    if progress:
        from tqdm import tqdm

        it = tqdm(it, total=len(splits), desc=f"DGL {space} splits")
    configs = [("ours", model_config or dgl.default_config(space))]
    if dgl_mlp_config is not None:
        configs.append(("dglmlp", dgl_mlp_config))
    for s, (tr, te) in it:
        for tag, cfg in configs:
            m = dgl.train_a_model(space, data.archs[tr], data.A[tr], cfg, seed=seed * 1000 + s)
            A_hat = m.predict_A(data.archs[te])
            for d in data.devices:
                met = dgl.latency_scores(data.latency[d][te], dgl.dgl_latency(A_hat, data.hardware[d], d))
                for k, v in met.items():
                    per[d].setdefault(f"{tag}_heldout_{k}", []).append(v)
        for d in data.devices:
            for k, v in dgl.latency_scores(data.latency[d][te], theirs[d][te]).items():
                per[d].setdefault(f"theirs_heldout_{k}", []).append(v)
    rows = []
    for d in data.devices:
        row: dict[str, Any] = {"space": space, "device": d, "k": 0, "n_splits": n_splits, "test_frac": test_frac,
                               "n_heldout": len(splits[0][1]), "unit": dgl.LATENCY_UNIT,
                               "hardware": data.hardware[d].tolist()}
        for k, v in per[d].items():
            row[k] = float(np.mean(v))
            if k.endswith("_R"):
                row[k + "_std"] = float(np.std(v))
        row["ours_R_min"] = float(np.min(per[d]["ours_heldout_R"]))
        row.update({f"theirs_all_{k}": v for k, v in dgl.latency_scores(data.latency[d], theirs[d]).items()})
        row["published_R"] = dgl.PUBLISHED_R[space].get(d)
        pub = row["published_R"]
        row["ours_beats_published"] = bool(pub is not None and row["ours_heldout_R"] >= pub)
        rows.append(row)
    return rows
