"""Model files of the few-shot latency model: :mod:`nasjax.hardware.model_io` ``.npz`` files, nothing pickled.

A file (kind :data:`KIND`, version :data:`VERSION`) holds the model's arrays (``fs/<name>``), the basis
net's weights in net mode, and a JSON header: the training devices, the feature spec, the mode, the unit,
the config (:func:`~nasjax.hardware.fewshot.config.config_to_json`), the meta-validated candidates and
reference design, and every meta-validation score. Reading checks the version (a file of another version
is refused with its number), the header's structure, the arrays the experts and members need and their
shapes, and that every array is finite.
"""

from __future__ import annotations

import numpy as np

from nasjax.errors import NasjaxInputError, require
from nasjax.hardware.fewshot.basis_net import build_net
from nasjax.hardware.fewshot.config import (
    DOptimalRefs,
    FixedRefs,
    candidate_from_json,
    config_from_json,
    config_to_json,
    decode,
    encode,
)
from nasjax.hardware.fewshot.members import InverseErrorBlend

KIND = "nasjax.fewshot_latency"
VERSION = 2


def header(model) -> dict:
    """The JSON header of ``model``'s file.

    Args:
      model: the :class:`~nasjax.hardware.fewshot.model.FewShotLatencyModel`.

    Returns:
      Its ``meta`` plus ``config``, ``candidates`` and ``ref_design`` in their JSON form.
    """
    return {**model.meta, "config": config_to_json(model.config), "candidates": [encode(c) for c in model.candidates],
            "ref_design": encode(model.ref_design)}


def save_model(model, path) -> dict:
    """Write ``model`` to ``path`` atomically; returns the header written.

    The arrays are stored under ``fs/<name>``; a net-mode model also stores its basis net's weights.

    Args:
      model: the :class:`~nasjax.hardware.fewshot.model.FewShotLatencyModel`.
      path: the ``.npz`` model file to write.

    Returns:
      The header written (:func:`header`).
    """
    from nasjax.hardware import model_io

    arrays = {f"fs/{k}": v for k, v in model.arrays.items()}
    if model.net is None:
        return model_io.save_arrays(path, arrays, kind=KIND, version=VERSION, header=header(model))
    return model_io.save_nnx(path, model.net, kind=KIND, version=VERSION, header=header(model), extra_arrays=arrays)


def load_model(path, model_class):
    """Read a model file (see the module docstring) into a ``model_class`` (the few-shot model's class).

    Args:
      path: a model file written by :func:`save_model`.
      model_class: the class to build (:class:`~nasjax.hardware.fewshot.model.FewShotLatencyModel`).

    Returns:
      The model, checked by :func:`check_loaded`.

    Raises:
      NasjaxInputError: when the file is missing, of another kind or version, or its header, config,
        candidates or arrays are malformed.
    """
    from nasjax.hardware import model_io

    where = f"load_path {str(path)!r}"
    arrays, head = model_io.load_arrays(path, kind=KIND, versions=(VERSION,))
    config = config_from_json(head.get("config"), f"{where} config")
    if head.get("mode") == "table":
        net, extra = None, arrays
    else:
        spec = head.get("feature_spec")
        n = spec.get("length") if isinstance(spec, dict) else None
        require(isinstance(n, int) and n >= 1 and isinstance(head.get("devices"), list), f"{where} header",
                "feature_spec / devices", "a feature length >= 1 and a device list")
        net, head, extra = model_io.load_nnx(path, lambda h: build_net(n, len(h["devices"]), config, 0),
                                             kind=KIND, versions=(VERSION,))
    arrays = {k[3:]: np.asarray(v) for k, v in extra.items() if k.startswith("fs/")}
    meta = {k: v for k, v in head.items() if k not in ("format", "kind", "version", "arrays", "sha256", "config",
                                                       "candidates", "ref_design")}
    cands = head.get("candidates")
    require(isinstance(cands, list) and cands, f"{where} header candidates", cands, "a non-empty list")
    design = decode(head.get("ref_design"), f"{where} ref_design")
    require(isinstance(design, (FixedRefs, DOptimalRefs)), f"{where} ref_design", head.get("ref_design"),
            "a reference design")
    candidates = [candidate_from_json(c, f"{where} candidates") for c in cands]
    model = model_class(net, arrays, meta, config, candidates, design)
    check_loaded(model, where)
    return model


def check_loaded(model, where: str) -> None:
    """Structure of a model read from a file: the header's devices and feature spec, the arrays the experts and
    members need, finite normalisers (``x_sd`` > 0).

    Args:
      model: the model just read.
      where: the file, first in error messages.

    Raises:
      NasjaxInputError: naming ``where`` and the field that is missing or malformed.
    """
    meta, a = model.meta, model.arrays
    devices = meta.get("devices")
    require(isinstance(devices, list) and devices and all(isinstance(d, str) for d in devices), f"{where} devices",
            devices, "a non-empty list of device names")
    spec = meta.get("feature_spec")
    require(isinstance(spec, dict) and isinstance(spec.get("length"), int) and spec["length"] >= 1,
            f"{where} feature_spec", spec, "an object with an integer length >= 1")
    mode = meta.get("mode")
    require(mode in ("net", "table"), f"{where} mode", mode, "'net' or 'table'")
    need = ["coef_log", "ybar", "lr_m", "lr_S", "s2_low_rank", "s2_device", "single_prior"]
    need += ["table_g", "table_y"] if mode == "table" else ["x_mean", "x_sd"]
    missing = [k for k in need if k not in a]
    if missing:
        raise NasjaxInputError(f"{where}: arrays {missing} missing; expected a complete few-shot latency model file")
    d, q = len(devices), a["coef_log"].shape[-1]
    shapes = {"coef_log": (d, q), "ybar": (d,), "lr_m": (q,), "lr_S": (q, q), "single_prior": (3,)}
    if mode == "table":
        require(isinstance(spec.get("rows"), int) and isinstance(spec.get("name"), str), f"{where} feature_spec",
                spec, "the table's row count and row name")
        shapes.update({"table_g": (spec["rows"], q), "table_y": (spec["rows"], d)})
    else:
        shapes.update({"x_mean": (spec["length"],), "x_sd": (spec["length"],)})
        require(bool(np.all(a["x_sd"] > 0)), f"{where} x_sd", "a value <= 0", "feature scales > 0")
    for k, shp in shapes.items():
        require(a[k].shape == shp, f"{where} array {k}", a[k].shape, f"shape {shp}")
    for c in model.candidates:
        for n in c.rule.members:
            require(isinstance(n, str), f"{where} candidates", c.rule, "member names")
    require(all(isinstance(r, InverseErrorBlend) for r in (c.rule for c in model.candidates)), f"{where} candidates",
            model.candidates, "blend rules")
    require(isinstance(model.ref_design, (FixedRefs, DOptimalRefs)), f"{where} ref_design", model.ref_design,
            "a reference design")
