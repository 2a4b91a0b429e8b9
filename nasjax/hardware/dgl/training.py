"""Training the models of DGL's network parameter A (Wang & Zhang, IEEE TMC 2023), optax full-batch loops.

* kind ``"ours"`` (:class:`~nasjax.hardware.dgl.config.AModelConfig`): features standardised on the training
  rows, target ``A / 100`` or ``log A`` standardised, loss

      L = sum_i w_i huber_delta(y_hat_i - y_i) / sum_i w_i + l2 * ||weights||^2 / sum_i w_i

  (biases unpenalised: with ``members = 0`` the fit is a ridge regression on the features), AdamW. Rows of
  ``exclude`` or flagged by :func:`~nasjax.hardware.dgl.data.detect_corrupt_rows` (on the training rows only)
  get ``w_i = 0``; each ensemble member is fitted on its own Poisson(1) bootstrap weights.
* kind ``"dgl_mlp"`` (:class:`~nasjax.hardware.dgl.config.DGLMLPConfig`): DGL's recipe, SGD on
  ``mean SmoothL1(y_hat - A/100)`` over the two trained layers; the frozen trunk is computed once. DGL
  neither detects nor drops corrupt rows, and neither does this reproduction.

The whole loop runs inside one ``jax.lax.scan`` (traced once per model structure and hyper-parameters).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache

import numpy as np

from nasjax.benchmarks.dgl import A_SCALE, check_space
from nasjax.errors import NasjaxInputError, require
from nasjax.hardware.dgl.config import AModelConfig, DGLMLPConfig, default_config
from nasjax.hardware.dgl.data import detect_corrupt_rows
from nasjax.hardware.dgl.features import dgl_codes, features
from nasjax.hardware.dgl.model import DGLLatencyModel
from nasjax.hardware.dgl.modules import build_module
from nasjax.spaces.base import get_space


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
            loss = optax.huber_loss(outs, y[None, :], delta=delta)  # [M, N]
            return jnp.sum(loss * wm) / jnp.sum(wm) + penalty / n_eff
        loss = optax.huber_loss(m(X), y, delta=delta)
        return jnp.sum(loss * wl) / n_eff + penalty / n_eff

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


def _fit(module, X, y, w_members, w_lin, config: AModelConfig):
    """Train ``AModel`` ``module`` in place: the weighted Huber loss (each ensemble member with its own
    bootstrap weights ``w_members[m]``) plus ``l2 * ||weights||^2 / n``; returns the losses."""
    import jax.numpy as jnp
    from flax import nnx

    graphdef, params, rest = nnx.split(module, nnx.Param, ...)
    run = _trainer(graphdef, int(config.steps), float(config.lr), float(config.weight_decay), float(config.delta),
                   float(config.l2))
    f32 = lambda a: jnp.asarray(a, jnp.float32)
    params, losses = run(params, rest, f32(X), f32(y), f32(w_members), f32(w_lin))
    nnx.update(module, params)
    return np.asarray(losses)


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


def train_a_model(space: str, archs, A, config: AModelConfig | DGLMLPConfig | None = None, *, seed: int = 0,
                  exclude: np.ndarray | None = None, info: Mapping | None = None) -> DGLLatencyModel:
    """Train a predictor of A on ``(archs, A)`` (raw units).

    Args:
      space: ``nasbench201`` or ``fbnetv3``.
      archs: ``[N, P]`` choice indices.
      A: ``[N]`` targets (raw ``a.txt`` units, > 0).
      config: an :class:`AModelConfig` (kind ``"ours"``, default the space's recipe
        :func:`~nasjax.hardware.dgl.config.default_config`) or a :class:`DGLMLPConfig`.
      seed: initialisation and bootstrap seed.
      exclude: ``bool [N]`` rows to give weight 0 (kind ``"ours"``).
      info: provenance stored in the model file (training rows, data path...).
    Returns:
      A :class:`~nasjax.hardware.dgl.model.DGLLatencyModel`; a fit that diverges (non-finite weights) is an
      error.
    """
    check_space(space)
    config = default_config(space) if config is None else config
    if not isinstance(config, (AModelConfig, DGLMLPConfig)):
        raise NasjaxInputError(f"config: got {type(config).__name__}, expected AModelConfig or DGLMLPConfig")
    archs = np.atleast_2d(get_space(space).validate(archs, "archs"))
    A = np.asarray(A, np.float64).reshape(-1)
    require(A.shape[0] == archs.shape[0], "A", A.shape, f"({archs.shape[0]},) one value per architecture")
    require(bool(np.all(np.isfinite(A)) and np.all(A > 0)), "A", "non-finite or non-positive values", "A > 0")
    require(bool(np.isfinite(A.sum())), "A", "values whose sum overflows", "finite sums")
    rng = np.random.default_rng(seed)
    if isinstance(config, AModelConfig):
        X = features(space, archs)
        bad = np.zeros(len(A), bool) if exclude is None else np.asarray(exclude, bool).copy()
        require(bad.shape == A.shape, "exclude", bad.shape, f"{A.shape} one flag per architecture")
        if config.detect_corrupt:
            bad |= detect_corrupt_rows(X, A)
        w = (~bad).astype(np.float64)
        require(w.sum() >= 2, "A", f"{int(w.sum())} usable rows", ">= 2 rows not excluded or flagged corrupt")
        mu = (w[:, None] * X).sum(0) / w.sum()
        sd = np.sqrt((w[:, None] * (X - mu) ** 2).sum(0) / w.sum())
        sd = np.where(sd > 1e-9, sd, 1.0)
        y = np.log(A) if config.target == "log" else A / A_SCALE
        ym = float((w * y).sum() / w.sum())
        ys = float(np.sqrt((w * (y - ym) ** 2).sum() / w.sum()))
        require(ys > 0, "A", "a constant target", "targets that vary across the training rows")
        module = build_module(config, X.shape[1], seed)
        wm = rng.poisson(1.0, size=(max(config.members, 1), len(A))).astype(np.float64) * w[None, :]
        _fit(module, (X - mu) / sd, (y - ym) / ys, wm, w, config)
        meta = {"corrupt_rows_dropped": np.flatnonzero(bad).tolist()}
    else:
        X = dgl_codes(space, archs)
        mu, sd = X.mean(0), np.ones(X.shape[1])
        ym, ys = 0.0, 1.0
        module = build_module(config, X.shape[1], seed)
        _fit_dgl_head(module, X - mu, A / A_SCALE, steps=config.steps, lr=config.lr)
        meta = {"corrupt_rows_dropped": []}
    meta.update({"n_train": len(A)})
    meta.update(dict(info or {}))
    model = DGLLatencyModel(space, config, module, mu, sd, ym, ys, seed, meta)
    model.check_weights(f"training the {config.kind!r} model (try a smaller lr)")
    return model
