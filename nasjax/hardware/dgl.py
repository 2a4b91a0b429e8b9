"""DGL: a device-generic latency model (Wang & Zhang, IEEE TMC 2023), reproduced and improved in JAX.

DGL predicts the latency of architecture ``a`` on a device it never saw from four hardware parameters
``hw = (frequency, dispatch, cache, memory_speed)`` (units not stated by the authors; they read as CPU
GHz, dispatch width, last-level cache MB, DRAM GB/s) and a device-independent "network parameter"
``A(a)`` learned per architecture (interval analysis of a CPU pipeline)::

    latency(a, hw) = (A(a) / dispatch + A(a) / (sqrt(cache) * memory_speed)) / frequency
                   = A(a) * c(hw),          c(hw) = (1/dispatch + 1/(sqrt(cache) * memory_speed)) / frequency

So with hardware parameters alone the device enters only through one constant ``c(hw)``: the Pearson R
on a device is ``corr(A_hat, latency)`` whatever the parameters are, and RMSE/MAE depend on ``c``. What a
better model can change is ``A_hat``; this module's model changes exactly that.

Units and DGL's /100 scaling (documented, not guessed). ``a.txt`` holds A in the same raw units as the
``latency/<device>.txt`` files (median measured/formula ratio 0.8-1.06 on every test phone), which the
authors never name; the values fit milliseconds of 224x224 inputs under PyTorch Mobile. DGL's loader
divides BOTH ``a.txt`` and the latency files by :data:`A_SCALE` = 100 before training/testing, so its
printed RMSE/MAE and its ``result/*_timepre.txt`` files (``int(latency/100)``) are in units of 100 raw
units. nasjax keeps raw units everywhere (``LATENCY_UNIT``); :func:`authors_predictions` multiplies the
shipped files back by 100. DGL's FBNetV3 NAS adds a further constant 15 to predicted latency
(``latency_offset`` in :mod:`experiments.dgl`).

Data problems handled here (see ../shared/data/DGL/SOURCE.md): rows 120 and 375 of the NAS-Bench-201
``a.txt`` are corrupt (8.7x and 0.1x off). :func:`detect_corrupt_rows` finds such rows from ``a.txt``
alone (no device latency is used, so k = 0 stays k = 0): an iteratively refitted ridge regression of
``log A`` on the features flags rows whose residual exceeds ``z`` robust standard deviations
(``sigma = 1.4826 * MAD``); flagged rows get weight 0 in training. On the shipped data it flags exactly
rows 120 and 375 of NAS-Bench-201, and row 174 of FBNetV3 (checked afterwards, not used: that row is also
the largest measured/formula outlier on three of the four FBNetV3 phones).

Feature encodings (:func:`features`):

* ``nasbench201`` (6 edges x 5 ops, DGL's 1..5 op codes = nasjax choice + 1): one-hot (30), op counts
  (5), and the pairwise products of one-hot cells on different edges (15 edge pairs x 25 = 375): 410.
* ``fbnetv3`` (DGL's 28 genes, see :func:`fbnetv3_space`): the 28 gene values and the log of 14
  analytic costs of the network DGL builds from the genes (``net.py::FBNetV3`` at 224x224): total MACs,
  parameters, activation elements, block count, depthwise / pointwise / squeeze-excite MACs, and MACs of
  each of the 7 stages: 42.

Model of A (Flax NNX, built by :func:`build_module`), on standardised features ``x`` and a standardised
target ``y`` (``A / 100`` for NB201, ``log A`` for FBNetV3: see :data:`DEFAULT_CONFIG`)::

    y_hat(x) = w.x + b + (1/M) sum_m [ v_m . tanh(W_m x + b_m) + c_m ]

a linear term plus an optional ensemble of M one-hidden-layer tanh MLPs (``M = 0`` by default: cross-
validation on ``a.txt`` did not favour it), trained with optax AdamW on the weighted Huber loss plus
``l2 * ||weights||^2 / n`` (so ``M = 0`` is a ridge regression on the features); weights 0 for corrupt
rows, Poisson(1) bootstrap weights per ensemble member. What changes against DGL: the features
(pairwise edge-op interactions; analytic network costs), the regularised fit, and corrupt-row handling.
DGL's own predictor (``net.py::MLP``: 6/28 -> 512 -> 2048 -> 2048 -> 2048 -> 256 -> 28 -> 1, tanh, only
the last two layers trained, SGD lr 0.1, SmoothL1 on A/100, column-centred integer codes) is the
``"dgl_mlp"`` model, used for the reproduction rows.

Public API (used by ``scripts/bench_latency_models.py``):

* :func:`load_dgl(space, data_path=None) <load_dgl>` -> :class:`DGLData` (archs, A, latency and
  hardware per device, corrupt-row mask);
* :func:`features`, :func:`feature_spec`, :func:`device_constant`, :func:`dgl_latency`;
* :func:`train_a_model` -> :class:`DGLLatencyModel` (``.predict_A``, ``.predict_latency``, ``.save``,
  :meth:`DGLLatencyModel.load`);
* :func:`dgl_unseen_device_eval(space, n_splits, seed) <dgl_unseen_device_eval>` -> rows (per device
  R/RMSE/MAE, ours vs the authors' shipped predictions, on held-out and on all archs);
* :func:`fit_hw_params_from_k` -> :class:`DeviceFit`: the per-device constant (and an equivalent set of
  the four parameters) of a new device fitted from k measured latencies;
* :func:`authors_predictions`, :func:`arch_splits`, :func:`regression_metrics`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from nasjax.errors import NasjaxInputError, require
from nasjax.io import shared_data_dir
from nasjax.spaces.base import get_space
from nasjax.spaces.fbnetv3 import (  # noqa: F401  (re-exported: the DGL API names them)
    FBNET_GENE_NAMES,
    FBNET_GENE_VALUES,
    arch_to_genes,
    fbnetv3_space,
    genes_to_arch,
)

A_SCALE = 100.0
LATENCY_UNIT = "ms"  # DGL's raw latency-file unit (not stated by the authors; see module docstring)
HW_FIELDS = ("frequency", "dispatch", "cache", "memory_speed")
DGL_SPACES = ("nasbench201", "fbnetv3")
# R published in the paper (NAS-Bench-201 Table; FBNetV3 Table), keyed by device. The shipped
# result/*_timepre.txt files reproduce each value to 3 decimals when scored on all archs (see
# :func:`authors_predictions`), which fixes the device of each FBNetV3 value.
PUBLISHED_R = {
    "nasbench201": {
        "Huawei Mate 20": 0.920,
        "Motorola Moto E6s": 0.901,
        "Samsung Galaxy A10s": 0.904,
        "Sony Xperia XZ2": 0.877,
        "Xiaomi Redmi 5 Plus": 0.918,
    },
    "fbnetv3": {"Asus ROG Phone 3": 0.639, "Oppo A5": 0.838, "Samsung Galaxy S8+": 0.760, "Xiaomi Mi 8 Lite": 0.826},
}

_FB_STRIDE = (1, 2, 2, 2, 1, 2, 1)
_FB_SE = (False, False, True, False, True, True, True)


def fbnetv3_costs(genes) -> np.ndarray:
    """Analytic costs ``[N, 14]`` of DGL's FBNetV3 network (``net.py::FBNetV3``, 224x224 input):

    total MACs, parameters, activation elements, blocks, depthwise MACs, pointwise MACs, SE MACs, and the
    MACs of stages 1..7. Stage ``s`` has strides (1,2,2,2,1,2,1), SE on stages 3,5,6,7; its first block
    expands by the "first" ratio, the rest by the "rest" ratio (stages 4 and 5 share genes 11/12, stage
    6 uses gene 13 for both, stage 7 expands by 6); a stride-1 block whose width changes gets a 1x1
    shortcut convolution; the head is 1x1 conv to 6x width, 1x1 conv to 1984, linear to 1000.
    """
    g = np.atleast_2d(np.asarray(genes, dtype=np.int64))
    out = np.zeros((g.shape[0], 14))
    for n, row in enumerate(g):
        stem = int(row[14])
        res = 112
        macs = 3 * stem * 9 * res * res
        params = 27 * stem
        act = stem * res * res
        blocks_total = dw = pw = se = 0
        exp_first = (1, row[7], row[9], row[11], row[11], row[13], 6)
        exp_rest = (1, row[8], row[10], row[12], row[12], row[13], 6)
        blocks = list(row[22:28]) + [1]
        cin = stem
        stage = []
        for s in range(7):
            k, cout, sm = int(row[s]), int(row[15 + s]), 0
            for j in range(int(blocks[s])):
                st = _FB_STRIDE[s] if j == 0 else 1
                ce = int(exp_first[s] if j == 0 else exp_rest[s]) * cin
                r2 = res // st
                m1, m2, m3 = cin * ce * res * res, ce * k * k * r2 * r2, ce * cout * r2 * r2
                ms = 2 * ce * (ce // 4) if _FB_SE[s] else 0
                sc = cin * cout * r2 * r2 if (st == 1 and cin != cout) else 0
                sm += m1 + m2 + m3 + ms + sc
                pw += m1 + m3 + sc
                dw += m2
                se += ms
                params += cin * ce + ce * k * k + ce * cout + ms + (cin * cout if sc else 0)
                act += ce * res * res + ce * r2 * r2 + cout * r2 * r2
                res, cin = r2, cout
                blocks_total += 1
            stage.append(sm)
            macs += sm
        head = cin * cin * 6 * res * res + cin * 6 * 1984 + 1984 * 1000
        macs += head
        params += cin * cin * 6 + cin * 6 * 1984 + 1984 * 1000
        out[n] = [macs, params, act, blocks_total, dw, pw, se, *stage]
    return out


FBNET_COST_NAMES = ("MACs", "params", "activations", "blocks", "depthwise MACs", "pointwise MACs", "SE MACs") + tuple(
    f"stage {i + 1} MACs" for i in range(7)
)

# --- features -------------------------------------------------------------------------------------------


def _nb201_pairs():
    return [(i, j) for i in range(6) for j in range(i + 1, 6)]


@cache
def feature_spec(space: str) -> dict:
    """Names and length of the feature vector of ``space`` (stored in every model file)."""
    _check_space_name(space)
    if space == "nasbench201":
        from nasjax.spaces.nasbench201 import EDGES, OPS

        names = [f"onehot e{t}<-{f}={op}" for t, f in EDGES for op in OPS]
        names += [f"count {op}" for op in OPS]
        names += [f"pair e{i}={a}&e{j}={b}" for i, j in _nb201_pairs() for a in OPS for b in OPS]
    else:
        names = [f"gene {n}" for n in FBNET_GENE_NAMES] + [f"log {c}" for c in FBNET_COST_NAMES]
    return {"space": space, "names": names, "length": len(names), "version": 1}


def features(space: str, archs) -> np.ndarray:
    """Feature matrix ``[N, F]`` (float64) of choice-index architectures ``[N, P]`` of ``space``."""
    _check_space_name(space)
    sp = get_space(space)
    a = np.atleast_2d(sp.validate(archs, "archs"))
    n = a.shape[0]
    if space == "nasbench201":
        oh = (a[..., None] == np.arange(5)).astype(np.float64)  # [N, 6, 5]
        cnt = oh.sum(1)
        pairs = [np.einsum("na,nb->nab", oh[:, i], oh[:, j]).reshape(n, 25) for i, j in _nb201_pairs()]
        return np.concatenate([oh.reshape(n, 30), cnt] + pairs, axis=1)
    genes = arch_to_genes(a).astype(np.float64)
    return np.concatenate([genes, np.log1p(fbnetv3_costs(genes.astype(np.int64)))], axis=1)


def _check_space_name(space: str) -> None:
    if space not in DGL_SPACES:
        raise NasjaxInputError(f"search_space: got {space!r}, expected one of {', '.join(DGL_SPACES)}")


# --- data -------------------------------------------------------------------------------------------------


def default_data_path(space: str) -> Path:
    return shared_data_dir(required=True) / "DGL" / "data" / space


def _read_floats(path: Path, field_name: str) -> np.ndarray:
    try:
        txt = path.read_text()
    except FileNotFoundError as e:
        raise NasjaxInputError(f"{field_name}: no file {str(path)!r}") from e
    try:
        vals = np.array([float(t) for t in txt.split()], dtype=np.float64)
    except ValueError as e:
        raise NasjaxInputError(f"{field_name} {str(path)!r}: non-numeric entry ({e}); expected whitespace-separated numbers") from e
    if not np.all(np.isfinite(vals)):
        raise NasjaxInputError(f"{field_name} {str(path)!r}: NaN or inf entry; expected finite numbers")
    return vals


def check_hardware(hw, device: str = "device") -> np.ndarray:
    """Validate four hardware parameters (``HW_FIELDS``): finite and strictly positive."""
    v = np.asarray(hw, dtype=np.float64).reshape(-1)
    if v.size != 4:
        raise NasjaxInputError(
            f"hardware parameters of {device!r}: got {v.size} values {v.tolist()}, expected 4 "
            f"({', '.join(HW_FIELDS)})"
        )
    for name, x in zip(HW_FIELDS, v):
        if not (np.isfinite(x) and x > 0):
            raise NasjaxInputError(f"hardware parameter {name} of {device!r}: got {x!r}, expected a finite number > 0")
    return v


def list_devices(data_path: Path, sub: str = "hardware") -> list[str]:
    d = Path(data_path) / sub
    return sorted(p.name[:-4] for p in d.glob("*.txt")) if d.is_dir() else []


def load_hardware(data_path, device: str, sub: str = "hardware") -> np.ndarray:
    """Four hardware parameters of ``device`` from ``<data_path>/<sub>/<device>.txt`` (validated)."""
    p = Path(data_path) / sub / f"{device}.txt"
    if not p.is_file():
        known = list_devices(data_path, sub)
        raise NasjaxInputError(
            f"device {device!r}: no hardware file {str(p)!r}; known devices: {', '.join(known) or '(none)'}"
        )
    return check_hardware(_read_floats(p, f"hardware file of {device!r}"), device)


def load_latency(data_path, device: str, n: int) -> np.ndarray:
    p = Path(data_path) / "latency" / f"{device}.txt"
    if not p.is_file():
        known = list_devices(data_path, "latency")
        raise NasjaxInputError(
            f"device {device!r}: no measured latency file {str(p)!r}; devices with latency: {', '.join(known) or '(none)'}"
        )
    v = _read_floats(p, f"latency file of {device!r}")
    require(v.size == n, f"latency file of {device!r}", v.size, f"{n} values, one per row of net.txt")
    require(bool(np.all(v > 0)), f"latency file of {device!r}", "a non-positive value", "latencies > 0")
    return v


def read_archs(space: str, path) -> np.ndarray:
    """DGL's ``net.txt`` (NB201: 6 ints in 1..5; FBNetV3: 28 gene values) -> choice indices ``[N, P]``."""
    vals = _read_floats(Path(path), "net.txt")
    p = 6 if space == "nasbench201" else 28
    require(vals.size % p == 0, f"net.txt {str(path)!r}", f"{vals.size} numbers", f"a multiple of {p} ({p} per line)")
    raw = vals.reshape(-1, p)
    require(bool(np.all(raw == np.round(raw))), f"net.txt {str(path)!r}", "non-integer entries", "integers")
    raw = raw.astype(np.int64)
    if space == "nasbench201":
        return get_space("nasbench201").validate(raw - 1, f"net.txt {path}")
    return genes_to_arch(raw)


