"""Converter from Once-for-All PyTorch checkpoints (Cai et al., ICLR 2020; the ``ofa`` package's
``OFAMobileNetV3`` state_dict, e.g. ``ofa_mbv3_d234_e346_k357_w1.0``) to nasjax's Flax supernet.

Layout changes (PyTorch NCHW/OIHW -> nasjax NHWC/HWIO):

* dense conv ``[O, I, kh, kw]`` -> ``[kh, kw, I, O]``; depthwise ``[C, 1, k, k]`` -> ``[k, k, C]``;
* SE 1x1 convs ``[O, I, 1, 1]`` -> dense ``[I, O]``; linear ``[O, I]`` -> ``[I, O]``;
* kernel transformation matrices ``{big}to{small}_matrix`` are copied as they are (OFA computes
  ``vec(W_small) = T vec(center(W_big))`` row-major over (kh, kw), which nasjax reproduces);
* BatchNorm ``weight, bias, running_mean, running_var`` -> ``scale, bias, mean, var``
  (``num_batches_tracked`` is dropped).

Both key spellings of OFA's checkpoints are accepted: the current one (``.conv.``, ``.bn.bn.``,
``.conv.conv.weight``, ``.linear.linear.``) and the published one (``.mobile_inverted_conv.``,
``.bn.``, ``.conv.weight``, ``.linear.``). torch is imported lazily and only to read ``.pth`` files or
tensors; numpy state dicts need no torch.

``import_ofa_reference()`` imports the ``ofa`` package for tests and benchmarks. ``ofa``'s model code
never uses torchvision, but ``ofa.utils`` imports ``torchvision.transforms`` (for its data loader) at
package import. When torchvision is missing or unusable (PyPI's torchvision wheels are CUDA builds
that do not load beside the CPU build ``torch==2.13.0+cpu``), a minimal stand-in module is placed in
``sys.modules`` for the duration of the import and removed afterwards (``nasjax.convert.stand_in``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import jax.numpy as jnp
import numpy as np
from flax import nnx

from nasjax.convert.stand_in import torchvision_stand_in
from nasjax.errors import NasjaxInputError
from nasjax.models.mobilenetv3 import ModelState, OFAMobileNetV3, SupernetConfig, split_model


def _to_numpy(v, key: str) -> np.ndarray:
    if hasattr(v, "detach"):  # torch tensor
        v = v.detach().cpu().numpy()
    a = np.asarray(v)
    if a.dtype.kind not in "fiu":
        raise NasjaxInputError(f"state_dict[{key!r}]: got dtype {a.dtype}, expected a numeric array")
    return a.astype(np.float32)


def canonical_key(key: str) -> str:
    """Map both OFA key spellings to one: ``.conv.`` blocks, single ``.bn.``/``.conv.``/``.linear.``."""
    key = key.replace(".mobile_inverted_conv.", ".conv.")
    key = key.replace(".bn.bn.", ".bn.")
    key = re.sub(r"\.conv\.conv\.weight$", ".conv.weight", key)
    key = key.replace(".linear.linear.", ".linear.")
    return key


class _Layout:
    """A PyTorch -> nasjax layout change and its inverse."""

    def __init__(self, fwd: Callable, inv: Callable):
        self.fwd, self.inv = fwd, inv


_DENSE = _Layout(lambda a: a.transpose(2, 3, 1, 0), lambda a: a.transpose(3, 2, 0, 1))  # OIHW <-> HWIO
_DEPTHWISE = _Layout(lambda a: a[:, 0].transpose(1, 2, 0), lambda a: a.transpose(2, 0, 1)[:, None])  # C1kk <-> kkC
_CONV1x1_FC = _Layout(lambda a: a.reshape(a.shape[0], a.shape[1]).T, lambda a: a.T[:, :, None, None])  # OI11 <-> IO
_LINEAR = _Layout(lambda a: a.T, lambda a: a.T)  # OI <-> IO
_SAME = _Layout(lambda a: a, lambda a: a)


def _bn_entries(prefix: str, bn) -> list[tuple[str, Any, _Layout]]:
    return [(f"{prefix}.bn.weight", bn.scale, _SAME), (f"{prefix}.bn.bias", bn.bias, _SAME),
            (f"{prefix}.bn.running_mean", bn.mean, _SAME), (f"{prefix}.bn.running_var", bn.var, _SAME)]


def _entries(model: OFAMobileNetV3) -> list[tuple[str, Any, _Layout]]:
    """(canonical OFA key, nasjax variable, layout transform) for every tensor of the supernet."""
    out = [("first_conv.conv.weight", model.first_conv.w, _DENSE)]
    out += _bn_entries("first_conv", model.first_conv.bn)
    fb = model.first_block
    out += [("blocks.0.conv.depth_conv.conv.weight", fb.w_dw, _DEPTHWISE)]
    out += _bn_entries("blocks.0.conv.depth_conv", fb.bn_dw)
    out += [("blocks.0.conv.point_linear.conv.weight", fb.w_pw, _DENSE)]
    out += _bn_entries("blocks.0.conv.point_linear", fb.bn_pw)
    ks = model.config.ks_list
    for j, blk in enumerate(model.blocks, start=1):
        p = f"blocks.{j}.conv"
        out += [(f"{p}.inverted_bottleneck.conv.weight", blk.w_expand, _DENSE)]
        out += _bn_entries(f"{p}.inverted_bottleneck", blk.bn_expand)
        out += [(f"{p}.depth_conv.conv.weight", blk.w_dw, _DEPTHWISE)]
        out += [(f"{p}.depth_conv.conv.{ks[i + 1]}to{ks[i]}_matrix", blk.transforms[i], _SAME)
                for i in range(len(ks) - 1)]
        out += _bn_entries(f"{p}.depth_conv", blk.bn_dw)
        if blk.se is not None:
            out += [(f"{p}.depth_conv.se.fc.reduce.weight", blk.se.w_reduce, _CONV1x1_FC),
                    (f"{p}.depth_conv.se.fc.reduce.bias", blk.se.b_reduce, _SAME),
                    (f"{p}.depth_conv.se.fc.expand.weight", blk.se.w_expand, _CONV1x1_FC),
                    (f"{p}.depth_conv.se.fc.expand.bias", blk.se.b_expand, _SAME)]
        out += [(f"{p}.point_linear.conv.weight", blk.w_project, _DENSE)]
        out += _bn_entries(f"{p}.point_linear", blk.bn_project)
    out += [("final_expand_layer.conv.weight", model.final_expand.w, _DENSE)]
    out += _bn_entries("final_expand_layer", model.final_expand.bn)
    out += [("feature_mix_layer.conv.weight", model.w_mix, _CONV1x1_FC),
            ("classifier.linear.weight", model.w_cls, _LINEAR),
            ("classifier.linear.bias", model.b_cls, _SAME)]
    return out


def _unwrap(state_dict: Any) -> Mapping[str, Any]:
    if isinstance(state_dict, Mapping) and "state_dict" in state_dict and isinstance(state_dict["state_dict"], Mapping):
        state_dict = state_dict["state_dict"]  # OFA's training checkpoints wrap the weights
    if not isinstance(state_dict, Mapping) or not state_dict:
        raise NasjaxInputError(f"state_dict: got {type(state_dict).__name__}, expected a non-empty mapping "
                               "of OFA parameter names to tensors/arrays")
    return state_dict


def load_ofa_model(state_dict: Any, config: SupernetConfig | None = None) -> OFAMobileNetV3:
    """An :class:`OFAMobileNetV3` holding the weights and BN statistics of an OFA ``state_dict``.

    Every tensor of the nasjax supernet must be present with the expected shape, and every tensor of the
    state_dict must be used (``num_batches_tracked`` aside); otherwise ``NasjaxInputError`` names the key.
    """
    cfg = SupernetConfig() if config is None else config
    sd = {}
    for k, v in _unwrap(state_dict).items():
        if not isinstance(k, str):
            raise NasjaxInputError(f"state_dict key: got {k!r}, expected a string")
        if k.endswith("num_batches_tracked"):
            continue
        ck = canonical_key(k)
        if ck in sd:
            raise NasjaxInputError(f"state_dict[{k!r}]: duplicate of another key spelling ({ck!r})")
        sd[ck] = (k, v)
    model = OFAMobileNetV3(cfg, rngs=nnx.Rngs(0))
    used = set()
    for key, var, fn in _entries(model):
        if key not in sd:
            raise NasjaxInputError(f"state_dict: missing {key!r} (config width_mult={cfg.width_mult}, "
                                   f"ks_list={cfg.ks_list}, expand_list={cfg.expand_list}); is it an OFAMobileNetV3 "
                                   "checkpoint of this configuration?")
        orig, v = sd[key]
        a = fn.fwd(_to_numpy(v, orig))
        if a.shape != var[...].shape:
            raise NasjaxInputError(f"state_dict[{orig!r}]: shape {a.shape} after layout change, expected "
                                   f"{var[...].shape} for config width_mult={cfg.width_mult}, "
                                   f"num_classes={cfg.num_classes}, in_channels={cfg.in_channels}")
        if not np.all(np.isfinite(a)):
            raise NasjaxInputError(f"state_dict[{orig!r}]: non-finite values, expected finite weights")
        var.set_value(jnp.asarray(a))
        used.add(key)
    extra = sorted(sd[k][0] for k in set(sd) - used)
    if extra:
        raise NasjaxInputError(f"state_dict: {len(extra)} unexpected key(s), e.g. {extra[:3]}; expected only "
                               "OFAMobileNetV3 tensors of this configuration")
    return model


def convert_state_dict(state_dict: Any, config: SupernetConfig | None = None) -> ModelState:
    """OFA ``state_dict`` (torch tensors or numpy arrays) -> ``ModelState(graphdef, params, batch_stats)``."""
    return split_model(load_ofa_model(state_dict, config))


def to_ofa_state_dict(model) -> dict[str, np.ndarray]:
    """The inverse conversion: a nasjax supernet (module or ``ModelState``) -> OFA ``state_dict`` (numpy,
    single ``.bn.``/``.conv.weight`` key spelling, no ``num_batches_tracked``), which ``ofa``'s
    ``OFAMobileNetV3.load_state_dict`` accepts after ``torch.from_numpy``."""
    if isinstance(model, ModelState):
        model = nnx.merge(model.graphdef, model.params, model.batch_stats)
    return {key: np.ascontiguousarray(fn.inv(np.asarray(var[...]))) for key, var, fn in _entries(model)}


def load_torch_checkpoint(path: str | Path) -> dict[str, np.ndarray]:
    """Read an OFA ``.pth`` file (``weights_only=True``) into a numpy state dict; needs torch."""
    p = Path(path)
    if not p.is_file():
        raise NasjaxInputError(f"checkpoint: {str(p)!r} does not exist, expected an OFA .pth file")
    try:
        import torch
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise NasjaxInputError("checkpoint: reading .pth files needs torch (pip install 'nasjax[torch]')") from e
    try:
        obj = torch.load(str(p), map_location="cpu", weights_only=True)
    except Exception as e:  # corrupted or not a torch file
        raise NasjaxInputError(f"checkpoint: {str(p)!r} is not a readable torch checkpoint ({e})") from e
    return {k: _to_numpy(v, k) for k, v in _unwrap(obj).items()}


def import_ofa_reference():
    """``(OFAMobileNetV3, set_running_statistics)`` from the ``ofa`` package (tests, benchmarks)."""
    with torchvision_stand_in(("transforms.functional",)):
        from ofa.imagenet_classification.elastic_nn.networks import OFAMobileNetV3 as TorchOFA
        from ofa.imagenet_classification.elastic_nn.utils import set_running_statistics
    return TorchOFA, set_running_statistics
