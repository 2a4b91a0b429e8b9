"""NASViT's SuperViT space (Gong et al., ICLR 2022) in MathNAS's block view (NeurIPS 2023), resolution included.

Native format (NASViT / MathNAS ymls)::

    {resolution: 192|224|256|288, width: [9], depth: [7], kernel_size: [7], expand_ratio: [7]}

``width[i]`` belongs to position ``i`` (0 = first conv, 1..7 = the seven stages, 8 = the last conv);
``depth/kernel_size/expand_ratio[i - 1]`` belong to stage position ``i``. MathNAS numbers each
position's configurations as one mixed-radix index (least significant digit first)::

    pos0  c = w                         width (w+2)*8                                   2 choices
    pos1  c = k + 2d + 4w               width (w+2)*8, depth d+1, kernel 2k+3, expand 1  8
    pos2  c = e + 3k + 6d + 18w         width (w+3)*8, depth d+3, kernel 2k+3, expand e+4  36
    pos3  c = e + 3d + 12w              width (w+4)*8, depth d+3, kernel 3, expand e+4   24
    pos4  c = e + 3d + 12w              width (w+8)*8, depth d+3, kernel 3, expand e+4   24
    pos5  c = e + 3d + 21w              width (w+14)*8, depth d+3 (3..9), kernel 3, e+4  63
    pos6  c = d + 6w                    width (w+20)*8, depth d+3, kernel 3, expand 6    24
    pos7  c = d + 4w                    width (w+26)*8, depth d+3, kernel 3, expand 6    12
    pos8  c = w                         width 1792 + 192w                                2

The nasjax space ``supervit`` has 10 positions: the resolution (4 choices, 192/224/256/288) first,
then those 9. Its predictor is additive *per resolution* (choice 0 of every position is the smallest
block, and MathNAS's tables hold the top-1 / MFLOPs of the network with one position varied and the
others at choice 0)::

    acc(r, c)   = A_r + sum_i (a_r[i][c_i] - a_r[i][0])        A_r = a_r[0][0]            (%)
    FLOPs(r, c) = F_r + sum_i (f_r[i][c_i] - f_r[i][0])        F_r = f_r[0][0]            (MFLOPs)

(F_r = 189.789 / 276.161 / 369.066 / 502.247 MFLOPs; ``A_r = a_r[0][0]`` reproduces MathNAS-T1's 78.42 %.)
The tables are read by :func:`nasjax.benchmarks.mathnas.supervit_tables`; the predictor and its exact
search (one branch per resolution) are :class:`nasjax.problems.supervit.SuperViTModel`. This module is the
codec only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from nasjax.errors import NasjaxInputError
from nasjax.spaces.base import RESULT_KEYS, SPACES, SearchSpace, product_space

RESOLUTIONS = (192, 224, 256, 288)
NUM_CHOICES = (2, 8, 36, 24, 24, 63, 24, 12, 2)
NUM_BLOCKS = len(NUM_CHOICES)
NUM_STAGES = 7
YML_KEYS = ("resolution", "width", "depth", "kernel_size", "expand_ratio")


def _r(lo: int, n: int, step: int = 1) -> tuple[int, ...]:
    return tuple(lo + step * j for j in range(n))


# Per position: the mixed-radix digits (yml field, allowed values), least significant first, and
# the fields the position fixes. Derived from the decoding table in the module docstring.
_DIGITS: tuple[tuple[tuple[str, tuple[int, ...]], ...], ...] = (
    (("width", _r(16, 2, 8)),),
    (("kernel_size", (3, 5)), ("depth", (1, 2)), ("width", _r(16, 2, 8))),
    (("expand_ratio", (4, 5, 6)), ("kernel_size", (3, 5)), ("depth", (3, 4, 5)), ("width", _r(24, 2, 8))),
    (("expand_ratio", (4, 5, 6)), ("depth", _r(3, 4)), ("width", _r(32, 2, 8))),
    (("expand_ratio", (4, 5, 6)), ("depth", _r(3, 4)), ("width", _r(64, 2, 8))),
    (("expand_ratio", (4, 5, 6)), ("depth", _r(3, 7)), ("width", _r(112, 3, 8))),
    (("depth", _r(3, 6)), ("width", _r(160, 4, 8))),
    (("depth", _r(3, 4)), ("width", _r(208, 3, 8))),
    (("width", (1792, 1984)),),
)
_FIXED: tuple[dict[str, int], ...] = (
    {},
    {"expand_ratio": 1},
    {},
    {"kernel_size": 3},
    {"kernel_size": 3},
    {"kernel_size": 3},
    {"kernel_size": 3, "expand_ratio": 6},
    {"kernel_size": 3, "expand_ratio": 6},
    {},
)
assert tuple(int(np.prod([len(v) for _, v in d])) for d in _DIGITS) == NUM_CHOICES


def _slot(field: str, pos: int) -> int:
    """Index into the yml list ``field`` that position ``pos`` owns."""
    return pos if field == "width" else pos - 1


def _choice_label(pos: int, c: int) -> str:
    return ",".join(f"{f}={v}" for f, v in sorted(_decode_position(pos, c).items()))


def _decode_position(pos: int, c: int) -> dict[str, int]:
    out = dict(_FIXED[pos])
    for field, values in _DIGITS[pos]:
        out[field] = values[c % len(values)]
        c //= len(values)
    return out


@SPACES.register("supervit")
def supervit_space() -> SearchSpace:
    """10 positions: resolution, then MathNAS's 9 SuperViT block positions."""
    positions = ["resolution", "first conv"] + [f"stage {s}" for s in range(1, NUM_STAGES + 1)] + ["last conv"]
    choices = [[f"r{r}" for r in RESOLUTIONS]] + [
        [_choice_label(p, c) for c in range(k)] for p, k in enumerate(NUM_CHOICES)
    ]
    return product_space("supervit", positions, choices, branch_position=0)