@dataclass
class DGLData:
    """DGL's data of one space (choice-index archs; A and latencies in raw units, see module docstring)."""

    space: str
    path: Path
    archs: np.ndarray  # [N, P]
    A: np.ndarray  # [N]
    latency: dict[str, np.ndarray]  # device -> [N]
    hardware: dict[str, np.ndarray]  # device -> [4]
    corrupt: np.ndarray  # [N] bool, rows of a.txt flagged by detect_corrupt_rows

    @property
    def devices(self) -> list[str]:
        return sorted(self.latency)


def load_dgl(space: str, data_path=None, devices: Sequence[str] | None = None) -> DGLData:
    """Load ``net.txt``, ``a.txt`` and every (or the named) test device's hardware and latency."""
    _check_space_name(space)
    root = Path(data_path) if data_path else default_data_path(space)
    require(root.is_dir(), "data_path", str(root), "a DGL data folder with net.txt, a.txt, hardware/, latency/")
    archs = read_archs(space, root / "net.txt")
    A = _read_floats(root / "a.txt", "a.txt")
    require(A.size == len(archs), "a.txt", f"{A.size} values", f"{len(archs)} (one per row of net.txt)")
    require(bool(np.all(A > 0)), "a.txt", "a non-positive value", "A > 0")
    devs = list(devices) if devices is not None else list_devices(root, "latency")
    lat, hw = {}, {}
    for d in devs:
        hw[d] = load_hardware(root, d)
        lat[d] = load_latency(root, d, len(archs))
    return DGLData(space, root, archs, A, lat, hw, detect_corrupt_rows(features(space, archs), A))


