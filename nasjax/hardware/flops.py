"""FLOPs and parameter counts of elastic MobileNetV3 subnets, analytic and per block (no measurement).

FLOPs follow OFA's and MathNAS's convention: multiply-accumulates of convolutions and linear layers
(BatchNorm, activations, pooling and additions are not counted), in MFLOPs = 1e6 MACs, for one image
at resolution ``r`` (square). Parameters count every weight a static subnet keeps (convolutions, the
BN scale and bias, SE weights and biases, classifier), in M = 1e6.

For one elastic layer with input ``c_in x h x h``, stride ``s``, output ``h' = (h - 1) // s + 1``,
middle width ``m = mid(e)``, kernel ``k``, SE hidden ``q``, output ``c_out``::

    MACs(layer)   = h^2 c_in m  +  h'^2 k^2 m  +  [SE] 2 m q  +  h'^2 m c_out
    params(layer) = c_in m + 2m  +  k^2 m + 2m  +  [SE] (m q + q + q m + m)  +  m c_out + 2 c_out

The fixed part (stem 3x3 conv, first block, final expand, feature mix, classifier) is the table base.
Two table views:

* stage blocks (MathNAS; space ``mobilenetv3`` with a :class:`~nasjax.spaces.mobilenetv3.BlockSet`):
  ``values[s, c]`` = cost of the active layers of stage ``s``'s configuration ``c``. A stage's input
  and output widths do not depend on the subnet, so ``base + sum_s values[s, c_s]`` is **exact**.
* layers (space ``mobilenetv3_layers``, around a base subnet ``B`` of full depth): ``values[l, c]`` =
  cost of layer ``l`` with choice ``c`` minus its cost in ``B`` (0 for layers ``B`` skips);
  ``values[20 + s, j]`` = cost of stage ``s``'s layers under depth ``j`` minus under ``B``'s depth, with
  ``B``'s choices. Exact for every subnet of ``B``'s depths and for every single-position change of
  ``B``; for other depths it is the first-order (MathNAS-style) approximation -- a layer's choice and
  its stage's depth interact (BINAS models that bilinearly). :func:`subnet_cost` is exact always.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from nasjax.errors import require
from nasjax.spaces.mobilenetv3 import DEPTHS, EXPAND, KS, BlockSet, mobilenetv3_layers_space
from nasjax.tables import Table


def _out(h: int, stride: int) -> int:
    return (h - 1) // stride + 1


def layer_cost(spec, k: int, e: int, h_in: int, expand_list=EXPAND) -> tuple[int, int]:
    """(MACs, params) of one elastic layer ``spec`` (a ``LayerSpec``) at kernel ``k``, expand ratio ``e``
    (``spec.mid`` is ordered like ``expand_list``, the config's list)."""
    j = tuple(expand_list).index(int(e))
    m, q = spec.mid[j], spec.se_hidden[j]
    h_out = _out(h_in, spec.stride)
    macs = h_in * h_in * spec.cin * m + h_out * h_out * k * k * m + h_out * h_out * m * spec.cout
    params = spec.cin * m + 2 * m + k * k * m + 2 * m + m * spec.cout + 2 * spec.cout
    if spec.use_se:
        macs += 2 * m * q
        params += m * q + q + q * m + m
    return macs, params


def stage_inputs(config, resolution: int) -> list[int]:
    """Spatial size of the input of each of the 5 elastic stages for a ``resolution`` input."""
    strides = config.stage_strides
    h = _out(resolution, 2)  # stem
    h = _out(h, strides[0])  # first block
    out = []
    for s in range(5):
        out.append(h)
        h = _out(h, strides[s + 1])
    return out + [h]


def fixed_cost(config, resolution: int) -> tuple[int, int]:
    """(MACs, params) of the parts every subnet shares: stem, first block, final expand, mix, classifier."""
    w = config.widths()
    h1 = _out(resolution, 2)
    hf = stage_inputs(config, resolution)[-1]
    cin, c0, c1 = config.in_channels, w["stem"], w["first_block"]
    macs = h1 * h1 * 9 * cin * c0  # stem 3x3 conv
    params = 9 * cin * c0 + 2 * c0
    macs += h1 * h1 * 9 * c0 + h1 * h1 * c0 * c1  # first block: 3x3 depthwise (stride 1) + 1x1
    params += 9 * c0 + 2 * c0 + c0 * c1 + 2 * c1
    cl, cf, cm = w["stages"][-1], w["final_expand"], w["feature_mix"]
    macs += hf * hf * cl * cf + cf * cm + cm * config.num_classes
    params += cl * cf + 2 * cf + cf * cm + cm * config.num_classes + config.num_classes
    return macs, params


def _specs(config):
    return config.layer_specs()


def stage_cost(config, resolution: int, stage: int, d: int, ks, e, specs=None) -> tuple[int, int]:
    """(MACs, params) of the first ``d`` layers of ``stage`` with per-layer kernels ``ks`` and expands ``e``."""
    specs = _specs(config) if specs is None else specs
    h = stage_inputs(config, resolution)[stage]
    macs = params = 0
    for i in range(int(d)):
        sp = specs[stage * config.max_depth + i]
        a, b = layer_cost(sp, int(ks[i]), int(e[i]), h, config.expand_list)
        macs, params = macs + a, params + b
        h = _out(h, sp.stride)
    return macs, params


def subnet_cost(config, resolution: int, subnet: dict) -> tuple[float, float]:
    """Exact (MFLOPs, M params) of one subnet (OFA dict ``{ks[20], e[20], d[5]}``)."""
    require(isinstance(resolution, (int, np.integer)) and resolution >= 8, "resolution", resolution,
            "an integer >= 8 (pixels)")
    specs = _specs(config)
    macs, params = fixed_cost(config, resolution)
    D = config.max_depth
    for s in range(5):
        a, b = stage_cost(config, resolution, s, subnet["d"][s], subnet["ks"][s * D:(s + 1) * D],
                          subnet["e"][s * D:(s + 1) * D], specs)
        macs, params = macs + a, params + b
    return macs / 1e6, params / 1e6


def _prov(config, resolution: int, **extra) -> dict:
    return {"method": "analytic count (nasjax.hardware.flops)", "convention": "1 FLOP = 1 multiply-accumulate",
            "resolution": int(resolution), "supernet_config": config.to_dict(), **extra}


def stage_block_tables(config, resolution: int, block_set: BlockSet) -> tuple[Table, Table]:
    """Exact MFLOPs and params (M) tables over MathNAS's stage-block view (see module docstring)."""
    specs = _specs(config)
    fm, fp = fixed_cost(config, resolution)
    K = max(block_set.num_choices)
    vf, vp = np.zeros((5, K)), np.zeros((5, K))
    mask = np.zeros((5, K), bool)
    for s, stage in enumerate(block_set.configs):
        for c, cfg in enumerate(stage):
            a, b = stage_cost(config, resolution, s, cfg["d"], cfg["ks"], cfg["e"], specs)
            vf[s, c], vp[s, c], mask[s, c] = a / 1e6, b / 1e6, True
    prov = _prov(config, resolution, view="stage blocks", block_set=block_set.to_dict())
    mk = lambda v, base, metric, unit: Table(v, mask, metric, unit, base, 1, None, "mobilenetv3", dict(prov))
    return mk(vf, fm / 1e6, "flops", "MFLOPs"), mk(vp, fp / 1e6, "params", "M")


def layer_tables(config, resolution: int, base_subnet: dict | None = None) -> tuple[Table, Table]:
    """MFLOPs and params (M) tables over ``mobilenetv3_layers`` around ``base_subnet`` (default: largest).

    Requires OFA's default lists (ks 3/5/7, e 3/4/6, d 2/3/4): the layer space's choice ``c`` of a layer
    is ``(KS[c // 3], EXPAND[c % 3])`` and of a depth position ``DEPTHS[c]``.
    """
    require(tuple(config.ks_list) == KS and tuple(config.expand_list) == EXPAND and tuple(config.depth_list) == DEPTHS,
            "config", (config.ks_list, config.expand_list, config.depth_list),
            f"OFA's lists ks={KS}, e={EXPAND}, d={DEPTHS} for the mobilenetv3_layers view")
    D, L = config.max_depth, config.num_layers
    B = base_subnet or {"ks": [max(KS)] * L, "e": [max(EXPAND)] * L, "d": [max(DEPTHS)] * 5}
    specs = _specs(config)
    hs = _layer_inputs(config, resolution, specs)
    base_m, base_p = subnet_cost(config, resolution, B)
    space = mobilenetv3_layers_space()
    mask = space.mask
    vf, vp = np.zeros(mask.shape), np.zeros(mask.shape)

    def cost(layer, k, e):
        return layer_cost(specs[layer], k, e, hs[layer], config.expand_list)

    for layer in range(L):
        s, i = divmod(layer, D)
        if i >= B["d"][s]:
            continue
        b0 = cost(layer, B["ks"][layer], B["e"][layer])
        for c in range(9):
            a = cost(layer, KS[c // 3], EXPAND[c % 3])
            vf[layer, c], vp[layer, c] = (a[0] - b0[0]) / 1e6, (a[1] - b0[1]) / 1e6
    for s in range(5):
        ref = stage_cost(config, resolution, s, B["d"][s], B["ks"][s * D:(s + 1) * D], B["e"][s * D:(s + 1) * D], specs)
        for j, d in enumerate(DEPTHS):
            a = stage_cost(config, resolution, s, d, B["ks"][s * D:(s + 1) * D], B["e"][s * D:(s + 1) * D], specs)
            vf[L + s, j], vp[L + s, j] = (a[0] - ref[0]) / 1e6, (a[1] - ref[1]) / 1e6
    prov = _prov(config, resolution, view="layers (first order around base subnet)", base_subnet=B)
    return (Table(vf, mask, "flops", "MFLOPs", base_m, 1, None, "mobilenetv3_layers", dict(prov)),
            Table(vp, mask, "params", "M", base_p, 1, None, "mobilenetv3_layers", dict(prov)))


def _layer_inputs(config, resolution: int, specs) -> list[int]:
    """Input spatial size of every elastic layer (index within the stage decides the stride)."""
    starts = stage_inputs(config, resolution)
    out = []
    for sp in specs:
        h = starts[sp.stage]
        for i in range(sp.index):
            h = _out(h, specs[sp.stage * config.max_depth + i].stride)
        out.append(h)
    return out


# --------------------------------------------------------------------------------------------
# Direct counts on the built model (used by tests to certify the formulas)
# --------------------------------------------------------------------------------------------
def _count_macs_jaxpr(jaxpr) -> int:
    """Sum the multiply-accumulates of every conv / dot_general in a (closed) jaxpr, recursively."""
    total = 0
    for eqn in jaxpr.eqns:
        name = eqn.primitive.name
        if name == "conv_general_dilated":
            out = eqn.outvars[0].aval.shape
            rhs = eqn.invars[1].aval.shape
            dn = eqn.params["dimension_numbers"]
            kspatial = [rhs[i] for i in dn.rhs_spec[2:]]
            cin_per_group = rhs[dn.rhs_spec[1]]
            total += int(np.prod(out)) * int(np.prod(kspatial)) * int(cin_per_group)
        elif name == "dot_general":
            (lc, _), _ = eqn.params["dimension_numbers"]
            lhs = eqn.invars[0].aval.shape
            out = eqn.outvars[0].aval.shape
            total += int(np.prod(out)) * int(np.prod([lhs[i] for i in lc]))
        for v in eqn.params.values():
            for sub in (v if isinstance(v, (list, tuple)) else [v]):
                if hasattr(sub, "jaxpr") and hasattr(sub.jaxpr, "eqns"):
                    total += _count_macs_jaxpr(sub.jaxpr)
                elif hasattr(sub, "eqns"):
                    total += _count_macs_jaxpr(sub)
    return total


def direct_macs(state, config, subnet: dict, resolution: int) -> int:
    """MACs per image of the subnet-shaped network (:func:`nasjax.export.static.static_subnet`), counted
    from its jaxpr with XLA's grouped depthwise convolution; traced at batch 1 and 2 and the difference
    taken, so only the per-image work counts.
    """
    import jax
    from flax import nnx

    from nasjax.export.static import static_subnet
    from nasjax.models.mobilenetv3 import SupernetConfig

    model = nnx.merge(state.graphdef, state.params, state.batch_stats)
    model.config = SupernetConfig.from_dict({**config.to_dict(), "depthwise_impl": "xla"})
    net = static_subnet(model, subnet)

    def count(n):
        x = jax.ShapeDtypeStruct((n, resolution, resolution, config.in_channels), np.float32)
        return _count_macs_jaxpr(jax.make_jaxpr(lambda v: net(v))(x).jaxpr)

    return count(2) - count(1)


def direct_params(config_lists: dict[str, Any], base_config, seed: int = 0) -> int:
    """Parameter count of a supernet built with single-choice lists (``ks_list=(k,)``, ...): its one
    subnet is static, so every parameter it holds is one the subnet uses."""
    import jax
    from flax import nnx

    from nasjax.models.mobilenetv3 import OFAMobileNetV3, SupernetConfig

    cfg = SupernetConfig.from_dict({**base_config.to_dict(), **config_lists})
    model = OFAMobileNetV3(cfg, rngs=nnx.Rngs(seed))
    params = nnx.state(model, nnx.Param)
    return int(sum(np.size(x) for x in jax.tree_util.tree_leaves(params)))


def binas_flops(config, resolution: int, configs: Sequence[dict]) -> tuple[float, np.ndarray]:
    """MFLOPs (2 x multiply-accumulates) of a BINAS supernet (``nasjax.models.binas``) per image.

    Args:
      config: the supernet's ``SupernetConfig`` (``se_choice``: SE counted only where a configuration has it).
      resolution: input resolution.
      configs: the structure's layer configurations (``{"expansion", "kernel", "se"}`` dicts, choice order).

    Returns:
      ``(fixed, layers [L, K])``: the shared parts and every (layer, configuration); a subnet costs
      ``fixed + sum_{l active} layers[l, c_l]``.
    """
    specs = config.layer_specs()
    stage_in = stage_inputs(config, resolution)
    layers = np.zeros((len(specs), len(configs)))
    for lay, sp in enumerate(specs):
        h = stage_in[sp.stage] if sp.index == 0 else _out(stage_in[sp.stage], specs[lay - sp.index].stride)
        for c, conf in enumerate(configs):
            e = int(conf["expansion"])
            macs, _ = layer_cost(sp, int(conf["kernel"]), e, h, config.expand_list)
            if sp.use_se and not float(conf["se"]):
                j = config.expand_list.index(e)
                macs -= 2 * sp.mid[j] * sp.se_hidden[j]
            layers[lay, c] = 2e-6 * macs
    return 2e-6 * fixed_cost(config, resolution)[0], layers
