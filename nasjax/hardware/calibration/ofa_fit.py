"""An additive layer model of OFA MobileNetV3 subnets at any resolution, fitted on measured subnets.

An architecture is HELP's OFA vector ``[ks[20], e[20], d[5], r]`` (kernel and expand ratio of every layer,
stage depths, input resolution). Only the active layers (layer ``i < d_s`` of stage ``s``) run. With
``rho = (r / 224)^2`` (the spatial work relative to 224 px) the model is::

    L(a) = b_0 + b_1 rho + sum_{active l} (w0[l, c_l] + w1[l, c_l] rho),   c_l = 3 ks_index + e_index

fitted by ridge least squares weighted by ``1 / L`` (relative errors) on measured subnets. For a fixed
resolution it is an additive table over the active layers (inactive layers cost nothing), and it has the
cell view of :class:`~nasjax.hardware.calibration.core.TableSource` (group 0 the fixed part, groups 1-5 the
stages), so it can be calibrated to another setting.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nasjax.errors import require
from nasjax.spaces.mobilenetv3 import DEPTHS, EXPAND, KS, MAX_DEPTH, NUM_LAYERS, NUM_STAGES, ofa_rows_to_layers

REFERENCE_RESOLUTION = 224
_CHOICES = len(KS) * len(EXPAND)


def live_layers(archs) -> tuple[np.ndarray, np.ndarray]:
    """``(choice [N, 20] with -1 for inactive layers, rho [N])`` of HELP OFA vectors ``[N, 46]``."""
    la = ofa_rows_to_layers(archs, field="archs")
    c, d, r = la[:, :NUM_LAYERS], np.asarray(DEPTHS)[la[:, NUM_LAYERS:NUM_LAYERS + NUM_STAGES]], la[:, -1]
    require(bool(np.all(r >= 32)), "archs resolution", int(r.min()), "at least 32 pixels")
    active = np.arange(MAX_DEPTH)[None, None, :] < d[:, :, None]  # [N, 5, 4]
    c = np.where(active.reshape(len(la), NUM_LAYERS), c, -1)
    return c, (r / REFERENCE_RESOLUTION) ** 2


@dataclass(frozen=True)
class OFALayerModel:
    """The fitted model (module docstring): ``b [2]`` and ``w [2, 20, 9]`` in ms."""

    b: np.ndarray
    w: np.ndarray
    device: str | None = None
    metric: str = "latency"
    unit: str = "ms"

    @property
    def groups(self) -> np.ndarray:
        """Group of every cell: 0 the fixed part, s the stage (both parts of a layer cell)."""
        st = np.repeat(np.arange(NUM_LAYERS) // MAX_DEPTH + 1, _CHOICES)
        return np.concatenate([[0, 0], st, st])

    @property
    def kinds(self) -> np.ndarray:
        """Kind of every cell: 0 the resolution-independent part (``b_0``, ``w0``), 1 the part that scales
        with ``rho`` (``b_1 rho``, ``w1 rho``)."""
        n = NUM_LAYERS * _CHOICES
        return np.concatenate([[0, 1], np.zeros(n, np.int64), np.ones(n, np.int64)])

    @property
    def group_names(self) -> tuple[str, ...]:
        return ("fixed",) + tuple(f"stage {s + 1}" for s in range(NUM_STAGES))

    @property
    def mean_value(self) -> float:
        """Mean prediction over uniform choices, uniform depths and ``rho = 1`` (224 px)."""
        p_active = np.array([np.mean([i < d for d in DEPTHS]) for i in range(MAX_DEPTH)] * NUM_STAGES)
        return float(self.b.sum() + (self.w.sum(0).mean(1) * p_active).sum())


    def cells(self, archs) -> np.ndarray:
        """``[N, 2 + 2 * 180]`` contributions (ms): ``b_0``, ``b_1 rho``, then ``w0[l, c]`` and (after all
        of those) ``w1[l, c] rho`` where layer l is active with choice c."""
        x = _design(archs)
        return x * np.concatenate([self.b, self.w.reshape(-1)])[None, :]

    def predict(self, archs):
        single = np.asarray(archs).ndim == 1
        out = self.cells(archs).sum(1)
        return float(out[0]) if single else out


def _design(archs) -> np.ndarray:
    c, rho = live_layers(archs)
    n = len(c)
    x = np.zeros((n, 2 + 2 * NUM_LAYERS * _CHOICES))
    x[:, 0], x[:, 1] = 1.0, rho
    rows, layers = np.nonzero(c >= 0)
    col = layers * _CHOICES + c[rows, layers]
    x[rows, 2 + col] = 1.0
    x[rows, 2 + NUM_LAYERS * _CHOICES + col] = rho[rows]
    return x


def fit_ofa_layer_model(archs, latency_ms, *, ridge: float = 1e-3, device: str | None = None) -> OFALayerModel:
    """Fit :class:`OFALayerModel` on measured subnets.

    Args:
      archs: ``[N, 46]`` HELP OFA vectors.
      latency_ms: ``[N]`` measured latency (ms), finite and positive.
      ridge: penalty on the cell weights (relative to the weighted Gram matrix's mean diagonal).
      device: recorded on the model.

    Returns:
      The model minimising ``sum_n ((L(a_n) - y_n) / y_n)^2 + ridge' |w|^2``.
    """
    y = np.asarray(latency_ms, np.float64).reshape(-1)
    x = _design(archs)
    require(len(y) == len(x), "latency_ms", len(y), f"{len(x)} values like archs")
    require(bool(np.all(np.isfinite(y) & (y > 0))), "latency_ms", "a non-finite or non-positive value",
            "finite positive latencies in ms")
    xw = x / y[:, None]
    g = xw.T @ xw
    reg = ridge * float(np.mean(np.diag(g))) * np.eye(x.shape[1])
    reg[0, 0] = reg[1, 1] = 0.0
    beta = np.linalg.solve(g + reg, xw.T @ np.ones(len(y)))
    w = beta[2:].reshape(2, NUM_LAYERS, _CHOICES)
    return OFALayerModel(beta[:2].copy(), w, device)