# --- the formula -------------------------------------------------------------------------------------------


def device_constant(hw) -> float:
    """``c(hw) = (1/dispatch + 1/(sqrt(cache) * memory_speed)) / frequency`` (latency per unit of A)."""
    f, d, c, m = check_hardware(hw)
    return float((1.0 / d + 1.0 / (math.sqrt(c) * m)) / f)


def dgl_latency(A, hw) -> np.ndarray:
    """DGL's formula ``latency = (A/dispatch + A/(sqrt(cache)*memory_speed)) / frequency`` (A's units)."""
    return np.asarray(A, dtype=np.float64) * device_constant(hw)


# --- corrupt rows -----------------------------------------------------------------------------------------


def _ridge(X: np.ndarray, y: np.ndarray, w: np.ndarray, alpha: float) -> np.ndarray:
    mu = (w[:, None] * X).sum(0) / w.sum()
    sd = np.sqrt((w[:, None] * (X - mu) ** 2).sum(0) / w.sum())
    sd = np.where(sd > 1e-12, sd, 1.0)
    Z = (X - mu) / sd
    ym = (w * y).sum() / w.sum()
    G = Z.T @ (w[:, None] * Z) + alpha * np.eye(Z.shape[1])
    beta = np.linalg.solve(G, Z.T @ (w * (y - ym)))
    return Z @ beta + ym


