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

from nasjax.data.datasets import Split
from nasjax.errors import require
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
      resume: an ``.npy`` file of partial results, updated after every group of chunks and resumed from;
        a file of fewer results is taken as those of the first subnets (more subnets drawn from the same
        stream extend a finished measurement).

    Returns:
      ``[N]`` accuracies (``nasjax.train.evaluate.evaluate_subnets``).
    """
    archs = np.asarray(archs)
    path = None if resume is None else Path(resume)
    acc = np.full(len(archs), np.nan)
    if path is not None and path.exists():
        done = np.load(path)
        require(done.ndim == 1 and len(done) <= len(archs), f"resume file {str(path)!r}", done.shape,
                f"at most {len(archs)} results (the subnets measured so far)")
        acc[:len(done)] = done
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


def validation_batches(split: Split, images: int, *, offset: int = 0, batch_size: int = 500) -> list:
    """The measurement's validation batches: images ``offset .. offset + images`` of ``split`` as device arrays
    (every subnet is measured on the same images)."""
    require(isinstance(images, (int, np.integer)) and images >= 1, "val_images", images, "an integer >= 1")
    require(offset + images <= len(split), "val_images", f"{offset} + {images}",
            f"at most the validation split's {len(split)} images")
    idx = np.arange(offset, offset + images)
    return [tuple(jnp.asarray(a) for a in split.get(idx[i:i + batch_size])) for i in range(0, images, batch_size)]


def calibration_batches(split: Split, images: int, seed: int, *, batch_size: int = 256) -> list:
    """One fixed BN calibration batch shared by every subnet (common random numbers): ``images`` training
    images drawn without replacement by ``seed``, as device arrays of at most ``batch_size`` images."""
    require(isinstance(images, (int, np.integer)) and 1 <= images <= len(split), "calib_images", images,
            f"an integer in 1..{len(split)}")
    idx = np.random.default_rng(seed).permutation(len(split))[:images]
    return [jnp.asarray(split.get(idx[i:i + batch_size])[0]) for i in range(0, images, batch_size)]


def kendall_ceiling(noise_var: float, population_var: float) -> dict:
    """What measurement noise of variance ``noise_var`` allows against measured values of variance
    ``population_var``: the reliability ``r = 1 - noise_var / population_var``, a noiseless predictor's
    Pearson correlation with the measured values ``sqrt(r)`` and its Kendall tau ``2/pi arcsin(sqrt(r))``
    (bivariate normal)."""
    r = float(np.clip(1.0 - noise_var / population_var, 0.0, 1.0))
    return {"reliability": r, "pearson": float(np.sqrt(r)), "kendall": float(2.0 / np.pi * np.arcsin(np.sqrt(r)))}


def repeat_noise(base, other_calib, other_images, val_images: int, population=None) -> dict:
    """Decomposition of a subnet measurement's repeat noise from three measurements of the same subnets:
    ``base``, ``other_calib`` (another BN calibration draw, the same validation images) and ``other_images``
    (the same calibration, another validation sample of the same size). Each difference's mean is the
    shift common to every subnet (it changes no ranking); what varies from subnet to subnet is the noise,
    ``sigma^2 = var(difference) / 2`` for each source, the two adding up to the repeat noise.
    ``population`` (measured accuracies of the held-out subnets): also the ceiling it sets
    (:func:`kendall_ceiling`) for the repeat noise and for the calibration noise alone. Accuracies in %.
    """
    a, b, c = (np.asarray(v, np.float64) for v in (base, other_calib, other_images))
    require(a.ndim == 1 and a.shape == b.shape == c.shape and a.size >= 3, "repeat measurements",
            f"{a.shape}, {b.shape}, {c.shape}", "three [N] arrays of the same N >= 3")
    d_bn, d_img = b - a, c - a
    var_bn, var_img = float(np.var(d_bn, ddof=1) / 2), float(np.var(d_img, ddof=1) / 2)
    p = float(np.mean(a)) / 100.0
    out = {"subnets": int(a.size), "val_images": int(val_images),
           "calib_sd": float(np.sqrt(var_bn)), "calib_shift": float(np.mean(d_bn)),
           "images_sd": float(np.sqrt(var_img)), "images_shift": float(np.mean(d_img)),
           "repeat_sd": float(np.sqrt(var_bn + var_img)),
           "binomial_sd": float(100.0 * np.sqrt(p * (1 - p) / val_images)),
           "calib_max_abs": float(np.max(np.abs(d_bn - np.mean(d_bn)))),
           "images_max_abs": float(np.max(np.abs(d_img - np.mean(d_img))))}
    if population is not None:
        pop = np.asarray(population, np.float64)
        pv = float(np.var(pop, ddof=1))
        out.update({"population_sd": float(np.sqrt(pv)), "population_span": float(np.ptp(pop)),
                    "ceiling": kendall_ceiling(var_bn + var_img, pv),
                    "ceiling_calib_only": kendall_ceiling(var_bn, pv)})
    return out


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


__all__ = ["measure_archs", "multipath_accuracy", "contribution_accuracies", "validation_batches",
           "calibration_batches", "repeat_noise", "kendall_ceiling"]
