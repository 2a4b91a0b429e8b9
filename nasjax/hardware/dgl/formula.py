"""DGL's latency formula (Wang & Zhang, IEEE TMC 2023): a device enters only through its hardware parameters.

With ``hw = (frequency f, dispatch d, cache c, memory_speed m)`` and the device-independent network
parameter ``A(a)`` of architecture ``a``::

    latency(a, hw) = (A(a) / d + A(a) / (sqrt(c) * m)) / f = A(a) * c(hw),
    c(hw) = (1/d + 1/(sqrt(c) * m)) / f

so the Pearson R on a device is ``corr(A_hat, latency)`` whatever the parameters are, and RMSE/MAE depend
on ``c``. :func:`fit_hw_params_from_k` fits a new device's constant (and an equivalent parameter set)
from ``k`` measured latencies; :func:`latency_scores` is what DGL's test mode reports (R, RMSE, MAE).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from nasjax import metrics
from nasjax.benchmarks.dgl import check_hardware
from nasjax.errors import NasjaxInputError, require

#: DGL's low-end phone (``2 3 1 7.46``): the default prior of :func:`fit_hw_params_from_k`
LOW_END_PHONE = (2.0, 3.0, 1.0, 7.46)


def device_constant(hw, device: str = "device") -> float:
    """``c(hw) = (1/dispatch + 1/(sqrt(cache) * memory_speed)) / frequency`` (latency per unit of A).

    Args:
      hw: the 4 hardware parameters (finite, > 0).
      device: the device's name, for error messages.
    Returns:
      The constant; finite parameters whose constant overflows are an error.
    """
    f, d, c, m = check_hardware(hw, device)
    with np.errstate(over="ignore", divide="ignore"):
        out = float((1.0 / d + 1.0 / (math.sqrt(c) * m)) / f)
    if not math.isfinite(out) or out <= 0:
        raise NasjaxInputError(f"hardware parameters of {device!r}: {list(map(float, (f, d, c, m)))} give "
                               f"c(hw) = {out!r}; expected parameters whose constant is a finite number > 0")
    return out


def dgl_latency(A, hw, device: str = "device") -> np.ndarray:
    """DGL's formula ``latency = A * c(hw)`` (A's units); a product that overflows is an error.

    latency = A * (1/dispatch + 1/(sqrt(cache) * memory_speed)) / frequency

    Args:
      A: the network parameter of each architecture, any shape.
      hw: the device's 4 hardware parameters (finite, > 0).
      device: the device's name, for error messages.

    Returns:
      float64 latencies of the shape of ``A``.

    Raises:
      NasjaxInputError: on invalid hardware parameters, or a latency that overflows.
    """
    a = np.asarray(A, dtype=np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        out = a * device_constant(hw, device)
    if not np.all(np.isfinite(out)):
        raise NasjaxInputError(f"predicted latency on {device!r}: overflows (A up to {np.nanmax(np.abs(a))!r}); "
                               "expected a finite latency for every architecture")
    return out


def latency_scores(y_true, y_pred) -> dict[str, float]:
    """Pearson ``R``, ``RMSE`` and ``MAE`` (the unit of the inputs), as DGL's test mode reports.

    Args:
      y_true: the measured latencies, at least 2 finite entries.
      y_pred: the predicted latencies, same shape and unit.

    Returns:
      ``{"R", "RMSE", "MAE"}`` (see :mod:`nasjax.metrics`).

    Raises:
      NasjaxInputError: on a shape mismatch, fewer than 2 entries or a non-finite entry.
    """
    return {"R": metrics.pearson(y_true, y_pred), "RMSE": metrics.rmse(y_true, y_pred),
            "MAE": metrics.mae(y_true, y_pred)}


@dataclass
class DeviceFit:
    """A new device described through DGL's formula: ``latency = scale * A + offset``.

    ``scale`` is DGL's per-device constant ``c(hw)``; ``hw_equivalent`` is a set of the four parameters
    with exactly that constant (the prior's dispatch/cache/memory_speed with a refitted frequency: the
    four parameters are not identifiable from latencies, only ``c`` is)."""

    scale: float
    offset: float
    hw_equivalent: list[float]
    k: int
    method: str

    def predict(self, A) -> np.ndarray:
        """The fitted device's latency of architectures of network parameter ``A``.

        latency = scale * A + offset

        Args:
          A: predicted network parameters, any shape.

        Returns:
          float64 latencies of the shape of ``A`` (raw units).
        """
        return self.scale * np.asarray(A, np.float64) + self.offset


def fit_hw_params_from_k(A_pred, latency, *, prior_hw=None, offset: bool = False) -> DeviceFit:
    """Fit DGL's device constant of a new device from ``k`` measured latencies.

    Without ``offset`` (any k >= 1) the scale is the geometric-mean ratio
    ``c = exp(mean(log latency - log A_pred))`` (robust to one bad measurement's magnitude); with
    ``offset`` (k >= 2) it is least squares ``latency = c*A + b`` (falling back to the ratio when the
    fit gives ``c <= 0``). The equivalent parameters take dispatch/cache/memory_speed from ``prior_hw``
    and frequency ``f = (1/d + 1/(sqrt(cache)*mem)) / c``. A per-device constant cannot change the
    Pearson/Spearman R of the k = 0 prediction; it fixes RMSE/MAE (and absolute budgets in constrained
    search).

    Args:
      A_pred: the model's predicted A of the k measured architectures.
      latency: their measured latencies (raw units).
      prior_hw: 4 values, default DGL's low-end phone :data:`LOW_END_PHONE`.
      offset: also fit an additive offset ``b``.
    Returns:
      :class:`DeviceFit`.
    """
    a = np.asarray(A_pred, np.float64).reshape(-1)
    t = np.asarray(latency, np.float64).reshape(-1)
    require(a.size == t.size, "latency", t.size, f"{a.size} values, one per measured architecture")
    require(a.size >= (2 if offset else 1), "k", a.size, ">= 2 measurements for a fit with offset, else >= 1")
    require(bool(np.all(np.isfinite(t)) and np.all(t > 0)), "latency", t.tolist(), "finite latencies > 0")
    require(bool(np.all(np.isfinite(a)) and np.all(a > 0)), "A_pred", a.tolist(), "finite predictions > 0")
    prior = check_hardware(prior_hw if prior_hw is not None else LOW_END_PHONE, "prior_hw")
    if offset:
        Am = np.stack([a, np.ones_like(a)], 1)
        (c, b), *_ = np.linalg.lstsq(Am, t, rcond=None)
        if c <= 0:  # degenerate k points: fall back to the ratio fit
            c, b = float(np.exp(np.mean(np.log(t) - np.log(a)))), 0.0
        method = "least squares latency = c*A + b"
    else:
        c, b = float(np.exp(np.mean(np.log(t) - np.log(a)))), 0.0
        method = "geometric-mean ratio latency / A"
    _, d, ca, m = prior
    f = (1.0 / d + 1.0 / (math.sqrt(ca) * m)) / float(c)
    return DeviceFit(float(c), float(b), [float(f), float(d), float(ca), float(m)], int(a.size), method)
