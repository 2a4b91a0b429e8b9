"""OFA MobileNetV3 (``ofa_mbv3_d234_e346_k357``, Cai et al., ICLR 2020) and MathNAS's stage-block view.

Two choice-vector views of the same networks:

* ``mobilenetv3_layers``: 25 positions: 20 layers x 9 (kernel, expand) choices with
  ``c = 3 * ks_index + e_index`` (ks in 3/5/7, e in 3/4/6), then 5 stage depths x 3 choices (2/3/4).
  Inactive layers (beyond a stage's depth) keep their choice but do not run.
* ``mobilenetv3`` (MathNAS, NeurIPS 2023): 5 positions (stages) x 5 choices, each choice a whole stage
  configuration ``{d, e[4], ks[4]}`` from a *block set* (MathNAS ships a CPU and a GPU set; nasjax's
  own supernet defines its own). ``encodearch[i]`` is the chosen block of stage ``i``.

The native format is OFA's dict ``{"ks": [20], "e": [20], "d": [5]}`` (MathNAS ymls add ``encodearch``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from nasjax.errors import NasjaxInputError, shown
from nasjax.spaces.base import SPACES, SearchSpace, product_space

KS = (3, 5, 7)
EXPAND = (3, 4, 6)
DEPTHS = (2, 3, 4)
NUM_STAGES = 5
MAX_DEPTH = 4
NUM_LAYERS = NUM_STAGES * MAX_DEPTH


@SPACES.register("mobilenetv3_layers")
def mobilenetv3_layers_space() -> SearchSpace:
    """OFA MobileNetV3's layer view: 20 layers x 9 (kernel, expand) choices, then 5 stage depths x 3 choices."""
    layer_choices = [f"k{k}e{e}" for k in KS for e in EXPAND]
    positions = [f"stage {s + 1} layer {i + 1}" for s in range(NUM_STAGES) for i in range(MAX_DEPTH)]
    positions += [f"stage {s + 1} depth" for s in range(NUM_STAGES)]
    choices = [layer_choices] * NUM_LAYERS + [[f"d{d}" for d in DEPTHS]] * NUM_STAGES
    return product_space("mobilenetv3_layers", positions, choices)


_OFA_EXTRA_KEYS = ("encodearch", "predicted", "solve_time_ms", "space", "device", "constraints", "resolution")


def _check_list(d: dict, key: str, n: int, allowed: Sequence[int], where: str = "arch") -> list[int]:
    """``d[key]`` as ``n`` integers from ``allowed``; errors name ``where.key[i]``."""
    if key not in d:
        raise NasjaxInputError(f"{where}: missing key {key!r}, expected {n} values from {list(allowed)}")
    v = d[key]
    if isinstance(v, np.ndarray) and v.ndim == 1:
        v = v.tolist()
    if not isinstance(v, (list, tuple)) or len(v) != n:
        raise NasjaxInputError(f"{where}.{key}: got {shown(v)}, expected a list of {n} values from {list(allowed)}")
    out = []
    for i, x in enumerate(v):
        if isinstance(x, bool) or not isinstance(x, (int, np.integer)) or int(x) not in allowed:
            raise NasjaxInputError(f"{where}.{key}[{i}]: got {shown(x)}, expected one of {list(allowed)}")
        out.append(int(x))
    return out


def validate_ofa(d: Any) -> dict[str, list[int]]:
    """Check an OFA dict ``{ks[20], e[20], d[5]}`` (extra keys: ``encodearch`` and nasjax's result keys).

    Args:
      d: the architecture mapping (e.g. read from a yml).

    Returns:
      ``{"ks": [20], "e": [20], "d": [5]}`` as Python ints.

    Raises:
      NasjaxInputError: when ``d`` is not a mapping, has an unknown key, lacks a key, or a list has the wrong
        length or a value outside the kernel (3/5/7), expand (3/4/6) or depth (2/3/4) choices.
    """
    if not isinstance(d, dict):
        raise NasjaxInputError(f"arch: got {type(d).__name__}, expected a mapping with keys d, e, ks")
    unknown = [k for k in d if k not in ("ks", "e", "d", *_OFA_EXTRA_KEYS)]
    if unknown:
        names = ", ".join(sorted(shown(k, 40) for k in unknown))
        raise NasjaxInputError(f"arch: unknown key(s) {names}, expected d, e, ks[, encodearch]")
    return {
        "ks": _check_list(d, "ks", NUM_LAYERS, KS),
        "e": _check_list(d, "e", NUM_LAYERS, EXPAND),
        "d": _check_list(d, "d", NUM_STAGES, DEPTHS),
    }


