"""Batched subnet evaluation with per-subnet BatchNorm recalibration (OFA, Cai et al., ICLR 2020; WeakNAS,
NeurIPS 2021; block profiling, CIKM 2021: every subnet's BN statistics are re-estimated on a few training
batches before its accuracy is measured).

Recalibration follows OFA's ``set_running_statistics``: for each BN layer of subnet ``a``, with
calibration batches ``X_1..X_B`` of sizes ``n_b``, normalising with each batch's own statistics,

    mean_a = sum_b n_b * mu_b(a) / sum_b n_b,      var_a = sum_b n_b * sigma2_b(a) / sum_b n_b,

where ``mu_b``, ``sigma2_b`` are the per-channel batch mean and *biased* variance. Inactive layers and
channels keep the supernet's statistics (they do not affect the subnet's output).

Accuracy (unit ``%``) is ``100 * mean_i [argmax_c logits_a(x_i)_c == y_i]`` with the recalibrated
statistics. Subnets are processed in chunks of ``chunk_size`` stacked subnets: one ``jax.vmap``-ed,
jit-compiled program per chunk shape serves every chunk (the last is padded by repeating a subnet).
With a ``jax.sharding.Mesh``, the subnet axis (``shard="subnets"``) or the image batch
(``shard="data"``) is split over the mesh's devices; parameters are replicated.

``evaluate_subnets_loop`` is the single-subnet variant (one jitted non-batched call per subnet and
batch) for comparison; it computes the same numbers.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh

from nasjax.errors import NasjaxInputError, require
from nasjax.models.mobilenetv3 import (
    ModelState,
    OFAMobileNetV3,
    _forward,
    calib_stats,
    index_subnets,
    num_subnets,
    split_model,
)
from nasjax.train.mesh import device_mesh, mesh_size, replicate, shard_batch


def _as_state(model_state) -> ModelState:
    if isinstance(model_state, OFAMobileNetV3):
        return split_model(model_state)
    require(isinstance(model_state, ModelState), "model_state", type(model_state).__name__,
            "a ModelState (nasjax.models.split_model) or an OFAMobileNetV3")
    return model_state


def _images(batch) -> jax.Array:
    x = batch[0] if isinstance(batch, (tuple, list)) else batch
    x = jnp.asarray(x, jnp.float32)
    require(x.ndim == 4, "batch images", tuple(x.shape), "an NHWC array [N, H, W, C]")
    require(bool(jnp.all(jnp.isfinite(x))), "batch images", "non-finite values", "finite pixel values")
    return x


def _labelled(batch) -> tuple[jax.Array, jax.Array]:
    require(isinstance(batch, (tuple, list)) and len(batch) == 2, "data batch", type(batch).__name__,
            "an (images [N,H,W,C], labels [N]) pair")
    x, y = _images(batch), jnp.asarray(batch[1], jnp.int32)
    require(y.shape == (x.shape[0],), "data labels", tuple(y.shape), f"shape ({x.shape[0]},)")
    return x, y


@partial(jax.jit, static_argnums=(0,))
def _calib_chunk(graphdef, params, batch_stats, subnets, x):
    f = lambda p, st, sn: _forward(graphdef, p, st, sn, x, "calib")[1]  # noqa: E731
    return jax.vmap(f, in_axes=(None, None, 0))(params, batch_stats, subnets)


@partial(jax.jit, static_argnums=(0,))
def _correct_chunk(graphdef, params, stats, subnets, x, y):
    f = lambda p, st, sn: _forward(graphdef, p, st, sn, x, "eval")[0]  # noqa: E731
    logits = jax.vmap(f, in_axes=(None, 0, 0))(params, stats, subnets)
    return jnp.sum(jnp.argmax(logits, -1) == y[None, :], axis=1)


@partial(jax.jit, static_argnums=(0,))
def _correct_one(graphdef, params, stats, subnet, x, y):
    return jnp.sum(jnp.argmax(_forward(graphdef, params, stats, subnet, x, "eval")[0], -1) == y)


def _chunks(subnets: dict, chunk_size: int):
    """Yield ``(chunk, n_real)``: fixed-size chunks, the last padded by repeating its final subnet."""
    n = num_subnets(subnets)
    for start in range(0, n, chunk_size):
        idx = np.arange(start, start + chunk_size)
        real = int(min(chunk_size, n - start))
        yield index_subnets(subnets, np.minimum(idx, n - 1)), real


class _Placement:
    """Device placement of a chunk: nothing, or subnets / images split over a mesh (``nasjax.train.mesh``)."""

    def __init__(self, mesh: Mesh | None, shard: str, chunk_size: int):
        require(shard in ("subnets", "data"), "shard", shard, "'subnets' or 'data'")
        self.mesh, self.shard = mesh, shard
        self.chunk_size = chunk_size
        if mesh is not None:
            require(isinstance(mesh, Mesh) and len(mesh.axis_names) >= 1, "mesh", mesh, "a jax.sharding.Mesh")
            if shard == "subnets":  # chunk must split evenly over the devices
                n_dev = mesh_size(mesh)
                self.chunk_size = -(-chunk_size // n_dev) * n_dev

    def params(self, tree):
        return replicate(tree, self.mesh)

    def subnets(self, tree):
        return shard_batch(tree, self.mesh, "chunk_size") if self.shard == "subnets" else replicate(tree, self.mesh)

    def images(self, x):
        if self.shard == "data":
            return shard_batch(x, self.mesh, "batch size (shard='data')")
        return replicate(x, self.mesh)


def _recalibrate_chunk(state: ModelState, params, chunk, calib, place: _Placement):
    total, acc = 0, None
    for batch in calib:
        x = place.images(_images(batch))
        stats = _calib_chunk(state.graphdef, params, state.batch_stats, chunk, x)
        w = x.shape[0]
        acc = jax.tree.map(lambda s, w=w: w * s, stats) if acc is None else \
            jax.tree.map(lambda a, s, w=w: a + w * s, acc, stats)
        total += w
    require(total > 0, "calib_batches", "empty", "at least one calibration batch")
    return jax.tree.map(lambda a: a / total, acc)


def _check_subnets(subnets) -> int:
    require(isinstance(subnets, dict) and {"ks", "e", "d"} <= set(subnets), "subnets", type(subnets).__name__,
            "stacked subnet arrays {ks[N,L], e[N,L], d[N,5]}")
    require(np.asarray(subnets["d"]).ndim == 2, "subnets.d", np.asarray(subnets["d"]).shape,
            "a stacked [N, 5] array (use stack_subnets / subnet_arrays for a list)")
    return num_subnets(subnets)


def recalibrate_bn(model_state, subnets: dict, calib_batches: Iterable, *, chunk_size: int = 8,
                   mesh: Mesh | None = None, shard: str = "subnets"):
    """Per-subnet recalibrated BN statistics: a ``batch_stats`` state whose leaves have a leading ``N`` axis.

    ``calib_batches``: a re-iterable of image arrays ``[B, H, W, C]`` or ``(images, labels)`` pairs.
    """
    state = _as_state(model_state)
    _check_subnets(subnets)
    calib = list(calib_batches)
    place = _Placement(mesh, shard, chunk_size)
    params = place.params(state.params)
    parts = []
    for chunk, real in _chunks(subnets, place.chunk_size):
        st = _recalibrate_chunk(state, params, place.subnets(chunk), calib, place)
        parts.append(jax.tree.map(lambda a, real=real: a[:real], st))
    out = jax.tree.map(lambda *a: jnp.concatenate(a), *parts)
    return out


def evaluate_subnets(model_state, subnets: dict, data: Iterable, calib_batches: Iterable | None, *,
                     chunk_size: int = 8, mesh: Mesh | None = None, shard: str = "subnets") -> np.ndarray:
    """Top-1 accuracy (%) ``[N]`` of stacked ``subnets`` on ``data`` (re-iterable of ``(images, labels)``),
    after per-subnet BN recalibration on ``calib_batches`` (``None``: the supernet's own statistics)."""
    state = _as_state(model_state)
    n = _check_subnets(subnets)
    require(isinstance(chunk_size, int) and chunk_size >= 1, "chunk_size", chunk_size, "a positive integer")
    data = [_labelled(b) for b in data]
    require(len(data) > 0, "data", "empty", "at least one (images, labels) batch")
    calib = None if calib_batches is None else list(calib_batches)
    place = _Placement(mesh, shard, chunk_size)
    params = place.params(state.params)
    data = [(place.images(x), place.params(y)) for x, y in data]
    count = sum(int(y.shape[0]) for _, y in data)
    acc = np.zeros(n, np.float64)
    pos = 0
    for chunk, real in _chunks(subnets, place.chunk_size):
        chunk = place.subnets(chunk)
        if calib is None:
            stats = jax.tree.map(lambda s: jnp.broadcast_to(s, (place.chunk_size,) + s.shape), state.batch_stats)
        else:
            stats = _recalibrate_chunk(state, params, chunk, calib, place)
        correct = sum(_correct_chunk(state.graphdef, params, stats, chunk, x, y) for x, y in data)
        acc[pos:pos + real] = 100.0 * np.asarray(correct[:real], np.float64) / count
        pos += real
    return acc


def recalibrate_one(model_state, subnet: dict, calib_batches: Iterable):
    """Recalibrated BN statistics of one (unstacked) subnet, by the non-batched program."""
    state = _as_state(model_state)
    total, acc = 0, None
    for batch in calib_batches:
        x = _images(batch)
        st = calib_stats(state.graphdef, state.params, state.batch_stats, subnet, x)
        w = x.shape[0]
        acc = jax.tree.map(lambda s, w=w: w * s, st) if acc is None else \
            jax.tree.map(lambda a, s, w=w: a + w * s, acc, st)
        total += w
    if total == 0:
        raise NasjaxInputError("calib_batches: got no batch, expected at least one calibration batch")
    return jax.tree.map(lambda a: a / total, acc)


def evaluate_subnets_loop(model_state, subnets: dict, data: Iterable, calib_batches: Iterable | None) -> np.ndarray:
    """Same as :func:`evaluate_subnets`, one subnet at a time (single-subnet jitted programs)."""
    state = _as_state(model_state)
    n = _check_subnets(subnets)
    data = [_labelled(b) for b in data]
    calib = None if calib_batches is None else list(calib_batches)
    count = sum(int(y.shape[0]) for _, y in data)
    acc = np.zeros(n, np.float64)
    for i in range(n):
        sn = index_subnets(subnets, i)
        stats = state.batch_stats if calib is None else recalibrate_one(state, sn, calib)
        correct = sum(int(_correct_one(state.graphdef, state.params, stats, sn, x, y)) for x, y in data)
        acc[i] = 100.0 * correct / count
    return acc


__all__ = ["device_mesh", "recalibrate_bn", "evaluate_subnets", "evaluate_subnets_loop", "recalibrate_one"]
