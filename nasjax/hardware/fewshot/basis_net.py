"""The learned multi-device basis of the few-shot latency model's net mode (Flax NNX).

``phi(x)`` is an MLP (GELU) of standardised architecture features with ``r`` outputs; each training device
``d`` has a head ``c_d`` with ``z_d(x) = c_d . [1, phi(x)]`` fitted to its standardised log latency
``(y_d(x) - mu_d) / s_d``: mean Huber loss over the measured ``(x, d)`` pairs, AdamW (cosine-decayed
learning rate) on random minibatches, a random ``val_frac`` of the architectures held out and the
parameters of lowest held-out loss kept.
"""

from __future__ import annotations

import functools
import math

import numpy as np


@functools.cache
def basis_net_class():
    """The NNX basis network class (defined once, so equal configs give equal graph definitions)."""
    import jax.numpy as jnp
    from flax import nnx

    class BasisNet(nnx.Module):
        """phi(x) = MLP(x) in R^r (GELU); device head: z_d(x) = c_d . [1, phi(x)]."""

        def __init__(self, n_features, n_devices, hidden, rank, rngs):
            dims = (n_features, *hidden)
            self.layers = nnx.List([nnx.Linear(a, b, rngs=rngs) for a, b in zip(dims[:-1], dims[1:])])
            self.out = nnx.Linear(dims[-1], rank, rngs=rngs)
            self.heads = nnx.Param(0.1 * nnx.initializers.normal(1.0)(rngs.params(), (n_devices, rank + 1)))

        def basis(self, x):
            h = x
            for lyr in self.layers:
                h = nnx.gelu(lyr(h))
            phi = self.out(h)
            return jnp.concatenate([jnp.ones_like(phi[:, :1]), phi], axis=1)

        def __call__(self, x):
            return self.basis(x) @ self.heads[...].T

    return BasisNet


def build_net(n_features: int, n_devices: int, cfg, seed: int):
    """A freshly initialised basis net for ``cfg`` (its ``hidden`` widths and ``rank``).

    Args:
      n_features: the input width (standardised architecture features).
      n_devices: the number of training devices (one head ``c_d`` of ``rank + 1`` weights each).
      cfg: a :class:`~nasjax.hardware.fewshot.config.FewShotConfig` (``hidden``, ``rank``).
      seed: the initialisation seed (``nnx.Rngs(seed)``).

    Returns:
      The NNX ``BasisNet`` of :func:`basis_net_class`.
    """
    from flax import nnx

    return basis_net_class()(n_features, n_devices, tuple(cfg.hidden), cfg.rank, nnx.Rngs(seed))


@functools.cache
def _trainer(graphdef, lr, steps, weight_decay, huber, batch, has_val):
    """One jitted chunk of Adam steps per (architecture, optimiser) setting, reused across models so that
    leave-one-out loops compile once (data are arguments, not closures)."""
    import jax
    import jax.numpy as jnp
    import optax
    from flax import nnx

    opt = optax.adamw(optax.cosine_decay_schedule(lr, steps, 0.05), weight_decay=weight_decay)

    def loss_fn(p, xb, zb, mb):
        pred = nnx.merge(graphdef, p)(xb)
        loss = optax.huber_loss(pred, zb, delta=huber) * mb
        return loss.sum() / jnp.maximum(mb.sum(), 1.0)

    @jax.jit
    def run(p, s, keys, data_tr, data_va):
        xtr, ztr, mtr = data_tr

        def chunk(carry, k):
            p, s = carry
            idx = jax.random.choice(k, xtr.shape[0], (batch,), replace=False)
            g = jax.grad(loss_fn)(p, xtr[idx], ztr[idx], mtr[idx])
            upd, s = opt.update(g, s, p)
            return (optax.apply_updates(p, upd), s), None

        (p, s), _ = jax.lax.scan(chunk, (p, s), keys)
        return p, s, loss_fn(p, *data_va) if has_val else jnp.float32(0)

    return run, opt


def train_net(x: np.ndarray, z: np.ndarray, cfg):
    """Fit the basis net on standardised log latency ``z [N, D]`` (NaN = unmeasured).

    Mean Huber loss over the measured ``(x, d)`` pairs, AdamW with a cosine-decayed learning rate on random
    minibatches; with more than 20 architectures a random ``cfg.val_frac`` of them is held out and the
    parameters of lowest held-out loss (checked every ``cfg.eval_every`` steps) are kept.

    Args:
      x: ``[N, F]`` standardised architecture features (float32).
      z: ``[N, D]`` standardised log latency per training device, NaN where not measured.
      cfg: the :class:`~nasjax.hardware.fewshot.config.FewShotConfig` (widths, rank, steps, batch, lr, seed...).

    Returns:
      ``(net, best held-out loss)`` (the last chunk's loss when nothing is held out).
    """
    import jax
    import jax.numpy as jnp
    from flax import nnx

    n, d = z.shape
    rng = np.random.default_rng(cfg.seed)
    perm = rng.permutation(n)
    n_val = max(1, int(round(cfg.val_frac * n))) if n > 20 else 0
    val, tr = perm[:n_val], perm[n_val:]
    net = build_net(x.shape[1], d, cfg, cfg.seed)
    graphdef, params = nnx.split(net)
    mask = np.isfinite(z)
    zf = np.where(mask, z, 0.0).astype(np.float32)
    data_tr = tuple(map(jnp.asarray, (x[tr], zf[tr], mask[tr].astype(np.float32))))
    data_va = tuple(map(jnp.asarray, (x[val], zf[val], mask[val].astype(np.float32))))
    batch = int(min(cfg.batch, len(tr)))
    every = max(1, min(cfg.eval_every, cfg.steps))
    run, opt = _trainer(graphdef, cfg.lr, cfg.steps, cfg.weight_decay, cfg.huber, batch, bool(n_val))
    state = opt.init(params)

    key = jax.random.PRNGKey(cfg.seed)
    best, best_loss = params, math.inf
    for _start in range(0, cfg.steps, every):
        key, sub = jax.random.split(key)
        params, state, vl = run(params, state, jax.random.split(sub, every), data_tr, data_va)
        vl = float(vl)
        if not n_val or vl < best_loss:
            best, best_loss = params, vl
    return nnx.merge(graphdef, best), best_loss
