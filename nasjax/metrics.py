"""Agreement between a prediction and the truth: the one metrics module of nasjax.

Every function takes ``(y_true, y_pred)`` in that order (MAPE and the +-tolerance rate are not
symmetric, so a swapped call would give a different figure) and checks that both are finite arrays
of the same shape with at least two entries. Rank statistics come from :mod:`scipy.stats`.

With ``t = y_true``, ``p = y_pred``, ``n`` entries:

* ``pearson``  ``R = cov(t, p) / (sd(t) sd(p))``;
* ``spearman`` Pearson's R of the average ranks of ``t`` and ``p``;
* ``kendall``  Kendall's tau-b (ties corrected);
* ``mape``     ``100 / n * sum_i |p_i - t_i| / |t_i|`` (%);
* ``rmse``     ``sqrt(1 / n * sum_i (p_i - t_i)^2)``;  ``mae`` ``1 / n * sum_i |p_i - t_i|``;
* ``within``   the share of ``i`` with ``|p_i - t_i| <= tol |t_i|`` (nn-Meter's +-10 % accuracy rate);
* ``worst_error`` ``100 * max_i |p_i - t_i| / |t_i|`` (%);
* ``topk_overlap`` ``|top_k(t) & top_k(p)| / k`` (the k best by ``t`` found among the k best by ``p``).
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from nasjax.errors import NasjaxInputError


def _pair(y_true, y_pred, name: str = "y_pred") -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(y_true, dtype=np.float64).reshape(-1)
    p = np.asarray(y_pred, dtype=np.float64).reshape(-1)
    if t.shape != p.shape or t.size < 2:
        raise NasjaxInputError(f"{name}: shape {np.shape(y_pred)}, expected the shape of y_true "
                               f"{np.shape(y_true)} with at least 2 values")
    bad = ~(np.isfinite(t) & np.isfinite(p))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise NasjaxInputError(f"{name}[{i}]: got y_true={t[i]!r}, y_pred={p[i]!r}; expected finite values")
    return t, p


def pearson(y_true, y_pred) -> float:
    """Pearson's correlation coefficient R between the truth and the prediction.

    R = cov(t, p) / (sd(t) sd(p)), with t = y_true, p = y_pred.

    Args:
      y_true: the true values, any shape (flattened), at least 2 finite entries.
      y_pred: the predicted values, same number of entries as ``y_true``.

    Returns:
      R in [-1, 1] (NaN when one side is constant).

    Raises:
      NasjaxInputError: when the shapes differ, there are fewer than 2 entries or an entry is not finite.
    """
    t, p = _pair(y_true, y_pred)
    return float(np.corrcoef(t, p)[0, 1])


def spearman(y_true, y_pred) -> float:
    """Spearman's rank correlation (average ranks for ties).

    rho = R(rank(t), rank(p)), Pearson's R of the average ranks of t = y_true and p = y_pred.

    Args:
      y_true: the true values, any shape (flattened), at least 2 finite entries.
      y_pred: the predicted values, same number of entries as ``y_true``.

    Returns:
      rho in [-1, 1].

    Raises:
      NasjaxInputError: when the shapes differ, there are fewer than 2 entries or an entry is not finite.
    """
    t, p = _pair(y_true, y_pred)
    return float(np.corrcoef(stats.rankdata(t), stats.rankdata(p))[0, 1])


def kendall(y_true, y_pred) -> float:
    """Kendall's tau-b rank correlation (corrected for ties), from :func:`scipy.stats.kendalltau`.

    Args:
      y_true: the true values, any shape (flattened), at least 2 finite entries.
      y_pred: the predicted values, same number of entries as ``y_true``.

    Returns:
      tau-b in [-1, 1].

    Raises:
      NasjaxInputError: when the shapes differ, there are fewer than 2 entries or an entry is not finite.
    """
    t, p = _pair(y_true, y_pred)
    return float(stats.kendalltau(t, p).statistic)


def _relative_errors(t: np.ndarray, p: np.ndarray) -> np.ndarray:
    if np.any(t == 0):
        raise NasjaxInputError(f"y_true[{int(np.flatnonzero(t == 0)[0])}]: got 0, expected a non-zero value "
                               "for a relative error")
    return np.abs(p - t) / np.abs(t)


def mape(y_true, y_pred) -> float:
    """Mean absolute percentage error (%).

    MAPE = 100 / n * sum_i |y_pred_i - y_true_i| / |y_true_i|

    Args:
      y_true: the true values, any shape (flattened), at least 2 finite non-zero entries.
      y_pred: the predicted values, same number of entries as ``y_true``.

    Returns:
      MAPE in percent.

    Raises:
      NasjaxInputError: when the shapes differ, there are fewer than 2 entries, an entry is not finite or a
        ``y_true`` entry is 0.
    """
    t, p = _pair(y_true, y_pred)
    return float(np.mean(_relative_errors(t, p)) * 100.0)


def worst_error(y_true, y_pred) -> float:
    """Largest absolute percentage error (%).

    worst = 100 * max_i |y_pred_i - y_true_i| / |y_true_i|

    Args:
      y_true: the true values, any shape (flattened), at least 2 finite non-zero entries.
      y_pred: the predicted values, same number of entries as ``y_true``.

    Returns:
      The largest relative error in percent.

    Raises:
      NasjaxInputError: when the shapes differ, there are fewer than 2 entries, an entry is not finite or a
        ``y_true`` entry is 0.
    """
    t, p = _pair(y_true, y_pred)
    return float(np.max(_relative_errors(t, p)) * 100.0)


def within(y_true, y_pred, tol: float = 0.10) -> float:
    """Share (0..1) of predictions within ``+-tol`` (relative) of the truth.

    within = 1 / n * #{i : |y_pred_i - y_true_i| <= tol |y_true_i|}

    Args:
      y_true: the true values, any shape (flattened), at least 2 finite non-zero entries.
      y_pred: the predicted values, same number of entries as ``y_true``.
      tol: the relative tolerance, a positive fraction (0.10 = +-10 %).

    Returns:
      The share of entries within the tolerance, in [0, 1].

    Raises:
      NasjaxInputError: on a shape mismatch, fewer than 2 entries, a non-finite entry, a ``y_true`` entry of 0
        or a ``tol`` that is not a positive finite number.
    """
    t, p = _pair(y_true, y_pred)
    if not (np.isfinite(tol) and tol > 0):
        raise NasjaxInputError(f"tol: got {tol!r}, expected a positive relative tolerance")
    return float(np.mean(_relative_errors(t, p) <= tol * (1 + 1e-12)))


def rmse(y_true, y_pred) -> float:
    """Root mean squared error (in the unit of the inputs).

    RMSE = sqrt(1 / n * sum_i (y_pred_i - y_true_i)^2)

    Args:
      y_true: the true values, any shape (flattened), at least 2 finite entries.
      y_pred: the predicted values, same number of entries as ``y_true``.

    Returns:
      RMSE, in the unit of the inputs.

    Raises:
      NasjaxInputError: when the shapes differ, there are fewer than 2 entries or an entry is not finite.
    """
    t, p = _pair(y_true, y_pred)
    return float(np.sqrt(np.mean((p - t) ** 2)))


def mae(y_true, y_pred) -> float:
    """Mean absolute error (in the unit of the inputs).

    MAE = 1 / n * sum_i |y_pred_i - y_true_i|

    Args:
      y_true: the true values, any shape (flattened), at least 2 finite entries.
      y_pred: the predicted values, same number of entries as ``y_true``.

    Returns:
      MAE, in the unit of the inputs.

    Raises:
      NasjaxInputError: when the shapes differ, there are fewer than 2 entries or an entry is not finite.
    """
    t, p = _pair(y_true, y_pred)
    return float(np.mean(np.abs(p - t)))


def topk_overlap(y_true, y_pred, k: int, largest: bool = True) -> float:
    """Share of the ``k`` best entries by ``y_true`` that are among the ``k`` best by ``y_pred``.

    overlap = |top_k(y_true) & top_k(y_pred)| / k, best = largest, or smallest with ``largest=False`` (e.g. for
    latency); ties are broken by position (stable sort).

    Args:
      y_true: the true values, any shape (flattened), at least 2 finite entries.
      y_pred: the predicted values, same number of entries as ``y_true``.
      k: how many best entries to compare, an integer in ``1..n``.
      largest: True when larger values are better, False when smaller ones are.

    Returns:
      The overlap in [0, 1].

    Raises:
      NasjaxInputError: on a shape mismatch, fewer than 2 entries, a non-finite entry or ``k`` outside ``1..n``.
    """
    t, p = _pair(y_true, y_pred)
    if not (isinstance(k, (int, np.integer)) and 1 <= k <= t.size):
        raise NasjaxInputError(f"k: got {k!r}, expected an integer in 1..{t.size}")
    s = 1.0 if largest else -1.0
    top_t = np.argsort(-s * t, kind="stable")[:k]
    top_p = np.argsort(-s * p, kind="stable")[:k]
    return float(np.intersect1d(top_t, top_p).size / k)


def regression_metrics(y_true, y_pred) -> dict[str, float]:
    """The regression figures of a prediction, as one dict.

    Args:
      y_true: the true values, any shape (flattened), at least 2 finite entries.
      y_pred: the predicted values, same number of entries as ``y_true``.

    Returns:
      ``{"R", "RMSE", "MAE", "spearman", "kendall", "MAPE"}``: see :func:`pearson`, :func:`rmse`, :func:`mae`
      (unit of the inputs), :func:`spearman`, :func:`kendall` and :func:`mape` (%); ``MAPE`` is NaN when a
      ``y_true`` entry is 0.

    Raises:
      NasjaxInputError: when the shapes differ, there are fewer than 2 entries or an entry is not finite.
    """
    t, p = _pair(y_true, y_pred)
    out = {"R": pearson(t, p), "RMSE": rmse(t, p), "MAE": mae(t, p), "spearman": spearman(t, p),
           "kendall": kendall(t, p)}
    out["MAPE"] = mape(t, p) if np.all(t != 0) else float("nan")
    return out


def latency_metrics(y_true, y_pred, tol: float = 0.10) -> dict[str, float]:
    """What a latency table or model is judged by, as one dict.

    Args:
      y_true: the measured latencies, any shape (flattened), at least 2 finite non-zero entries.
      y_pred: the predicted latencies, same number of entries and unit as ``y_true``.
      tol: the relative tolerance of the within-rate (0.10 = +-10 %).

    Returns:
      ``mape_percent`` (:func:`mape`), ``kendall_tau``, ``spearman``, ``within_{100 tol}_percent`` (share within
      ``+-tol``, :func:`within`), ``worst_error_percent`` (:func:`worst_error`), ``n`` (entries) and
      ``mean_true`` / ``mean_pred`` (unit of the inputs).

    Raises:
      NasjaxInputError: on a shape mismatch, fewer than 2 entries, a non-finite entry, a ``y_true`` entry of 0
        or a bad ``tol``.
    """
    t, p = _pair(y_true, y_pred)
    return {"mape_percent": mape(t, p), "kendall_tau": kendall(t, p), "spearman": spearman(t, p),
            f"within_{round(100 * tol)}_percent": within(t, p, tol), "worst_error_percent": worst_error(t, p),
            "n": int(t.size), "mean_true": float(t.mean()), "mean_pred": float(p.mean())}
