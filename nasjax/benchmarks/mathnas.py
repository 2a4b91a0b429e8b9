"""MathNAS's published table directory (wangqinsi1/MathNAS layout), read without torch: the one reader of it.

:class:`MathNASDir` decodes ``data/**/*.pt`` (restricted unpickler, :mod:`nasjax.torchfile`) and the
block-set pickles (plain dicts, restricted unpickler), or falls back to ``_derived/tables.json`` when a
file is missing. :func:`read_array` gives one decoded array from a directory, a reader or a
``{relative path: array}`` mapping. The builders turn the arrays into nasjax
:class:`~nasjax.tables.Table` objects with MathNAS's formulas:

* MobileNetV3 (5 stages x 5 stage-blocks):  acc = 79.23 - sum_i drop[i, c_i]  (%),
  lat = sum_i blocklat[i, c_i]  (ms, no base). CPU block set for raspberrypi / tx2cpu, GPU for tx2gpu.
* NAS-Bench-201 (6 edges x 5 ops):  acc = 40.78 - sum_i blockacc[i, c_i],
  lat = L0 - sum_i blocklat[i, c_i],  energy = E0 - sum_i blockeng[i, c_i] with predict.py's bases
  (fpga L0 = 899, E0 = 6291; edgegpu L0 = 5711, E0 = 23834; search.py swaps the devices, a bug).
  MathNAS does not state these units; nasjax records them as ``au`` (as published).
* SuperViT (per resolution r, 9 block positions, :mod:`nasjax.spaces.supervit`):
  acc = A_r + sum_i (a_r[i][c_i] - a_r[i][0]) with A_r = a_r[0][0] (%), FLOPs likewise (MFLOPs).
* SuperTransformer (:mod:`nasjax.spaces.supertransformer`): :func:`supertransformer_arrays` gives the raw
  encoder / decoder BLEU and latency deltas and the decoder-depth BLEU values; the latency models that
  combine them live in :mod:`nasjax.problems.supertransformer`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from nasjax.errors import NasjaxInputError, shown
from nasjax.io import read_json, restricted_unpickle
from nasjax.registry import Registry
from nasjax.spaces import supertransformer as st
from nasjax.spaces import supervit as sv
from nasjax.spaces.mobilenetv3 import BlockSet
from nasjax.tables import Table
from nasjax.torchfile import load_pt_tensor

MBV3_BASE_ACC = 79.23
NB201_BASE_ACC = 40.78
NB201_BASES = {"fpga": {"latency": 899.0, "energy": 6291.0}, "edgegpu": {"latency": 5711.0, "energy": 23834.0}}

MBV3_DEVICES: Registry = Registry("mobilenetv3 device")
for _dev, _set in (("raspberrypi", "CPU"), ("tx2cpu", "CPU"), ("tx2gpu", "GPU")):
    MBV3_DEVICES.add(_dev, _set)
NB201_DEVICES: Registry = Registry("nasbench201 device")
for _dev in NB201_BASES:
    NB201_DEVICES.add(_dev, _dev)
# SuperTransformer devices and the latency of the all-largest network (MathNAS's ILP bases, ms)
SUPERTRANSFORMER_DEVICES: Registry = Registry("supertransformer device")
for _dev, _base in (("raspberrypi", 9200.0), ("xeon", 407.2), ("titanxp", 274.4)):
    SUPERTRANSFORMER_DEVICES.add(_dev, _base)
SUPERVIT_ACC = "data/supervit/blockacc.pt"
SUPERVIT_FLOPS = "data/supervit/blockflops.pt"
SUPERTRANSFORMER_ACC = "data/supertransformer/blockacc.pt"


def default_tables_dir() -> Path | None:
    """``../shared/data/MathNAS`` when the reference data is present, else ``None``."""
    from nasjax.io import shared_data_dir

    d = shared_data_dir()
    return d / "MathNAS" if d is not None and (d / "MathNAS").is_dir() else None


class MathNASDir:
    """Lazy reader of one MathNAS-layout directory (``data/``, ``dynamic/``, ``_derived/``).

    Args:
      path: the directory (e.g. ../shared/data/MathNAS).

    Raises:
      NasjaxInputError: when ``path`` is ``None`` or not a directory.
    """

    def __init__(self, path):
        self.path = Path(path) if path is not None else None
        if self.path is None or not self.path.is_dir():
            raise NasjaxInputError(
                f"tables_dir: {str(path)!r} is not a directory; expected MathNAS's published layout "
                "(data/mobilenetv3/blockacc_cpu.pt, ...) such as ../shared/data/MathNAS"
            )
        self._derived = None

    def _derived_entry(self, rel: str):
        """The decoded value of ``rel`` in ``_derived/tables.json`` (``{"files": {rel: {"values": ...}}}``)."""
        f = self.path / "_derived" / "tables.json"
        if self._derived is None:
            doc = read_json(f, "tables_dir/_derived/tables.json") if f.is_file() else {"files": {}}
            files = doc.get("files") if isinstance(doc, dict) else None
            if not isinstance(files, dict):
                raise NasjaxInputError(f"{f}: expected a JSON object with a 'files' mapping")
            self._derived = files
        if rel not in self._derived:
            raise NasjaxInputError(f"tables_dir: {self.path / rel} not found (nor in _derived/tables.json)")
        entry = self._derived[rel]
        if not isinstance(entry, dict) or "values" not in entry:
            raise NasjaxInputError(f"{f}: entry {rel!r} is {shown(entry)}, expected an object with 'values'")
        return entry["values"]

    def array(self, rel: str) -> np.ndarray:
        """A numeric table of the directory: the ``.pt`` tensor file ``rel``, else its ``_derived/tables.json`` entry.

        Args:
          rel: the file's path relative to the directory (e.g. ``"data/mobilenetv3/blockacc_cpu.pt"``).

        Returns:
          The values as a float64 array, shape as stored.

        Raises:
          NasjaxInputError: when neither the file nor a derived entry exists, the entry is not a rectangular array of
            numbers, or a value is NaN/inf.
        """
        f = self.path / rel
        if f.is_file():
            a = load_pt_tensor(f, rel)
        else:
            raw = self._derived_entry(rel)
            try:
                a = np.array(raw, dtype=np.float64)
            except (TypeError, ValueError):
                raise NasjaxInputError(f"_derived/tables.json[{rel!r}].values: got {shown(raw)}, expected a "
                                       "rectangular array of numbers") from None
        a = np.asarray(a, dtype=np.float64)
        if not np.all(np.isfinite(a)):
            raise NasjaxInputError(f"{f}: contains NaN/inf, expected finite table values")
        return a

    def block_set(self, which: str) -> BlockSet:
        """The MobileNetV3 block set ``which``: ``blocks<which>/block1..5.pickle`` (or their derived entries).

        Args:
          which: the block-set suffix of MathNAS's folder name (e.g. ``"CPU"``); the set is named
            ``"mathnas-<which lowercased>"``.

        Returns:
          The :class:`~nasjax.spaces.mobilenetv3.BlockSet` of the five stages.

        Raises:
          NasjaxInputError: when a stage's file (read with an unpickler that admits no globals) or entry is missing,
            or its ``config`` is not a list of ``{d, e, ks}`` dicts.
        """
        configs = []
        for i in range(1, 6):
            rel = f"data/mobilenetv3/blocks{which}/block{i}.pickle"
            f = self.path / rel
            if f.is_file():
                d = restricted_unpickle(f.read_bytes(), str(f), {})
            else:
                d = self._derived_entry(rel)
            cfg = d.get("config") if isinstance(d, dict) else None
            if not isinstance(cfg, (list, tuple)) or not all(isinstance(c, dict) for c in cfg):
                raise NasjaxInputError(f"{f}: got {shown(d)}, expected a dict whose 'config' is a list of "
                                       "{d, e, ks} dicts")
            configs.append(tuple(dict(c) for c in cfg))
        return BlockSet(f"mathnas-{which.lower()}", tuple(configs))


def _check_shape(a: np.ndarray, shape, rel: str):
    if a.shape != tuple(shape):
        raise NasjaxInputError(f"tables_dir/{rel}: shape {a.shape}, expected {tuple(shape)}")
    return a


def mobilenetv3_tables(tables_dir, device: str):
    """MathNAS's MobileNetV3 tables of one device.

    ``acc(a) = 79.23 - sum_i drop[i, a_i]`` (%), ``lat(a) = sum_i blocklat[i, a_i]`` (ms).

    Args:
      tables_dir: a MathNAS-layout directory.
      device: ``raspberrypi``, ``tx2cpu`` (CPU block set) or ``tx2gpu`` (GPU block set).

    Returns:
      ``(block_set, accuracy Table, {"latency": Table})`` over the block set's 5 x 5 space.
    """
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
    """MathNAS's NAS-Bench-201 tables of one device.

    ``acc(a) = 40.78 - sum_i blockacc[i, a_i]`` (%), ``lat(a) = L0 - sum_i blocklat[i, a_i]``,
    ``energy(a) = E0 - sum_i blockeng[i, a_i]`` (units not stated by MathNAS: ``au``).

    Args:
      tables_dir: a MathNAS-layout directory.
      device: ``fpga`` or ``edgegpu``.

    Returns:
      ``(accuracy Table, {"latency": Table, "energy": Table})`` over the 6 x 5 NAS-Bench-201 space.
    """
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


def read_array(tables, rel: str) -> np.ndarray:
    """One decoded MathNAS array.

    Args:
      tables: a MathNAS-layout directory, a :class:`MathNASDir` (anything with ``.array(rel)``) or a
        ``{relative path: array}`` mapping.
      rel: the file's path relative to the layout root (``data/supervit/blockacc.pt``).

    Returns:
      The array as float64; missing files, non-numeric or non-finite content raise naming ``rel``.
    """
    if isinstance(tables, (str, Path)):
        tables = MathNASDir(tables)
    if hasattr(tables, "array"):
        a = tables.array(rel)
    elif isinstance(tables, Mapping):
        if rel not in tables:
            raise NasjaxInputError(f"tables: missing {rel!r}, expected MathNAS's published layout")
        a = tables[rel]
    else:
        raise NasjaxInputError(f"tables: got {type(tables).__name__}, expected a mapping or a directory")
    try:
        a = np.asarray(a, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise NasjaxInputError(f"tables[{rel!r}]: not a numeric array ({e})") from e
    if not np.all(np.isfinite(a)):
        raise NasjaxInputError(f"tables[{rel!r}]: contains NaN/inf, expected finite values")
    return a


def split_ragged(flat: np.ndarray, counts: Sequence[int], rel: str) -> tuple[np.ndarray, np.ndarray]:
    """Flat per-position lists (``counts[i]`` values each) -> padded ``values [P, K]`` and ``mask``.

    Args:
      flat: the values of all positions, concatenated (any shape, flattened).
      counts: the number of values of each position.
      rel: the table's name, for error messages.

    Returns:
      ``(values, mask)``: float64 ``[P, K]`` (padded cells 0) and bool ``[P, K]``, ``K = max(counts)``.

    Raises:
      NasjaxInputError: when ``flat`` does not have ``sum(counts)`` values.
    """
    flat = np.asarray(flat, dtype=np.float64).reshape(-1)
    if flat.size != sum(counts):
        raise NasjaxInputError(f"tables[{rel!r}]: {flat.size} values, expected {sum(counts)} = sum of {list(counts)}")
    K = max(counts)
    v = np.zeros((len(counts), K))
    m = np.arange(K)[None, :] < np.asarray(counts)[:, None]
    off = 0
    for i, k in enumerate(counts):
        v[i, :k] = flat[off : off + k]
        off += k
    return v, m


def supervit_tables(tables, resolution: int) -> tuple[Table, Table]:
    """``(accuracy %, FLOPs MFLOPs)`` tables over SuperViT's 9 block positions at ``resolution``.

    Both are deltas against choice 0 with the all-choice-0 network as base:
    ``acc(c) = A_r + sum_i (a_r[i][c_i] - a_r[i][0])``, ``A_r = a_r[0][0]`` (FLOPs likewise).

    Args:
      tables: see :func:`read_array`.
      resolution: 192, 224, 256 or 288.

    Returns:
      The two tables over :func:`nasjax.spaces.supervit.block_space`.
    """
    if resolution not in sv.RESOLUTIONS:
        raise NasjaxInputError(f"resolution: got {resolution!r}, expected one of {list(sv.RESOLUTIONS)}")
    r = sv.RESOLUTIONS.index(resolution)
    n = sum(sv.NUM_CHOICES)
    out = []
    for rel, metric, unit in ((SUPERVIT_ACC, "accuracy", "%"), (SUPERVIT_FLOPS, "flops", "MFLOPs")):
        flat = read_array(tables, rel).reshape(-1)
        if flat.size != len(sv.RESOLUTIONS) * n:
            raise NasjaxInputError(
                f"tables[{rel!r}]: {flat.size} values, expected {len(sv.RESOLUTIONS) * n} = "
                f"{len(sv.RESOLUTIONS)} resolutions x {n} choices"
            )
        v, m = split_ragged(flat[r * n : (r + 1) * n], sv.NUM_CHOICES, rel)
        base = float(v[0, 0])
        out.append(
            Table(v - v[:, :1], m, metric, unit, base=base, sign=1, space=f"supervit_r{resolution}",
                  provenance={"file": rel, "resolution": resolution, "paper": "MathNAS (NeurIPS 2023)",
                              "formula": "base = value of the all-choice-0 net; values[i, c] = t[i][c] - t[i][0]"})
        )
    return out[0], out[1]


def supertransformer_arrays(tables, device: str | None):
    """MathNAS's SuperTransformer arrays, as published.

    Args:
      tables: see :func:`read_array`.
      device: ``raspberrypi``, ``xeon``, ``titanxp``, or ``None`` for the BLEU arrays only.

    Returns:
      ``(EA [6, 6], DA [6, 36], BLEU_dec [5], EL [6, 6] | None, DL [6, 36] | None)``: encoder / decoder
      BLEU of the network with one layer varied, the BLEU of 1..5-layer decoders, and the device's
      encoder / decoder latency (ms) likewise.
    """
    ne, nd = st.NUM_ENC * st.ENC_CHOICES, st.NUM_DEC * st.DEC_CHOICES
    acc = read_array(tables, SUPERTRANSFORMER_ACC).reshape(-1)
    n_acc = ne + nd + st.NUM_DEC - 1
    if acc.size != n_acc:
        raise NasjaxInputError(f"tables[{SUPERTRANSFORMER_ACC!r}]: {acc.size} values, expected {n_acc} = 36 + 216 + 5")
    EA = acc[:ne].reshape(st.NUM_ENC, st.ENC_CHOICES)
    DA = acc[ne : ne + nd].reshape(st.NUM_DEC, st.DEC_CHOICES)
    depth_bleu = acc[ne + nd :]
    if device is None:
        return EA, DA, depth_bleu, None, None
    SUPERTRANSFORMER_DEVICES.get(device)
    rel = f"data/supertransformer/blocklat_{device}.pt"
    lat = read_array(tables, rel).reshape(-1)
    if lat.size != ne + nd:
        raise NasjaxInputError(f"tables[{rel!r}]: {lat.size} values, expected {ne + nd} = 36 + 216")
    EL, DL = lat[:ne].reshape(st.NUM_ENC, st.ENC_CHOICES), lat[ne:].reshape(st.NUM_DEC, st.DEC_CHOICES)
    return EA, DA, depth_bleu, EL, DL
