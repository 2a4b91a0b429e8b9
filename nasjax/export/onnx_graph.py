"""One subnet of the elastic MobileNetV3 supernet (OFA's, Cai et al., ICLR 2020, or BINAS's of
:mod:`nasjax.models.binas`) as a standalone ONNX model, built with the ``onnx`` package's graph helpers
from the weights :mod:`nasjax.export.static` cuts out.

Layout: ONNX is NCHW. The model's input ``input`` is ``float32 [N, C, H, W]`` (an NHWC batch ``x`` of the
supernet is ``x.transpose(0, 3, 1, 2)``); a whole subnet outputs ``logits [N, classes]``, the pieces output
``features [N, C, H, W]``. ``batch_size=None`` gives a symbolic batch dimension ``N``.

Graph (opset 17):

* every convolution is a ``Conv`` (kernels HWIO -> OIHW, depthwise ``[k, k, C] -> [C, 1, k, k]`` with
  ``group = C``, symmetric pads ``k // 2``) with its batch norm folded in:
  ``W'[o] = W[o] * a[o]``, ``b'[o] = bias[o] - mean[o] * a[o]``, ``a = scale / sqrt(var + eps)``;
  no ``BatchNormalization`` node remains;
* h-swish is ``HardSwish`` (``x * max(0, min(1, x / 6 + 1 / 2))``), ReLU is ``Relu``;
* squeeze-excite: ``GlobalAveragePool -> Conv 1x1 (+b) -> Relu -> Conv 1x1 (+b) -> HardSigmoid(1/6, 1/2)
  -> Mul`` (only in layers that have one: every layer of an SE stage, or where an elective SE is on);
  identity residuals are ``Add``;
* head: final expand ``Conv`` + ``HardSwish``, ``GlobalAveragePool``, ``Flatten``, ``Gemm`` (feature mix, with
  a bias when the supernet has one) + ``HardSwish``, ``Gemm`` (classifier).

Every built model passes ``onnx.checker.check_model(model, full_check=True)``. :func:`save_onnx` writes
atomically (temporary file, then rename).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from nasjax.errors import NasjaxInputError, require
from nasjax.export.static import (
    STEM_STRIDE,
    BNWeights,
    HeadWeights,
    LayerWeights,
    StemWeights,
    _head_weights,
    _stage_layers,
    _stem_weights,
    feature_shape,
    layer_weights,
    subnet_weights,
    supernet_of,
)
from nasjax.io import atomic_path
from nasjax.models.mobilenetv3 import NUM_STAGES

__all__ = ["OPSET", "IR_VERSION", "subnet_onnx", "stage_onnx", "layer_onnx", "stem_onnx", "head_onnx",
           "save_onnx"]

OPSET = 17
IR_VERSION = 8  # read by every onnxruntime >= 1.10
_ACT_OP = {"relu": "Relu", "h_swish": "HardSwish"}


class _Graph:
    """Accumulates nodes and initialisers; every method returns the name of its output tensor."""

    def __init__(self):
        self.nodes: list = []
        self.inits: list = []
        self._n = 0

    def _name(self, base: str) -> str:
        self._n += 1
        return f"{base}_{self._n}"

    def const(self, base: str, a: np.ndarray) -> str:
        name = self._name(base)
        self.inits.append(numpy_helper.from_array(np.ascontiguousarray(a, np.float32), name))
        return name

    def op(self, op_type: str, inputs: Sequence[str], base: str, **attrs) -> str:
        out = self._name(base)
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], name=out, **attrs))
        return out

    def conv(self, x: str, w_oihw: np.ndarray, b: np.ndarray | None, stride: int, group: int, base: str) -> str:
        k = w_oihw.shape[-1]
        ins = [x, self.const(f"{base}.w", w_oihw)] + ([self.const(f"{base}.b", b)] if b is not None else [])
        return self.op("Conv", ins, base, kernel_shape=[k, k], strides=[stride, stride], pads=[k // 2] * 4,
                       group=group, dilations=[1, 1])

    def conv_bn(self, x: str, w_oihw: np.ndarray, bn: BNWeights, stride: int, group: int, act: str | None,
                base: str) -> str:
        a, b = bn.folded()
        y = self.conv(x, w_oihw * a[:, None, None, None], b, stride, group, base)
        return self.act(y, act, base)

    def act(self, x: str, act: str | None, base: str) -> str:
        if act is None or act == "none":
            return x
        require(act in _ACT_OP, "activation", act, f"one of {sorted(_ACT_OP)}")
        return self.op(_ACT_OP[act], [x], f"{base}.{act}")


def _dense(w_io: np.ndarray) -> np.ndarray:
    """1x1 weights ``[in, out]`` -> OIHW ``[out, in, 1, 1]``."""
    return np.asarray(w_io).T[:, :, None, None]


def _hwio(w: np.ndarray) -> np.ndarray:
    return np.transpose(np.asarray(w), (3, 2, 0, 1))


def _depthwise(w: np.ndarray) -> np.ndarray:
    """``[k, k, C]`` -> ``[C, 1, k, k]``."""
    return np.transpose(np.asarray(w), (2, 0, 1))[:, None]


def _stem(g: _Graph, x: str, w: StemWeights) -> str:
    x = g.conv_bn(x, _hwio(w.w_conv), w.bn_conv, STEM_STRIDE, 1, w.conv_act, "stem.conv")
    c = w.w_dw.shape[-1]
    h = g.conv_bn(x, _depthwise(w.w_dw), w.bn_dw, w.block_stride, c, w.block_act, "first_block.dw")
    y = g.conv_bn(h, _dense(w.w_pw), w.bn_pw, 1, 1, None, "first_block.pw")
    return g.op("Add", [x, y], "first_block.add") if w.residual else y


def _layer(g: _Graph, x: str, w: LayerWeights) -> str:
    base = f"stage{w.stage}.layer{w.index}"
    h = g.conv_bn(x, _dense(w.w_expand), w.bn_expand, 1, 1, w.act, f"{base}.expand")
    h = g.conv_bn(h, _depthwise(w.w_dw), w.bn_dw, w.stride, w.mid, w.act, f"{base}.dw_k{w.k}")
    if w.se is not None:
        wr, br, we, be = w.se
        s = g.op("GlobalAveragePool", [h], f"{base}.se.pool")
        s = g.op("Relu", [g.conv(s, _dense(wr), br, 1, 1, f"{base}.se.reduce")], f"{base}.se.relu")
        s = g.conv(s, _dense(we), be, 1, 1, f"{base}.se.expand")
        s = g.op("HardSigmoid", [s], f"{base}.se.gate", alpha=1.0 / 6.0, beta=0.5)
        h = g.op("Mul", [h, s], f"{base}.se.mul")
    y = g.conv_bn(h, _dense(w.w_project), w.bn_project, 1, 1, None, f"{base}.project")
    return g.op("Add", [x, y], f"{base}.add") if w.residual else y


def _head(g: _Graph, x: str, w: HeadWeights) -> str:
    x = g.conv_bn(x, _dense(w.w_expand), w.bn_expand, 1, 1, "h_swish", "head.final_expand")
    v = g.op("Flatten", [g.op("GlobalAveragePool", [x], "head.pool")], "head.flatten", axis=1)
    mix = [v, g.const("head.mix.w", w.w_mix)] + ([g.const("head.mix.b", w.b_mix)] if w.b_mix is not None else [])
    v = g.op("Gemm", mix, "head.mix")
    v = g.op("HardSwish", [v], "head.mix.h_swish")
    return g.op("Gemm", [v, g.const("head.classifier.w", w.w_cls), g.const("head.classifier.b", w.b_cls)],
                "head.classifier")


def _check_batch(batch_size) -> Any:
    require(batch_size is None or (isinstance(batch_size, (int, np.integer)) and not isinstance(batch_size, bool)
                                   and batch_size >= 1), "batch_size", batch_size,
            "a positive integer (or None for a symbolic batch dimension)")
    return "N" if batch_size is None else int(batch_size)


def _finish(g: _Graph, name: str, in_shape: tuple, out: str, out_shape: tuple, out_name: str,
            doc: str) -> onnx.ModelProto:
    g.nodes.append(helper.make_node("Identity", [out], [out_name], name=f"{out_name}_identity"))
    graph = helper.make_graph(
        g.nodes, name,
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, list(in_shape))],
        [helper.make_tensor_value_info(out_name, TensorProto.FLOAT, list(out_shape))],
        initializer=g.inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="nasjax",
                              doc_string=doc)
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    return model


def _features(cfg, resolution: int, stage: int, layer: int, n) -> tuple:
    side, c = feature_shape(cfg, resolution, stage, layer)
    return (n, c, side, side)


def _doc(what: str) -> str:
    return f"{what}; input NCHW float32, eval mode, batch norm folded into the convolutions (nasjax.export)"


def _build(model_state: Any, batch_size, resolution: int, name: str, where: tuple[int, int], until: int,
           body, desc: str) -> onnx.ModelProto:
    """The model of ``body(graph, model) -> output name`` whose input is the feature map before ``where =
    (stage, layer)`` and whose output is the one before stage ``until`` (``NUM_STAGES + 1``: the logits)."""
    n = _check_batch(batch_size)
    model = supernet_of(model_state)
    cfg = model.config
    in_shape = _features(cfg, resolution, where[0], where[1], n)
    g = _Graph()
    y = body(g, model)
    if until > NUM_STAGES:
        return _finish(g, name, in_shape, y, (n, cfg.num_classes), "logits", _doc(desc))
    return _finish(g, name, in_shape, y, _features(cfg, resolution, until, 0, n), "features", _doc(desc))


_LOGITS = NUM_STAGES + 1


def subnet_onnx(model_state: Any, subnet: Any, *, batch_size: int | None, resolution: int) -> onnx.ModelProto:
    """The whole ``subnet`` as a standalone ONNX model: ``input [N, in, R, R] -> logits [N, classes]``.

    Args:
      model_state: the supernet (``ModelState`` or ``OFAMobileNetV3``).
      batch_size: the batch dimension (``None``: symbolic ``N``).
      resolution: image side ``R`` in pixels.
      subnet: OFA dict ``{"ks", "e", "d"}`` (validated; a bad value raises ``NasjaxInputError``).

    Returns:
      A checked ``onnx.ModelProto``.
    """
    w = subnet_weights(model_state, subnet)

    def body(g, _model):
        x = _stem(g, "input", w.stem)
        for lw in w.layers:
            x = _layer(g, x, lw)
        return _head(g, x, w.head)

    arch = ",".join(f"{k}={w.subnet[k]}" for k in ("ks", "e", "d", "se") if k in w.subnet)
    return _build(model_state, batch_size, resolution, "subnet", (-1, 0), _LOGITS, body,
                  f"elastic MobileNetV3 subnet {arch}")


def stem_onnx(model_state: Any, *, batch_size: int | None, resolution: int) -> onnx.ModelProto:
    """Stem conv and first block: ``input [N, in, R, R] -> features``.

    Args:
      model_state: the supernet (``ModelState`` or ``OFAMobileNetV3``).
      batch_size: the batch dimension (``None``: symbolic ``N``).
      resolution: image side ``R`` in pixels.

    Returns:
      A checked ``onnx.ModelProto``.
    """
    return _build(model_state, batch_size, resolution, "stem", (-1, 0), 0,
                  lambda g, m: _stem(g, "input", _stem_weights(m)), "stem")


def stage_onnx(model_state: Any, stage: int, depth: int, ks: Sequence[int], es: Sequence[int],
               ses: Sequence[int] | None = None, *, batch_size: int | None, resolution: int) -> onnx.ModelProto:
    """Stage ``stage`` at depth ``depth`` (kernels ``ks``, expand ratios ``es``; the first ``depth`` used) at its
    real input shape.

    Args:
      model_state: the supernet (``ModelState`` or ``OFAMobileNetV3``).
      batch_size: the batch dimension (``None``: symbolic ``N``).
      resolution: image side ``R`` in pixels.
      stage: 0-based elastic stage.
      depth: active layers, from ``config.depth_list``.
      ks: kernel sizes per layer.
      es: expand ratios per layer.
      ses: squeeze-excite 0/1 per layer for a supernet with an elective one (BINAS); else ``None``.

    Returns:
      A checked ``onnx.ModelProto``.
    """
    layers = _stage_layers(supernet_of(model_state), stage, depth, ks, es, ses)

    def body(g, _model):
        x = "input"
        for lw in layers:
            x = _layer(g, x, lw)
        return x

    d = int(depth)
    return _build(model_state, batch_size, resolution, f"stage{int(stage)}", (int(stage), 0), int(stage) + 1, body,
                  f"stage {int(stage)} depth {d} ks={list(ks)[:d]} e={list(es)[:d]}"
                  + ("" if ses is None else f" se={list(ses)[:d]}"))


def layer_onnx(model_state: Any, stage: int, layer: int, k: int, e: int, se: int | None = None, *,
               batch_size: int | None, resolution: int) -> onnx.ModelProto:
    """One layer at ``(k, e)`` at its real input shape (every layer outputs its stage's output shape).

    Args:
      model_state: the supernet (``ModelState`` or ``OFAMobileNetV3``).
      batch_size: the batch dimension (``None``: symbolic ``N``).
      resolution: image side ``R`` in pixels.
      stage: 0-based elastic stage.
      layer: 0-based index within the stage.
      k: kernel size.
      e: expand ratio.
      se: squeeze-excite 0/1 for a supernet with an elective one (BINAS); else ``None``.

    Returns:
      A checked ``onnx.ModelProto``.
    """
    lw = layer_weights(model_state, stage, layer, k, e, se)
    return _build(model_state, batch_size, resolution, f"stage{lw.stage}_layer{lw.index}", (lw.stage, lw.index),
                  lw.stage + 1, lambda g, m: _layer(g, "input", lw),
                  f"stage {lw.stage} layer {lw.index} k={lw.k} e={lw.e}" + ("" if se is None else f" se={int(se)}"))


def head_onnx(model_state: Any, *, batch_size: int | None, resolution: int) -> onnx.ModelProto:
    """Final expand, pool, feature mix, classifier at the last stage's output shape.

    Args:
      model_state: the supernet (``ModelState`` or ``OFAMobileNetV3``).
      batch_size: the batch dimension (``None``: symbolic ``N``).
      resolution: image side ``R`` in pixels.

    Returns:
      A checked ``onnx.ModelProto``.
    """
    return _build(model_state, batch_size, resolution, "head", (NUM_STAGES, 0), _LOGITS,
                  lambda g, m: _head(g, "input", _head_weights(m)), "head")


def save_onnx(model: onnx.ModelProto, path) -> Path:
    """Write ``model`` to ``path`` atomically (temporary file next to it, then rename): on any error no file,
    partial or temporary, is left.

    Args:
      model: an ``onnx.ModelProto``.
      path: destination file (its directory is created when missing).

    Returns:
      The written path.
    """
    require(isinstance(model, onnx.ModelProto), "model", type(model).__name__, "an onnx.ModelProto")
    data = model.SerializeToString()
    path = Path(path)
    try:
        with atomic_path(path) as tmp:
            tmp.write_bytes(data)
    except OSError as e:
        raise NasjaxInputError(f"path: got {str(path)!r}, expected a writable file path ({e.strerror or e})") from e
    return path
