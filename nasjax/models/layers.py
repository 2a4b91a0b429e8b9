"""Building blocks of nasjax's Flax NNX supernets (MobileNetV3, Howard et al., ICCV 2019; OFA, Cai et al.,
ICLR 2020): depthwise convolution, batch normalisation with masked statistics, h-swish, squeeze-excite.

Layout is NHWC. Padding is explicit and symmetric (``k // 2`` on every side, as PyTorch's
``padding=k//2``), never Flax's ``"SAME"``, which pads asymmetrically at stride 2.

Depthwise convolution has two formulations with identical results:

* ``"shift"`` (CPU): ``y[n,i,j,c] = sum_{a,b} xpad[n, s*i + a, s*j + b, c] * w[a,b,c]``, one strided slice
  and one multiply-add per kernel tap. XLA's grouped convolution on CPU is 25-55x slower (DESIGN.md).
* ``"xla"`` (accelerators): ``lax.conv_general_dilated`` with ``feature_group_count = C``.

``"auto"`` picks ``"shift"`` when the default JAX backend is the CPU and ``"xla"`` otherwise.

Batch normalisation follows PyTorch's conventions (OFA's checkpoints come from PyTorch):
``y = (x - mean) / sqrt(var + eps) * scale + bias``; training updates
``running = (1 - momentum) * running + momentum * batch`` with the unbiased batch variance.
"""

from __future__ import annotations

from typing import Literal

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from nasjax.errors import require

DepthwiseImpl = Literal["auto", "shift", "xla"]
BNMode = Literal["eval", "train", "calib"]


