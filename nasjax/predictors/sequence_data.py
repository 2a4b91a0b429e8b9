"""Block sequences of OFA MobileNetV3 subnets for the sequence latency predictor (Mills et al., CIKM 2021).

A subnet of ``mobilenetv3_layers`` at resolution ``r`` becomes the sequence of its **active** layers, stage
by stage (a stage of depth ``d`` contributes its first ``d`` layers). Each block ``t`` is

* an operation index ``op_t = 1 + 3 k + e`` (kernel index ``k`` in 3/5/7, expand index ``e`` in 3/4/6;
  0 pads sequences to the maximum length ``T = 20``), embedded by the model, and
* its normalised input / output shapes ``(h_in / r_max, c_in / c_max, h_out / r_max, c_out / c_max)``, with
  ``h_in`` from the resolution and the strides of the supernet (:func:`nasjax.hardware.flops.stage_inputs`),
  channels from its widths, ``r_max = 224`` and ``c_max`` the widest layer.

Architectures come in as ``[N, 26]``: the 25 choice indices of ``mobilenetv3_layers`` and the resolution.
:func:`help_ofa_archs` converts HELP's ``[ks_20, e_20, d_5, r]`` rows; :func:`read_measured_csv` reads
subnet latencies measured on this machine (a CSV ``arch, resolution, latency_ms``, the arch as 25
space-separated choice indices).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nasjax.errors import NasjaxInputError, require
from nasjax.hardware.flops import stage_inputs
from nasjax.models.mobilenetv3 import SupernetConfig
from nasjax.spaces.mobilenetv3 import DEPTHS, EXPAND, KS, NUM_LAYERS, mobilenetv3_layers_space, ofa_rows_to_layers

R_MAX = 224
NUM_SHAPE = 4
NUM_OPS = 1 + len(KS) * len(EXPAND)


@dataclass(frozen=True)
class OFASequenceEncoder:
    """Encodes ``[N, 26]`` layer-view architectures with resolution into (ops, shapes, mask) (module docstring)."""

    config: SupernetConfig = SupernetConfig()

    @property
    def max_len(self) -> int:
        """``T``, the padded sequence length: the 20 layers of the supernet."""
        return NUM_LAYERS

    def _geometry(self, resolution: int) -> np.ndarray:
        """``[20, 4]`` normalised (h_in, c_in, h_out, c_out) of every layer at ``resolution``."""
        specs = self.config.layer_specs()
        starts = stage_inputs(self.config, int(resolution))
        cmax = max(max(s.cin, s.cout) for s in specs)
        out = np.zeros((len(specs), NUM_SHAPE), np.float32)
        for i, s in enumerate(specs):
            first = specs[s.stage * self.config.max_depth]
            h_in = starts[s.stage] if s.index == 0 else (starts[s.stage] - 1) // first.stride + 1
            h_out = (h_in - 1) // s.stride + 1
            out[i] = (h_in / R_MAX, s.cin / cmax, h_out / R_MAX, s.cout / cmax)
        return out

    def encode(self, archs) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(ops int32 [N, T], shapes float32 [N, T, 4], mask bool [N, T])`` of ``[N, 26]`` architectures.

        op_t = 1 + choice of active layer t (kernel index k, expand index e: 1 + 3 k + e); padding is 0.

        Args:
          archs: ``[N, 26]``: 25 ``mobilenetv3_layers`` choice indices and the resolution (pixels).

        Returns:
          The op indices, the normalised ``(h_in, c_in, h_out, c_out)`` shapes and the mask of the active layers,
          each sequence left-aligned and padded to ``T = 20``.

        Raises:
          NasjaxInputError: on another shape, invalid choice indices or a resolution outside 32..1024.
        """
        a = np.atleast_2d(np.asarray(archs))
        require(a.ndim == 2 and a.shape[1] == NUM_LAYERS + 6, "archs", a.shape,
                "(N, 26): 25 mobilenetv3_layers choice indices and the resolution")
        lay = mobilenetv3_layers_space().validate(a[:, :25], "archs[:, :25]")
        res = a[:, 25].astype(np.int64)
        require(bool(np.all((res >= 32) & (res <= 1024))), "archs[:, 25] (resolution)", res.min(), "32..1024 pixels")
        geo = {int(r): self._geometry(int(r)) for r in np.unique(res)}
        depth = np.asarray(DEPTHS)[lay[:, 20:]]  # [N, 5]
        active = np.arange(4)[None, None, :] < depth[:, :, None]  # [N, 5, 4]
        active = active.reshape(len(a), NUM_LAYERS)
        T = self.max_len
        ops = np.zeros((len(a), T), np.int32)
        shapes = np.zeros((len(a), T, NUM_SHAPE), np.float32)
        mask = np.zeros((len(a), T), bool)
        for n in range(len(a)):
            idx = np.flatnonzero(active[n])
            k = idx.size
            ops[n, :k] = 1 + lay[n, idx]
            shapes[n, :k] = geo[int(res[n])][idx]
            mask[n, :k] = True
        return ops, shapes, mask


def help_ofa_archs(rows) -> np.ndarray:
    """HELP's OFA rows ``[N, 46]`` (ks_20, e_20, d_5, resolution) -> ``[N, 26]`` layer view + resolution
    (:func:`nasjax.spaces.mobilenetv3.ofa_rows_to_layers`).

    Args:
      rows: HELP's raw rows ``[46]`` or ``[N, 46]`` (kernel, expand and depth values, resolution in pixels).

    Returns:
      int64 ``[N, 26]``.

    Raises:
      NasjaxInputError: on another width, or a value outside ks 3/5/7, e 3/4/6, d 2/3/4.
    """
    return ofa_rows_to_layers(rows)

def read_measured_csv(path) -> tuple[np.ndarray, np.ndarray]:
    """Measured subnet latencies: a CSV with header ``arch,resolution,latency_ms`` -> (``[N, 26]``, ``[N]`` ms).

    The ``arch`` column holds 25 space-separated ``mobilenetv3_layers`` choice indices.

    Args:
      path: the CSV file.

    Returns:
      ``(archs int64 [N, 26], latency float64 [N] ms)``, the resolution as the last column of ``archs``.

    Raises:
      NasjaxInputError: when the file is missing or malformed, an ``arch`` cell does not hold 25 integers, or a
        latency is not positive.
    """
    from nasjax.benchmarks.csv_files import float_column, int_column, read_csv, require_header

    header, rows = read_csv(path)
    require_header(path, header, ["arch", "resolution", "latency_ms"])
    archs = []
    for line, r in enumerate(rows, 2):
        try:
            v = [int(x) for x in r[0].split()]
        except ValueError:
            v = []
        if len(v) != 25:
            raise NasjaxInputError(f"{str(path)!r} line {line} column 'arch': got {r[0]!r}, expected 25 choice "
                                   "indices of mobilenetv3_layers")
        archs.append(v)
    a = np.array(archs, np.int64).reshape(-1, 25)
    res = int_column(path, rows, 1, "resolution")
    lat = float_column(path, rows, 2, "latency_ms")
    require(bool(np.all(lat > 0)), f"{path} latency_ms", float(lat.min()) if lat.size else None, "positive values")
    return np.concatenate([a, res[:, None]], 1), lat
