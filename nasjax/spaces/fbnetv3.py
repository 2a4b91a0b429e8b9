"""DGL's FBNetV3 space (Wang & Zhang, IEEE TMC 2023): 28 genes of an FBNetV3-style network.

Genes 0-6 are the kernel size per stage, 7-13 expansion ratios, 14 the stem channels, 15-21 the output
channels per stage, 22-27 the number of blocks per stage; choice ``c`` of gene ``i`` is the value
``FBNET_GENE_VALUES[i][c]`` (DGL's ``utils.py`` mutation value sets).
"""

from __future__ import annotations

import numpy as np

from nasjax.errors import NasjaxInputError, require
from nasjax.spaces.base import SPACES, SearchSpace, product_space

_K = (3, 5)
_E1 = (4, 5, 6, 7)
_E2 = (2, 3, 4, 5)
FBNET_GENE_VALUES: tuple[tuple[int, ...], ...] = (
    *([_K] * 7),  # 0-6 kernel size per stage
    _E1, _E2, _E1, _E2, _E1, _E2, _E1,  # 7-13 expansion ratios
    (16, 18, 20, 22, 24),  # 14 stem channels
    (16, 18, 20, 22, 24),  # 15 stage-1 output channels
    (20, 24, 28, 32),  # 16
    tuple(range(24, 49, 4)),  # 17
    tuple(range(56, 85, 4)),  # 18
    tuple(range(96, 145, 4)),  # 19
    tuple(range(180, 225, 4)),  # 20
    tuple(range(180, 225, 4)),  # 21 stage-7 output channels
    (1, 2, 3, 4), (4, 5, 6, 7), (4, 5, 6, 7), (4, 5, 6, 7, 8), (6, 7, 8, 9, 10), (5, 6, 7, 8, 9),  # 22-27 blocks
)
FBNET_GENE_NAMES = tuple(
    [f"kernel s{i + 1}" for i in range(7)]
    + ["expand s2 first", "expand s2 rest", "expand s3 first", "expand s3 rest", "expand s4/5 first",
       "expand s4/5 rest", "expand s6"]
    + ["stem channels"]
    + [f"channels s{i + 1}" for i in range(7)]
    + [f"blocks s{i + 1}" for i in range(6)]
)

@SPACES.register("fbnetv3")
def fbnetv3_space() -> SearchSpace:
    """DGL's FBNetV3 space: 28 genes, choice ``c`` of gene ``i`` is the value ``FBNET_GENE_VALUES[i][c]``."""
    return product_space(
        "fbnetv3", FBNET_GENE_NAMES, [[str(v) for v in vals] for vals in FBNET_GENE_VALUES],
        source="DGL utils.py::mutation value sets",
    )


def genes_to_arch(genes) -> np.ndarray:
    """DGL gene values ``[N, 28]`` (e.g. ``3 5 ... 224 1 4 ...``) -> choice indices ``[N, 28]``."""
    g = np.atleast_2d(np.asarray(genes))
    require(g.ndim == 2 and g.shape[1] == 28, "genes", g.shape, "(N, 28) FBNetV3 gene values")
    out = np.zeros(g.shape, np.int64)
    for i, vals in enumerate(FBNET_GENE_VALUES):
        lut = {v: c for c, v in enumerate(vals)}
        for n in range(g.shape[0]):
            v = g[n, i]
            if v not in lut:
                raise NasjaxInputError(f"genes[{n}][{i}] ({FBNET_GENE_NAMES[i]}): got {v!r}, expected one of {list(vals)}")
            out[n, i] = lut[v]
    return out


def arch_to_genes(archs) -> np.ndarray:
    a = fbnetv3_space().validate(archs)
    a2 = np.atleast_2d(a)
    g = np.stack([np.asarray(FBNET_GENE_VALUES[i])[a2[:, i]] for i in range(28)], axis=1)
    return g if a.ndim == 2 else g[0]
