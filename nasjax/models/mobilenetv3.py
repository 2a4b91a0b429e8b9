"""Elastic MobileNetV3 supernet in Flax NNX with OFA's exact structure (Cai et al., "Once-for-All", ICLR 2020,
``ofa_mbv3_d234_e346_k357``), where a subnet is data, not a program.

Structure (channel counts ``make_divisible(base * width_mult, 8)``; strides in brackets):

* stem: 3x3 conv [2] -> BN -> h-swish (16);
* first block: 3x3 depthwise [1] -> BN -> ReLU -> 1x1 conv -> BN (16), identity residual;
* 5 elastic stages, ``max(depth_list)`` layers each, widths 24/40/80/112/160, strides 2/2/2/1/2,
  activations ReLU/ReLU/h-swish/h-swish/h-swish, squeeze-excite in stages 1, 3, 4 (0-based: OFA's
  ``se_stages`` = F,F,T,F,T,T including the first block). Each layer is an inverted residual
  ``1x1 expand -> BN -> act -> kxk depthwise [s] -> BN -> act -> [SE] -> 1x1 project -> BN``
  with an identity residual when stride 1 and in == out channels;
* final expand 1x1 conv -> BN -> h-swish (960), global average pool, feature mix 1x1 conv (no bias,
  no BN) -> h-swish (1280), dropout, linear classifier.

Elasticity, one compiled program for every subnet (masks, not shapes):

* kernel ``k`` of layer ``l``: ``W_7`` is the stored 7x7 depthwise kernel,
  ``W_5 = reshape(T_{7->5} vec(center_5(W_7)))``, ``W_3 = reshape(T_{5->3} vec(center_3(W_5)))``
  with OFA's learnt kernel transformation matrices ``T``; the chosen kernel is zero-padded back to
  7x7 (identical result with symmetric padding 3);
* expand ratio ``e``: the middle width is ``mid(e) = make_divisible(round(c_in * e), 8)``; the first
  ``mid(e)`` channels are active (mask ``m_c = [c < mid(e)]`` after each activation); SE uses the
  first ``make_divisible(mid(e) // 4, 8)`` hidden units;
* depth ``d_s``: layer ``i`` of stage ``s`` runs iff ``i < d_s``; an inactive layer (always one with
  an identity residual) returns ``x + 0 * f(x)``; its BN statistics are not updated.

Public API (stable; training, tables and quickstart code build on it):

* ``SupernetConfig(width_mult, num_classes, in_channels, ks_list, expand_list, depth_list, dropout_rate,
  bn_momentum, bn_eps, depthwise_impl)``; ``.layer_specs()`` (per elastic layer: channels, stride,
  act, SE, residual, ``mid``/``se_hidden`` per expand ratio), ``.widths()``.
* ``OFAMobileNetV3(config, rngs=nnx.Rngs(seed))``: ``model(x, subnet, mode="eval"|"train"|"calib",
  dropout_key=None) -> logits``. ``x`` is NHWC float32 ``[N, H, W, in_channels]`` (any H, W);
  ``subnet`` is ``{"ks": int32[L], "e": int32[L], "d": int32[S]}`` with real values (7/6/4), L = 20,
  S = 5 for the default lists (Python lists are accepted too). The *subnet-shaped* network (sliced
  weights, real kernel sizes, skipped layers: same numbers, the cost of the real subnet) is
  ``nasjax.export.static.static_subnet``.
* Functional: ``state = split_model(model)`` -> ``ModelState(graphdef, params, batch_stats)``;
  ``apply(graphdef, params, batch_stats, subnet, x, train=False, dropout_key=None)`` -> ``logits``
  (eval, running statistics) or, with ``train=True``, ``(logits, new_batch_stats)``. ``apply`` is
  ``jax.jit``-compiled once per (graphdef, input shape, train) and serves every subnet.
  ``apply_subnets(graphdef, params, batch_stats, subnets, x, per_subnet_stats=False)`` vmaps over a
  leading subnet axis of ``subnets`` (and of ``batch_stats`` when ``per_subnet_stats``) ->
  ``logits [S, N, classes]``. ``calib_stats(graphdef, params, batch_stats, subnet, x)`` -> the batch
  statistics OFA's recalibration averages (see ``nasjax.train.evaluate``).
* Subnet helpers: ``subnet_arrays(ofa_dict | list of dicts, config)`` (validated, stacked int32),
  ``subnet_to_ofa``, ``max_subnet``, ``min_subnet``, ``random_subnets(config, n, seed)``,
  ``stack_subnets`` (of ``nasjax.spaces.mobilenetv3.layers_to_ofa`` dicts for choice vectors),
  ``index_subnets``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from nasjax.errors import NasjaxInputError, require
from nasjax.models.layers import (
    ACTIVATIONS,
    BatchNorm,
    ConvBN,
    SqueezeExcite,
    _kaiming,
    _normal,
    conv2d,
    depthwise_conv,
    make_divisible,
    resolve_depthwise_impl,
)

BASE_WIDTHS = (16, 16, 24, 40, 80, 112, 160, 960, 1280)  # stem, first block, 5 stages, final expand, mix
STAGE_STRIDES = (1, 2, 2, 2, 1, 2)  # first block, then the 5 elastic stages
STAGE_ACTS = ("relu", "relu", "relu", "h_swish", "h_swish", "h_swish")
STAGE_SE = (False, False, True, False, True, True)
NUM_STAGES = 5
_STRUCTURE_DEFAULTS = {"base_widths": BASE_WIDTHS, "stage_strides": STAGE_STRIDES, "stage_acts": STAGE_ACTS,
                       "stage_se": STAGE_SE, "se_choice": False, "head_bias": False}


@dataclass(frozen=True)
class LayerSpec:
    """Static description of one elastic layer (stage ``stage``, index ``index`` within the stage)."""

    stage: int
    index: int
    cin: int
    cout: int
    stride: int
    act: str
    use_se: bool
    residual: bool
    mid: tuple[int, ...]  # middle width per expand ratio of ``expand_list``
    se_hidden: tuple[int, ...]  # SE hidden width per expand ratio (0 without SE)

    @property
    def max_mid(self) -> int:
        return max(self.mid)


@dataclass(frozen=True)
class SupernetConfig:
    """Configuration of the elastic MobileNetV3 (defaults: OFA's ``ofa_mbv3_d234_e346_k357``, ImageNet).

    ``width_mult`` scales every width through ``make_divisible(base * width_mult, 8)`` (OFA ships 1.0
    and 1.2; 0.25/0.35 suit MNIST). ``depthwise_impl``: ``"auto"`` (shift-and-add on CPU, XLA's
    grouped conv elsewhere), ``"shift"`` or ``"xla"``. ``bn_momentum`` uses PyTorch's convention.
    """

    width_mult: float = 1.0
    num_classes: int = 1000
    in_channels: int = 3
    ks_list: tuple[int, ...] = (3, 5, 7)
    expand_list: tuple[int, ...] = (3, 4, 6)
    depth_list: tuple[int, ...] = (2, 3, 4)
    dropout_rate: float = 0.1
    bn_momentum: float = 0.1
    bn_eps: float = 1e-5
    depthwise_impl: str = "auto"
    base_widths: tuple[int, ...] = BASE_WIDTHS
    stage_strides: tuple[int, ...] = STAGE_STRIDES
    stage_acts: tuple[str, ...] = STAGE_ACTS
    stage_se: tuple[bool, ...] = STAGE_SE
    se_choice: bool = False
    head_bias: bool = False

    def __post_init__(self):
        require(isinstance(self.width_mult, (int, float)) and 0 < self.width_mult <= 4, "config.width_mult",
                self.width_mult, "a number in (0, 4]")
        require(isinstance(self.num_classes, int) and self.num_classes >= 1, "config.num_classes",
                self.num_classes, "a positive integer")
        require(isinstance(self.in_channels, int) and self.in_channels >= 1, "config.in_channels",
                self.in_channels, "a positive integer")
        for name in ("ks_list", "expand_list", "depth_list"):
            v = tuple(getattr(self, name))
            require(len(v) > 0 and all(isinstance(x, (int, np.integer)) and x > 0 for x in v)
                    and list(v) == sorted(set(v)), f"config.{name}", v,
                    "a non-empty strictly increasing tuple of positive integers")
            object.__setattr__(self, name, tuple(int(x) for x in v))
        require(all(k % 2 == 1 for k in self.ks_list), "config.ks_list", self.ks_list, "odd kernel sizes")
        require(0.0 <= self.dropout_rate < 1.0, "config.dropout_rate", self.dropout_rate, "a value in [0, 1)")
        resolve_depthwise_impl(self.depthwise_impl)  # validates the name
        for name, n, ok, want in (
            ("base_widths", len(BASE_WIDTHS), lambda v: isinstance(v, (int, np.integer)) and v >= 1,
             "positive integers (stem, first block, 5 stages, final expand, feature mix)"),
            ("stage_strides", NUM_STAGES + 1, lambda v: v in (1, 2), "strides 1 or 2 (first block, 5 stages)"),
            ("stage_acts", NUM_STAGES + 1, lambda v: v in ("relu", "h_swish"),
             "'relu' or 'h_swish' (first block, 5 stages)"),
            ("stage_se", NUM_STAGES + 1, lambda v: isinstance(v, (bool, np.bool_)), "booleans (first block, 5 stages)"),
        ):
            v = tuple(getattr(self, name))
            require(len(v) == n and all(ok(x) for x in v), f"config.{name}", v, f"{n} {want}")
            object.__setattr__(self, name, tuple(int(x) if name == "base_widths" else
                                                 (bool(x) if name == "stage_se" else x) for x in v))
        require(isinstance(self.se_choice, bool), "config.se_choice", self.se_choice, "True or False")
        require(isinstance(self.head_bias, bool), "config.head_bias", self.head_bias, "True or False")

    @property
    def max_depth(self) -> int:
        return max(self.depth_list)

    @property
    def num_layers(self) -> int:
        return NUM_STAGES * self.max_depth

    def widths(self) -> dict[str, Any]:
        """Channel counts: ``stem``, ``first_block``, ``stages`` (5), ``final_expand``, ``feature_mix``."""
        w = [make_divisible(b * self.width_mult, 8) for b in self.base_widths]
        return {"stem": w[0], "first_block": w[1], "stages": tuple(w[2:7]), "final_expand": w[7],
                "feature_mix": w[8]}

    def layer_specs(self) -> list[LayerSpec]:
        widths = self.widths()
        specs = []
        cin = widths["first_block"]
        for s in range(NUM_STAGES):
            cout = widths["stages"][s]
            for i in range(self.max_depth):
                stride = self.stage_strides[s + 1] if i == 0 else 1
                mids = tuple(make_divisible(round(cin * e), 8) for e in self.expand_list)
                se = self.stage_se[s + 1] or self.se_choice
                specs.append(LayerSpec(
                    stage=s, index=i, cin=cin, cout=cout, stride=stride, act=self.stage_acts[s + 1], use_se=se,
                    residual=(stride == 1 and cin == cout), mid=mids,
                    se_hidden=tuple(make_divisible(m // 4, 8) if se else 0 for m in mids),
                ))
                cin = cout
        return specs

    @property
    def subnet_keys(self) -> tuple[str, ...]:
        """Keys of a subnet of this supernet: ``ks``, ``e``, ``d`` and, with ``se_choice``, ``se``."""
        return ("ks", "e", "d", "se") if self.se_choice else ("ks", "e", "d")

    def to_dict(self) -> dict:
        """The configuration as plain data; the structure fields are written only when they differ from
        OFA's defaults, so that a default configuration reads as it always has."""
        out = {}
        for k, v in self.__dict__.items():
            if k in _STRUCTURE_DEFAULTS and v == _STRUCTURE_DEFAULTS[k]:
                continue
            out[k] = list(v) if isinstance(v, tuple) else v
        return out

    @classmethod
    def from_dict(cls, d: dict) -> SupernetConfig:
        if not isinstance(d, dict):
            raise NasjaxInputError(f"config: got {type(d).__name__}, expected a mapping")
        known = set(cls.__dataclass_fields__)
        unknown = set(d) - known
        require(not unknown, "config", sorted(unknown), f"keys among {sorted(known)}")
        return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items()})