def block_space(resolution: int | None = None) -> SearchSpace:
    """The 9-position space of one resolution (what the per-resolution tables cover).

    Args:
      resolution: the resolution in the space's name, or ``None``.

    Returns:
      The :class:`~nasjax.spaces.base.SearchSpace` ``supervit_r<resolution>`` (``supervit_blocks`` without one).
    """
    name = "supervit_blocks" if resolution is None else f"supervit_r{resolution}"
    full = supervit_space()
    return product_space(name, full.positions[1:], full.choices[1:])


# --- codec ------------------------------------------------------------------------------------
def int_list(d: Mapping, key: str, n: int, allowed: Sequence[int] | None = None) -> list[int]:
    """``d[key]`` as a list of ``n`` integers (each in ``allowed`` if given), or an error naming the entry.

    Args:
      d: the architecture mapping (``key`` must be present).
      key: the key to read.
      n: the required list length.
      allowed: the admitted values, or ``None`` for any integer.

    Returns:
      The ``n`` values as Python ints.

    Raises:
      NasjaxInputError: when the value is not a list or tuple of length ``n``, or an entry is a bool, not an
        integer, or not in ``allowed`` (naming ``arch.<key>[i]``).
    """
    v = d[key]
    what = f"values from {list(allowed)}" if allowed is not None else "integers"
    if not isinstance(v, (list, tuple)) or len(v) != n:
        raise NasjaxInputError(f"arch.{key}: got {v!r}, expected a list of {n} {what}")
    for i, x in enumerate(v):
        bad_value = allowed is not None and isinstance(x, (int, np.integer)) and int(x) not in allowed
        if isinstance(x, bool) or not isinstance(x, (int, np.integer)) or bad_value:
            raise NasjaxInputError(f"arch.{key}[{i}]: got {x!r}, expected " + (
                f"one of {list(allowed)}" if allowed is not None else "an integer"))
    return [int(x) for x in v]