def detect_corrupt_rows(X, A, z: float = 6.0, alpha: float = 10.0, iters: int = 5) -> np.ndarray:
    """Rows of ``a.txt`` inconsistent with the rest: ``|r_i| > z * 1.4826 * MAD(r)``, with ``r`` the
    residuals of a ridge fit of ``log A`` on ``X`` refitted without the flagged rows (``iters`` rounds).

    Uses nothing but the architectures and ``a.txt``."""
    X = np.asarray(X, np.float64)
    y = np.log(np.asarray(A, np.float64))
    bad = np.zeros(len(y), bool)
    for _ in range(iters):
        w = (~bad).astype(np.float64)
        r = y - _ridge(X, y, w, alpha)
        sigma = 1.4826 * np.median(np.abs(r[~bad] - np.median(r[~bad])))
        new = np.abs(r) > z * max(sigma, 1e-12)
        if np.array_equal(new, bad):
            break
        bad = new
    return bad


# --- metrics and splits ------------------------------------------------------------------------------------


def regression_metrics(y_true, y_pred) -> dict[str, float]:
    """Pearson ``R``, ``RMSE`` and ``MAE`` (in the units of the inputs), as DGL's test mode reports."""
    t = np.asarray(y_true, np.float64).reshape(-1)
    p = np.asarray(y_pred, np.float64).reshape(-1)
    require(t.shape == p.shape and t.size >= 2, "predictions", p.shape, f"same shape as targets {t.shape}, >= 2")
    return {
        "R": float(np.corrcoef(t, p)[0, 1]),
        "RMSE": float(np.sqrt(np.mean((t - p) ** 2))),
        "MAE": float(np.mean(np.abs(t - p))),
    }


