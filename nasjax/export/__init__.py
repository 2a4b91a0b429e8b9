"""Subnet export: one subnet of a supernet as a static Flax module holding only its own weights
(:mod:`nasjax.export.static`) or as a standalone ONNX model with batch norm folded
(:mod:`nasjax.export.onnx_graph`). See docs/export.md."""

from nasjax.export.onnx_graph import (  # noqa: F401
    head_onnx,
    layer_onnx,
    save_onnx,
    stage_onnx,
    stem_onnx,
    subnet_onnx,
)
from nasjax.export.static import (  # noqa: F401
    StaticSubnet,
    feature_shape,
    head,
    layer_block,
    stage_block,
    static_subnet,
    stem,
    subnet_weights,
)
