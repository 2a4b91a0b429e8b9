"""MathNAS's published table directory (wangqinsi1/MathNAS layout), read without torch.

``load_mathnas_dir(path)`` decodes ``data/**/*.pt`` (restricted unpickler, :mod:`nasjax.torchfile`),
the block-set pickles (plain dicts, restricted unpickler) and ``dynamic/*.txt``, or falls back to
``_derived/tables.json`` when a file is missing. The builders turn those arrays into nasjax
:class:`~nasjax.tables.Table` objects with MathNAS's formulas:

* MobileNetV3 (5 stages x 5 stage-blocks):  acc = 79.23 - sum_i drop[i, c_i]  (%),
  lat = sum_i blocklat[i, c_i]  (ms, no base). CPU block set for raspberrypi / tx2cpu, GPU for tx2gpu.
* NAS-Bench-201 (6 edges x 5 ops):  acc = 40.78 - sum_i blockacc[i, c_i],
  lat = L0 - sum_i blocklat[i, c_i],  energy = E0 - sum_i blockeng[i, c_i] with predict.py's bases
  (fpga L0 = 899, E0 = 6291; edgegpu L0 = 5711, E0 = 23834; search.py swaps the devices, a bug).
  MathNAS does not state these units; nasjax records them as ``au`` (as published).
"""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np

from nasjax.errors import NasjaxInputError
from nasjax.registry import Registry
from nasjax.spaces.mobilenetv3 import BlockSet
from nasjax.tables import Table
from nasjax.torchfile import load_pt

MBV3_BASE_ACC = 79.23
NB201_BASE_ACC = 40.78
NB201_BASES = {"fpga": {"latency": 899.0, "energy": 6291.0}, "edgegpu": {"latency": 5711.0, "energy": 23834.0}}

MBV3_DEVICES: Registry = Registry("mobilenetv3 device")
for _dev, _set in (("raspberrypi", "CPU"), ("tx2cpu", "CPU"), ("tx2gpu", "GPU")):
    MBV3_DEVICES.add(_dev, _set)
NB201_DEVICES: Registry = Registry("nasbench201 device")
for _dev in NB201_BASES:
    NB201_DEVICES.add(_dev, _dev)


class _NoCodeUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        raise NasjaxInputError(f"block-set pickle: refuses {module}.{name}; expected plain dicts and lists")


def default_tables_dir() -> Path | None:
    from nasjax.io import shared_data_dir

    d = shared_data_dir()
    return d / "MathNAS" if d is not None and (d / "MathNAS").is_dir() else None


class MathNASDir:
    """Lazy reader of one MathNAS-layout directory (``data/``, ``dynamic/``, ``_derived/``)."""

    def __init__(self, path):
        self.path = Path(path) if path is not None else None
        if self.path is None or not self.path.is_dir():
            raise NasjaxInputError(
                f"tables_dir: {str(path)!r} is not a directory; expected MathNAS's published layout "
                "(data/mobilenetv3/blockacc_cpu.pt, ...) such as ../shared/data/MathNAS"
            )
        self._derived = None

    def _derived_entry(self, rel: str):
        if self._derived is None:
            f = self.path / "_derived" / "tables.json"
            self._derived = json.loads(f.read_text())["files"] if f.is_file() else {}
        if rel not in self._derived:
            raise NasjaxInputError(f"tables_dir: {self.path / rel} not found (nor in _derived/tables.json)")
        return self._derived[rel]["values"]

    def array(self, rel: str) -> np.ndarray:
        f = self.path / rel
        if f.is_file():
            a = load_pt(f)
        else:
            a = np.array(self._derived_entry(rel))
        a = np.asarray(a, dtype=np.float64)
        if not np.all(np.isfinite(a)):
            raise NasjaxInputError(f"{f}: contains NaN/inf, expected finite table values")
        return a

    def block_set(self, which: str) -> BlockSet:
        configs = []
        for i in range(1, 6):
            rel = f"data/mobilenetv3/blocks{which}/block{i}.pickle"
            f = self.path / rel
            if f.is_file():
                import io

                d = _NoCodeUnpickler(io.BytesIO(f.read_bytes())).load()
            else:
                d = self._derived_entry(rel)
            if not isinstance(d, dict) or "config" not in d:
                raise NasjaxInputError(f"{f}: expected a dict with key 'config'")
            configs.append(tuple(dict(c) for c in d["config"]))
        return BlockSet(f"mathnas-{which.lower()}", tuple(configs))


def _check_shape(a: np.ndarray, shape, rel: str):
    if a.shape != tuple(shape):
        raise NasjaxInputError(f"tables_dir/{rel}: shape {a.shape}, expected {tuple(shape)}")
    return a


def mobilenetv3_tables(tables_dir, device: str):
    """``(block_set, accuracy Table, {"latency": Table})`` for a MathNAS MobileNetV3 device."""
    which = MBV3_DEVICES.get(device)
    d = MathNASDir(tables_dir)
    bs = d.block_set(which)
    rel_acc = f"data/mobilenetv3/blockacc_{which.lower()}.pt"
    rel_lat = f"data/mobilenetv3/blocklat_{device}.pt"
    prov = {"source": str(d.path), "paper": "MathNAS (NeurIPS 2023)"}
    acc = Table(_check_shape(d.array(rel_acc), (5, 5), rel_acc), None, "accuracy", "%", base=MBV3_BASE_ACC,
                sign=-1, space="mobilenetv3", provenance={**prov, "file": rel_acc})
    lat = Table(_check_shape(d.array(rel_lat), (5, 5), rel_lat), None, "latency", "ms", base=0.0, sign=1,
                device=device, space="mobilenetv3", provenance={**prov, "file": rel_lat})
    return bs, acc, {"latency": lat}


def nasbench201_tables(tables_dir, device: str):
    """``(accuracy Table, {"latency": Table, "energy": Table})`` for a MathNAS NAS-Bench-201 device."""
    NB201_DEVICES.get(device)
    d = MathNASDir(tables_dir)
    prov = {"source": str(d.path), "paper": "MathNAS (NeurIPS 2023)", "bases": "predict.py"}
    rel = "data/nasbench201/blockacc.pt"
    acc = Table(_check_shape(d.array(rel), (6, 5), rel), None, "accuracy", "%", base=NB201_BASE_ACC, sign=-1,
                space="nasbench201", provenance={**prov, "file": rel})
    res = {}
    for metric, stem in (("latency", "blocklat"), ("energy", "blockeng")):
        rel = f"data/nasbench201/{stem}_{device}.pt"
        res[metric] = Table(_check_shape(d.array(rel), (6, 5), rel), None, metric, "au",
                            base=NB201_BASES[device][metric], sign=-1, device=device, space="nasbench201",
                            provenance={**prov, "file": rel, "unit_note": "MathNAS does not state the unit"})
    return acc, res