def arch_splits(n: int, n_splits: int, test_frac: float = 0.2, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """``n_splits`` random (train, test) index splits of ``n`` architectures, ``test_frac`` held out."""
    require(n_splits >= 1, "n_splits", n_splits, "an integer >= 1")
    require(0.0 < test_frac < 1.0, "test_frac", test_frac, "a fraction in (0, 1)")
    rng = np.random.default_rng(seed)
    n_test = max(1, int(round(n * test_frac)))
    out = []
    for _ in range(n_splits):
        perm = rng.permutation(n)
        out.append((np.sort(perm[n_test:]), np.sort(perm[:n_test])))
    return out


def authors_predictions(space: str, device: str, result_path=None) -> np.ndarray:
    """The authors' shipped predictions ``result/<space>/<device>_timepre.txt``, back in raw units
    (the file holds ``int(predicted_latency / 100)``, so values are multiplied by :data:`A_SCALE`)."""
    _check_space_name(space)
    root = Path(result_path) if result_path else shared_data_dir(required=True) / "DGL" / "result" / space
    p = root / f"{device}_timepre.txt"
    if not p.is_file():
        known = sorted(q.name[: -len("_timepre.txt")] for q in root.glob("*_timepre.txt"))
        raise NasjaxInputError(f"device {device!r}: no shipped prediction {str(p)!r}; available: {', '.join(known)}")
    return _read_floats(p, "timepre") * A_SCALE


# --- models of A --------------------------------------------------------------------------------------------


def _build_classes():
    import jax
    import jax.numpy as jnp
    from flax import nnx

    class _AModel(nnx.Module):
        """``y_hat = w.x + b + mean_m [v_m . tanh(W_m x + b_m) + c_m]`` (see module docstring)."""

        def __init__(self, n_features: int, hidden: int, members: int, *, rngs: nnx.Rngs):
            self.linear = nnx.Linear(n_features, 1, kernel_init=nnx.initializers.zeros_init(), rngs=rngs)
            self.members = members
            m = max(members, 1)
            k1, k2 = rngs.params(), rngs.params()
            self.w1 = nnx.Param(jax.random.normal(k1, (m, n_features, hidden)) / np.sqrt(n_features))
            self.b1 = nnx.Param(jnp.zeros((m, hidden)))
            self.w2 = nnx.Param(0.1 * jax.random.normal(k2, (m, hidden)) / np.sqrt(hidden))
            self.b2 = nnx.Param(jnp.zeros((m,)))

        def member_outputs(self, x):
            h = jnp.tanh(jnp.einsum("nf,mfh->mnh", x, self.w1[...]) + self.b1[...][:, None, :])
            return jnp.einsum("mnh,mh->mn", h, self.w2[...]) + self.b2[...][:, None]  # [M, N]

        def __call__(self, x):
            lin = self.linear(x)[:, 0]
            if self.members == 0:
                return lin
            return lin + self.member_outputs(x).mean(0)

    class Frozen(nnx.Variable):
        """Weights DGL never trains (``requires_grad = False`` on fc1..fc4)."""

    class _DGLMLP(nnx.Module):
        """DGL's ``net.py::MLP``: in -> 512 -> 2048 -> 2048 -> 2048 -> 256 (frozen, random) -> 28 -> 1."""

        def __init__(self, n_in: int, *, rngs: nnx.Rngs):
            dims = [n_in, 512, 2048, 2048, 2048, 256]
            self.trunk = nnx.List([self._torch_linear(a, b, rngs, Frozen) for a, b in zip(dims[:-1], dims[1:])])
            self.fc5 = self._torch_linear(256, 28, rngs, nnx.Param)
            self.fc6 = self._torch_linear(28, 1, rngs, nnx.Param)

        @staticmethod
        def _torch_linear(a, b, rngs, kind):
            # PyTorch nn.Linear default init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for weight and bias
            lim = 1.0 / np.sqrt(a)
            w = jax.random.uniform(rngs.params(), (a, b), minval=-lim, maxval=lim)
            bb = jax.random.uniform(rngs.params(), (b,), minval=-lim, maxval=lim)
            return nnx.Dict(w=kind(w), b=kind(bb))

        def features(self, x):
            for layer in self.trunk:
                x = jnp.tanh(x @ layer["w"][...] + layer["b"][...])
            return x

        def head(self, h):
            h = jnp.tanh(h @ self.fc5["w"][...] + self.fc5["b"][...])
            return (h @ self.fc6["w"][...] + self.fc6["b"][...])[:, 0]

        def __call__(self, x):
            return self.head(self.features(x))

    return _AModel, _DGLMLP, Frozen


_CLASSES: tuple | None = None


def _classes():
    global _CLASSES
    if _CLASSES is None:
        _CLASSES = _build_classes()
    return _CLASSES


def build_module(kind: str, n_features: int, hidden: int = 32, members: int = 4, seed: int = 0):
    from flax import nnx

    AM, DM, _ = _classes()
    if kind == "ours":
        return AM(n_features, hidden, members, rngs=nnx.Rngs(seed))
    if kind == "dgl_mlp":
        return DM(n_features, rngs=nnx.Rngs(seed))
    raise NasjaxInputError(f"model: got {kind!r}, expected 'ours' or 'dgl_mlp'")


# Defaults chosen by 3-split cross-validation of corr(A_hat, A) on held-out rows of a.txt alone (no device
# latency is looked at): NB201 linear target, l2 = 30 (R(A) 0.981; log 0.978; +4-member MLP ensemble 0.981);
# FBNetV3 log target, l2 = 3 (0.981; linear 0.973; ensemble 0.979). The MLP ensemble stays available
# (``members > 0``) but did not help on 400 / 160 training architectures.
DEFAULT_CONFIG = {
    "nasbench201": {"target": "linear", "l2": 30.0, "members": 0},
    "fbnetv3": {"target": "log", "l2": 3.0, "members": 0},
}

MODEL_KIND = "nasjax.dgl.a_model"
MODEL_VERSION = 1


@dataclass
class DGLLatencyModel:
    """A trained predictor of DGL's network parameter A plus DGL's formula.

    ``kind == "ours"``: inputs :func:`features` standardised with ``x_mean``/``x_std``; output
    ``A / 100`` or ``log A`` (``config["target"]``) standardised with ``y_mean``/``y_std``. ``kind == "dgl_mlp"``: DGL's inputs (integer codes,
    column-centred with ``x_mean``, ``x_std = 1``) and output ``A / 100`` (``y_mean = 0``, ``y_std = 1``).
    """

    space: str
    kind: str
    module: Any
    x_mean: np.ndarray
    x_std: np.ndarray
    y_mean: float
    y_std: float
    config: dict = field(default_factory=dict)
    info: dict = field(default_factory=dict)  # provenance: training rows, held-out rows, corrupt rows...

    # inputs -------------------------------------------------------------------------------------------
    def inputs(self, archs) -> np.ndarray:
        if self.kind == "ours":
            return features(self.space, archs)
        return dgl_codes(self.space, archs)

    def check_features(self, X) -> np.ndarray:
        X = np.asarray(X, np.float64)
        want = self.x_mean.shape[0]
        if X.ndim != 2 or X.shape[1] != want:
            raise NasjaxInputError(
                f"features: shape {X.shape}, expected (N, {want}) for the {self.kind!r} model of {self.space!r}"
            )
        if not np.all(np.isfinite(X)):
            raise NasjaxInputError("features: NaN or inf entries, expected finite numbers")
        return X

    def predict_A_from_features(self, X) -> np.ndarray:
        import jax.numpy as jnp

        X = self.check_features(X)
        Z = jnp.asarray((X - self.x_mean) / self.x_std, jnp.float32)
        y = np.asarray(self.module(Z), np.float64) * self.y_std + self.y_mean
        if self.kind == "ours" and self.config.get("target") == "log":
            return np.exp(y)
        return y * A_SCALE

    def predict_A(self, archs) -> np.ndarray:
        """Predicted A (raw units, like ``a.txt``) for choice-index architectures ``[N, P]``."""
        return self.predict_A_from_features(self.inputs(archs))

    def predict_latency(self, archs, hw) -> np.ndarray:
        """DGL's formula on the predicted A: latency in raw units (:data:`LATENCY_UNIT`)."""
        return dgl_latency(self.predict_A(archs), hw)

    # I/O ------------------------------------------------------------------------------------------------
    def header(self) -> dict:
        spec = feature_spec(self.space) if self.kind == "ours" else {
            "space": self.space, "names": [f"code {i}" for i in range(self.x_mean.shape[0])],
            "length": int(self.x_mean.shape[0]), "version": 1,
        }
        return {
            "space": self.space,
            "model": self.kind,
            "feature_spec": spec,
            "target": ("log A" if self.config.get("target") == "log" else "A / 100") + (" (standardised)" if self.kind == "ours" else ""),
            "units": {"A": "raw a.txt units", "latency": LATENCY_UNIT + " (raw DGL latency-file units)", "A_scale": A_SCALE},
            "formula": "latency = (A/dispatch + A/(sqrt(cache)*memory_speed)) / frequency",
            "hardware_fields": list(HW_FIELDS),
            "y_mean": float(self.y_mean),
            "y_std": float(self.y_std),
            "config": self.config,
            "info": self.info,
        }

    def save(self, path) -> dict:
        from nasjax.hardware.model_io import save_nnx

        return save_nnx(path, self.module, kind=MODEL_KIND, version=MODEL_VERSION, header=self.header(),
                        extra_arrays={"x_mean": self.x_mean, "x_std": self.x_std})

    @classmethod
    def load(cls, path) -> DGLLatencyModel:
        from nasjax.hardware.model_io import load_nnx

        def build(h):
            try:
                cfg = h["config"]
                n = int(h["feature_spec"]["length"])
                return build_module(h["model"], n, int(cfg.get("hidden", 32)), int(cfg.get("members", 4)), 0)
            except (KeyError, TypeError, ValueError) as e:
                raise NasjaxInputError(f"load_path {str(path)!r}: header lacks model config ({e})") from e

        module, h, extra = load_nnx(path, build, kind=MODEL_KIND)
        _check_space_name(h.get("space"))
        if h["model"] == "ours" and h["feature_spec"]["names"] != feature_spec(h["space"])["names"]:
            raise NasjaxInputError(
                f"load_path {str(path)!r}: the file's feature spec differs from this nasjax's {h['space']!r} features; "
                "expected a model saved with the same feature spec version"
            )
        return cls(h["space"], h["model"], module, extra["x_mean"], extra["x_std"], float(h["y_mean"]),
                   float(h["y_std"]), h["config"], h["info"])


def dgl_codes(space: str, archs) -> np.ndarray:
    """DGL's raw inputs: NB201 op codes 1..5, FBNetV3 gene values (float64, uncentred)."""
    a = np.atleast_2d(get_space(space).validate(archs, "archs"))
    return (a + 1).astype(np.float64) if space == "nasbench201" else arch_to_genes(a).astype(np.float64)


def _is_weight(path) -> bool:
    """L2 applies to weight matrices (``kernel``, ``w1``, ``w2``), not to biases."""
    names = [str(getattr(k, "key", getattr(k, "name", k))) for k in path]
    names = [n for n in names if n != "value"]
    return bool(names) and names[-1] in ("kernel", "w1", "w2")


@lru_cache(maxsize=32)
def _trainer(graphdef, steps: int, lr: float, weight_decay: float, delta: float, l2: float):
    """One compiled full-batch AdamW loop per (model structure, hyper-parameters); see :func:`_fit`."""
    import jax
    import jax.numpy as jnp
    import optax
    from flax import nnx

    tx = optax.adamw(lr, weight_decay=weight_decay)

    def loss_fn(p, rest, X, y, wm, wl):
        m = nnx.merge(graphdef, p, rest)
        penalty = l2 * sum(jnp.sum(v**2) for k, v in jax.tree_util.tree_leaves_with_path(p) if _is_weight(k))
        n_eff = jnp.sum(wl)
        if m.members > 0:
            lin = m.linear(X)[:, 0]
            outs = lin[None, :] + m.member_outputs(X)  # every member carries the shared linear term
            l = optax.huber_loss(outs, y[None, :], delta=delta)  # [M, N]
            return jnp.sum(l * wm) / jnp.sum(wm) + penalty / n_eff
        l = optax.huber_loss(m(X), y, delta=delta)
        return jnp.sum(l * wl) / n_eff + penalty / n_eff

    return jax.jit(lambda p, *data: _scan_optimise(loss_fn, tx, p, steps, *data))


def _scan_optimise(loss_fn, tx, params, steps: int, *data):
    """``steps`` full-batch updates of ``params`` with optax ``tx`` on ``loss_fn(params, *data)``
    inside one ``jax.lax.scan`` (traced once); returns ``(params, losses[steps])``."""
    import jax
    import optax

    def step(carry, _):
        p, s = carry
        loss, g = jax.value_and_grad(loss_fn)(p, *data)
        upd, s = tx.update(g, s, p)
        return (optax.apply_updates(p, upd), s), loss

    (params, _), losses = jax.lax.scan(step, (params, tx.init(params)), None, length=steps)
    return params, losses


def _fit(module, X, y, w_members, w_lin, *, steps, lr, weight_decay, delta, l2):
    """Train :class:`AModel` ``module`` in place: minimise the weighted Huber loss (each ensemble member
    with its own bootstrap weights ``w_members[m]``) plus ``l2 * ||weights||^2 / n``; returns losses."""
    import jax.numpy as jnp
    from flax import nnx

    graphdef, params, rest = nnx.split(module, nnx.Param, ...)
    run = _trainer(graphdef, int(steps), float(lr), float(weight_decay), float(delta), float(l2))
    f32 = lambda a: jnp.asarray(a, jnp.float32)
    params, losses = run(params, rest, f32(X), f32(y), f32(w_members), f32(w_lin))
    nnx.update(module, params)
    return np.asarray(losses)


def train_a_model(space: str, archs, A, *, kind: str = "ours", steps: int | None = None, lr: float | None = None,
                  hidden: int = 32, members: int | None = None, l2: float | None = None, target: str | None = None,
                  weight_decay: float = 0.0, delta: float = 1.0, seed: int = 0, exclude: np.ndarray | None = None,
                  detect_corrupt: bool = True, info: Mapping | None = None) -> DGLLatencyModel:
    """Train a predictor of A on ``(archs, A)`` (raw units).

    ``kind="ours"``: :class:`AModel` on :func:`features` standardised on the training rows; target
    ``A / 100`` (``target="linear"``) or ``log A`` (``"log"``), standardised; loss = weighted mean
    Huber(``delta``) + ``l2 * ||weights||^2 / n`` (biases unpenalised: the linear part is a ridge
    regression), AdamW (``lr`` default 3e-3, ``steps`` default 1500, decoupled ``weight_decay``).
    Rows in ``exclude`` or flagged by :func:`detect_corrupt_rows` (on the training rows only) get
    weight 0. ``kind="dgl_mlp"``: DGL's MLP and recipe (SGD ``lr`` default 0.1, SmoothL1 on A/100,
    ``steps`` default 50000 as DGL's ``--epoch``; DGL neither detects nor drops corrupt rows, and neither
    does this reproduction).
    """
    archs = np.atleast_2d(get_space(space).validate(archs, "archs"))
    A = np.asarray(A, np.float64).reshape(-1)
    require(A.shape[0] == archs.shape[0], "A", A.shape, f"({archs.shape[0]},) one value per architecture")
    require(bool(np.all(np.isfinite(A)) and np.all(A > 0)), "A", "non-finite or non-positive values", "A > 0")
    _check_space_name(space)
    dflt = DEFAULT_CONFIG[space]
    members = dflt["members"] if members is None else int(members)
    l2 = dflt["l2"] if l2 is None else float(l2)
    target = dflt["target"] if target is None else target
    require(target in ("linear", "log"), "target", target, "'linear' or 'log'")
    require(members >= 0, "members", members, "an integer >= 0")
    require(l2 >= 0, "l2", l2, "a penalty >= 0")
    require(steps is None or int(steps) >= 1, "steps (EPOCH)", steps, "an integer >= 1")
    require(lr is None or float(lr) > 0, "lr", lr, "a learning rate > 0")

    rng = np.random.default_rng(seed)
    if kind == "ours":
        steps = 1500 if steps is None else int(steps)
        lr = 3e-3 if lr is None else float(lr)
        X = features(space, archs)
        bad = np.zeros(len(A), bool) if exclude is None else np.asarray(exclude, bool).copy()
        if detect_corrupt:
            bad |= detect_corrupt_rows(X, A)
        w = (~bad).astype(np.float64)
        mu = (w[:, None] * X).sum(0) / w.sum()
        sd = np.sqrt((w[:, None] * (X - mu) ** 2).sum(0) / w.sum())
        sd = np.where(sd > 1e-9, sd, 1.0)
        y = np.log(A) if target == "log" else A / A_SCALE
        ym = float((w * y).sum() / w.sum())
        ys = float(np.sqrt((w * (y - ym) ** 2).sum() / w.sum()))
        module = build_module("ours", X.shape[1], hidden, members, seed)
        wm = rng.poisson(1.0, size=(max(members, 1), len(A))).astype(np.float64) * w[None, :]
        _fit(module, (X - mu) / sd, (y - ym) / ys, wm, w, steps=steps, lr=lr, weight_decay=weight_decay, delta=delta,
             l2=l2)
        cfg = {"hidden": hidden, "members": members, "steps": steps, "lr": lr, "l2": l2, "target": target,
               "weight_decay": weight_decay, "delta": delta, "seed": seed, "optimizer": "adamw",
               "loss": "huber + l2"}
        meta = {"corrupt_rows_dropped": np.flatnonzero(bad).tolist()}
    elif kind == "dgl_mlp":
        steps = 50000 if steps is None else int(steps)
        lr = 0.1 if lr is None else float(lr)
        X = dgl_codes(space, archs)
        mu, sd = X.mean(0), np.ones(X.shape[1])
        ym, ys = 0.0, 1.0
        module = build_module("dgl_mlp", X.shape[1], seed=seed)
        _fit_dgl_head(module, X - mu, A / A_SCALE, steps=steps, lr=lr)
        cfg = {"steps": steps, "lr": lr, "seed": seed, "optimizer": "sgd", "loss": "smooth_l1 on A/100",
               "hidden": 0, "members": 0}
        meta = {"corrupt_rows_dropped": []}
    else:
        raise NasjaxInputError(f"model: got {kind!r}, expected 'ours' or 'dgl_mlp'")
    meta.update({"n_train": len(A)})
    meta.update(dict(info or {}))
    return DGLLatencyModel(space, kind, module, mu, sd, ym, ys, cfg, meta)


def _fit_dgl_head(module, Xc, y, *, steps, lr):
    """DGL's training: the frozen trunk is a fixed function, so compute it once and train fc5/fc6 only."""
    import jax
    import jax.numpy as jnp
    import optax
    from flax import nnx

    H = module.features(jnp.asarray(Xc, jnp.float32))
    graphdef, params, rest = nnx.split(module, nnx.Param, ...)
    yj = jnp.asarray(y, jnp.float32)
    tx = optax.sgd(lr)

    def loss_fn(p, H, yj):
        m = nnx.merge(graphdef, p, rest)
        return optax.huber_loss(m.head(H), yj, delta=1.0).mean()  # SmoothL1(beta=1) == Huber(delta=1)

    params, _ = jax.jit(lambda p, H, yj: _scan_optimise(loss_fn, tx, p, steps, H, yj))(params, H, yj)
    nnx.update(module, params)


# --- evaluation on unseen devices ---------------------------------------------------------------------------


def dgl_unseen_device_eval(space: str, n_splits: int = 5, seed: int = 0, *, data_path=None, result_path=None,
                           test_frac: float = 0.2, model_kwargs: Mapping | None = None,
                           include_dgl_mlp: bool = False, dgl_mlp_steps: int = 50000,
                           progress: bool = False, devices: Sequence[str] | None = None) -> list[dict]:
    """k = 0 evaluation on DGL's unseen devices with architectures held out.

    For each of ``n_splits`` random arch splits (``test_frac`` held out), train on ``a.txt`` of the
    training archs only, predict the held-out archs' latency on each test device with DGL's formula and
    its 4 hardware parameters, and score R/RMSE/MAE (raw units). Beside it: the authors' shipped
    predictions on the same held-out archs (``theirs_heldout_*``) and on all archs as published
    (``theirs_all_*``, which reproduces the paper's R), and optionally DGL's MLP re-trained here on the same
    splits with ``dgl_mlp_steps`` SGD steps (``dglmlp_heldout_*``; about 50 s per split on 2 CPU cores at
    DGL's 50000). One row per device; metrics are means over splits (``*_std`` their
    standard deviation; ``ours_R_min`` the worst split). ``devices`` defaults to every device with a
    latency file.
    """
    data = load_dgl(space, data_path, devices)
    splits = arch_splits(len(data.A), n_splits, test_frac, seed)
    per: dict[str, dict[str, list]] = {d: {} for d in data.devices}
    theirs = {d: authors_predictions(space, d, result_path) for d in data.devices}
    it = enumerate(splits)
    if progress:
        from tqdm import tqdm

        it = tqdm(it, total=len(splits), desc=f"DGL {space} splits")
    for s, (tr, te) in it:
        kinds = ["ours"] + (["dgl_mlp"] if include_dgl_mlp else [])
        for kind in kinds:
            kw = dict(model_kwargs or {}) if kind == "ours" else {"steps": dgl_mlp_steps}
            m = train_a_model(space, data.archs[tr], data.A[tr], kind=kind, seed=seed * 1000 + s, **kw)
            A_hat = m.predict_A(data.archs[te])
            tag = "ours" if kind == "ours" else "dglmlp"
            for d in data.devices:
                met = regression_metrics(data.latency[d][te], dgl_latency(A_hat, data.hardware[d]))
                for k, v in met.items():
                    per[d].setdefault(f"{tag}_heldout_{k}", []).append(v)
        for d in data.devices:
            met = regression_metrics(data.latency[d][te], theirs[d][te])
            for k, v in met.items():
                per[d].setdefault(f"theirs_heldout_{k}", []).append(v)
    rows = []
    for d in data.devices:
        row: dict[str, Any] = {"space": space, "device": d, "k": 0, "n_splits": n_splits, "test_frac": test_frac,
                               "n_heldout": len(splits[0][1]), "unit": LATENCY_UNIT,
                               "hardware": data.hardware[d].tolist()}
        for k, v in per[d].items():
            row[k] = float(np.mean(v))
            if k.endswith("_R"):
                row[k + "_std"] = float(np.std(v))
        row["ours_R_min"] = float(np.min(per[d]["ours_heldout_R"]))
        full = regression_metrics(data.latency[d], theirs[d])
        row.update({f"theirs_all_{k}": v for k, v in full.items()})
        row["published_R"] = PUBLISHED_R[space].get(d)
        row["ours_beats_published"] = bool(row["published_R"] is not None and row["ours_heldout_R"] >= row["published_R"])
        rows.append(row)
    return rows


# --- a new device from k measurements ----------------------------------------------------------------------


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
        return self.scale * np.asarray(A, np.float64) + self.offset


def fit_hw_params_from_k(A_pred, latency, *, prior_hw=None, offset: bool = False) -> DeviceFit:
    """Fit DGL's device constant of a new device from ``k`` measured latencies.

    ``A_pred``: the model's predicted A of the k measured architectures; ``latency``: their measured
    latencies (raw units). Without ``offset`` (any k >= 1) the scale is the geometric-mean ratio
    ``c = exp(mean(log latency - log A_pred))`` (robust to one bad measurement's magnitude); with
    ``offset`` (k >= 2) it is least squares ``latency = c*A + b`` with ``c > 0``. ``prior_hw`` (4 values,
    default DGL's low-end phone ``2 3 1 7.46``) gives dispatch/cache/memory_speed of the equivalent
    parameter set; its frequency is ``f = (1/d + 1/(sqrt(cache)*mem)) / c``.

    Note: a per-device constant cannot change Pearson/Spearman R of the k = 0 prediction; it fixes
    RMSE/MAE (and absolute budgets in constrained search).
    """
    a = np.asarray(A_pred, np.float64).reshape(-1)
    t = np.asarray(latency, np.float64).reshape(-1)
    require(a.size == t.size, "latency", t.size, f"{a.size} values, one per measured architecture")
    require(a.size >= (2 if offset else 1), "k", a.size, ">= 2 measurements for a fit with offset, else >= 1")
    require(bool(np.all(np.isfinite(t)) and np.all(t > 0)), "latency", t.tolist(), "finite latencies > 0")
    require(bool(np.all(np.isfinite(a)) and np.all(a > 0)), "A_pred", a.tolist(), "finite predictions > 0")
    prior = check_hardware(prior_hw if prior_hw is not None else (2.0, 3.0, 1.0, 7.46), "prior_hw")
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