# ----------------------------------------------------------------------------------------------------
# modules


def _select(value, options: Sequence[int], outputs: Sequence[Any]):
    """``outputs[options.index(value)]`` for a traced scalar ``value`` (0 when it matches no option)."""
    out = jnp.zeros_like(jnp.asarray(outputs[0]))
    for o, r in zip(options, outputs):
        out = jnp.where(value == o, r, out)
    return out


class FirstBlock(nnx.Module):
    """OFA's first block: 3x3 depthwise -> BN -> ReLU -> 1x1 -> BN, identity residual when widths match."""

    def __init__(self, cin: int, cout: int, cfg: SupernetConfig, *, rngs: nnx.Rngs):
        self.w_dw = nnx.Param(_kaiming(rngs, (3, 3, cin), 9 * cin))
        self.bn_dw = BatchNorm(cin, cfg.bn_momentum, cfg.bn_eps)
        self.w_pw = nnx.Param(_kaiming(rngs, (1, 1, cin, cout), cout))
        self.bn_pw = BatchNorm(cout, cfg.bn_momentum, cfg.bn_eps)
        self.impl = cfg.depthwise_impl
        self.act = cfg.stage_acts[0]
        self.stride = cfg.stage_strides[0]
        self.residual = cin == cout and self.stride == 1

    def __call__(self, x, mode="eval"):
        h = ACTIVATIONS[self.act](self.bn_dw(depthwise_conv(x, self.w_dw[...], self.stride, self.impl), mode))
        y = self.bn_pw(conv2d(h, self.w_pw[...]), mode)
        return x + y if self.residual else y


