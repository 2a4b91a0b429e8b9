"""Converter from timm's HardCoRe-NAS / BINAS networks (PyTorch, ``timm.models.mobilenetv3.MobileNetV3``
built from a BINAS architecture string by timm's own decoder ``decode_arch_def``) to nasjax's BINAS
supernet (``nasjax.models.binas``): the weights of the one network go into the supernet's shared weights
at the places the network's subnet uses, so that the supernet evaluated on that subnet gives the
network's logits.

Layout changes (PyTorch NCHW/OIHW -> nasjax NHWC/HWIO):

* dense conv ``[O, I, kh, kw]`` -> ``[kh, kw, I, O]``; depthwise ``[C, 1, k, k]`` -> ``[k, k, C]``, a
  3x3 kernel centred in the supernet's 5x5 (the kernel transformation matrices stay the identity,
  so the supernet's 3x3 is the centre of its 5x5);
* an inverted residual's expand / depthwise / SE / project weights fill the first ``mid`` channels
  (``mid = make_divisible(in * e, 8)``, SE ``make_divisible(mid / 4, 8)`` hidden units, as timm);
* SE 1x1 convs ``[O, I, 1, 1]`` -> dense ``[I, O]`` with their biases; conv head ``[1280, 960, 1, 1]``
  (biased) -> ``w_mix``/``b_mix``; classifier ``[C, 1280]`` -> ``[1280, C]``;
* BatchNorm ``weight, bias, running_mean, running_var`` -> ``scale, bias, mean, var``.

timm imports torchvision at package import; :func:`import_timm` imports it under nasjax's
torchvision stand-in (``nasjax.convert.stand_in``) when torchvision is missing or unusable.
torch and timm are imported lazily.
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np
from flax import nnx

from nasjax.convert.stand_in import torchvision_stand_in
from nasjax.errors import NasjaxInputError, require
from nasjax.models.binas import binas_subnets, binas_supernet_config
from nasjax.models.mobilenetv3 import ModelState, OFAMobileNetV3, SupernetConfig, split_model
from nasjax.spaces.binas import DEFAULT, BinasStructure, from_string, to_blocks

_TIMM_TORCHVISION = ("transforms.functional", "ops.misc", "datasets", "models.feature_extraction", "utils")


def import_timm():
    """The ``timm`` package (imported with the torchvision stand-in when torchvision cannot load)."""
    with torchvision_stand_in(_TIMM_TORCHVISION):
        import timm
        import timm.models.hardcorenas  # noqa: F401
        from timm.models._efficientnet_builder import decode_arch_def  # noqa: F401
    return timm


def timm_binas_model(arch, structure: BinasStructure = DEFAULT, *, num_classes: int = 1000, in_chans: int = 3):
    """timm's HardCoRe-NAS network of a BINAS architecture (string or choice vector), randomly initialised.

    Built as ``timm.models.hardcorenas`` builds ``hardcorenas_a..f``: ``decode_arch_def`` of the block
    strings, stem 32, 1280 features, hard-swish, SE with a hard-sigmoid gate and ReLU.
    """
    import_timm()
    from timm.models.hardcorenas import _gen_hardcorenas

    a = from_string(arch, structure) if isinstance(arch, str) else np.asarray(arch)
    blocks = to_blocks(a, structure)
    return _gen_hardcorenas(False, "hardcorenas_a", blocks, num_classes=num_classes, in_chans=in_chans)


def _np(t) -> np.ndarray:
    return t.detach().cpu().numpy().astype(np.float32)


def _set(param, value: np.ndarray, index=None, name: str = "") -> None:
    cur = param[...]
    if index is None:
        require(cur.shape == value.shape, name, value.shape, f"shape {cur.shape}")
        param.set_value(jnp.asarray(value))
    else:
        param.set_value(cur.at[index].set(jnp.asarray(value)))


def _bn(bn, tbn, n: int | None = None) -> None:
    sl = slice(None) if n is None else slice(0, n)
    for ours, theirs in (("scale", "weight"), ("bias", "bias"), ("mean", "running_mean"), ("var", "running_var")):
        _set(getattr(bn, ours), _np(getattr(tbn, theirs)), sl)


def _conv(w) -> np.ndarray:
    return np.transpose(_np(w), (2, 3, 1, 0))  # OIHW -> HWIO


def from_timm(model: Any, arch, structure: BinasStructure = DEFAULT, *, seed: int = 0
              ) -> tuple[ModelState, SupernetConfig, dict]:
    """Convert a timm HardCoRe-NAS network of architecture ``arch`` into the BINAS supernet.

    Args:
      model: the timm ``MobileNetV3`` (e.g. from :func:`timm_binas_model`), in eval mode or not.
      arch: its BINAS architecture (string or choice vector).
      structure: the BINAS structure (widths, stages, configurations).
      seed: initialisation of the supernet weights the network does not use.

    Returns:
      ``(state, config, subnet)``: the supernet's :class:`ModelState`, its :class:`SupernetConfig` and
      the subnet arrays of ``arch``; ``apply(state..., subnet, x_nhwc)`` equals ``model(x_nchw)``.
    """
    a = from_string(arch, structure) if isinstance(arch, str) else np.asarray(arch)
    sd = structure.to_dict()
    num_classes = int(model.classifier.weight.shape[0])
    in_chans = int(model.conv_stem.weight.shape[1])
    cfg = binas_supernet_config(sd, num_classes=num_classes, in_channels=in_chans)
    net = OFAMobileNetV3(cfg, rngs=nnx.Rngs(seed))
    _set(net.first_conv.w, _conv(model.conv_stem.weight), name="conv_stem.weight")
    _bn(net.first_conv.bn, model.bn1)
    ds = model.blocks[0][0]
    _set(net.first_block.w_dw, _conv(ds.conv_dw.weight)[:, :, 0, :], name="blocks.0.0.conv_dw.weight")
    _bn(net.first_block.bn_dw, ds.bn1)
    _set(net.first_block.w_pw, _conv(ds.conv_pw.weight), name="blocks.0.0.conv_pw.weight")
    _bn(net.first_block.bn_pw, ds.bn2)
    D = cfg.max_depth
    kmax = max(cfg.ks_list)
    subnet = binas_subnets(a, sd)
    depths = np.asarray(subnet["d"])
    if len(model.blocks) != cfg.num_layers // D + 2:
        raise NasjaxInputError(f"timm model: {len(model.blocks)} block stages, expected {cfg.num_layers // D + 2}")
    for s in range(len(depths)):
        stage = model.blocks[s + 1]
        if len(stage) != depths[s]:
            raise NasjaxInputError(f"timm model stage {s + 1}: {len(stage)} blocks, expected the architecture's "
                                   f"depth {int(depths[s])}")
        for j, blk in enumerate(stage):
            layer = net.blocks[s * D + j]
            where = f"blocks.{s + 1}.{j}"
            mid = int(blk.conv_pw.weight.shape[0])
            e = int(np.asarray(subnet["e"])[s * D + j])
            require(mid == layer.spec.mid[cfg.expand_list.index(e)], f"{where}.conv_pw", mid,
                    f"{layer.spec.mid[cfg.expand_list.index(e)]} expand channels (expansion {e})")
            _set(layer.w_expand, _conv(blk.conv_pw.weight), (slice(None), slice(None), slice(None), slice(0, mid)))
            _bn(layer.bn_expand, blk.bn1, mid)
            k = int(blk.conv_dw.weight.shape[-1])
            off = (kmax - k) // 2
            _set(layer.w_dw, _conv(blk.conv_dw.weight)[:, :, 0, :],
                 (slice(off, off + k), slice(off, off + k), slice(0, mid)))
            _bn(layer.bn_dw, blk.bn2, mid)
            if hasattr(blk.se, "conv_reduce"):
                rd = int(blk.se.conv_reduce.weight.shape[0])
                require(rd == layer.spec.se_hidden[cfg.expand_list.index(e)], f"{where}.se.conv_reduce", rd,
                        f"{layer.spec.se_hidden[cfg.expand_list.index(e)]} SE channels")
                _set(layer.se.w_reduce, _conv(blk.se.conv_reduce.weight)[0, 0], (slice(0, mid), slice(0, rd)))
                _set(layer.se.b_reduce, _np(blk.se.conv_reduce.bias), slice(0, rd))
                _set(layer.se.w_expand, _conv(blk.se.conv_expand.weight)[0, 0], (slice(0, rd), slice(0, mid)))
                _set(layer.se.b_expand, _np(blk.se.conv_expand.bias), slice(0, mid))
            _set(layer.w_project, _conv(blk.conv_pwl.weight), (slice(None), slice(None), slice(0, mid)))
            _bn(layer.bn_project, blk.bn3)
    head = model.blocks[-1][0]
    _set(net.final_expand.w, _conv(head.conv.weight), name="head conv")
    _bn(net.final_expand.bn, head.bn1)
    _set(net.w_mix, _conv(model.conv_head.weight)[0, 0], name="conv_head.weight")
    _set(net.b_mix, _np(model.conv_head.bias), name="conv_head.bias")
    _set(net.w_cls, _np(model.classifier.weight).T, name="classifier.weight")
    _set(net.b_cls, _np(model.classifier.bias), name="classifier.bias")
    return split_model(net), cfg, subnet


__all__ = ["import_timm", "timm_binas_model", "from_timm"]
