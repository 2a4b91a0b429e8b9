"""NAS-Bench-201 (Dong & Yang, ICLR 2020): a cell of 6 edges, each one of 5 operations.

Positions are the edges in arch-string order 1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2; choices are the ops in
the order MathNAS, DGL (1-based), OneProxy and BRP-NAS use: none, skip_connect, nor_conv_1x1,
nor_conv_3x3, avg_pool_3x3. The official string is ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``.
"""

from __future__ import annotations

import numpy as np

from nasjax.errors import NasjaxInputError, shown
from nasjax.spaces.base import SPACES, SearchSpace, product_space

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))  # (to, from), arch-string order
_OP_INDEX = {op: i for i, op in enumerate(OPS)}


@SPACES.register("nasbench201")
def nasbench201_space() -> SearchSpace:
    """The NAS-Bench-201 space: 6 edges (arch-string order) x the 5 ops of :data:`OPS` (15,625 cells)."""
    return product_space(
        "nasbench201", [f"edge {t}<-{f}" for t, f in EDGES], [OPS] * len(EDGES), num_archs=15625
    )


def arch_to_str(arch) -> str:
    """Choice vector ``[6]`` -> official arch string.

    Args:
      arch: one NAS-Bench-201 choice vector ``[6]`` (edges in arch-string order, choices in :data:`OPS`).

    Returns:
      ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`` with the edges' ops.

    Raises:
      NasjaxInputError: when ``arch`` is not one valid choice vector.
    """
    a = nasbench201_space().validate(arch)
    if a.ndim != 1:
        raise NasjaxInputError(f"arch: shape {a.shape}, expected one architecture of 6 edges")
    ops = [OPS[c] for c in a]
    return f"|{ops[0]}~0|+|{ops[1]}~0|{ops[2]}~1|+|{ops[3]}~0|{ops[4]}~1|{ops[5]}~2|"


def str_to_arch(s: str, field: str = "arch string") -> np.ndarray:
    """Official arch string -> choice vector ``[6]``; a malformed string names what is wrong.

    The string must be exactly ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`` (surrounding whitespace allowed):
    node ``n`` holds ``n`` entries ``op~j`` with inputs ``j = 0..n-1`` in order, each ``op`` one of
    :data:`OPS`.

    Args:
      s: the arch string.
      field: what the string is, first in error messages.

    Returns:
      int64 ``[6]`` choice indices.

    Raises:
      NasjaxInputError: when ``s`` is not a string, has another node count, an unknown op or a wrong input index.
    """
    if not isinstance(s, str):
        raise NasjaxInputError(f"{field}: got {shown(s, 80)} ({type(s).__name__}), expected a string like "
                               "'|nor_conv_3x3~0|+|...'")
    nodes = s.strip().split("+")
    if len(nodes) != 3:
        raise NasjaxInputError(f"{field} {shown(s)}: {len(nodes)} nodes, expected 3 separated by '+'")
    out = []
    for n, node in enumerate(nodes, start=1):
        parts = node[1:-1].split("|") if len(node) >= 2 and node[0] == node[-1] == "|" else []
        if len(parts) != n or not all(parts):
            raise NasjaxInputError(f"{field} {shown(s)}: node {n} is {shown(node, 60)}, expected {n} '|op~j|' "
                                   "entries")
        for j, p in enumerate(parts):
            op, _, src = p.partition("~")
            if op not in _OP_INDEX:
                raise NasjaxInputError(f"{field} {shown(s)}: op {shown(op, 40)} on edge {n}<-{j}, expected one of "
                                       f"{', '.join(OPS)}")
            if src != str(j):
                raise NasjaxInputError(f"{field} {shown(s)}: edge {shown(p, 60)} into node {n}, expected input ~{j}")
            out.append(_OP_INDEX[op])
    return np.array(out, dtype=np.int64)


def strs_to_archs(strings) -> np.ndarray:
    """Vectorised :func:`str_to_arch` for many strings (``[N, 6]``); an error names the entry's index.

    Args:
      strings: an iterable of arch strings (not a single string).

    Returns:
      int64 ``[N, 6]`` choice indices.

    Raises:
      NasjaxInputError: when ``strings`` is a string or not iterable, or an entry is malformed.
    """
    if isinstance(strings, (str, bytes)) or not hasattr(strings, "__iter__"):
        raise NasjaxInputError(f"arch strings: got {shown(strings, 80)}, expected a list of arch strings")
    strings = list(strings)
    cache: dict[str, np.ndarray] = {}
    out = np.zeros((len(strings), 6), np.int64)
    for i, s in enumerate(strings):
        if not isinstance(s, str):  # may be unhashable: refuse it before the cache lookup
            str_to_arch(s, f"arch strings[{i}]")
        if s not in cache:
            cache[s] = str_to_arch(s, f"arch strings[{i}]")
        out[i] = cache[s]
    return out
