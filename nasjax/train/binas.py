"""Measurements of a BINAS supernet (Nayman et al., arXiv 2110.12399) for its accuracy models: random
subnets by batched evaluation with BN recalibration, and the accuracies behind BINAS's contribution
estimator under multipath sampling.

The estimator's measurements (one option forced at a time, every other choice an independent uniform
draw per image, the supernet's running BN statistics):

* ``A_base``: accuracy with an independent uniform path per image;
* ``depth[s, d]``: the same with stage ``s``'s depth forced to choice ``d`` for every image;
* ``forced[l, c]``: layer ``l``'s configuration forced to ``c`` and the layer kept active (its stage's depth
  drawn among the depths that contain it).

Every measurement uses the same random draws (common random numbers: the draws do not depend on the
forcing), so differences between options are not drowned by path noise. The layer accuracies handed to
the estimator are ``A_base + forced[l, c] - mean_c forced[l, c]``: each option against the layer-active
baseline, so a layer's term is its effect when present (the estimator counts it only when active).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from nasjax.models.binas import binas_subnets, multipath_subnets
from nasjax.models.mobilenetv3 import ModelState, _forward
from nasjax.train.evaluate import evaluate_subnets


def _bar(total: int, desc: str, progress: bool):
    if not progress:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, dynamic_ncols=True)


def measure_archs(state: ModelState, structure: dict, archs: np.ndarray, data: Sequence, calib: Sequence, *,
                  chunk_size: int = 8, resume: str | Path | None = None, progress: bool = True) -> np.ndarray:
    """Top-1 accuracy (%) of BINAS choice vectors ``archs [N, P]`` after per-subnet BN recalibration.

    Args:
      state: the supernet; structure: ``BinasStructure.to_dict()``; data: ``(images, labels)`` batches;
      calib: calibration image batches; chunk_size: subnets per vmapped call.
      resume: an ``.npy`` file of partial results, updated after every group of chunks and resumed from.

    Returns:
      ``[N]`` accuracies (``nasjax.train.evaluate.evaluate_subnets``).
    """
    archs = np.asarray(archs)
    path = None if resume is None else Path(resume)
    acc = np.load(path) if path is not None and path.exists() else np.full(len(archs), np.nan)
    subs = binas_subnets(archs, structure)
    group = 4 * chunk_size
    bar = _bar(len(archs), "subnets", progress)
    if bar is not None:
        bar.update(int(np.sum(~np.isnan(acc))))
    for start in range(0, len(archs), group):
        idx = np.arange(start, min(start + group, len(archs)))
        if not np.isnan(acc[idx]).any():
            continue
        acc[idx] = evaluate_subnets(state, {k: v[idx] for k, v in subs.items()}, data, calib, chunk_size=chunk_size)
        if path is not None:
            np.save(path, acc)
        if bar is not None:
            bar.update(len(idx))
    if bar is not None:
        bar.close()
    return acc


@partial(jax.jit, static_argnums=(0, 1))
def _multipath_correct(graphdef, structure_key, params, stats, x, y, key, fl, fc, fs, fd):
    paths = multipath_subnets(_STRUCTURES[structure_key], key, x.shape[0], fl, fc, fs, fd)
    logits = _forward(graphdef, params, stats, paths, x, "eval")[0]
    return jnp.sum(jnp.argmax(logits, -1) == y)


_STRUCTURES: dict = {}


def _structure_key(structure: dict):
    key = repr(structure)
    _STRUCTURES.setdefault(key, structure)
    return key


def multipath_accuracy(state: ModelState, structure: dict, data: Sequence, seed: int, *, force_layer: int = -1,
                       force_config: int = 0, force_stage: int = -1, force_depth: int = 0) -> float:
    """Accuracy (%) on ``data`` with an independent uniform path per image (batch ``b`` draws from
    ``fold_in(key(seed), b)``), optionally one option forced (see :func:`multipath_subnets`)."""
    sk = _structure_key(structure)
    correct, count = 0, 0
    for b, (x, y) in enumerate(data):
        key = jax.random.fold_in(jax.random.key(seed), b)
        correct += int(_multipath_correct(state.graphdef, sk, state.params, state.batch_stats, x, y, key,
                                          force_layer, force_config, force_stage, force_depth))
        count += int(y.shape[0])
    return 100.0 * correct / count


def contribution_accuracies(state: ModelState, structure: dict, data: Sequence, seed: int, *,
                            resume: str | Path | None = None, progress: bool = True) -> dict:
    """BINAS's estimator measurements (module docstring).

    Returns:
      ``{"base": A_base, "layers": [L, K] accuracies for the estimator, "depths": [S, D],
      "forced": [L, K] raw layer-forced accuracies}`` (%).
    """
    D = max(structure["stages"][0]["depths"])
    S, nd, K = len(structure["stages"]), len(structure["stages"][0]["depths"]), len(structure["configs"])
    L = S * D
    path = None if resume is None else Path(resume)
    if path is not None and path.exists():
        z = np.load(path)
        base, forced, depths = float(z["base"]), z["forced"], z["depths"]
    else:
        base, forced, depths = np.nan, np.full((L, K), np.nan), np.full((S, nd), np.nan)

    def save():
        if path is not None:
            np.savez(path, base=base, forced=forced, depths=depths)

    bar = _bar(1 + S * nd + L * K, "contributions", progress)
    if np.isnan(base):
        base = multipath_accuracy(state, structure, data, seed)
        save()
    jobs = [("d", s, d) for s in range(S) for d in range(nd)] + [("l", lay, c) for lay in range(L) for c in range(K)]
    if bar is not None:
        bar.update(1)
    for kind, a, b in jobs:
        table = depths if kind == "d" else forced
        if np.isnan(table[a, b]):
            kw = {"force_stage": a, "force_depth": b} if kind == "d" else {"force_layer": a, "force_config": b}
            table[a, b] = multipath_accuracy(state, structure, data, seed, **kw)
            save()
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return {"base": base, "layers": base + forced - forced.mean(axis=1, keepdims=True), "depths": depths,
            "forced": forced}


__all__ = ["measure_archs", "multipath_accuracy", "contribution_accuracies"]
