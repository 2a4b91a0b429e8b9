"""Subnet export: one subnet of a supernet as a static Flax module holding only its own weights
(:mod:`nasjax.export.static`) or as a standalone ONNX model with batch norm folded
(:mod:`nasjax.export.onnx_graph`, needs the ``onnx`` extra and is imported on first use). See docs/export.md."""

from nasjax.export.static import (  # noqa: F401
    StaticSubnet,
    compiled,
    feature_shape,
    head,
    layer_block,
    stage_block,
    static_subnet,
    stem,
    subnet_weights,
)

_ONNX = ("head_onnx", "layer_onnx", "save_onnx", "stage_onnx", "stem_onnx", "subnet_onnx")


def __getattr__(name):
    if name in _ONNX:
        from nasjax.export import onnx_graph

        return getattr(onnx_graph, name)
    raise AttributeError(f"module 'nasjax.export' has no attribute {name!r}")
