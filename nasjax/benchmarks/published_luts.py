"""Readers of published per-layer latency lookup tables, each returning a nasjax Table (ms) and its space.

* OFA-style per-layer YAML (``sxtyzhangzk/once-for-all``, ``vai_deploy/lut-examples/<r>_lookup_table.yaml``,
  one file per input resolution ``r``): keys

      Conv-input:HxWxC-output:HxWxC              the stem convolution
      expanded_conv-input:HxWxC-output:HxWxC-expand:E-kernel:K-stride:S-idskip:0|1
      Conv_1-input:HxWxC-output:HxWxC            the final 1x1 expansion
      Logits-input:HxWxC-output:N                pooling and classifier

  each ``{count, mean, std}`` with ``mean`` in ms (the measuring device is not stated). The network the
  file describes is a chain: stem, a first block of expand ratio 1, then stages whose first layer changes
  the shape (``idskip:0``) followed by repeated layers of one shape (``idskip:1``, identity shortcut), and
  the head. :func:`ofa_yaml_table` returns it as a layer view: every layer a position with a choice per
  (kernel, expand) pair, ``c = len(EXPANDS) * kernel_index + expand_index`` (OFA's order), and a repeated
  layer at depth ``>= min_depth`` has a last choice ``skip`` (0 ms; all repeated layers of a stage have one
  shape, so which one is skipped does not change the latency). The table is additive and exact for the
  file's numbers: ``L(a) = base + sum_i T[i, a_i]``, ``base`` = stem + first block + ``Conv_1`` + ``Logits``.

* TF-NAS per-block pickles (``AberHu/TF-NAS``, ``latency_pkl/latency_{gpu,cpu}.pkl``): an ``OrderedDict``
  ``'base' -> ms`` (stem, first block, final conv, pooling, classifier) and
  ``'MBInvertedResBlock_{H}_{Cin}_{Cse}_{Cout}_k{K}_s{S}_{act}' -> OrderedDict {mid_channels -> ms}``
  (``Cse`` the squeeze-excitation width, 0 without SE, as the upstream LUT script names it). GPU: Titan RTX,
  batch 32; CPU: Xeon Gold 6130, batch 1, one MKL thread. :func:`tfnas_table` has one position per block
  shape ``(H, Cin, Cout, S, act)`` and a choice per ``(K, Cse, mid_channels)``. Some values are negative
  (interpolated offsets relative to ``base``, as published); they are kept.

Pickles go through :func:`nasjax.io.restricted_unpickle` (only ``collections.OrderedDict`` admitted).
BINAS / HardCoReNAS LUTs (seconds per image) are read by :mod:`nasjax.benchmarks.binas_lut`.
"""

from __future__ import annotations

import math
import re
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nasjax.errors import NasjaxInputError
from nasjax.io import read_yaml, restricted_unpickle, shared_data_dir
from nasjax.spaces.base import SearchSpace, product_space
from nasjax.tables import Table

OFA_YAML_DIR = "sxtyzhangzk-once-for-all/vai_deploy/lut-examples"
OFA_YAML_RESOLUTIONS = (128, 144, 160, 176, 192, 208, 224)
TFNAS_DIR = "TF-NAS/latency_pkl"
TFNAS_DEVICES = {"latency_gpu.pkl": "titan_rtx_b32 (PyTorch 1.1, cuDNN 7.6, batch 32)",
                 "latency_cpu.pkl": "xeon_gold_6130_b1 (PyTorch 1.1, MKL 1 thread, batch 1)"}
SKIP = "skip"

_SHAPE = r"(\d+)x(\d+)x(\d+)"
_OFA_KEY = re.compile(rf"^(Conv|Conv_1|expanded_conv|Logits)-input:{_SHAPE}-output:(?:{_SHAPE}|(\d+))"
                      r"(?:-expand:(\d+)-kernel:(\d+)-stride:(\d+)-idskip:([01]))?$")
_TFNAS_KEY = re.compile(r"^MBInvertedResBlock_(\d+)_(\d+)_(\d+)_(\d+)_k(\d+)_s(\d+)_(\w+)$")


@dataclass(frozen=True)
class ImportedLUT:
    """A published LUT as a nasjax table over the space the file describes (choice labels included)."""

    table: Table
    space: SearchSpace


@dataclass(frozen=True)
class OFALayerEntry:
    """One key of an OFA-style YAML LUT, decoded (``output`` is ``(N,)`` for ``Logits``)."""

    key: str
    op: str
    input: tuple[int, int, int]
    output: tuple[int, ...]
    expand: int | None
    kernel: int | None
    stride: int | None
    idskip: int | None
    mean_ms: float
    std_ms: float
    count: int