def check_keys(d: Any, keys: Sequence[str], what: str) -> None:
    """``d`` must be a mapping holding every key of ``keys`` and no other (nasjax's result keys aside).

    Args:
      d: the architecture read from a file.
      keys: the required keys.
      what: a description of the expected keys, for error messages.

    Raises:
      NasjaxInputError: when ``d`` is not a mapping, lacks a key, or has a key outside ``keys`` and
        :data:`~nasjax.spaces.base.RESULT_KEYS`.
    """
    if not isinstance(d, Mapping):
        raise NasjaxInputError(f"arch: got {type(d).__name__}, expected a mapping with {what}")
    missing = [k for k in keys if k not in d]
    if missing:
        raise NasjaxInputError(f"arch: missing key(s) {missing}, expected {what}")
    unknown = sorted(set(d) - set(keys) - RESULT_KEYS)
    if unknown:
        raise NasjaxInputError(f"arch: unknown key(s) {unknown}, expected {what}")


def validate_config(d: Any) -> dict:
    """Check a NASViT config mapping: keys, list lengths, integer entries; returns a clean copy.

    Args:
      d: the config mapping (:data:`YML_KEYS`; nasjax's result keys ignored).

    Returns:
      ``{"resolution": int, "width": [9], "depth": [7], "kernel_size": [7], "expand_ratio": [7]}``.

    Raises:
      NasjaxInputError: on a missing or unknown key, a resolution not in :data:`RESOLUTIONS`, or a list of
        the wrong length or with a non-integer entry.
    """
    check_keys(d, YML_KEYS, "keys " + ", ".join(YML_KEYS))
    res = d["resolution"]
    if isinstance(res, bool) or not isinstance(res, (int, np.integer)) or int(res) not in RESOLUTIONS:
        raise NasjaxInputError(f"arch.resolution: got {res!r}, expected one of {list(RESOLUTIONS)}")
    out = {"resolution": int(res), "width": int_list(d, "width", NUM_BLOCKS)}
    for k in ("depth", "kernel_size", "expand_ratio"):
        out[k] = int_list(d, k, NUM_STAGES)
    return out


def config_to_arch(d: Any) -> np.ndarray:
    """NASViT config -> ``supervit`` choice vector ``[10]`` (resolution index, 9 block choices).

    Args:
      d: the config mapping (see :func:`validate_config`).

    Returns:
      int64 ``[10]``.

    Raises:
      NasjaxInputError: when the config is invalid, or a value is not allowed (or differs from a position's
        fixed value) for its position.
    """
    cfg = validate_config(d)
    arch = [RESOLUTIONS.index(cfg["resolution"])]
    for pos in range(NUM_BLOCKS):
        c, radix = 0, 1
        for field, values in _DIGITS[pos]:
            x = cfg[field][_slot(field, pos)]
            if x not in values:
                raise NasjaxInputError(
                    f"arch.{field}[{_slot(field, pos)}]: got {x}, expected one of {list(values)} "
                    f"({supervit_space().positions[pos + 1]})"
                )
            c += values.index(x) * radix
            radix *= len(values)
        for field, v in _FIXED[pos].items():
            x = cfg[field][_slot(field, pos)]
            if x != v:
                raise NasjaxInputError(
                    f"arch.{field}[{_slot(field, pos)}]: got {x}, expected {v} "
                    f"({supervit_space().positions[pos + 1]} has a fixed {field})"
                )
        arch.append(c)
    return np.array(arch, dtype=np.int64)


def arch_to_config(arch) -> dict:
    """``supervit`` choice vector ``[10]`` -> NASViT config (MathNAS's yml keys).

    Args:
      arch: one choice vector ``[10]``.

    Returns:
      The config dict (see :func:`validate_config`).

    Raises:
      NasjaxInputError: when ``arch`` is not one valid choice vector of the space.
    """
    a = supervit_space().validate(arch)
    if a.ndim != 1:
        raise NasjaxInputError(f"arch: shape {a.shape}, expected one architecture of 10 positions")
    cfg = {
        "resolution": RESOLUTIONS[int(a[0])],
        "width": [0] * NUM_BLOCKS,
        "depth": [0] * NUM_STAGES,
        "kernel_size": [0] * NUM_STAGES,
        "expand_ratio": [0] * NUM_STAGES,
    }
    for pos in range(NUM_BLOCKS):
        for field, v in _decode_position(pos, int(a[pos + 1])).items():
            cfg[field][_slot(field, pos)] = int(v)
    return cfg