def ofa_to_layers(d: dict) -> np.ndarray:
    """OFA dict -> ``mobilenetv3_layers`` choice vector ``[25]``.

    layer choice = 3 * ks_index + e_index (20 layers), then depth_index per stage (5)

    Args:
      d: the OFA dict (see :func:`validate_ofa`).

    Returns:
      int64 ``[25]``.

    Raises:
      NasjaxInputError: when the dict is invalid (see :func:`validate_ofa`).
    """
    d = validate_ofa(d)
    lay = [3 * KS.index(k) + EXPAND.index(e) for k, e in zip(d["ks"], d["e"])]
    return np.array(lay + [DEPTHS.index(x) for x in d["d"]], dtype=np.int64)


def ofa_rows_to_layers(rows, field: str = "HELP OFA rows") -> np.ndarray:
    """OFA vectors ``[N, 46]`` (``ks[20], e[20], d[5], resolution``, as HELP stores its subnets) ->
    ``[N, 26]``: the ``mobilenetv3_layers`` choice vector and the resolution.

    layer choice = 3 * ks_index + e_index (20 layers), then depth_index per stage (5), then the resolution

    Args:
      rows: ``[46]`` or ``[N, 46]`` integer values (kernel sizes, expand ratios, depths, pixels).
      field: the name used in error messages.

    Returns:
      int64 ``[N, 26]``.

    Raises:
      NasjaxInputError: another shape, a non-integer value, or a value outside ks 3/5/7, e 3/4/6, d 2/3/4
        (naming the row, the part and the index).
    """
    a = np.atleast_2d(np.asarray(rows))
    if a.ndim != 2 or a.shape[1] != 2 * NUM_LAYERS + NUM_STAGES + 1 or a.dtype.kind not in "iuf" or (
            a.dtype.kind == "f" and not np.all(a == np.round(a))):
        raise NasjaxInputError(f"{field}: got shape {a.shape} ({a.dtype}), expected [N, 46] integers: ks[20], "
                               "e[20], d[5], resolution")
    a = a.astype(np.int64)
    parts = (("ks", a[:, :20], KS), ("e", a[:, 20:40], EXPAND), ("d", a[:, 40:45], DEPTHS))
    for name, v, allowed in parts:
        ok = np.isin(v, allowed)
        if not ok.all():
            i, j = np.argwhere(~ok)[0]
            raise NasjaxInputError(f"{field}[{i}].{name}[{j}]: got {int(v[i, j])}, expected one of {list(allowed)}")
    ks, e, d = (np.searchsorted(allowed, v) for _, v, allowed in parts)
    return np.concatenate([3 * ks + e, d, a[:, 45:46]], 1).astype(np.int64)


