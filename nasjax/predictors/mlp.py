"""MLP-ensemble accuracy predictor (Flax NNX + optax), the weak predictor of WeakNAS (Wu et al., NeurIPS 2021).

A member is a ReLU multi-layer perceptron on the one-hot architecture encoding ``x in {0,1}^D``
(``D = positions x choices``):

    h_0 = x,   h_l = relu(W_l h_{l-1} + b_l)  (l = 1..L),   f(x) = w_o . h_L + b_o.

It is fit by full-batch Adam (optax) on the weighted squared error with decoupled weight decay
``lambda`` (AdamW), ``T`` steps from a fresh initialisation:

    L(theta) = sum_n w_n (f(x_n) - y_n)^2 / (2 sum_n w_n),

where ``w_n in {0,1}`` masks padding: a sample set of any size ``n <= N`` is padded to a fixed
``N`` so that every call has the same shapes (one compilation). An ensemble of ``E`` members differs
only in its initialisation key; its prediction is the mean ``mu(x) = (1/E) sum_e f_e(x)`` and the spread
``sigma(x) = sqrt((1/E) sum_e (f_e(x) - mu(x))^2)`` (used by the EI acquisition).

Everything is vectorised with ``jax.vmap`` over a leading ``[S, E]`` grid: ``S`` independent problems
(the independent seeds of a whole search, each with its own sample set) times ``E`` members, trained in
ONE compiled program (:func:`fit`), and all ``M`` cells of a space predicted in one batched call
(:func:`predict`). ``vmap`` only batches: member ``(s, e)`` trained inside the grid equals the same
member trained alone (tested).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from nasjax.errors import NasjaxInputError, require
from nasjax.predictors.mlp_config import MLPConfig

__all__ = ["MLP", "MLPConfig", "MLPEnsemble", "get_ensemble"]


class MLP(nnx.Module):
    """ReLU MLP ``R^D -> R`` (hidden sizes ``hidden``).

    Args:
      in_dim: the input width ``D``.
      hidden: the hidden layer widths.
      rngs: the NNX random streams of the initialisation.
    """

    def __init__(self, in_dim: int, hidden: tuple[int, ...], *, rngs: nnx.Rngs):
        dims = (in_dim, *hidden)
        self.layers = nnx.List([nnx.Linear(a, b, rngs=rngs) for a, b in zip(dims[:-1], dims[1:])])
        self.out = nnx.Linear(dims[-1], 1, rngs=rngs)

    def __call__(self, x: jax.Array) -> jax.Array:
        for layer in self.layers:
            x = nnx.relu(layer(x))
        return self.out(x)[..., 0]


class MLPEnsemble:
    """``S x E`` MLPs on ``D``-dim inputs; parameters are one pytree with leading axes ``[S, E]``.

    Methods are jitted once per input shape; keep ``N`` (padded sample count) and ``S`` on a few
    fixed sizes to keep the compilation count small.

    Args:
      in_dim: the input width ``D``, >= 1.
      config: the :class:`~nasjax.predictors.mlp_config.MLPConfig` (widths, steps, AdamW settings, members).

    Raises:
      NasjaxInputError: when ``in_dim < 1``.
    """

    def __init__(self, in_dim: int, config: MLPConfig = MLPConfig()):
        require(int(in_dim) >= 1, "in_dim", in_dim, "a positive input width")
        self.in_dim = int(in_dim)
        self.config = config
        self.graphdef, _ = nnx.split(MLP(self.in_dim, tuple(config.hidden), rngs=nnx.Rngs(0)))
        self.tx = optax.adamw(config.lr, weight_decay=config.weight_decay)
        self._fit = jax.jit(self._fit_grid)
        self._predict = jax.jit(self._predict_grid)

    # ---- one member (pure functions) --------------------------------------------------------
    def init_one(self, key: jax.Array):
        """Parameters of one freshly initialised member (``nnx.State`` of its ``Param``s).

        Args:
          key: the member's PRNG key.

        Returns:
          The member's parameter state.
        """
        model = MLP(self.in_dim, tuple(self.config.hidden), rngs=nnx.Rngs(params=key))
        return nnx.state(model, nnx.Param)

    def apply_one(self, params, x: jax.Array) -> jax.Array:
        """One member's prediction ``f(x)``.

        Args:
          params: the member's parameter state (:meth:`init_one` / :meth:`fit_one`).
          x: inputs ``[..., D]``.

        Returns:
          Predictions ``[...]``.
        """
        return nnx.merge(self.graphdef, params)(x)

    def fit_one(self, key: jax.Array, x: jax.Array, y: jax.Array, w: jax.Array):
        """Initialise from ``key`` and run ``iters`` AdamW steps on ``(x [N,D], y [N], w [N])``.

        L(theta) = sum_n w_n (f(x_n) - y_n)^2 / (2 max(sum_n w_n, 1))

        Args:
          key: the member's PRNG key.
          x: inputs ``[N, D]``.
          y: targets ``[N]``.
          w: 0/1 weights ``[N]`` (padding = 0).

        Returns:
          The fitted member's parameter state.
        """
        params = self.init_one(key)
        opt_state = self.tx.init(params)
        denom = jnp.maximum(jnp.sum(w), 1.0)

        def loss_fn(p):
            r = self.apply_one(p, x) - y
            return 0.5 * jnp.sum(w * r * r) / denom

        def step(carry, _):
            p, s = carry
            g = jax.grad(loss_fn)(p)
            upd, s = self.tx.update(g, s, p)
            return (optax.apply_updates(p, upd), s), None

        (params, _), _ = jax.lax.scan(step, (params, opt_state), None, length=int(self.config.iters))
        return params

    # ---- the [S, E] grid --------------------------------------------------------------------
    def _fit_grid(self, keys, x, y, w):
        per_member = jax.vmap(self.fit_one, in_axes=(0, None, None, None))  # over E
        return jax.vmap(per_member, in_axes=(0, 0, 0, 0))(keys, x, y, w)  # over S

    def _predict_grid(self, params, x_all):
        per_member = jax.vmap(self.apply_one, in_axes=(0, None))
        f = jax.vmap(per_member, in_axes=(0, None))(params, x_all)  # [S, E, M]
        mu = jnp.mean(f, axis=1)
        sigma = jnp.sqrt(jnp.mean((f - mu[:, None]) ** 2, axis=1))
        return mu, sigma

    def member_keys(self, seed_keys: jax.Array) -> jax.Array:
        """``[S]`` keys -> ``[S, E]`` member keys (member ``e`` gets ``fold_in(key_s, e)``).

        Args:
          seed_keys: ``[S]`` PRNG keys, one per independent problem.

        Returns:
          ``[S, E]`` PRNG keys.
        """
        e = jnp.arange(self.config.members)
        return jax.vmap(lambda k: jax.vmap(lambda i: jax.random.fold_in(k, i))(e))(seed_keys)

    def fit(self, keys: jax.Array, x, y, w):
        """Fit all ``S x E`` members in one compiled call.

        Args:
          keys: ``[S, E]`` PRNG keys (see :meth:`member_keys`).
          x: ``[S, N, D]`` inputs.
          y: ``[S, N]`` targets.
          w: ``[S, N]`` 0/1 weights (padding = 0).

        Returns:
          Parameters with leading axes ``[S, E]``.

        Raises:
          NasjaxInputError: when the shapes disagree with each other, the input width or the member count, or a
            target is not finite.
        """
        x = jnp.asarray(x, jnp.float32)
        y = jnp.asarray(y, jnp.float32)
        w = jnp.asarray(w, jnp.float32)
        S, N = y.shape
        if x.shape != (S, N, self.in_dim) or w.shape != (S, N) or keys.shape[:2] != (S, self.config.members):
            raise NasjaxInputError(
                f"MLPEnsemble.fit: shapes x{tuple(x.shape)} y{tuple(y.shape)} w{tuple(w.shape)} keys"
                f"{tuple(keys.shape)}, expected x[S,N,{self.in_dim}], y[S,N], w[S,N], keys[S,{self.config.members}]"
            )
        if not (np.isfinite(np.asarray(y)).all()):
            raise NasjaxInputError("MLPEnsemble.fit: y contains NaN/inf, expected finite targets")
        return self._fit(keys, x, y, w)

    def predict(self, params, x_all) -> tuple[jax.Array, jax.Array]:
        """Mean and spread ``([S, M], [S, M])`` over the ensemble of every row of ``x_all [M, D]``.

        mu(x) = 1/E sum_e f_e(x),  sigma(x) = sqrt(1/E sum_e (f_e(x) - mu(x))^2)

        Args:
          params: parameters with leading axes ``[S, E]`` (:meth:`fit`).
          x_all: ``[M, D]`` inputs, shared by all ``S`` problems.

        Returns:
          ``(mu [S, M], sigma [S, M])`` as JAX arrays.
        """
        return self._predict(params, jnp.asarray(x_all, jnp.float32))

    def fit_predict(self, keys, x, y, w, x_all):
        """Fit all members (:meth:`fit`) and predict every row of ``x_all`` (:meth:`predict`).

        Args:
          keys: ``[S, E]`` PRNG keys.
          x: ``[S, N, D]`` inputs.
          y: ``[S, N]`` targets.
          w: ``[S, N]`` 0/1 weights (padding = 0).
          x_all: ``[M, D]`` inputs to predict.

        Returns:
          ``(mu [S, M], sigma [S, M])``.

        Raises:
          NasjaxInputError: as :meth:`fit`.
        """
        return self.predict(self.fit(keys, x, y, w), x_all)


@functools.lru_cache(maxsize=16)
def get_ensemble(in_dim: int, config: MLPConfig) -> MLPEnsemble:
    """Shared instance per (width, config) so that jitted programs are reused across calls.

    Args:
      in_dim: the input width ``D``.
      config: the ensemble's :class:`~nasjax.predictors.mlp_config.MLPConfig` (hashable).

    Returns:
      The cached :class:`MLPEnsemble`.

    Raises:
      NasjaxInputError: when ``in_dim < 1``.
    """
    return MLPEnsemble(in_dim, config)