def ofa_yaml_path(resolution: int, root=None) -> Path:
    """The shared OFA-style YAML LUT for ``resolution`` (one of :data:`OFA_YAML_RESOLUTIONS`)."""
    if resolution not in OFA_YAML_RESOLUTIONS:
        raise NasjaxInputError(f"resolution: got {resolution!r}, expected one of {list(OFA_YAML_RESOLUTIONS)} "
                               "(the published OFA-style YAML LUTs)")
    base = Path(root) if root is not None else shared_data_dir(required=True)
    return base / OFA_YAML_DIR / f"{resolution}_lookup_table.yaml"


def _finite(x, positive: bool) -> bool:
    ok = isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
    return ok and (x > 0 if positive else x >= 0)


def read_ofa_yaml_lut(path) -> list[OFALayerEntry]:
    """Every entry of an OFA-style YAML LUT, checked: key format, ``count`` >= 1, finite ``mean`` > 0 and
    ``std`` >= 0 (ms). Errors name the file and the key."""
    path = Path(path)
    d = read_yaml(path, "lut_path")
    src = f"lut_path {str(path)!r}"
    if not isinstance(d, dict) or not d:
        raise NasjaxInputError(f"{src}: holds {type(d).__name__}, expected a mapping of layer keys -> "
                               "{count, mean, std}")
    out = []
    for key, v in d.items():
        m = _OFA_KEY.match(str(key))
        if not isinstance(key, str) or m is None:
            raise NasjaxInputError(f"{src}: key {str(key)[:80]!r}, expected 'Conv|Conv_1|Logits|expanded_conv-"
                                   "input:HxWxC-output:HxWxC[-expand:E-kernel:K-stride:S-idskip:0|1]'")
        op = m.group(1)
        if (op == "expanded_conv") != (m.group(9) is not None) or (op == "Logits") != (m.group(8) is not None):
            raise NasjaxInputError(f"{src}[{key!r}]: fields do not fit op {op!r} (expand/kernel/stride/idskip only "
                                   "for expanded_conv, a plain output width only for Logits)")
        if not isinstance(v, dict) or set(v) != {"count", "mean", "std"}:
            raise NasjaxInputError(f"{src}[{key!r}]: got {str(v)[:80]}, expected a mapping with count, mean, std")
        if not (isinstance(v["count"], int) and not isinstance(v["count"], bool) and v["count"] >= 1):
            raise NasjaxInputError(f"{src}[{key!r}].count: got {v['count']!r}, expected an integer >= 1")
        if not _finite(v["mean"], True):
            raise NasjaxInputError(f"{src}[{key!r}].mean: got {v['mean']!r}, expected a finite latency > 0 ms")
        if not _finite(v["std"], False):
            raise NasjaxInputError(f"{src}[{key!r}].std: got {v['std']!r}, expected a finite number >= 0 ms")
        g = [int(x) if x is not None else None for x in m.groups()[1:]]
        output = (g[6],) if op == "Logits" else tuple(g[3:6])
        out.append(OFALayerEntry(key, op, tuple(g[0:3]), output, g[7], g[8], g[9], g[10], float(v["mean"]),
                                 float(v["std"]), int(v["count"])))
    return out


def _one(entries, op: str, src: str) -> OFALayerEntry:
    found = [e for e in entries if e.op == op]
    if len(found) != 1:
        raise NasjaxInputError(f"{src}: {len(found)} {op!r} entries, expected exactly one")
    return found[0]