def layers_to_ofa(arch) -> dict[str, list[int]]:
    """``mobilenetv3_layers`` choice vector ``[25]`` -> OFA dict (the inverse of :func:`ofa_to_layers`).

    Args:
      arch: one choice vector ``[25]``.

    Returns:
      ``{"ks": [20], "e": [20], "d": [5]}`` (inactive layers keep their choice).

    Raises:
      NasjaxInputError: when ``arch`` is not a valid choice vector of the space.
    """
    a = mobilenetv3_layers_space().validate(arch)
    lay = a[:NUM_LAYERS]
    return {
        "ks": [KS[c // 3] for c in lay],
        "e": [EXPAND[c % 3] for c in lay],
        "d": [DEPTHS[c] for c in a[NUM_LAYERS:]],
    }


@dataclass(frozen=True)
class BlockSet:
    """Per stage, the stage configurations a MathNAS stage-block choice stands for.

    ``configs[s][c] = {"d": int, "e": [4], "ks": [4]}``; only the first ``d`` entries are active.
    """

    name: str
    configs: tuple[tuple[dict, ...], ...]

    def __post_init__(self):
        if not isinstance(self.name, str):
            raise NasjaxInputError(f"block set name: got {self.name!r}, expected a string")
        if not isinstance(self.configs, (tuple, list)) or len(self.configs) != NUM_STAGES:
            n = len(self.configs) if isinstance(self.configs, (tuple, list)) else type(self.configs).__name__
            raise NasjaxInputError(f"block set {self.name!r}: {n} stages, expected {NUM_STAGES}")
        for s, stage in enumerate(self.configs):
            if not isinstance(stage, (tuple, list)) or not stage:
                raise NasjaxInputError(f"block set {self.name!r} stage {s}: got {shown(stage)}, expected a "
                                       "non-empty list of stage configurations")
            for c, cfg in enumerate(stage):
                f = f"block set {self.name!r} stage {s} choice {c}"
                if not isinstance(cfg, dict) or set(cfg) != {"d", "e", "ks"}:
                    raise NasjaxInputError(f"{f}: got {shown(cfg)}, expected a dict with keys d, e, ks")
                _check_list({"d": [cfg["d"]]}, "d", 1, DEPTHS, f)
                _check_list(cfg, "e", MAX_DEPTH, EXPAND, f)
                _check_list(cfg, "ks", MAX_DEPTH, KS, f)

    @property
    def num_choices(self) -> list[int]:
        """The number of stage blocks of every stage."""
        return [len(s) for s in self.configs]

    def space(self) -> SearchSpace:
        """The ``"mobilenetv3"`` space of this block set: 5 stages, one choice per block."""
        return product_space(
            "mobilenetv3",
            [f"stage {s + 1}" for s in range(NUM_STAGES)],
            [[f"block {c}" for c in range(len(st))] for st in self.configs],
            block_set=self.name,
        )

    def to_ofa(self, encodearch) -> dict[str, list[int]]:
        """``encodearch[5]`` -> OFA dict (MathNAS's yml keys, ``encodearch`` included).

        Args:
          encodearch: one stage-block choice per stage (5 indices into the block set).

        Returns:
          ``{"d": [5], "e": [20], "ks": [20], "encodearch": [5]}``: depth per stage, expansion and kernel per layer
          (inactive layers keep the block's padding values).

        Raises:
          NasjaxInputError: when ``encodearch`` is not a valid architecture of the block set's space.
        """
        a = self.space().validate(encodearch, "encodearch")
        ks, e, d = [], [], []
        for s, c in enumerate(a):
            cfg = self.configs[s][int(c)]
            ks += list(cfg["ks"])
            e += list(cfg["e"])
            d.append(int(cfg["d"]))
        return {"d": d, "e": e, "ks": ks, "encodearch": [int(x) for x in a]}

    def from_ofa(self, arch: dict) -> np.ndarray:
        """OFA dict -> ``encodearch``; the active layers of every stage must match a block of the set.

        If the dict carries ``encodearch``, it must agree with the decoded stages.

        Args:
          arch: the OFA dict (see :func:`validate_ofa`), optionally with ``encodearch``.

        Returns:
          int64 ``[5]`` stage-block choices (the first matching block of each stage).

        Raises:
          NasjaxInputError: when the dict is invalid, a stage matches no block of the set, or ``encodearch``
            disagrees with the decoded stages.
        """
        d = validate_ofa(arch)
        out = []
        for s in range(NUM_STAGES):
            depth = d["d"][s]
            ks = d["ks"][s * MAX_DEPTH : s * MAX_DEPTH + depth]
            e = d["e"][s * MAX_DEPTH : s * MAX_DEPTH + depth]
            match = [
                c
                for c, cfg in enumerate(self.configs[s])
                if cfg["d"] == depth and list(cfg["ks"][:depth]) == ks and list(cfg["e"][:depth]) == e
            ]
            if not match:
                raise NasjaxInputError(
                    f"arch stage {s + 1}: d={depth}, ks={ks}, e={e} is not a block of block set {self.name!r}"
                )
            out.append(match[0])
        enc = np.array(out, dtype=np.int64)
        if "encodearch" in arch:
            given = self.space().validate(arch["encodearch"], "arch.encodearch")
            if given.ndim != 1 or given.tolist() != enc.tolist():
                raise NasjaxInputError(
                    f"arch.encodearch: got {given.tolist()}, but d/e/ks decode to {enc.tolist()} "
                    f"in block set {self.name!r}"
                )
        return enc

    def to_dict(self) -> dict:
        """The block set as plain data (the inverse of :meth:`from_dict`)."""
        return {"name": self.name, "configs": [list(s) for s in self.configs]}

    @classmethod
    def from_dict(cls, d: dict) -> BlockSet:
        """Inverse of :meth:`to_dict`; a malformed mapping names the field.

        Args:
          d: ``{"name": str, "configs": [[{"d", "e", "ks"}, ...] per stage]}``.

        Returns:
          The block set.

        Raises:
          NasjaxInputError: when the keys differ from ``name, configs``, ``configs`` is not a list per stage, or a
            stage configuration is invalid.
        """
        if not isinstance(d, dict) or set(d) != {"name", "configs"}:
            raise NasjaxInputError(f"block set: got {shown(d)}, expected a mapping with keys name, configs")
        stages = d["configs"]
        if not isinstance(stages, (list, tuple)) or not all(isinstance(st, (list, tuple)) for st in stages):
            raise NasjaxInputError(f"block set {d['name']!r}.configs: got {shown(stages)}, expected a list "
                                   "per stage of stage configurations")
        return cls(d["name"], tuple(tuple(dict(c) if isinstance(c, dict) else c for c in st) for st in stages))


@SPACES.register("mobilenetv3")
def mobilenetv3_space(block_set: BlockSet | None = None, num_choices: int = 5) -> SearchSpace:
    """MathNAS's stage-block space; with no block set, 5 stages x ``num_choices`` anonymous blocks.

    Args:
      block_set: the block set whose stage configurations the choices stand for, or ``None``.
      num_choices: the blocks per stage when ``block_set`` is ``None``.

    Returns:
      The ``"mobilenetv3"`` space, 5 positions ``"stage s"`` with choices ``"block c"``.
    """
    if block_set is not None:
        return block_set.space()
    return product_space(
        "mobilenetv3", [f"stage {s + 1}" for s in range(NUM_STAGES)],
        [[f"block {c}" for c in range(num_choices)]] * NUM_STAGES,
    )
