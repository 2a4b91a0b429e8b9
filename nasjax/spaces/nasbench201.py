"""NAS-Bench-201 (Dong & Yang, ICLR 2020): a cell of 6 edges, each one of 5 operations.

Positions are the edges in arch-string order 1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2; choices are the ops in
the order MathNAS, DGL (1-based), OneProxy and BRP-NAS use: none, skip_connect, nor_conv_1x1,
nor_conv_3x3, avg_pool_3x3. The official string is ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``.
"""

from __future__ import annotations

import re

import numpy as np

from nasjax.errors import NasjaxInputError
from nasjax.spaces.base import SPACES, SearchSpace, product_space

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))  # (to, from), arch-string order
_OP_INDEX = {op: i for i, op in enumerate(OPS)}
_NODE_RE = re.compile(r"^\|([^|]+)\|(?:([^|]+)\|)?(?:([^|]+)\|)?$")


@SPACES.register("nasbench201")
def nasbench201_space() -> SearchSpace:
    return product_space(
        "nasbench201", [f"edge {t}<-{f}" for t, f in EDGES], [OPS] * len(EDGES), num_archs=15625
    )


def arch_to_str(arch) -> str:
    """Choice vector ``[6]`` -> official arch string."""
    a = nasbench201_space().validate(arch)
    if a.ndim != 1:
        raise NasjaxInputError(f"arch: shape {a.shape}, expected one architecture of 6 edges")
    ops = [OPS[c] for c in a]
    return f"|{ops[0]}~0|+|{ops[1]}~0|{ops[2]}~1|+|{ops[3]}~0|{ops[4]}~1|{ops[5]}~2|"


def str_to_arch(s: str) -> np.ndarray:
    """Official arch string -> choice vector ``[6]``; a malformed string names what is wrong."""
    if not isinstance(s, str):
        raise NasjaxInputError(f"arch string: got {s!r}, expected a string like '|nor_conv_3x3~0|+|...'")
    nodes = s.strip().split("+")
    if len(nodes) != 3:
        raise NasjaxInputError(f"arch string {s!r}: {len(nodes)} nodes, expected 3 separated by '+'")
    out = []
    for n, node in enumerate(nodes, start=1):
        parts = [p for p in node.split("|") if p]
        if not (node.startswith("|") and node.endswith("|")) or len(parts) != n:
            raise NasjaxInputError(f"arch string {s!r}: node {n} is {node!r}, expected {n} '|op~j|' entries")
        for j, p in enumerate(parts):
            op, _, src = p.partition("~")
            if op not in _OP_INDEX:
                raise NasjaxInputError(f"arch string {s!r}: op {op!r} on edge {n}<-{j}, expected one of {', '.join(OPS)}")
            if src != str(j):
                raise NasjaxInputError(f"arch string {s!r}: edge {p!r} into node {n}, expected input ~{j}")
            out.append(_OP_INDEX[op])
    return np.array(out, dtype=np.int64)


def strs_to_archs(strings) -> np.ndarray:
    """Vectorised :func:`str_to_arch` for many strings (``[N, 6]``)."""
    cache: dict[str, np.ndarray] = {}
    return np.stack([cache.setdefault(s, str_to_arch(s)) for s in strings]) if len(strings) else np.zeros((0, 6), np.int64)
