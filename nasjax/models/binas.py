"""The BINAS / HardCoRe-NAS supernet (Nayman et al., arXiv 2110.12399): the elastic MobileNetV3 of
``nasjax.models.mobilenetv3`` configured from a BINAS structure (``BinasStructure.to_dict()`` of
``nasjax.spaces.binas``, passed in as data), with an elective squeeze-excite in every layer.

Same block class, same compiled program for every subnet: a BINAS architecture (25 choice indices,
``[stage 1 depth, stage 1 layer 1..4, stage 2 depth, ...]``, layer configuration
``c -> (expansion, kernel, se)`` from the structure's ``configs``) becomes the subnet arrays
``{ks [L], e [L], d [5], se [L]}`` (``se`` 0/1). Inactive layers keep whatever configuration they carry;
the supernet ignores them.

* :func:`binas_supernet_config` -- the :class:`SupernetConfig` of a structure (stem, ``ds`` first block,
  five stages' widths, strides and activations, ``cn`` head and the biased 1280-wide conv head, as timm's
  MobileNetV3 builds them), optionally width-scaled for small CPU recipes;
* :func:`binas_subnets` -- choice vectors ``[N, P]`` -> stacked subnet arrays;
  :func:`multipath_subnets` -- the same from a JAX key, one independent path per example (BINAS's
  multipath sampling), for training and for the contribution estimator.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from nasjax.errors import NasjaxInputError, require
from nasjax.models.mobilenetv3 import NUM_STAGES, SupernetConfig

_ACT = {"relu": "relu", "hswish": "h_swish"}


def _structure(structure: dict) -> dict:
    require(isinstance(structure, dict) and {"stem", "first_block", "stages", "configs", "head"} <= set(structure),
            "structure", type(structure).__name__, "the dict of nasjax.spaces.binas.BinasStructure.to_dict()")
    require(len(structure["stages"]) == NUM_STAGES, "structure.stages", len(structure["stages"]),
            f"{NUM_STAGES} stages (the elastic MobileNetV3 has five)")
    return structure


def binas_supernet_config(structure: dict, *, num_classes: int = 1000, in_channels: int = 3,
                          width_mult: float = 1.0, dropout_rate: float = 0.2, depthwise_impl: str = "auto",
                          bn_momentum: float = 0.1, bn_eps: float = 1e-5) -> SupernetConfig:
    """The elastic MobileNetV3 configuration of a BINAS structure.

    Args:
      structure: ``BinasStructure.to_dict()`` (stem, first block, stages, configs, head widths).
      num_classes, in_channels: classifier width and input channels.
      width_mult: every width becomes ``make_divisible(width * width_mult, 8)`` (1.0: the structure's).
      dropout_rate, depthwise_impl, bn_momentum, bn_eps: as :class:`SupernetConfig`.

    Returns:
      A :class:`SupernetConfig` with ``ks_list``/``expand_list`` of the configs, ``depth_list`` of the
      stages, ``se_choice=True`` (SE off / on per layer) and ``head_bias=True``.
    """
    st = _structure(structure)
    cfgs = st["configs"]
    ses = sorted({float(c["se"]) for c in cfgs})
    require(set(ses) <= {0.0, 0.25}, "structure.configs se", ses, "SE ratios 0 and 0.25 (the supernet's SE reduces "
            "to make_divisible(mid / 4, 8) hidden units)")
    stages = st["stages"]
    depths = tuple(int(d) for d in stages[0]["depths"])
    require(all(tuple(s["depths"]) == depths for s in stages), "structure.stages depths",
            [s["depths"] for s in stages], "the same depth choices in every stage")
    acts = [st["first_block"]["act"]] + [s["act"] for s in stages]
    require(all(a in _ACT for a in acts), "structure activations", acts, "'relu' or 'hswish'")
    require(st["stem"]["act"] == "hswish" and st["head"]["act"] == "hswish", "structure stem/head act",
            (st["stem"]["act"], st["head"]["act"]), "'hswish' (MobileNetV3)")
    widths = (int(st["stem"]["channels"]), int(st["first_block"]["channels"]),
              *(int(s["channels"]) for s in stages), int(st["head"]["channels"]), int(st["head"]["num_features"]))
    return SupernetConfig(
        width_mult=width_mult, num_classes=num_classes, in_channels=in_channels,
        ks_list=tuple(sorted({int(c["kernel"]) for c in cfgs})),
        expand_list=tuple(sorted({int(c["expansion"]) for c in cfgs})), depth_list=depths,
        dropout_rate=dropout_rate, bn_momentum=bn_momentum, bn_eps=bn_eps, depthwise_impl=depthwise_impl,
        base_widths=widths, stage_strides=(int(st["first_block"]["stride"]), *(int(s["stride"]) for s in stages)),
        stage_acts=tuple(_ACT[a] for a in acts), stage_se=(False,) * (NUM_STAGES + 1),
        se_choice=len(ses) > 1, head_bias=True,
    )


def _tables(structure: dict):
    cfgs = structure["configs"]
    depths = np.asarray(structure["stages"][0]["depths"], np.int32)
    ks = np.array([int(c["kernel"]) for c in cfgs], np.int32)
    e = np.array([int(c["expansion"]) for c in cfgs], np.int32)
    se = np.array([1 if float(c["se"]) > 0 else 0 for c in cfgs], np.int32)
    return depths, ks, e, se


def binas_subnets(archs, structure: dict) -> dict[str, jax.Array]:
    """BINAS choice vectors -> stacked subnet arrays of :func:`binas_supernet_config`'s supernet.

    Args:
      archs: ``[N, P]`` (or ``[P]``) integers, ``P = 5 * (1 + max depth)``, BINAS's ``logits`` order.
      structure: ``BinasStructure.to_dict()``.

    Returns:
      ``{ks [N, L], e [N, L], d [N, 5], se [N, L]}`` int32 (``[L]``/``[5]`` for one vector).
    """
    st = _structure(structure)
    depths, ks, e, se = _tables(st)
    D = int(depths.max())
    a = np.asarray(archs)
    single = a.ndim == 1
    a = np.atleast_2d(a).astype(np.int64)
    P = NUM_STAGES * (1 + D)
    if a.ndim != 2 or a.shape[1] != P:
        raise NasjaxInputError(f"archs: shape {np.asarray(archs).shape}, expected [N, {P}] BINAS choice vectors")
    dpos = np.arange(NUM_STAGES) * (1 + D)
    lpos = (dpos[:, None] + 1 + np.arange(D)[None, :]).ravel()
    dc, lc = a[:, dpos], a[:, lpos]
    if dc.min() < 0 or dc.max() >= len(depths):
        raise NasjaxInputError(f"archs depth choice: got {int(dc.min())}..{int(dc.max())}, "
                               f"expected 0..{len(depths) - 1}")
    if lc.min() < 0 or lc.max() >= len(ks):
        raise NasjaxInputError(f"archs layer choice: got {int(lc.min())}..{int(lc.max())}, expected 0..{len(ks) - 1}")
    out = {"ks": ks[lc], "e": e[lc], "d": depths[dc], "se": se[lc]}
    return {k: jnp.asarray(v[0] if single else v, jnp.int32) for k, v in out.items()}


def multipath_subnets(structure: dict, key: jax.Array, n: int, force_layer=-1, force_config=0, force_stage=-1,
                      force_depth=0) -> dict[str, jax.Array]:
    """``n`` independent uniform paths (one per example) drawn from ``key``; jit-able, forcing traced.

    Every stage depth and every layer configuration is drawn uniformly. ``force_layer >= 0`` (global layer
    index ``l = s * D + j``) fixes that layer's configuration to ``force_config`` and keeps it active (its
    stage's depth is drawn among the depths that contain it); ``force_stage >= 0`` fixes that stage's
    depth choice to ``force_depth``. The draws do not depend on the forcing, so evaluations of different
    forced options share their random paths (common random numbers).

    Returns:
      ``{ks [n, L], e [n, L], d [n, 5], se [n, L]}`` int32.
    """
    st = _structure(structure)
    dnp = _tables(st)[0]
    depths, ks, e, se = (jnp.asarray(t) for t in _tables(st))
    D, nd = int(dnp.max()), len(dnp)
    kd, kc = jax.random.split(key)
    u = jax.random.uniform(kd, (n, NUM_STAGES))
    dchoice = jnp.minimum((u * nd).astype(jnp.int32), nd - 1)
    cchoice = jax.random.randint(kc, (n, NUM_STAGES * D), 0, ks.shape[0])
    fl = jnp.asarray(force_layer, jnp.int32)
    ok = jnp.sum(depths > fl % D)  # depth choices whose stage contains layer j
    forced_d = (nd - ok) + jnp.minimum((u * ok).astype(jnp.int32), ok - 1)
    stage = jnp.arange(NUM_STAGES)
    dchoice = jnp.where(((fl >= 0) & (stage == fl // D))[None], forced_d, dchoice)
    cchoice = jnp.where(((fl >= 0) & (jnp.arange(NUM_STAGES * D) == fl))[None], force_config, cchoice)
    fs = jnp.asarray(force_stage, jnp.int32)
    dchoice = jnp.where(((fs >= 0) & (stage == fs))[None], force_depth, dchoice)
    return {"ks": ks[cchoice], "e": e[cchoice], "d": depths[dchoice], "se": se[cchoice]}


__all__ = ["binas_supernet_config", "binas_subnets", "multipath_subnets"]
