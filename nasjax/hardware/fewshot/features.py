"""Architecture features of the few-shot latency model's additive members (HELP spaces, NAS-Bench-201).

* :func:`onehot_features`: one-hot choices ``[N, P * C]`` (NB201: 6 edges x 5 ops; HELP FBNet: 22 blocks x 9
  ops), the features of the additive-in-ms member.
* :func:`nb201_live_edges` / :func:`nb201_live_op_counts`: the NAS-Bench-201 edges on a path from the cell
  input to its output (ops elsewhere are dead code that deployed graphs prune) and the number of live
  edges holding each op, the features of the per-op cost member ``latency ~= c0 + sum_op c_op count_op``.
"""

from __future__ import annotations

import numpy as np

from nasjax.errors import require


def onehot_features(archs, n_choices: int | None = None) -> np.ndarray:
    """One-hot encoding ``[N, P * C]`` of integer architectures ``archs [N, P]``.

    Args:
      archs: non-negative integer choice ids ``[N, P]``.
      n_choices: ``C``, the number of choices per position; default the largest id + 1.

    Returns:
      float64 ``[N, P * C]``, position-major.

    Raises:
      NasjaxInputError: when ``archs`` is not a non-empty 2-D array of non-negative integers, or an id is
        ``>= n_choices``.
    """
    a = np.asarray(archs)
    require(a.ndim == 2 and a.dtype.kind in "iu" and a.size and a.min() >= 0, "archs", a.shape,
            "[N, P] non-negative integer choice ids")
    c = int(a.max()) + 1 if n_choices is None else int(n_choices)
    require(a.max() < c, "n_choices", n_choices, f"> the largest choice id {int(a.max())}")
    return np.eye(c)[a].reshape(len(a), -1)


def nb201_live_edges(archs) -> np.ndarray:
    """``bool [N, 6]``: edge carries a non-``none`` op on a path from the cell input (node 0) to its output (node 3).

    Args:
      archs: NAS-Bench-201 choice vectors ``[6]`` or ``[N, 6]``.

    Returns:
      bool ``[N, 6]``, edges in arch-string order.

    Raises:
      NasjaxInputError: when ``archs`` are not valid choice vectors.
    """
    from nasjax.spaces.nasbench201 import EDGES, nasbench201_space

    a = np.atleast_2d(nasbench201_space().validate(archs))
    on = a != 0  # op index 0 is "none"

    def reach(start, order, src, dst):
        # nodes connected to ``start`` through non-none edges, walking ``src -> dst`` of each edge
        got = {start: np.ones(len(a), bool)}
        for node in order:
            got[node] = np.zeros(len(a), bool)
            for e, edge in enumerate(EDGES):
                if edge[dst] == node:
                    got[node] |= on[:, e] & got[edge[src]]
        return got

    fwd = reach(0, (1, 2, 3), src=1, dst=0)  # EDGES are (to, from)
    bwd = reach(3, (2, 1, 0), src=0, dst=1)
    return np.stack([on[:, e] & fwd[f] & bwd[t] for e, (t, f) in enumerate(EDGES)], 1)


def nb201_live_op_counts(archs) -> np.ndarray:
    """``float [N, 4]``: number of live edges (:func:`nb201_live_edges`) holding each op.

    The columns are skip_connect, nor_conv_1x1, nor_conv_3x3 and avg_pool_3x3.

    Args:
      archs: NAS-Bench-201 choice vectors ``[6]`` or ``[N, 6]``.

    Returns:
      float64 ``[N, 4]`` counts.

    Raises:
      NasjaxInputError: when ``archs`` are not valid choice vectors.
    """
    from nasjax.spaces.nasbench201 import nasbench201_space

    a = np.atleast_2d(nasbench201_space().validate(archs))
    live = nb201_live_edges(a)
    return np.stack([((a == o) & live).sum(1) for o in (1, 2, 3, 4)], 1).astype(np.float64)
