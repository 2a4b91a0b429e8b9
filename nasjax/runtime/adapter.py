"""Where the runtime's supernets, tables and static programs come from (the one adapter to repoint).

Everything the runtime needs from the rest of nasjax passes through this module:

* :func:`load_embedded`: the embedded default (``luts/mobilenetv3_mnist``: trained width-0.25 supernet,
  its stage accuracy table and the stage latency table measured on the build machine), with val images
  to serve and train images to recalibrate BN;
* :func:`random_fullsize`: a full-size (width 1.0, 1000 classes, RGB) supernet with random weights; its
  cost table is the analytic MFLOPs table of the stage blocks (the runtime rescales it to ms from
  measurements) and its accuracy table is the embedded default's (random weights have no accuracy of
  their own; the table only ranks the candidates);
* :func:`static_program`: a subnet as a static program (sliced weights, real shapes) and
  :func:`recalibrated_states`: per-subnet BN statistics (OFA's recalibration).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import jax
import numpy as np

from nasjax.default import DEFAULT_DIR as EMBEDDED_DIR
from nasjax.errors import require
from nasjax.tables import Table


@dataclass
class Source:
    """A supernet with its tables, images to serve and calibration batches.

    ``latency`` is the cost table the runtime rescales (ms, or a proxy such as MFLOPs); ``calib`` are
    image batches for BN recalibration (empty: keep the supernet's statistics).
    """

    name: str
    state: object
    config: object
    block_set: object
    accuracy: Table
    latency: Table
    resolution: int
    images: np.ndarray
    calib: list = field(default_factory=list)
    info: dict = field(default_factory=dict)


def _calib_batches(images: np.ndarray, size: int, seed: int, batch: int = 128) -> list:
    if size <= 0:
        return []
    idx = np.random.default_rng(seed).permutation(len(images))[:size]
    return [images[idx[s:s + batch]] for s in range(0, len(idx), batch)]


def load_embedded(luts_dir: str | Path | None = None, *, calib_size: int = 256, seed: int = 0) -> Source:
    """The embedded default as a :class:`Source` (serving images: its val split; calibration: train).

    Args:
      luts_dir: the default's directory (``None``: the shipped ``luts/mobilenetv3_mnist``).
      calib_size: train images for BN recalibration (0: none).
      seed: which train images.

    Returns:
      The :class:`Source`.
    """
    from nasjax.data import load_dataset
    from nasjax.default import load_default

    d = load_default(EMBEDDED_DIR if luts_dir is None else luts_dir)
    man = d["manifest"]
    ds = load_dataset(man["recipe"]["dataset"], image_size=man["recipe"]["image_size"])
    val = ds.val.get(np.arange(len(ds.val)))[0]
    train = ds.train.get(np.arange(len(ds.train)))[0]
    return Source("embedded default", d["state"], d["config"], d["block_set"], d["tables"]["accuracy_stage"],
                  d["tables"]["latency_stage"], int(man["resolution"]), np.asarray(val, np.float32),
                  _calib_batches(np.asarray(train, np.float32), calib_size, seed),
                  {"dir": str(d["dir"]), "dataset": ds.name, "table_device": d["tables"]["latency_stage"].device,
                   "width_mult": d["config"].width_mult})


def random_fullsize(*, width_mult: float = 1.0, resolution: int = 128, seed: int = 0, calib_size: int = 16,
                    serve_images: int = 64) -> Source:
    """A full-size supernet with random weights as a :class:`Source` (module docstring).

    Args:
      width_mult: width multiplier (1.0 is OFA's MobileNetV3 width).
      resolution: image size in pixels.
      seed: weights and images.
      calib_size: random images for BN recalibration (0: none).
      serve_images: random images to serve.

    Returns:
      The :class:`Source`.
    """
    from flax import nnx

    from nasjax.hardware.flops import stage_block_tables
    from nasjax.models.mobilenetv3 import OFAMobileNetV3, SupernetConfig, split_model
    from nasjax.spaces.mobilenetv3 import BlockSet

    require(isinstance(resolution, int) and resolution >= 32, "resolution", resolution, "an integer >= 32 (pixels)")
    acc = Table.load(EMBEDDED_DIR / "accuracy_stage.json")
    bs = BlockSet.from_dict(json.loads((EMBEDDED_DIR / "manifest.json").read_text())["block_set"])
    cfg = SupernetConfig(width_mult=float(width_mult), num_classes=1000, in_channels=3)
    state = split_model(OFAMobileNetV3(cfg, rngs=nnx.Rngs(seed)))
    flops = stage_block_tables(cfg, resolution, bs)[0]
    rng = np.random.default_rng(seed)
    imgs = rng.standard_normal((serve_images + max(calib_size, 0), resolution, resolution, 3)).astype(np.float32)
    return Source(f"random full-size (width {width_mult:g})", state, cfg, bs, acc, flops, resolution,
                  imgs[:serve_images], _calib_batches(imgs[serve_images:], calib_size, seed, batch=max(calib_size, 1)),
                  {"weights": "random", "cost_table": "MFLOPs (analytic)", "accuracy_table": "embedded default's",
                   "width_mult": width_mult})


def static_program(state, subnet: dict):
    """Jitted ``x -> logits`` of ``subnet`` (an OFA dict) as a static network with ``state``'s weights."""
    from nasjax.hardware.latency import subnet_program

    return subnet_program(state, subnet)


def recalibrated_states(state, subnets: list[dict], calib: list, chunk_size: int = 4) -> list:
    """One model state per subnet with its BN statistics recalibrated on ``calib`` (``[]``: unchanged).

    Args:
      state: the supernet's ``ModelState``.
      subnets: OFA dicts.
      calib: image batches ``[B, H, W, C]``.
      chunk_size: subnets recalibrated together.

    Returns:
      A list of ``ModelState``, one per subnet.
    """
    from nasjax.models.mobilenetv3 import ModelState, stack_subnets
    from nasjax.train.evaluate import recalibrate_bn

    if not calib:
        return [state] * len(subnets)
    stacked = stack_subnets([{k: np.asarray(s[k]) for k in ("ks", "e", "d")} for s in subnets])
    stats = recalibrate_bn(state, stacked, calib, chunk_size=chunk_size)
    return [ModelState(state.graphdef, state.params, jax.tree.map(lambda s, i=i: s[i], stats))
            for i in range(len(subnets))]
