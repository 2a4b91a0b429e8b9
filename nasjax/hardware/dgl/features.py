"""Architecture features of DGL's model of A (Wang & Zhang, IEEE TMC 2023, improved): one vector per arch.

* ``nasbench201`` (6 edges x 5 ops, DGL's 1..5 op codes = nasjax choice + 1): one-hot (30), op counts
  (5), and the pairwise products of one-hot cells on different edges (15 edge pairs x 25 = 375): 410.
* ``fbnetv3`` (DGL's 28 genes, :mod:`nasjax.spaces.fbnetv3`): the 28 gene values and ``log(1 + cost)`` of
  14 analytic costs of the network DGL builds from the genes (``net.py::FBNetV3`` at 224x224,
  :func:`fbnetv3_costs`): 42.

:func:`dgl_codes` are DGL's own raw inputs (op codes, gene values), used by the reproduction of its MLP.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from nasjax.benchmarks.dgl import check_space
from nasjax.spaces.base import get_space
from nasjax.spaces.fbnetv3 import FBNET_GENE_NAMES, arch_to_genes

FEATURE_SPEC_VERSION = 1
_FB_STRIDE = (1, 2, 2, 2, 1, 2, 1)
_FB_SE = (False, False, True, False, True, True, True)

FBNET_COST_NAMES = ("MACs", "params", "activations", "blocks", "depthwise MACs", "pointwise MACs", "SE MACs") + tuple(
    f"stage {i + 1} MACs" for i in range(7)
)


def fbnetv3_costs(genes) -> np.ndarray:
    """Analytic costs ``[N, 14]`` of DGL's FBNetV3 network (``net.py::FBNetV3``, 224x224 input).

    Columns (:data:`FBNET_COST_NAMES`): total MACs, parameters, activation elements, blocks, depthwise MACs,
    pointwise MACs, SE MACs, and the MACs of stages 1..7. Stage ``s`` has strides (1,2,2,2,1,2,1), SE on
    stages 3,5,6,7; its first block expands by the "first" ratio, the rest by the "rest" ratio (stages 4
    and 5 share genes 11/12, stage 6 uses gene 13 for both, stage 7 expands by 6); a stride-1 block whose
    width changes gets a 1x1 shortcut convolution; the head is 1x1 conv to 6x width, 1x1 conv to 1984,
    linear to 1000. A block of input width ``c_in``, expanded width ``c_e``, kernel ``k``, output width
    ``c_out`` at input resolution ``r`` and stride ``s`` costs ``c_in c_e r^2 + c_e k^2 (r/s)^2 +
    c_e c_out (r/s)^2`` MACs (plus ``2 c_e (c_e / 4)`` for SE).

    Args:
      genes: ``[N, 28]`` (or ``[28]``) gene values.
    Returns:
      ``float64 [N, 14]``.
    """
    g = np.atleast_2d(np.asarray(genes, dtype=np.int64))
    out = np.zeros((g.shape[0], 14))
    for n, row in enumerate(g):
        stem = int(row[14])
        res = 112
        macs = 3 * stem * 9 * res * res
        params = 27 * stem
        act = stem * res * res
        blocks_total = dw = pw = se = 0
        exp_first = (1, row[7], row[9], row[11], row[11], row[13], 6)
        exp_rest = (1, row[8], row[10], row[12], row[12], row[13], 6)
        blocks = list(row[22:28]) + [1]
        cin = stem
        stage = []
        for s in range(7):
            k, cout, sm = int(row[s]), int(row[15 + s]), 0
            for j in range(int(blocks[s])):
                st = _FB_STRIDE[s] if j == 0 else 1
                ce = int(exp_first[s] if j == 0 else exp_rest[s]) * cin
                r2 = res // st
                m1, m2, m3 = cin * ce * res * res, ce * k * k * r2 * r2, ce * cout * r2 * r2
                ms = 2 * ce * (ce // 4) if _FB_SE[s] else 0
                sc = cin * cout * r2 * r2 if (st == 1 and cin != cout) else 0
                sm += m1 + m2 + m3 + ms + sc
                pw += m1 + m3 + sc
                dw += m2
                se += ms
                params += cin * ce + ce * k * k + ce * cout + ms + (cin * cout if sc else 0)
                act += ce * res * res + ce * r2 * r2 + cout * r2 * r2
                res, cin = r2, cout
                blocks_total += 1
            stage.append(sm)
            macs += sm
        head = cin * cin * 6 * res * res + cin * 6 * 1984 + 1984 * 1000
        macs += head
        params += cin * cin * 6 + cin * 6 * 1984 + 1984 * 1000
        out[n] = [macs, params, act, blocks_total, dw, pw, se, *stage]
    return out


def _nb201_pairs():
    return [(i, j) for i in range(6) for j in range(i + 1, 6)]


@cache
def feature_spec(space: str) -> dict:
    """Names and length of the feature vector of ``space`` (stored in every model file).

    Args:
      space: ``nasbench201`` or ``fbnetv3``.

    Returns:
      ``{"space", "names": [F], "length": F, "version": FEATURE_SPEC_VERSION}`` (F = 410 or 42).

    Raises:
      NasjaxInputError: on an unknown space.
    """
    check_space(space)
    if space == "nasbench201":
        from nasjax.spaces.nasbench201 import EDGES, OPS

        names = [f"onehot e{t}<-{f}={op}" for t, f in EDGES for op in OPS]
        names += [f"count {op}" for op in OPS]
        names += [f"pair e{i}={a}&e{j}={b}" for i, j in _nb201_pairs() for a in OPS for b in OPS]
    else:
        names = [f"gene {n}" for n in FBNET_GENE_NAMES] + [f"log {c}" for c in FBNET_COST_NAMES]
    return {"space": space, "names": names, "length": len(names), "version": FEATURE_SPEC_VERSION}


def features(space: str, archs) -> np.ndarray:
    """Feature matrix of choice-index architectures (see the module docstring).

    Args:
      space: ``nasbench201`` or ``fbnetv3``.
      archs: ``[N, P]`` (or ``[P]``) choice indices of ``space``.
    Returns:
      ``float64 [N, F]`` with ``F = feature_spec(space)["length"]``.
    """
    check_space(space)
    sp = get_space(space)
    a = np.atleast_2d(sp.validate(archs, "archs"))
    n = a.shape[0]
    if space == "nasbench201":
        oh = (a[..., None] == np.arange(5)).astype(np.float64)  # [N, 6, 5]
        cnt = oh.sum(1)
        pairs = [np.einsum("na,nb->nab", oh[:, i], oh[:, j]).reshape(n, 25) for i, j in _nb201_pairs()]
        return np.concatenate([oh.reshape(n, 30), cnt] + pairs, axis=1)
    genes = arch_to_genes(a).astype(np.float64)
    return np.concatenate([genes, np.log1p(fbnetv3_costs(genes.astype(np.int64)))], axis=1)


def dgl_codes(space: str, archs) -> np.ndarray:
    """DGL's raw inputs: NB201 op codes 1..5, FBNetV3 gene values (``float64``, uncentred).

    Args:
      space: ``nasbench201`` or ``fbnetv3``.
      archs: nasjax choice vectors ``[P]`` or ``[N, P]`` of the space.

    Returns:
      float64 ``[N, 6]`` (choice + 1) for NAS-Bench-201, ``[N, 28]`` gene values for FBNetV3.

    Raises:
      NasjaxInputError: on an unknown space or invalid choice vectors.
    """
    check_space(space)
    a = np.atleast_2d(get_space(space).validate(archs, "archs"))
    return (a + 1).astype(np.float64) if space == "nasbench201" else arch_to_genes(a).astype(np.float64)