def make_divisible(v: float, divisor: int = 8, min_val: int | None = None) -> int:
    """Round ``v`` to a multiple of ``divisor`` (at least ``min_val``), never more than 10% below ``v``.

    The rule of TensorFlow's MobileNet code that OFA uses for every channel count.
    """
    min_val = divisor if min_val is None else min_val
    new_v = max(min_val, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


def hswish(x: jax.Array) -> jax.Array:
    """h-swish(x) = x * relu6(x + 3) / 6."""
    return x * jnp.clip(x + 3.0, 0.0, 6.0) / 6.0


def hsigmoid(x: jax.Array) -> jax.Array:
    """h-sigmoid(x) = relu6(x + 3) / 6."""
    return jnp.clip(x + 3.0, 0.0, 6.0) / 6.0


ACTIVATIONS = {"relu": jax.nn.relu, "h_swish": hswish, "none": lambda x: x}


def resolve_depthwise_impl(impl: DepthwiseImpl) -> str:
    require(impl in ("auto", "shift", "xla"), "depthwise_impl", impl, "one of 'auto', 'shift', 'xla'")
    if impl == "auto":
        return "shift" if jax.default_backend() == "cpu" else "xla"
    return impl


def depthwise_conv(x: jax.Array, w: jax.Array, stride: int = 1, impl: DepthwiseImpl = "auto") -> jax.Array:
    """Depthwise 2-D convolution, symmetric zero padding ``k // 2``.

    Args:
      x: ``[N, H, W, C]``.
      w: ``[k, k, C]`` (k odd), or ``[N, k, k, C]``: one kernel per example (``"shift"`` only).
      stride: spatial stride; output size ``(H - 1) // stride + 1``.
      impl: ``"shift"``, ``"xla"`` or ``"auto"`` (see module docstring).
    """
    per_example = w.ndim == 4
    k = w.shape[1] if per_example else w.shape[0]
    p = k // 2
    if resolve_depthwise_impl(impl) == "xla":
        require(not per_example, "depthwise kernel", tuple(w.shape), "[k, k, C] with impl 'xla'")
        return jax.lax.conv_general_dilated(
            x, w[:, :, None, :], (stride, stride), [(p, p), (p, p)],
            dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=x.shape[-1],
        )
    n, h, wd, c = x.shape
    ho, wo = (h - 1) // stride + 1, (wd - 1) // stride + 1
    xp = jnp.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
    y = None
    for a in range(k):  # unrolled taps: 3-4x faster on CPU than a loop over kernel rows (measured)
        for b in range(k):
            tap = jax.lax.slice(
                xp, (0, a, b, 0), (n, a + (ho - 1) * stride + 1, b + (wo - 1) * stride + 1, c), (1, stride, stride, 1)
            )
            wab = w[:, a, b][:, None, None, :] if per_example else w[a, b]
            y = tap * wab if y is None else y + tap * wab
    return y


def conv2d(x: jax.Array, w: jax.Array, stride: int = 1) -> jax.Array:
    """Dense 2-D convolution, ``w: [k, k, Cin, Cout]``, symmetric padding ``k // 2``; 1x1 is a matmul."""
    k = w.shape[0]
    if k == 1 and stride == 1:
        return jnp.einsum("nhwc,cd->nhwd", x, w[0, 0])
    p = k // 2
    return jax.lax.conv_general_dilated(
        x, w, (stride, stride), [(p, p), (p, p)], dimension_numbers=("NHWC", "HWIO", "NHWC")
    )


def _normal(rngs: nnx.Rngs, shape, std: float) -> jax.Array:
    """``N(0, std^2)`` weights drawn by numpy from a seed taken from ``rngs.params()`` (same rngs, same
    weights); numpy avoids compiling one XLA random kernel per weight shape at model construction."""
    seed = np.asarray(jax.random.key_data(rngs.params())).astype(np.uint64).ravel()
    return jnp.asarray(np.random.default_rng(seed).normal(0.0, std, shape), jnp.float32)


def _kaiming(rngs: nnx.Rngs, shape, fan_out: int) -> jax.Array:
    """He-normal initialisation with fan-out (OFA/torchvision's MobileNet init)."""
    return _normal(rngs, shape, float(np.sqrt(2.0 / fan_out)))


class BatchNorm(nnx.Module):
    """BatchNorm over the channel axis (last) with PyTorch's momentum convention.

    ``mode``: ``"eval"`` normalises with running statistics; ``"train"`` with the batch's (biased)
    statistics and updates running ones by momentum (unbiased variance, as PyTorch);
    ``"calib"`` normalises with the batch statistics and *stores* them (mean, biased variance): OFA's
    ``set_running_statistics`` averages these over calibration batches.
    ``keep`` (bool, broadcastable to ``[C]``) marks channels whose statistics may change; the others
    (inactive expand channels, skipped layers) keep their old values, as in OFA.
    """

    def __init__(self, num_features: int, momentum: float = 0.1, eps: float = 1e-5):
        self.scale = nnx.Param(jnp.ones((num_features,), jnp.float32))
        self.bias = nnx.Param(jnp.zeros((num_features,), jnp.float32))
        self.mean = nnx.BatchStat(jnp.zeros((num_features,), jnp.float32))
        self.var = nnx.BatchStat(jnp.ones((num_features,), jnp.float32))
        self.momentum = momentum
        self.eps = eps

    def __call__(self, x: jax.Array, mode: BNMode = "eval", keep: jax.Array | None = None) -> jax.Array:
        """Normalise ``x [..., C']``; ``C' <= C`` uses (and updates) the first ``C'`` channels (sliced form)."""
        c = x.shape[-1]
        full = c == self.scale[...].shape[0]
        old_mean, old_var = self.mean[...][:c], self.var[...][:c]
        if mode == "eval":
            mean, var = old_mean, old_var
        else:
            axes = tuple(range(x.ndim - 1))
            mean = jnp.mean(x, axes)
            var = jnp.mean(jnp.square(x - mean), axes)
            if mode == "train":
                n = x.size // c
                m = self.momentum
                new_mean = (1.0 - m) * old_mean + m * mean
                new_var = (1.0 - m) * old_var + m * var * (n / max(n - 1, 1))
            elif mode == "calib":
                new_mean, new_var = mean, var
            else:
                raise ValueError(f"mode: got {mode!r}, expected 'eval', 'train' or 'calib'")
            if keep is not None:
                new_mean = jnp.where(keep, new_mean, old_mean)
                new_var = jnp.where(keep, new_var, old_var)
            self.mean.set_value(new_mean if full else self.mean[...].at[:c].set(new_mean))
            self.var.set_value(new_var if full else self.var[...].at[:c].set(new_var))
        return (x - mean) * jax.lax.rsqrt(var + self.eps) * self.scale[...][:c] + self.bias[...][:c]


class ConvBN(nnx.Module):
    """Dense conv (no bias) -> BatchNorm -> activation: OFA's ``ConvLayer`` (stem, final expand)."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int, act: str, *, bn_momentum: float,
                 bn_eps: float, rngs: nnx.Rngs):
        self.w = nnx.Param(_kaiming(rngs, (kernel, kernel, cin, cout), kernel * kernel * cout))
        self.bn = BatchNorm(cout, bn_momentum, bn_eps)
        self.stride = stride
        self.act = act

    def __call__(self, x, mode: BNMode = "eval"):
        return ACTIVATIONS[self.act](self.bn(conv2d(x, self.w[...], self.stride), mode))


class SqueezeExcite(nnx.Module):
    """Squeeze-and-excitation (MobileNetV3): ``x * hsigmoid(W_e relu(W_r mean_hw(x) + b_r) + b_e)``.

    ``channels`` is the maximum width; ``hidden_mask`` (bool ``[hidden]``) keeps OFA's active reduce
    width ``make_divisible(active_channels // 4, 8)``; inactive input channels of ``x`` are zero.
    """

    def __init__(self, channels: int, hidden: int, *, rngs: nnx.Rngs):
        self.w_reduce = nnx.Param(_kaiming(rngs, (channels, hidden), hidden))
        self.b_reduce = nnx.Param(jnp.zeros((hidden,), jnp.float32))
        self.w_expand = nnx.Param(_kaiming(rngs, (hidden, channels), channels))
        self.b_expand = nnx.Param(jnp.zeros((channels,), jnp.float32))

    def __call__(self, x, hidden_mask: jax.Array | None = None):
        """``x [N, H, W, channels]``; ``hidden_mask`` keeps the active hidden units (all when ``None``)."""
        y = jnp.mean(x, axis=(1, 2))
        wr, br, we, be = self.w_reduce[...], self.b_reduce[...], self.w_expand[...], self.b_expand[...]
        h = jax.nn.relu(y @ wr + br)
        if hidden_mask is not None:
            h = h * hidden_mask
        return x * hsigmoid(h @ we + be)[:, None, None, :]
