"""One subnet of the elastic MobileNetV3 supernet -- OFA's (Cai et al., "Once-for-All", ICLR 2020) or the
BINAS / HardCoRe-NAS one of :mod:`nasjax.models.binas` (elective squeeze-excite, per-stage activations) -- as a
static network that holds only its own weights.

This module is the one place where a subnet's weights are cut out of the supernet
(:func:`layer_weights`, :func:`stem_weights`, :func:`head_weights`, :func:`subnet_weights`); the static
Flax modules below and the ONNX graphs of :mod:`nasjax.export.onnx_graph` are both built from what it
returns. For layer ``l`` with kernel ``k`` and expand ratio ``e``:

* depthwise kernel: OFA's kernel transformation, ``W_k`` of :meth:`ElasticMBConv.kernels` (centre crop of
  the stored largest kernel, then the learnt matrices ``T``), first ``mid(e)`` channels;
* expand / project 1x1 convs: the first ``mid(e)`` output / input channels, BN statistics of those
  channels; SE: the first ``make_divisible(mid(e) // 4, 8)`` hidden units and ``mid(e)`` channels, in a layer
  whose stage has SE or, with an elective SE (``config.se_choice``, BINAS), where the subnet's ``se[l]`` is 1
  (a layer without it holds no SE weights);
* layers ``i >= d_s`` of stage ``s`` are dropped;
* activations and strides are the config's (``stage_acts``, ``stage_strides``), the head's feature mix has a
  bias when the config has one (``head_bias``, BINAS's conv head).

The static modules are plain Flax NNX modules with no masks: ``module(x)`` with ``x`` NHWC float32 at any
batch size, eval mode (running BN statistics), the supernet's depthwise formulation
(``config.depthwise_impl``). Pieces for timing one position at its real shape: :func:`stem` (stem conv
and first block), :func:`stage_block` (a whole stage at depth ``d``), :func:`layer_block` (one layer at
``(k, e)``) and :func:`head` (final expand, pool, feature mix, classifier); ``stem -> 5 stages -> head``
is the whole subnet. :func:`feature_shape` gives each piece's input shape at a resolution.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from nasjax.errors import NasjaxInputError, require
from nasjax.models.layers import ACTIVATIONS, BatchNorm, SqueezeExcite, conv2d, depthwise_conv
from nasjax.models.mobilenetv3 import (
    NUM_STAGES,
    STAGE_STRIDES,
    ModelState,
    OFAMobileNetV3,
    SupernetConfig,
    merge_model,
    validate_subnet,
)

__all__ = ["BNWeights", "LayerWeights", "StemWeights", "HeadWeights", "SubnetWeights", "stem_weights",
           "layer_weights", "head_weights", "subnet_weights", "feature_shape", "StaticStem", "StaticLayer",
           "StaticStage", "StaticHead", "StaticSubnet", "static_subnet", "stem", "stage_block", "layer_block",
           "head", "supernet_of", "compiled", "static_subnet_like"]

STEM_STRIDE = 2  # the stem conv; STAGE_STRIDES holds the first block's and the 5 stages'


# ----------------------------------------------------------------------------------------------------
# the subnet's weights as plain numpy data


@dataclass(frozen=True)
class BNWeights:
    """Eval-mode batch norm of ``C`` channels: ``y = (x - mean) / sqrt(var + eps) * scale + bias``."""

    scale: np.ndarray
    bias: np.ndarray
    mean: np.ndarray
    var: np.ndarray
    eps: float

    def folded(self) -> tuple[np.ndarray, np.ndarray]:
        """``(a, b)`` with ``BN(x) = a * x + b``: ``a = scale / sqrt(var + eps)``, ``b = bias - mean * a``
        (float64, for folding into the preceding convolution).

        Returns:
          ``a`` and ``b``, each ``[C]``.
        """
        a = self.scale.astype(np.float64) / np.sqrt(self.var.astype(np.float64) + self.eps)
        return a, self.bias.astype(np.float64) - self.mean.astype(np.float64) * a


@dataclass(frozen=True)
class LayerWeights:
    """One elastic layer cut to kernel ``k`` and expand ratio ``e`` (NHWC / HWIO layouts).

    ``w_expand [cin, mid]``, ``w_dw [k, k, mid]``, ``se = (w_reduce [mid, h], b_reduce [h], w_expand [h, mid],
    b_expand [mid])`` or ``None``, ``w_project [mid, cout]``.
    """

    stage: int
    index: int
    k: int
    e: int
    cin: int
    cout: int
    mid: int
    stride: int
    act: str
    residual: bool
    w_expand: np.ndarray
    bn_expand: BNWeights
    w_dw: np.ndarray
    bn_dw: BNWeights
    se: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None
    w_project: np.ndarray
    bn_project: BNWeights


@dataclass(frozen=True)
class StemWeights:
    """Stem ``3x3 conv [2] -> BN -> h-swish`` (``w_conv [3, 3, in, c0]``), then the first block
    ``3x3 depthwise [block_stride] -> BN -> act -> 1x1 -> BN`` (``w_dw [3, 3, c0]``, ``w_pw [c0, c1]``)."""

    w_conv: np.ndarray
    bn_conv: BNWeights
    conv_act: str
    w_dw: np.ndarray
    bn_dw: BNWeights
    block_act: str
    w_pw: np.ndarray
    bn_pw: BNWeights
    residual: bool
    block_stride: int = STAGE_STRIDES[0]


@dataclass(frozen=True)
class HeadWeights:
    """Final expand ``1x1 conv -> BN -> h-swish`` (``w_expand [c, cf]``), global average pool, feature mix
    ``h-swish(v @ w_mix [+ b_mix])`` (``[cf, cm]``; ``b_mix`` ``None`` without a bias), classifier
    ``v @ w_cls + b_cls``."""

    w_expand: np.ndarray
    bn_expand: BNWeights
    w_mix: np.ndarray
    w_cls: np.ndarray
    b_cls: np.ndarray
    b_mix: np.ndarray | None = None


@dataclass(frozen=True)
class SubnetWeights:
    """All weights of one subnet: ``stem``, its active ``layers`` in network order, ``head``."""

    config: SupernetConfig
    subnet: dict
    stem: StemWeights
    layers: tuple[LayerWeights, ...]
    head: HeadWeights


def _np(v) -> np.ndarray:
    return np.array(v[...] if hasattr(v, "get_value") or hasattr(v, "value") else v, dtype=np.float32)


def _bn(bn: BatchNorm, c: int | None = None) -> BNWeights:
    c = bn.scale[...].shape[0] if c is None else c
    return BNWeights(_np(bn.scale)[:c], _np(bn.bias)[:c], _np(bn.mean)[:c], _np(bn.var)[:c], float(bn.eps))


def supernet_of(model_state: Any) -> OFAMobileNetV3:
    """The supernet module of ``model_state`` (a :class:`ModelState` or the module itself).

    Args:
      model_state: ``ModelState(graphdef, params, batch_stats)`` or an ``OFAMobileNetV3``.

    Returns:
      The ``OFAMobileNetV3`` module.
    """
    if isinstance(model_state, OFAMobileNetV3):
        return model_state
    if isinstance(model_state, ModelState):
        return merge_model(model_state)
    raise NasjaxInputError(f"model_state: got {type(model_state).__name__}, expected a ModelState "
                           "(nasjax.models.split_model) or an OFAMobileNetV3")


def _check_position(cfg: SupernetConfig, stage, layer=None, k=None, e=None, se=None, *, layer_given=False) -> None:
    require(isinstance(stage, (int, np.integer)) and 0 <= stage < NUM_STAGES, "stage", stage,
            f"an integer in [0, {NUM_STAGES})")
    if layer is not None:
        require(isinstance(layer, (int, np.integer)) and 0 <= layer < cfg.max_depth, "layer", layer,
                f"an integer in [0, {cfg.max_depth}) (index within the stage)")
    if k is not None:
        require(isinstance(k, (int, np.integer)) and int(k) in cfg.ks_list, "k", k, f"one of {list(cfg.ks_list)}")
    if e is not None:
        require(isinstance(e, (int, np.integer)) and int(e) in cfg.expand_list, "e", e,
                f"one of {list(cfg.expand_list)}")
    if layer_given:
        if cfg.se_choice:
            require(isinstance(se, (int, np.integer, bool)) and int(se) in (0, 1), "se", se,
                    "0 or 1 (the supernet's squeeze-excite is elective: off / on)")
        else:
            require(se is None, "se", se, "None (this supernet's squeeze-excite is fixed per stage, not elective)")


def _layer_weights(model: OFAMobileNetV3, stage: int, layer: int, k: int, e: int, se: int | None = None
                   ) -> LayerWeights:
    """``se`` (0/1) chooses the squeeze-excite of a supernet with an elective one; ``None`` otherwise."""
    cfg = model.config
    blk = model.blocks[stage * cfg.max_depth + layer]
    spec = blk.spec
    j = cfg.expand_list.index(int(e))
    mid = spec.mid[j]
    use_se = blk.se is not None and (not cfg.se_choice or bool(se))
    se = None
    if use_se:
        h = spec.se_hidden[j]
        se = (_np(blk.se.w_reduce)[:mid, :h], _np(blk.se.b_reduce)[:h], _np(blk.se.w_expand)[:h, :mid],
              _np(blk.se.b_expand)[:mid])
    kernel = np.asarray(blk.kernels()[cfg.ks_list.index(int(k))], np.float32)[:, :, :mid]
    return LayerWeights(
        stage=int(stage), index=int(layer), k=int(k), e=int(e), cin=spec.cin, cout=spec.cout, mid=mid,
        stride=spec.stride, act=spec.act, residual=spec.residual,
        w_expand=_np(blk.w_expand)[0, 0, :, :mid], bn_expand=_bn(blk.bn_expand, mid),
        w_dw=kernel, bn_dw=_bn(blk.bn_dw, mid), se=se,
        w_project=_np(blk.w_project)[0, 0, :mid, :], bn_project=_bn(blk.bn_project),
    )


def layer_weights(model_state: Any, stage: int, layer: int, k: int, e: int, se: int | None = None) -> LayerWeights:
    """Weights of layer ``layer`` of stage ``stage`` cut to kernel ``k`` and expand ratio ``e``.

    Args:
      model_state: the supernet (``ModelState`` or ``OFAMobileNetV3``).
      stage: 0-based elastic stage (0..4).
      layer: 0-based index within the stage.
      k: kernel size from ``config.ks_list``.
      e: expand ratio from ``config.expand_list``.
      se: with an elective squeeze-excite (``config.se_choice``, BINAS) 0 (off) or 1 (on); else ``None``.

    Returns:
      A :class:`LayerWeights` with only the channels the layer uses.
    """
    model = supernet_of(model_state)
    _check_position(model.config, stage, layer, k, e, se, layer_given=True)
    return _layer_weights(model, int(stage), int(layer), int(k), int(e), None if se is None else int(se))


def _stem_weights(model: OFAMobileNetV3) -> StemWeights:
    fc, fb = model.first_conv, model.first_block
    return StemWeights(w_conv=_np(fc.w), bn_conv=_bn(fc.bn), conv_act=fc.act, w_dw=_np(fb.w_dw), bn_dw=_bn(fb.bn_dw),
                       block_act=fb.act, w_pw=_np(fb.w_pw)[0, 0], bn_pw=_bn(fb.bn_pw), residual=bool(fb.residual),
                       block_stride=int(fb.stride))


def stem_weights(model_state: Any) -> StemWeights:
    """Weights of the fixed stem conv and first block.

    Args:
      model_state: the supernet (``ModelState`` or ``OFAMobileNetV3``).

    Returns:
      A :class:`StemWeights`.
    """
    return _stem_weights(supernet_of(model_state))


def _head_weights(model: OFAMobileNetV3) -> HeadWeights:
    fe = model.final_expand
    return HeadWeights(w_expand=_np(fe.w)[0, 0], bn_expand=_bn(fe.bn), w_mix=_np(model.w_mix), w_cls=_np(model.w_cls),
                       b_cls=_np(model.b_cls), b_mix=None if model.b_mix is None else _np(model.b_mix))


def head_weights(model_state: Any) -> HeadWeights:
    """Weights of the fixed head (final expand, feature mix, classifier).

    Args:
      model_state: the supernet (``ModelState`` or ``OFAMobileNetV3``).

    Returns:
      A :class:`HeadWeights`.
    """
    return _head_weights(supernet_of(model_state))


def subnet_weights(model_state: Any, subnet: Any) -> SubnetWeights:
    """Every weight of ``subnet`` and nothing else (inactive layers dropped, channels cut).

    Args:
      model_state: the supernet (``ModelState`` or ``OFAMobileNetV3``).
      subnet: OFA dict ``{"ks": [L], "e": [L], "d": [S]}`` (plus ``"se": [L]`` 0/1 for a supernet with an
        elective squeeze-excite, e.g. ``nasjax.models.binas.binas_subnets``) with values from the config's
        lists; a malformed one raises ``NasjaxInputError`` naming the field.

    Returns:
      A :class:`SubnetWeights`.
    """
    model = supernet_of(model_state)
    cfg = model.config
    sub = validate_subnet(subnet, cfg)
    D = cfg.max_depth
    se = sub.get("se")
    layers = tuple(_layer_weights(model, s, i, sub["ks"][s * D + i], sub["e"][s * D + i],
                                  None if se is None else se[s * D + i])
                   for s in range(NUM_STAGES) for i in range(sub["d"][s]))
    return SubnetWeights(cfg, sub, _stem_weights(model), layers, _head_weights(model))


def _out(h: int, stride: int) -> int:
    return (h - 1) // stride + 1  # symmetric padding k // 2, odd k


def feature_shape(config: SupernetConfig, resolution: int, stage: int, layer: int = 0) -> tuple[int, int]:
    """``(side, channels)`` of the input of layer ``layer`` of stage ``stage`` (``stage = 5``: the head) for a
    ``resolution x resolution`` image; ``stage = -1`` is the image itself (the stem's input).

    Args:
      config: the supernet's config.
      resolution: input side in pixels (an integer >= 8).
      stage: -1 (stem), 0..4 (elastic stages) or 5 (head).
      layer: index within the stage; layers after the first take the stage's output width and stride 1.

    Returns:
      ``(side, channels)``; the NHWC input is ``[N, side, side, channels]`` (ONNX: ``[N, channels, side, side]``).
    """
    require(isinstance(resolution, (int, np.integer)) and not isinstance(resolution, bool) and resolution >= 8,
            "resolution", resolution, "an integer >= 8 (pixels)")
    require(isinstance(stage, (int, np.integer)) and -1 <= stage <= NUM_STAGES, "stage", stage,
            f"an integer in [-1, {NUM_STAGES}] (-1 stem, {NUM_STAGES} head)")
    if stage == -1:
        return int(resolution), config.in_channels
    w = config.widths()
    strides = config.stage_strides
    h = _out(_out(int(resolution), STEM_STRIDE), strides[0])
    for s in range(stage):
        h = _out(h, strides[s + 1])
    if stage == NUM_STAGES:
        return h, w["stages"][-1]
    require(isinstance(layer, (int, np.integer)) and 0 <= layer < config.max_depth, "layer", layer,
            f"an integer in [0, {config.max_depth})")
    if layer == 0:
        return h, (w["first_block"] if stage == 0 else w["stages"][stage - 1])
    return _out(h, strides[stage + 1]), w["stages"][stage]


# ----------------------------------------------------------------------------------------------------
# static Flax modules built from those weights


def _bn_module(b: BNWeights) -> BatchNorm:
    m = BatchNorm(b.scale.shape[0], eps=b.eps)
    m.scale.set_value(jnp.asarray(b.scale))
    m.bias.set_value(jnp.asarray(b.bias))
    m.mean.set_value(jnp.asarray(b.mean))
    m.var.set_value(jnp.asarray(b.var))
    return m


def _se_module(w: LayerWeights) -> SqueezeExcite:
    se = SqueezeExcite(w.mid, w.se[1].shape[0], rngs=nnx.Rngs(0))
    for var, a in zip((se.w_reduce, se.b_reduce, se.w_expand, se.b_expand), w.se):
        var.set_value(jnp.asarray(a))
    return se


def _param(a: np.ndarray) -> nnx.Param:
    return nnx.Param(jnp.asarray(a, jnp.float32))


class StaticStem(nnx.Module):
    """Stem conv and first block with fixed shapes: ``[N, R, R, in] -> [N, R', R', c1]``."""

    def __init__(self, w: StemWeights, impl: str = "auto"):
        self.w_conv = _param(w.w_conv)
        self.bn_conv = _bn_module(w.bn_conv)
        self.w_dw = _param(w.w_dw)
        self.bn_dw = _bn_module(w.bn_dw)
        self.w_pw = _param(w.w_pw)
        self.bn_pw = _bn_module(w.bn_pw)
        self.conv_act, self.block_act, self.residual, self.impl = w.conv_act, w.block_act, w.residual, impl
        self.block_stride = w.block_stride

    def __call__(self, x):
        x = ACTIVATIONS[self.conv_act](self.bn_conv(conv2d(x, self.w_conv[...], STEM_STRIDE)))
        h = ACTIVATIONS[self.block_act](self.bn_dw(depthwise_conv(x, self.w_dw[...], self.block_stride, self.impl)))
        y = self.bn_pw(conv2d(h, self.w_pw[...][None, None]))
        return x + y if self.residual else y


class StaticLayer(nnx.Module):
    """One inverted-residual layer at its chosen ``(k, e)``:
    ``1x1 -> BN -> act -> kxk depthwise [s] -> BN -> act -> [SE] -> 1x1 -> BN (+ x)``."""

    def __init__(self, w: LayerWeights, impl: str = "auto"):
        self.w_expand = _param(w.w_expand)
        self.bn_expand = _bn_module(w.bn_expand)
        self.w_dw = _param(w.w_dw)
        self.bn_dw = _bn_module(w.bn_dw)
        self.se = _se_module(w) if w.se is not None else None
        self.w_project = _param(w.w_project)
        self.bn_project = _bn_module(w.bn_project)
        self.stride, self.act, self.residual, self.impl = w.stride, w.act, w.residual, impl
        self.k, self.e = w.k, w.e

    def __call__(self, x):
        act = ACTIVATIONS[self.act]
        h = act(self.bn_expand(conv2d(x, self.w_expand[...][None, None])))
        h = act(self.bn_dw(depthwise_conv(h, self.w_dw[...], self.stride, self.impl)))
        if self.se is not None:
            h = self.se(h)
        y = self.bn_project(conv2d(h, self.w_project[...][None, None]))
        return x + y if self.residual else y


class StaticStage(nnx.Module):
    """A sequence of :class:`StaticLayer` (a stage at its depth, or any run of layers)."""

    def __init__(self, layers: Sequence[LayerWeights], impl: str = "auto"):
        self.layers = nnx.List([StaticLayer(w, impl) for w in layers])

    def __call__(self, x):
        for layer in self.layers:
            x = layer(x)
        return x


class StaticHead(nnx.Module):
    """Final expand, global average pool, feature mix, classifier: ``[N, h, h, c] -> [N, classes]``."""

    def __init__(self, w: HeadWeights):
        self.w_expand = _param(w.w_expand)
        self.bn_expand = _bn_module(w.bn_expand)
        self.w_mix = _param(w.w_mix)
        self.b_mix = None if w.b_mix is None else _param(w.b_mix)
        self.w_cls = _param(w.w_cls)
        self.b_cls = _param(w.b_cls)

    def __call__(self, x):
        hs = ACTIVATIONS["h_swish"]
        v = jnp.mean(hs(self.bn_expand(conv2d(x, self.w_expand[...][None, None]))), axis=(1, 2))
        v = v @ self.w_mix[...]
        if self.b_mix is not None:
            v = v + self.b_mix[...]
        return hs(v) @ self.w_cls[...] + self.b_cls[...]


class StaticSubnet(nnx.Module):
    """A whole subnet as a static network: ``stem -> stages -> head``, ``__call__(x [N, R, R, in]) -> logits``.

    ``subnet`` (the validated OFA dict) and ``config`` (the supernet's) are kept for reference.
    """

    def __init__(self, w: SubnetWeights):
        impl = w.config.depthwise_impl
        self.config = w.config
        self.subnet = {k: list(v) for k, v in w.subnet.items()}
        self.stem = StaticStem(w.stem, impl)
        self.stages = nnx.List([StaticStage([lw for lw in w.layers if lw.stage == s], impl)
                                for s in range(NUM_STAGES)])
        self.head = StaticHead(w.head)

    def __call__(self, x):
        require(x.ndim == 4 and x.shape[-1] == self.config.in_channels, "x.shape", tuple(x.shape),
                f"[N, H, W, {self.config.in_channels}] (NHWC)")
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return self.head(x)


def static_subnet(model_state: Any, subnet: Any) -> StaticSubnet:
    """The static Flax module of ``subnet``, holding only that subnet's weights.

    Args:
      model_state: the supernet (``ModelState`` or ``OFAMobileNetV3``).
      subnet: OFA dict ``{"ks", "e", "d"}`` (validated; a bad value raises ``NasjaxInputError``).

    Returns:
      A :class:`StaticSubnet`; ``module(x)`` equals the supernet's eval-mode logits of ``subnet`` on ``x``
      (NHWC, any batch size).
    """
    return StaticSubnet(subnet_weights(model_state, subnet))


def static_subnet_like(config: SupernetConfig | dict, subnet: Any) -> StaticSubnet:
    """A :class:`StaticSubnet` of the right shapes for ``subnet`` of a supernet with ``config``, its weights
    those of a freshly initialised supernet: the builder a file loader fills with saved weights.

    Args:
      config: the supernet's ``SupernetConfig`` (or its ``to_dict()``).
      subnet: OFA dict ``{"ks", "e", "d"}``.

    Returns:
      A :class:`StaticSubnet`.
    """
    cfg = config if isinstance(config, SupernetConfig) else SupernetConfig.from_dict(config)
    return static_subnet(OFAMobileNetV3(cfg, rngs=nnx.Rngs(0)), subnet)


def stem(model_state: Any) -> StaticStem:
    """The fixed stem conv and first block as a static module (input ``[N, R, R, in]``).

    Args:
      model_state: the supernet (``ModelState`` or ``OFAMobileNetV3``).

    Returns:
      A :class:`StaticStem`.
    """
    model = supernet_of(model_state)
    return StaticStem(_stem_weights(model), model.config.depthwise_impl)


def _stage_layers(model: OFAMobileNetV3, stage, depth, ks, es, ses=None) -> list[LayerWeights]:
    cfg = model.config
    _check_position(cfg, stage)
    require(isinstance(depth, (int, np.integer)) and int(depth) in cfg.depth_list, "depth", depth,
            f"one of {list(cfg.depth_list)}")
    lists = [("ks", ks, cfg.ks_list), ("es", es, cfg.expand_list)]
    if cfg.se_choice:
        lists.append(("ses", ses, (0, 1)))
    else:
        require(ses is None, "ses", ses, "None (this supernet's squeeze-excite is fixed per stage, not elective)")
    for name, v, _ in lists:
        require(isinstance(v, (list, tuple, np.ndarray)) and len(v) in (int(depth), cfg.max_depth), name, v,
                f"a list of {int(depth)} (or {cfg.max_depth}) values")
    for i in range(int(depth)):
        for name, v, allowed in lists:
            x = v[i]
            require(isinstance(x, (int, np.integer)) and not isinstance(x, bool) and int(x) in allowed,
                    f"{name}[{i}]", x, f"one of {list(allowed)}")
    return [_layer_weights(model, int(stage), i, int(ks[i]), int(es[i]), None if ses is None else int(ses[i]))
            for i in range(int(depth))]


def stage_block(model_state: Any, stage: int, depth: int, ks: Sequence[int], es: Sequence[int],
                ses: Sequence[int] | None = None) -> StaticStage:
    """Stage ``stage`` at depth ``depth`` with kernels ``ks`` and expand ratios ``es`` (only the first ``depth``
    entries are used) as a static module; input ``[N, side, side, c]`` from :func:`feature_shape`.

    Args:
      model_state: the supernet (``ModelState`` or ``OFAMobileNetV3``).
      stage: 0-based elastic stage.
      depth: number of active layers, from ``config.depth_list``.
      ks: kernel sizes per layer.
      es: expand ratios per layer.
      ses: squeeze-excite on (1) / off (0) per layer for a supernet with an elective one; else ``None``.

    Returns:
      A :class:`StaticStage`.
    """
    model = supernet_of(model_state)
    return StaticStage(_stage_layers(model, stage, depth, ks, es, ses), model.config.depthwise_impl)


def layer_block(model_state: Any, stage: int, layer: int, k: int, e: int, se: int | None = None) -> StaticStage:
    """One layer at ``(k, e)`` as a static module; input ``feature_shape(config, R, stage, layer)``.

    Args:
      model_state: the supernet (``ModelState`` or ``OFAMobileNetV3``).
      stage: 0-based elastic stage.
      layer: 0-based index within the stage.
      k: kernel size.
      e: expand ratio.
      se: squeeze-excite 0/1 for a supernet with an elective one (BINAS); else ``None``.

    Returns:
      A :class:`StaticStage` of that one layer.
    """
    model = supernet_of(model_state)
    return StaticStage([layer_weights(model, stage, layer, k, e, se)], model.config.depthwise_impl)


def head(model_state: Any) -> StaticHead:
    """The fixed head as a static module (input ``feature_shape(config, R, 5)``).

    Args:
      model_state: the supernet (``ModelState`` or ``OFAMobileNetV3``).

    Returns:
      A :class:`StaticHead`.
    """
    return StaticHead(_head_weights(supernet_of(model_state)))


def compiled(module: nnx.Module) -> Callable:
    """``jax.jit`` of ``x -> module(x)`` with the module's weights baked in as constants.

    As in a deployed network the program's only argument is the input, so a call pays no dispatch for
    weight arguments; it is compiled once per input shape.

    Args:
      module: a static module of this file (or any eval-mode ``nnx.Module`` called as ``module(x)``).

    Returns:
      The jitted function.
    """
    return jax.jit(lambda x: module(x))
