"""DGL's FBNetV3 space (Wang & Zhang, IEEE TMC 2023): 28 genes of an FBNetV3-style network.

Genes 0-6 are the kernel size per stage, 7-13 expansion ratios, 14 the stem channels, 15-21 the output
channels per stage, 22-27 the number of blocks per stage; choice ``c`` of gene ``i`` is the value
``FBNET_GENE_VALUES[i][c]`` (DGL's ``utils.py`` mutation value sets).
"""

from __future__ import annotations

import numpy as np

from nasjax.errors import NasjaxInputError, require, shown
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


def _as_float(v) -> float:
    try:
        return float(v)
    except OverflowError:
        return float("nan")


def genes_to_arch(genes) -> np.ndarray:
    """DGL gene values ``[N, 28]`` (e.g. ``3 5 ... 224 1 4 ...``) -> choice indices ``[N, 28]``.

    Gene ``i`` must be one of ``FBNET_GENE_VALUES[i]``; integral floats (``3.0``) are accepted, anything
    else (fractions, NaN, strings, booleans, ragged rows) names ``genes[n][i]`` and the allowed values.

    Args:
      genes: gene values ``[28]`` or ``[N, 28]``.

    Returns:
      int64 ``[N, 28]`` choice indices.

    Raises:
      NasjaxInputError: on a non-rectangular array, another width, or a value not allowed for its gene.
    """
    try:
        g = np.atleast_2d(np.asarray(genes))
    except (ValueError, TypeError) as e:
        raise NasjaxInputError(f"genes: not a rectangular array ({e}); expected (N, 28) FBNetV3 gene values") from None
    require(g.ndim == 2 and g.shape[1] == 28, "genes", g.shape, "(N, 28) FBNetV3 gene values")
    given = g  # the values as given, for messages
    if g.dtype.kind == "O" and all(isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
                                   for v in g.flat):
        # plain Python numbers (an object array from mixed or big integers); one beyond float range is NaN
        # here, so it is refused below like any other value outside the allowed ones
        g = np.array([_as_float(v) for v in g.flat], np.float64).reshape(g.shape)
    if g.dtype.kind == "f":
        ok = np.isfinite(g) & (g == np.round(g)) & (np.abs(g) < 2**62)
        ints = np.where(ok, g, -1).astype(np.int64)
    elif g.dtype.kind in "iu":
        ints = g.astype(np.int64)  # a uint64 beyond int64 wraps negative and is refused below
    else:  # strings, booleans, objects
        ints = np.full(g.shape, -1, np.int64)
    out = np.zeros(g.shape, np.int64)
    for i, vals in enumerate(FBNET_GENE_VALUES):
        col = ints[:, i]
        hit = col[:, None] == np.asarray(vals)[None, :]
        miss = np.flatnonzero(~hit.any(1))
        if miss.size:
            n = int(miss[0])
            v = given[n, i]
            raise NasjaxInputError(f"genes[{n}][{i}] ({FBNET_GENE_NAMES[i]}): got {shown(v, 40)} "
                                   f"({type(v.item() if isinstance(v, np.generic) else v).__name__}), expected one of "
                                   f"{list(vals)}")
        out[:, i] = hit.argmax(1)
    return out


def arch_to_genes(archs) -> np.ndarray:
    """Choice indices -> DGL gene values (the inverse of :func:`genes_to_arch`).

    Args:
      archs: FBNetV3 choice vectors ``[28]`` or ``[N, 28]``.

    Returns:
      int64 gene values of the same shape.

    Raises:
      NasjaxInputError: when ``archs`` are not valid choice vectors of the space.
    """
    a = fbnetv3_space().validate(archs)
    a2 = np.atleast_2d(a)
    g = np.stack([np.asarray(FBNET_GENE_VALUES[i])[a2[:, i]] for i in range(28)], axis=1)
    return g if a.ndim == 2 else g[0]
