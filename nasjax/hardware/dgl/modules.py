"""Flax NNX modules of the models of DGL's network parameter A (Wang & Zhang, IEEE TMC 2023).

* ``AModel`` (kind ``"ours"``), on standardised features ``x``::

      y_hat(x) = w.x + b + (1/M) sum_m [ v_m . tanh(W_m x + b_m) + c_m ]

  a linear term plus an optional ensemble of ``M`` one-hidden-layer tanh MLPs (``M = 0``: linear only).
* ``DGLMLP`` (kind ``"dgl_mlp"``): DGL's ``net.py::MLP``, in -> 512 -> 2048 -> 2048 -> 2048 -> 256 (frozen,
  random, PyTorch's default initialisation) -> 28 -> 1, tanh.

The classes are built once on first use (Flax is imported lazily); :func:`build_module` makes one from
its typed config.
"""

from __future__ import annotations

import numpy as np

from nasjax.hardware.dgl.config import AModelConfig, DGLMLPConfig


def _build_classes():
    import jax
    import jax.numpy as jnp
    from flax import nnx

    class AModel(nnx.Module):
        """``y_hat = w.x + b + mean_m [v_m . tanh(W_m x + b_m) + c_m]`` (see the module docstring)."""

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

    class DGLMLP(nnx.Module):
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

    return AModel, DGLMLP


_CLASSES: tuple | None = None


def _classes():
    global _CLASSES
    if _CLASSES is None:
        _CLASSES = _build_classes()
    return _CLASSES


def build_module(config: AModelConfig | DGLMLPConfig, n_features: int, seed: int = 0):
    """A freshly initialised module for ``config`` on ``n_features`` inputs (``nnx.Rngs(seed)``).

    Args:
      config: an :class:`~nasjax.hardware.dgl.config.AModelConfig` (linear term plus optional tanh-MLP
        ensemble) or a :class:`~nasjax.hardware.dgl.config.DGLMLPConfig` (DGL's MLP).
      n_features: the input width.
      seed: the initialisation seed.

    Returns:
      The flax nnx module.

    Raises:
      TypeError: when ``config`` is neither config type.
    """
    from flax import nnx

    a_model, dgl_mlp = _classes()
    if isinstance(config, AModelConfig):
        return a_model(n_features, config.hidden, config.members, rngs=nnx.Rngs(seed))
    if isinstance(config, DGLMLPConfig):
        return dgl_mlp(n_features, rngs=nnx.Rngs(seed))
    raise TypeError(f"build_module: got {type(config).__name__}, expected AModelConfig or DGLMLPConfig")