class ElasticMBConv(nnx.Module):
    """One elastic inverted-residual layer (OFA's ``DynamicMBConvLayer`` inside a ``ResidualBlock``)."""

    def __init__(self, spec: LayerSpec, cfg: SupernetConfig, *, rngs: nnx.Rngs):
        mid, kmax = spec.max_mid, max(cfg.ks_list)
        self.spec = spec
        self.ks_list = cfg.ks_list
        self.expand_list = cfg.expand_list
        self.impl = cfg.depthwise_impl
        self.w_expand = nnx.Param(_kaiming(rngs, (1, 1, spec.cin, mid), mid))
        self.bn_expand = BatchNorm(mid, cfg.bn_momentum, cfg.bn_eps)
        self.w_dw = nnx.Param(_kaiming(rngs, (kmax, kmax, mid), kmax * kmax * mid))
        # kernel transformation matrices, largest -> smallest: transforms[i] maps ks_list[i+1] -> ks_list[i]
        self.transforms = nnx.List(
            [nnx.Param(jnp.eye(k * k, dtype=jnp.float32)) for k in cfg.ks_list[:-1]]
        )
        self.bn_dw = BatchNorm(mid, cfg.bn_momentum, cfg.bn_eps)
        self.se = SqueezeExcite(mid, make_divisible(mid // 4, 8), rngs=rngs) if spec.use_se else None
        self.w_project = nnx.Param(_kaiming(rngs, (1, 1, mid, spec.cout), spec.cout))
        self.bn_project = BatchNorm(spec.cout, cfg.bn_momentum, cfg.bn_eps)

    def kernels(self) -> list[jax.Array]:
        """Effective depthwise kernels ``[k, k, mid]`` for every ``k`` of ``ks_list`` (ascending)."""
        w = self.w_dw[...]
        out = [w]
        for i in range(len(self.ks_list) - 1, 0, -1):
            big, small = self.ks_list[i], self.ks_list[i - 1]
            off = (big - small) // 2
            crop = w[off:off + small, off:off + small]  # [small, small, C]
            t = self.transforms[i - 1][...]  # [small^2, small^2], OFA applies vec @ T^T
            w = (t @ crop.reshape(small * small, -1)).reshape(small, small, -1)
            out.append(w)
        return out[::-1]

    def __call__(self, x, ks, e, active, mode="eval", se=None):
        """One layer. ``ks``, ``e``, ``active`` (and ``se``, 0/1, with an elective SE) are Python ints
        (subnet-shaped program), traced scalars (masked program) or traced ``[N]`` vectors, one value per
        example of ``x`` (masked program, a different path per example: BINAS's multipath sampling)."""
        spec = self.spec
        act = ACTIVATIONS[spec.act]
        # masked program: one compiled function for every (ks, e, active, se)
        per_example = jnp.ndim(ks) == 1
        col = (lambda v: jnp.asarray(v)[:, None, None, None]) if per_example else (lambda v: v)
        mid_max = self.w_dw[...].shape[-1]
        n_mid = _select(e, self.expand_list, spec.mid)
        mask = jnp.arange(mid_max) < jnp.asarray(n_mid)[..., None]  # [mid] or [N, mid]
        keep = jnp.logical_and(mask, jnp.asarray(active)[..., None])
        if per_example:  # statistics of a channel change when any example uses it
            keep, mask = jnp.any(keep, axis=0), mask[:, None, None, :]
        h = act(self.bn_expand(conv2d(x, self.w_expand[...]), mode, keep)) * mask
        kmax = max(self.ks_list)
        padded = [jnp.pad(k, (((kmax - k.shape[0]) // 2,) * 2, ((kmax - k.shape[0]) // 2,) * 2, (0, 0)))
                  for k in self.kernels()]
        if per_example and resolve_depthwise_impl(self.impl) == "xla":  # one grouped conv per kernel size
            h = sum(jnp.where(col(ks == k), depthwise_conv(h, w, spec.stride, self.impl), 0.0)
                    for k, w in zip(self.ks_list, padded))
        else:
            h = depthwise_conv(h, _select(col(ks), self.ks_list, padded), spec.stride, self.impl)
        h = act(self.bn_dw(h, mode, keep)) * mask
        if self.se is not None:
            n_hidden = _select(e, self.expand_list, spec.se_hidden)
            hidden = jnp.arange(self.se.b_reduce[...].shape[0]) < jnp.asarray(n_hidden)[..., None]
            gated = self.se(h, hidden_mask=hidden)
            h = gated if se is None else jnp.where(col(se == 1), gated, h)
        y = self.bn_project(conv2d(h, self.w_project[...]), mode, jnp.any(active) if per_example else active)
        if spec.residual:
            return x + jnp.where(col(active), y, 0.0)
        return y  # a layer without residual is the first of its stage: always active


class OFAMobileNetV3(nnx.Module):
    """The elastic MobileNetV3 supernet (see the module docstring)."""

    def __init__(self, config: SupernetConfig | None = None, *, rngs: nnx.Rngs):
        cfg = SupernetConfig() if config is None else config
        require(isinstance(cfg, SupernetConfig), "config", type(cfg).__name__, "a SupernetConfig")
        w = cfg.widths()
        self.config = cfg
        self.first_conv = ConvBN(cfg.in_channels, w["stem"], 3, 2, "h_swish", bn_momentum=cfg.bn_momentum,
                                 bn_eps=cfg.bn_eps, rngs=rngs)
        self.first_block = FirstBlock(w["stem"], w["first_block"], cfg, rngs=rngs)
        self.blocks = nnx.List([ElasticMBConv(s, cfg, rngs=rngs) for s in cfg.layer_specs()])
        self.final_expand = ConvBN(w["stages"][-1], w["final_expand"], 1, 1, "h_swish",
                                   bn_momentum=cfg.bn_momentum, bn_eps=cfg.bn_eps, rngs=rngs)
        self.w_mix = nnx.Param(_kaiming(rngs, (w["final_expand"], w["feature_mix"]), w["feature_mix"]))
        self.b_mix = nnx.Param(jnp.zeros((w["feature_mix"],), jnp.float32)) if cfg.head_bias else None
        # classifier: OFA initialises linear layers with N(0, 0.01^2) weights and zero bias
        self.w_cls = nnx.Param(_normal(rngs, (w["feature_mix"], cfg.num_classes), 0.01))
        self.b_cls = nnx.Param(jnp.zeros((cfg.num_classes,), jnp.float32))

    def __call__(self, x, subnet, mode: str = "eval", dropout_key: jax.Array | None = None):
        cfg = self.config
        require(mode in ("eval", "train", "calib"), "mode", mode, "'eval', 'train' or 'calib'")
        require(x.ndim == 4 and x.shape[-1] == cfg.in_channels, "x.shape", tuple(x.shape),
                f"[N, H, W, {cfg.in_channels}] (NHWC)")
        se = subnet.get("se") if cfg.se_choice else None
        require(not cfg.se_choice or se is not None, "subnet", sorted(subnet), "keys ks, e, d, se (elective SE)")
        subnet = {k: jnp.asarray(subnet[k], jnp.int32) for k in cfg.subnet_keys}
        if jnp.ndim(subnet["d"]) == 2:  # one path per example: layer-major [L, N] / [S, N]
            require(subnet["d"].shape[0] == x.shape[0], "subnet.d", tuple(subnet["d"].shape),
                    f"[{x.shape[0]}, {NUM_STAGES}] (one path per example of x) or [{NUM_STAGES}]")
            subnet = {k: subnet[k].T for k in cfg.subnet_keys}
        se = subnet.get("se")
        x = self.first_conv(x, mode)
        x = self.first_block(x, mode)
        D = cfg.max_depth
        for s in range(NUM_STAGES):
            x = self.blocks[s * D](x, subnet["ks"][s * D], subnet["e"][s * D], True, mode,
                                   None if se is None else se[s * D])
            x = self._scan_stage(x, s, subnet, se, mode)
        x = self.final_expand(x, mode)
        x = jnp.mean(x, axis=(1, 2))
        x = x @ self.w_mix[...]
        if self.b_mix is not None:
            x = x + self.b_mix[...]
        x = ACTIVATIONS["h_swish"](x)
        if mode == "train" and dropout_key is not None and cfg.dropout_rate > 0:
            keep = jax.random.bernoulli(dropout_key, 1.0 - cfg.dropout_rate, x.shape)
            x = jnp.where(keep, x / (1.0 - cfg.dropout_rate), 0.0)
        return x @ self.w_cls[...] + self.b_cls[...]


    def _scan_stage(self, x, s: int, subnet, se, mode: str):
        """Layers 1.. of stage ``s`` (identical shapes) as one ``lax.scan`` over their stacked states:
        the layer body is compiled once per stage instead of once per layer."""
        D = self.config.max_depth
        rest = [self.blocks[s * D + i] for i in range(1, D)]
        if not rest:
            return x
        graphdef = nnx.graphdef(rest[0])
        stacked = jax.tree.map(lambda *a: jnp.stack(a), *[nnx.state(m) for m in rest])
        sl = slice(s * D + 1, (s + 1) * D)
        active = (jnp.arange(1, D) < jnp.asarray(subnet["d"][s])[..., None]).T  # [D-1] or [D-1, N]
        xs = (stacked, subnet["ks"][sl], subnet["e"][sl], active, None if se is None else se[sl])

        def body(h, inp):
            state, ks, e, active, se_l = inp
            layer = nnx.merge(graphdef, state)
            h = layer(h, ks, e, active, mode, se_l)
            return h, (nnx.state(layer, nnx.BatchStat) if mode != "eval" else None)

        x, new_stats = jax.lax.scan(body, x, xs)
        if mode != "eval":
            for j, m in enumerate(rest):
                nnx.update(m, jax.tree.map(lambda a, j=j: a[j], new_stats))
        return x


# ----------------------------------------------------------------------------------------------------
# functional API


class ModelState(NamedTuple):
    """A supernet as pure data: ``graphdef`` (static), ``params`` and ``batch_stats`` (nnx.State)."""

    graphdef: Any
    params: Any
    batch_stats: Any


def split_model(model: OFAMobileNetV3) -> ModelState:
    graphdef, params, batch_stats = nnx.split(model, nnx.Param, nnx.BatchStat)
    return ModelState(graphdef, params, batch_stats)


def merge_model(state: ModelState) -> OFAMobileNetV3:
    return nnx.merge(state.graphdef, state.params, state.batch_stats)


def _forward(graphdef, params, batch_stats, subnet, x, mode, dropout_key=None):
    model = nnx.merge(graphdef, params, batch_stats)
    logits = model(x, subnet, mode, dropout_key)
    return logits, nnx.state(model, nnx.BatchStat)


@partial(jax.jit, static_argnums=(0,), static_argnames=("train",))
def apply(graphdef, params, batch_stats, subnet, x, train: bool = False, dropout_key=None):
    """Logits of ``subnet`` on ``x`` (eval: running BN statistics), or ``(logits, new_batch_stats)``
    when ``train`` (batch statistics, momentum update of the running ones; dropout iff ``dropout_key``).

    ``subnet`` values are not checked inside the compiled program (a value outside ``ks_list`` /
    ``expand_list`` would select zero channels): build subnets with ``subnet_arrays`` /
    ``random_subnets`` / ``subnet_arrays``, which validate.
    """
    logits, stats = _forward(graphdef, params, batch_stats, subnet, x, "train" if train else "eval", dropout_key)
    return (logits, stats) if train else logits


@partial(jax.jit, static_argnums=(0,))
def calib_stats(graphdef, params, batch_stats, subnet, x):
    """Per-BN batch mean and biased variance of ``subnet`` on ``x`` (normalising with them), as a
    ``batch_stats`` state; inactive layers and channels keep the values of ``batch_stats``."""
    return _forward(graphdef, params, batch_stats, subnet, x, "calib")[1]


@partial(jax.jit, static_argnums=(0,), static_argnames=("per_subnet_stats",))
def apply_subnets(graphdef, params, batch_stats, subnets, x, per_subnet_stats: bool = False):
    """Eval-mode logits ``[S, N, classes]`` of ``S`` stacked subnets on one input batch (``vmap``)."""
    f = lambda p, st, sn: _forward(graphdef, p, st, sn, x, "eval")[0]  # noqa: E731
    return jax.vmap(f, in_axes=(None, 0 if per_subnet_stats else None, 0))(params, batch_stats, subnets)


# ----------------------------------------------------------------------------------------------------
# subnets as data


def validate_subnet(d: Any, config: SupernetConfig) -> dict[str, list[int]]:
    """Check one subnet (OFA dict or arrays) against ``config``'s lists; returns Python lists."""
    if not isinstance(d, dict):
        raise NasjaxInputError(f"subnet: got {type(d).__name__}, expected a mapping with keys ks, e, d")
    out = {}
    fields = [("ks", config.num_layers, config.ks_list), ("e", config.num_layers, config.expand_list),
              ("d", NUM_STAGES, config.depth_list)]
    if config.se_choice:
        fields.append(("se", config.num_layers, (0, 1)))
    for key, n, allowed in fields:
        if key not in d:
            raise NasjaxInputError(f"subnet: missing key {key!r}, expected {n} values from {list(allowed)}")
        v = np.asarray(d[key])
        if v.shape != (n,):
            raise NasjaxInputError(f"subnet.{key}: got shape {v.shape}, expected ({n},) values from {list(allowed)}")
        bad = [i for i, x in enumerate(v.tolist()) if x not in allowed]
        if bad:
            raise NasjaxInputError(f"subnet.{key}[{bad[0]}]: got {v[bad[0]]!r}, expected one of {list(allowed)}")
        out[key] = [int(x) for x in v.tolist()]
    return out


def subnet_arrays(subnets: Any, config: SupernetConfig) -> dict[str, jax.Array]:
    """One OFA dict -> ``{ks[L], e[L], d[S]}`` int32; a list of dicts -> stacked ``[N, ...]``."""
    keys = config.subnet_keys
    if isinstance(subnets, dict):
        v = validate_subnet(subnets, config)
        return {k: jnp.asarray(v[k], jnp.int32) for k in keys}
    require(isinstance(subnets, (list, tuple)) and len(subnets) > 0, "subnets", type(subnets).__name__,
            "an OFA dict or a non-empty list of them")
    vs = [validate_subnet(s, config) for s in subnets]
    return {k: jnp.asarray(np.array([v[k] for v in vs]), jnp.int32) for k in keys}


def subnet_to_ofa(subnet: dict, index: int | None = None) -> dict[str, list[int]]:
    """Arrays (optionally the ``index``-th of a stacked batch) -> OFA dict of Python ints."""
    sel = (lambda a: np.asarray(a)) if index is None else (lambda a: np.asarray(a)[index])
    return {k: [int(x) for x in sel(subnet[k])] for k in _keys(subnet)}


def num_subnets(subnets: dict) -> int:
    return int(np.asarray(subnets["d"]).reshape(-1, NUM_STAGES).shape[0])


def _keys(subnet: dict) -> tuple[str, ...]:
    """The subnet keys present in ``subnet`` (``se`` only for supernets with an elective SE)."""
    return ("ks", "e", "d", "se") if "se" in subnet else ("ks", "e", "d")


def stack_subnets(subnets: Sequence[dict]) -> dict[str, jax.Array]:
    """Stack subnets (single, int arrays) along a new leading axis."""
    return {k: jnp.stack([jnp.asarray(s[k], jnp.int32) for s in subnets]) for k in _keys(subnets[0])}


def index_subnets(subnets: dict, idx) -> dict[str, jax.Array]:
    return {k: jnp.asarray(subnets[k])[idx] for k in _keys(subnets)}


def _uniform(config: SupernetConfig, k: int, e: int, d: int, se: int) -> dict[str, jax.Array]:
    L = config.num_layers
    sub = {"ks": [k] * L, "e": [e] * L, "d": [d] * NUM_STAGES}
    if config.se_choice:
        sub["se"] = [se] * L
    return subnet_arrays(sub, config)


def max_subnet(config: SupernetConfig) -> dict[str, jax.Array]:
    """The largest subnet (largest kernel, expansion and depth everywhere; SE on where elective)."""
    return _uniform(config, max(config.ks_list), max(config.expand_list), max(config.depth_list), 1)


def min_subnet(config: SupernetConfig) -> dict[str, jax.Array]:
    """The smallest subnet (smallest kernel, expansion and depth everywhere; SE off where elective)."""
    return _uniform(config, min(config.ks_list), min(config.expand_list), min(config.depth_list), 0)


def random_subnets(config: SupernetConfig, n: int, seed: int) -> dict[str, jax.Array]:
    """``n`` subnets drawn uniformly per position (OFA's ``sample_active_subnet``), seeded numpy RNG."""
    require(isinstance(n, int) and n >= 1, "n", n, "a positive integer")
    rng = np.random.default_rng(seed)
    L = config.num_layers
    out = {
        "ks": jnp.asarray(rng.choice(config.ks_list, size=(n, L)), jnp.int32),
        "e": jnp.asarray(rng.choice(config.expand_list, size=(n, L)), jnp.int32),
        "d": jnp.asarray(rng.choice(config.depth_list, size=(n, NUM_STAGES)), jnp.int32),
    }
    if config.se_choice:
        out["se"] = jnp.asarray(rng.integers(0, 2, size=(n, L)), jnp.int32)
    return out

