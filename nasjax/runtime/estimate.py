"""Latency re-estimation from measured batches (MathNAS's measured / predicted scale).

An estimator maps architectures to predicted latency in ms on the device as it is now. The runtime
calls :meth:`LatencyEstimator.update` with the architecture that ran and the latency measured for it
whenever it re-estimates; any object with ``update`` and ``predict`` can replace the scale (for example
a calibrated latency model).

:class:`ScaleEstimator` is MathNAS's rule: with table prediction ``t(a)`` (any additive table, in ms,
MFLOPs or another unit), after measuring ``m`` ms for architecture ``a0``::

    s = m / t(a0),        lat(a) = s * t(a)   (ms)
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from nasjax.errors import require
from nasjax.search.base import FunctionModel
from nasjax.tables import Table


@runtime_checkable
class LatencyEstimator(Protocol):
    """What the runtime needs of a latency estimate."""

    def update(self, arch, measured_ms: float) -> None: ...

    def predict(self, archs) -> np.ndarray: ...


class ScaleEstimator:
    """``lat(a) = scale * table(a)`` in ms, the scale re-estimated as measured / predicted (module docstring).

    Args:
      table: an additive table over the space (latency in any unit, or a proxy such as MFLOPs).
      scale: the initial scale (ms per table unit).
    """

    def __init__(self, table: Table, scale: float = 1.0):
        require(isinstance(table, Table), "table", type(table).__name__, "an additive Table")
        self.table = table
        self.scale = float(scale)
        self._coef = table.coef
        self._pos = np.arange(table.shape[0])

    def raw(self, archs) -> np.ndarray:
        """Table values ``t(a)`` of ``archs [N, P]`` (no checks; the runtime's archs are valid)."""
        a = np.atleast_2d(np.asarray(archs, np.int64))
        return self.table.base + self._coef[self._pos[None, :], a].sum(1)

    def update(self, arch, measured_ms: float) -> None:
        """Set ``scale = measured_ms / t(arch)``.

        Args:
          arch: ``[P]`` the architecture that was measured.
          measured_ms: its mean measured latency (ms), positive and finite.
        """
        m = float(measured_ms)
        require(np.isfinite(m) and m > 0, "measured_ms", measured_ms, "a positive finite latency in ms")
        t = float(self.raw(arch)[0])
        require(t > 0, "table prediction", t, "a positive table value for the measured architecture")
        self.scale = m / t

    def predict(self, archs) -> np.ndarray:
        """``scale * t(a)`` (ms) for every row of ``archs [N, P]``."""
        return self.scale * self.raw(archs)


def latency_model(estimator: LatencyEstimator, sign: float = 1.0, metric: str = "latency") -> FunctionModel:
    """The estimator as a search model in ms: ``sign * lat(a)`` (``sign=-1`` expresses ``lat(a) >= min``
    as ``-lat(a) <= -min``)."""
    return FunctionModel(lambda a: sign * estimator.predict(a), metric, "ms")