def ofa_yaml_table(path, *, max_depth: int = 4, min_depth: int = 2) -> ImportedLUT:
    """The layer-view table of an OFA-style YAML LUT (module docstring), in ms.

    Args:
      path: the YAML file (:func:`ofa_yaml_path` for the shared ones).
      max_depth: layers per stage that has repeated layers (the file holds one entry per shape, not the
        depth; OFA's default is 4).
      min_depth: layers of such a stage that always run (later ones have the ``skip`` choice).

    Returns:
      :class:`ImportedLUT`; a key missing from the grid of (kernel, expand) of a layer shape, a broken
      chain of shapes or a stride that does not give the output size raise naming the file and key.
    """
    path = Path(path)
    src = f"lut_path {str(path)!r}"
    if not (isinstance(max_depth, int) and isinstance(min_depth, int) and 1 <= min_depth <= max_depth):
        raise NasjaxInputError(f"max_depth/min_depth: got {max_depth!r}/{min_depth!r}, expected 1 <= min_depth <= "
                               "max_depth")
    entries = read_ofa_yaml_lut(path)
    stem, conv1, logits = (_one(entries, op, src) for op in ("Conv", "Conv_1", "Logits"))
    blocks = [e for e in entries if e.op == "expanded_conv"]
    for e in blocks:
        h_out = -(-e.input[0] // e.stride)
        if e.output[0] != h_out or e.output[1] != -(-e.input[1] // e.stride):
            raise NasjaxInputError(f"{src}[{e.key!r}]: output {e.output[0]}x{e.output[1]} from input "
                                   f"{e.input[0]}x{e.input[1]} at stride {e.stride}, expected {h_out}x{h_out}")
        if e.idskip and (e.input != e.output or e.stride != 1):
            raise NasjaxInputError(f"{src}[{e.key!r}]: idskip:1 with a change of shape, expected input == output, "
                                   "stride 1")
    first = [e for e in blocks if e.expand == 1]
    if len(first) != 1:
        raise NasjaxInputError(f"{src}: {len(first)} expand:1 entries, expected one first block")
    first = first[0]
    if first.input != stem.output:
        raise NasjaxInputError(f"{src}[{first.key!r}]: input {first.input}, expected the stem's output {stem.output}")
    elastic = [e for e in blocks if e is not first]
    kernels = sorted({e.kernel for e in elastic})
    expands = sorted({e.expand for e in elastic})
    groups: dict = {}
    for e in elastic:
        gk = (e.input, e.output, e.stride, e.idskip)
        cell = (e.kernel, e.expand)
        if cell in groups.setdefault(gk, {}):
            raise NasjaxInputError(f"{src}[{e.key!r}]: a second entry for the same layer and choice")
        groups[gk][cell] = e.mean_ms
    for gk, cells in groups.items():
        missing = [(k, x) for k in kernels for x in expands if (k, x) not in cells]
        if missing:
            k, x = missing[0]
            raise NasjaxInputError(f"{src}: no entry for kernel {k}, expand {x} of the layer input {gk[0]} -> "
                                   f"output {gk[1]} (stride {gk[2]}); expected the full grid kernels {kernels} x "
                                   f"expands {expands}")
    grid = [(k, x) for k in kernels for x in expands]
    positions, choices, rows, used = [], [], [], set()
    shape, stage = first.output, 0
    while shape != conv1.input:
        nxt = [gk for gk in groups if gk[0] == shape and gk[3] == 0]
        if len(nxt) != 1:
            raise NasjaxInputError(f"{src}: {len(nxt)} idskip:0 layers take input {shape}, expected one (a chain "
                                   f"from the first block's output to Conv_1's input {conv1.input})")
        stage += 1
        gk = nxt[0]
        used.add(gk)
        positions.append(f"stage {stage} layer 1")
        choices.append([f"k{k}e{x}" for k, x in grid])
        rows.append([groups[gk][c] for c in grid])
        shape = gk[1]
        rep = (shape, shape, 1, 1)
        if rep in groups:
            used.add(rep)
            for i in range(2, max_depth + 1):
                positions.append(f"stage {stage} layer {i}")
                skip = i > min_depth
                choices.append([f"k{k}e{x}" for k, x in grid] + ([SKIP] if skip else []))
                rows.append([groups[rep][c] for c in grid] + ([0.0] if skip else []))
    if logits.input != conv1.output:
        raise NasjaxInputError(f"{src}[{logits.key!r}]: input {logits.input}, expected Conv_1's output {conv1.output}")
    unused = [gk for gk in groups if gk not in used]
    if unused:
        raise NasjaxInputError(f"{src}: layer input {unused[0][0]} -> output {unused[0][1]} is not on the chain of "
                               "shapes from the stem to the head")
    K = max(len(r) for r in rows)
    vals = np.zeros((len(rows), K))
    mask = np.zeros((len(rows), K), bool)
    for i, r in enumerate(rows):
        vals[i, :len(r)], mask[i, :len(r)] = r, True
    res = stem.input[0]
    name = f"ofa_yaml_layers_{res}px"
    space = product_space(name, positions, choices, resolution=res, kernels=kernels, expands=expands)
    base = stem.mean_ms + first.mean_ms + conv1.mean_ms + logits.mean_ms
    prov = {"source": str(path), "format": "OFA per-layer latency YAML (mean ms per key)", "resolution": res,
            "kernels": kernels, "expands": expands, "max_depth": max_depth, "min_depth": min_depth,
            "device": "not stated by the source (Vitis-AI DPU LUT examples)",
            "base_parts_ms": {"Conv": stem.mean_ms, "first_block": first.mean_ms, "Conv_1": conv1.mean_ms,
                              "Logits": logits.mean_ms},
            "formula": "L(a) = base + sum_i T[i, a_i]; skip = 0 ms"}
    return ImportedLUT(Table(vals, mask, "latency", "ms", base, 1, None, name, prov), space)


def read_tfnas_lut(path) -> tuple[float, dict[tuple, dict[int, float]]]:
    """A TF-NAS LUT pickle as ``(base_ms, {(H, Cin, Cse, Cout, K, S, act): {mid_channels: ms}})``, checked
    (key format, finite numbers, positive integer channel counts); errors name the file and the key."""
    path = Path(path)
    src = f"lut_path {str(path)!r}"
    if not path.is_file():
        raise NasjaxInputError(f"lut_path: no file {str(path)!r}; expected a TF-NAS latency pickle")
    d = restricted_unpickle(path.read_bytes(), src, {("collections", "OrderedDict"): OrderedDict})
    if not isinstance(d, dict):
        raise NasjaxInputError(f"{src}: holds {type(d).__name__}, expected an OrderedDict of block keys")
    if "base" not in d or not _finite(d["base"], False):
        raise NasjaxInputError(f"{src}['base']: got {d.get('base')!r}, expected a finite latency in ms")
    blocks = {}
    for key, v in d.items():
        if key == "base":
            continue
        m = _TFNAS_KEY.match(key) if isinstance(key, str) else None
        if m is None:
            raise NasjaxInputError(f"{src}: key {str(key)[:80]!r}, expected "
                                   "'MBInvertedResBlock_{H}_{Cin}_{Cse}_{Cout}_k{K}_s{S}_{act}'")
        if not isinstance(v, dict) or not v:
            raise NasjaxInputError(f"{src}[{key!r}]: got {str(v)[:80]}, expected a mapping mid_channels -> ms")
        for mid, ms in v.items():
            if not (isinstance(mid, int) and not isinstance(mid, bool) and mid >= 1):
                raise NasjaxInputError(f"{src}[{key!r}]: channel count {mid!r}, expected an integer >= 1")
            if not (isinstance(ms, (int, float)) and not isinstance(ms, bool) and math.isfinite(ms)):
                raise NasjaxInputError(f"{src}[{key!r}][{mid}]: got {ms!r}, expected a finite latency in ms")
        g = m.groups()
        blocks[tuple(int(x) for x in g[:6]) + (g[6],)] = {int(k): float(x) for k, x in v.items()}
    if not blocks:
        raise NasjaxInputError(f"{src}: no MBInvertedResBlock entries")
    return float(d["base"]), blocks


def tfnas_table(path) -> ImportedLUT:
    """The TF-NAS LUT as a table (ms): a position per block shape ``(H, Cin, Cout, S, act)`` (file order), a
    choice per ``(K, Cse, mid_channels)`` labelled ``k{K}_se{Cse}_mid{m}``; ``base`` the file's ``base``."""
    path = Path(path)
    base, blocks = read_tfnas_lut(path)
    shapes: dict = {}
    for (h, cin, cse, cout, k, s, act), mids in blocks.items():
        cells = shapes.setdefault((h, cin, cout, s, act), {})
        for mid, ms in sorted(mids.items()):
            cells[f"k{k}_se{cse}_mid{mid}"] = ms
    positions = [f"{h}px {cin}->{cout} s{s} {act}" for (h, cin, cout, s, act) in shapes]
    choices = [list(c) for c in shapes.values()]
    K = max(len(c) for c in choices)
    vals = np.zeros((len(shapes), K))
    mask = np.zeros((len(shapes), K), bool)
    for i, cells in enumerate(shapes.values()):
        vals[i, :len(cells)], mask[i, :len(cells)] = list(cells.values()), True
    device = TFNAS_DEVICES.get(path.name)
    space = product_space("tfnas_blocks", positions, choices)
    prov = {"source": str(path), "format": "TF-NAS latency LUT (ms; base + one block per shape)",
            "device": device or "not stated (file name not one of the published two)",
            "blocks": len(blocks), "formula": "L(a) = base + sum_i T[i, a_i]"}
    return ImportedLUT(Table(vals, mask, "latency", "ms", base, 1, device, "tfnas_blocks", prov), space)
