"""Vectorised exhaustive enumeration: the certificate of optimality for spaces up to ~1e6 architectures.

    a* = argmax_a  obj(a)   s.t.  r_j(a) <= b_j  for every constraint j,

evaluated for every architecture of the space in chunks (``value = base + sum_i coef[i, a_i]`` as a
gather-and-sum over the ``[N, P]`` index array). Ties are broken towards the lowest mixed-radix index.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from nasjax.constraints import Constraint
from nasjax.search import SearchResult, check_budgets, evaluate_tables, joint_infeasible
from nasjax.tables import Table


def _space_from_table(t: Table):
    from nasjax.spaces.base import product_space

    counts = t.mask.sum(1)
    return product_space(t.space or "table", [f"p{i}" for i in range(len(counts))], [[str(c) for c in range(k)] for k in counts])


def all_values(table: Table, archs: np.ndarray) -> np.ndarray:
    return table.base + table.coef[np.arange(archs.shape[1])[None, :], archs].sum(1)


def enumerate_best(
    objective: Table, constraints: Sequence[Constraint] = (), limit: int = 5_000_000, chunk: int = 1 << 20
) -> SearchResult:
    """Exhaustive optimum (see module docstring); raises InfeasibleError when nothing is feasible."""
    t0 = time.perf_counter()
    check_budgets(objective, constraints)
    space = _space_from_table(objective)
    if space.size > limit:
        from nasjax.errors import NasjaxInputError

        raise NasjaxInputError(f"enumeration: space has {space.size} architectures, expected at most {limit}")
    best_val, best_idx = -np.inf, -1
    for start in range(0, space.size, chunk):
        idx = np.arange(start, min(start + chunk, space.size))
        archs = space.from_index(idx)
        val = all_values(objective, archs)
        ok = np.ones(len(idx), bool)
        for c in constraints:
            ok &= all_values(c.table, archs) <= c.bound + 1e-9 * max(1.0, abs(c.bound))
        if ok.any():
            v = np.where(ok, val, -np.inf)
            j = int(np.argmax(v))
            if v[j] > best_val:
                best_val, best_idx = float(v[j]), int(idx[j])
    if best_idx < 0:
        raise joint_infeasible(constraints)
    arch = space.from_index(np.array([best_idx]))[0]
    obj, res = evaluate_tables(arch, objective, constraints)
    return SearchResult(arch, obj, res, (time.perf_counter() - t0) * 1e3, "enumerate")
