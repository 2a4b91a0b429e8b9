"""DGL's data as its model of A uses it (Wang & Zhang, IEEE TMC 2023): corrupt rows of ``a.txt``, splits.

Rows 120 and 375 of the NAS-Bench-201 ``a.txt`` are corrupt (8.7x and 0.1x off). :func:`detect_corrupt_rows`
finds such rows from ``a.txt`` alone (no device latency is used, so k = 0 stays k = 0): an iteratively
refitted ridge regression of ``log A`` on the features flags rows whose residual exceeds ``z`` robust
standard deviations (``sigma = 1.4826 * MAD``); flagged rows get weight 0 in training. On the shipped data
it flags exactly rows 120 and 375 of NAS-Bench-201, and row 174 of FBNetV3.

The files are read by :mod:`nasjax.benchmarks.dgl`; :func:`load_dgl` adds the corrupt-row mask.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from nasjax.benchmarks.dgl import DGLData, load_hardware, load_latency, read_dgl
from nasjax.errors import require
from nasjax.hardware.dgl.features import features
from nasjax.hardware.dgl.formula import device_constant


def load_dgl(space: str, data_path=None, devices: Sequence[str] | None = None) -> DGLData:
    """DGL's data of ``space`` with ``corrupt`` filled by :func:`detect_corrupt_rows` on ``a.txt``.

    Args:
      space: ``nasbench201`` or ``fbnetv3``.
      data_path: the space folder (default the shared data's ``DGL/data/<space>``).
      devices: devices whose hardware and latency files to read; default every device with a latency file.

    Returns:
      The :class:`~nasjax.benchmarks.dgl.DGLData` (see :func:`nasjax.benchmarks.dgl.read_dgl`), ``corrupt``
      a bool ``[N]`` mask.

    Raises:
      NasjaxInputError: when a file is missing or invalid (see :func:`~nasjax.benchmarks.dgl.read_dgl`).
    """
    data = read_dgl(space, data_path, devices)
    return replace(data, corrupt=detect_corrupt_rows(features(space, data.archs), data.A))


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
    residuals of a ridge fit (penalty ``alpha`` on standardised features) of ``log A`` on ``X`` refitted
    without the flagged rows (``iters`` rounds). Uses nothing but the architectures and ``a.txt``.

    Args:
      X: ``[N, F]`` features (:func:`~nasjax.hardware.dgl.features.features`).
      A: ``[N]`` values of ``a.txt`` (> 0).
    Returns:
      ``bool [N]``, True for flagged rows.
    """
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


def arch_splits(n: int, n_splits: int, test_frac: float = 0.2, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """``n_splits`` random (train, test) index splits of ``n`` architectures, ``test_frac`` held out.

    Each split holds out ``max(1, round(n * test_frac))`` rows; each is an independent permutation drawn from
    one seeded stream.

    Args:
      n: the number of architectures.
      n_splits: how many splits, >= 1.
      test_frac: the held-out fraction, in (0, 1).
      seed: the seed of the stream.

    Returns:
      ``n_splits`` pairs ``(train, test)`` of sorted int64 index arrays.

    Raises:
      NasjaxInputError: when ``n_splits < 1`` or ``test_frac`` is outside (0, 1).
    """
    require(n_splits >= 1, "n_splits", n_splits, "an integer >= 1")
    require(0.0 < test_frac < 1.0, "test_frac", test_frac, "a fraction in (0, 1)")
    rng = np.random.default_rng(seed)
    n_test = max(1, int(round(n * test_frac)))
    out = []
    for _ in range(n_splits):
        perm = rng.permutation(n)
        out.append((np.sort(perm[n_test:]), np.sort(perm[:n_test])))
    return out


def a_from_devices(data_path, devices: Sequence[str], n: int) -> np.ndarray:
    """A training target from measured devices, the formula inverted on each and averaged.

    A = 1 / |D| * sum_{d in D} latency_d / c(hw_d)

    Args:
      data_path: the DGL space folder holding the devices' hardware and latency files.
      devices: the measured devices ``D``, at least one.
      n: the number of architectures in ``net.txt``.

    Returns:
      float64 ``[n]`` in A's (raw) unit.

    Raises:
      NasjaxInputError: when ``devices`` is empty or a device's file is missing or invalid.
    """
    require(len(devices) >= 1, "train_devices", list(devices), "at least one device")
    root = Path(data_path)
    targets = [load_latency(root, d, n) / device_constant(load_hardware(root, d), d) for d in devices]
    return np.mean(targets, axis=0)
