"""Flax NNX supernets and their layers (see ``nasjax.models.mobilenetv3`` for the OFA MobileNetV3 API)."""

from nasjax.models.mobilenetv3 import (  # noqa: F401
    ModelState,
    OFAMobileNetV3,
    SupernetConfig,
    apply,
    apply_subnets,
    calib_stats,
    max_subnet,
    merge_model,
    min_subnet,
    random_subnets,
    split_model,
    stack_subnets,
    subnet_arrays,
    subnet_to_ofa,
)
