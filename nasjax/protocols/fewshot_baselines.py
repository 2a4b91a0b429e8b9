"""Baselines of the few-shot latency protocols (HELP, Lee et al., NeurIPS 2021; OneProxy, Lu et al., 2022).

They need the training devices measured on the target's architectures:

* :func:`hindsight_best_device`: the training device of highest Spearman to the target, chosen with the
  answer (an oracle);
* :func:`ref_chosen_proxy`: the training device whose log latency on the k references fits the target's
  best affinely (what a practitioner with k measurements would pick);
* :func:`lowrank_transfer`: SVD of the training devices' log latency table, a rank-r least-squares fit on the
  k references.
"""

from __future__ import annotations

import math

import numpy as np

from nasjax import metrics


def hindsight_best_device(train_lat_ms: np.ndarray, target_ms: np.ndarray, rows=None) -> tuple[int, float]:
    """``(column, Spearman)`` of the training column with the highest Spearman to the target on ``rows``.

    A column with a missing value on ``rows`` scores -1.

    Args:
      train_lat_ms: ``[N, D]`` the training devices' latencies, ms (NaN = missing).
      target_ms: ``[N]`` the target's latencies, ms.
      rows: the rows scored, default all.

    Returns:
      ``(j, rho)``: the best column and its Spearman rho.
    """
    rows = np.arange(len(target_ms)) if rows is None else rows
    sc = [metrics.spearman(target_ms[rows], train_lat_ms[rows, j]) if np.all(np.isfinite(train_lat_ms[rows, j]))
          else -1.0 for j in range(train_lat_ms.shape[1])]
    j = int(np.argmax(sc))
    return j, float(sc[j])


def ref_chosen_proxy(train_lat_ms: np.ndarray, ref_rows, ref_ms) -> int:
    """The training column whose log latency on the k references best fits the target's affinely.

    The smallest residual of ``log y ~ a + b log x_j`` (least squares); with k < 3 the column of the closest
    mean log latency.

    Args:
      train_lat_ms: ``[N, D]`` the training devices' latencies, ms.
      ref_rows: the k reference rows.
      ref_ms: ``[k]`` the target's latencies on them, ms.

    Returns:
      The chosen column ``j`` (0 with k = 0).
    """
    y = np.log(np.asarray(ref_ms, float))
    best, best_j = math.inf, 0
    for j in range(train_lat_ms.shape[1]):
        xj = np.log(train_lat_ms[ref_rows, j])
        if len(y) >= 3:
            h = np.stack([np.ones(len(y)), xj], 1)
            r = y - h @ np.linalg.lstsq(h, y, rcond=None)[0]
            err = float(r @ r)
        else:
            err = float(abs(np.mean(y) - np.mean(xj))) if len(y) else 0.0
        if err < best:
            best, best_j = err, j
    return best_j


def lowrank_transfer(train_lat_ms: np.ndarray, ref_rows, ref_ms, rank: int = 4, ridge: float = 1e-3) -> np.ndarray:
    """Low-rank transfer: a rank-r basis of the training devices' log latency fitted to the k references.

    SVD of the column-centred log latency ``[N, D]`` gives ``U``; ``[1, U]`` is fitted to the target's log
    latency on the k references by ridge least squares ``w = (H^T H + ridge I)^-1 H^T y``, with at most k
    basis columns.

    Args:
      train_lat_ms: ``[N, D]`` the training devices' latencies, ms (no NaN).
      ref_rows: the k reference rows.
      ref_ms: ``[k]`` the target's latencies on them, ms.
      rank: the basis rank r.
      ridge: the ridge penalty.

    Returns:
      float64 ``[N]`` predicted latency, ms; with k = 0 the geometric mean over devices of each row.
    """
    y = np.log(train_lat_ms)
    mu = y.mean(1, keepdims=True)
    u, s, _ = np.linalg.svd(y - y.mean(0), full_matrices=False)
    basis = np.concatenate([np.ones((len(y), 1)), u[:, :rank] * s[:rank] / math.sqrt(len(y))], 1)
    k = len(ref_rows)
    if k == 0:
        return np.exp(mu[:, 0])
    r = min(rank + 1, k)
    h = basis[ref_rows, :r]
    yr = np.log(np.asarray(ref_ms, float))
    w = np.linalg.solve(h.T @ h + ridge * np.eye(r), h.T @ yr)
    return np.exp(basis[:, :r] @ w)


def baselines(train_tab, rows_eval, true_eval, ref_rows, ref_ms, rank) -> dict:
    """The three baselines scored on ``rows_eval``.

    Args:
      train_tab: ``[N, D]`` the training devices' latencies, ms.
      rows_eval: the evaluated rows.
      true_eval: ``[len(rows_eval)]`` the target's latencies on them, ms.
      ref_rows: the k reference rows.
      ref_ms: ``[k]`` the target's latencies on them, ms.
      rank: the rank of the low-rank transfer.

    Returns:
      ``{"hindsight_best_device", "ref_chosen_proxy", "lowrank_transfer"}`` (Spearman), ``lowrank_transfer_MAPE``
      (%) and the chosen columns ``hindsight_device_index`` / ``ref_proxy_index``.

    Raises:
      NasjaxInputError: on fewer than 2 evaluated rows or non-finite latencies (from :mod:`nasjax.metrics`).
    """
    j_h, s_h = hindsight_best_device(train_tab[rows_eval], true_eval)
    j_p = ref_chosen_proxy(train_tab, ref_rows, ref_ms)
    lr = lowrank_transfer(train_tab, ref_rows, ref_ms, rank=rank)[rows_eval]
    return {"hindsight_best_device": s_h, "hindsight_device_index": j_h,
            "ref_chosen_proxy": metrics.spearman(true_eval, train_tab[rows_eval, j_p]), "ref_proxy_index": j_p,
            "lowrank_transfer": metrics.spearman(true_eval, lr), "lowrank_transfer_MAPE": metrics.mape(true_eval, lr)}
