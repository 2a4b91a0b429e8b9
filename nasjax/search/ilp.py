"""Exact constrained search as an integer linear program in CVXPY (MathNAS, NeurIPS 2023).

With a boolean one-hot ``x[i, c]`` per existing cell (position ``i``, choice ``c``)::

    maximise    sum_{i,c} v[i, c] x[i, c]
    subject to  sum_c x[i, c] = 1                         for every position i
                sum_{i,c} A_j[i, c] x[i, c] <= b_j         for every constraint j
                x[i, c] in {0, 1}

where ``v = objective.coef`` and ``A_j = constraint_j.table.coef``, ``b_j = bound_j - base_j``. The
bounds are CVXPY ``Parameter``s, so the problem is compiled once (DPP) and a new budget only changes
parameter values before the re-solve. HiGHS (through ``highspy``) is the default solver; Gurobi is
used with ``solver="gurobi"`` when ``gurobipy`` is installed.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np

from nasjax.constraints import Constraint
from nasjax.errors import NasjaxInputError
from nasjax.registry import Registry
from nasjax.search import SearchResult, check_budgets, evaluate_tables, joint_infeasible
from nasjax.tables import Table

SOLVERS: Registry = Registry("solver")
SOLVERS.add("highs", "HIGHS")
SOLVERS.add("gurobi", "GUROBI")
# exact answers: both solvers stop at a relative MIP gap of 1e-4 by default, which can return a net
# 0.008 accuracy points short of the optimum; nasjax asks for a zero gap. HiGHS's symmetry detection and
# log output cost more than they save on these tiny programs (measured: 13 -> 9 ms on NB201 fpga), and so
# does its feasibility-jump primal heuristic (HiGHS >= 1.10), which ran for ~5 of the remaining ~6 ms of a
# 16-25-binary solve (measured with highspy directly, 2-core VM: NB201 fpga 1.7 -> 0.9 ms, MBv3 tx2gpu
# 6.6 -> 1.2 ms median per solve). Heuristics only look for incumbents: with a zero gap the branch and bound
# still proves optimality, so switching one off cannot change the answer.
_EXACT = {"HIGHS": {"mip_rel_gap": 0.0, "mip_abs_gap": 0.0, "output_flag": False, "mip_detect_symmetry": False},
          "GUROBI": {"MIPGap": 0.0, "MIPGapAbs": 0.0}}
_HIGHS_OPTIONAL = {"mip_heuristic_run_feasibility_jump": False}


def _solver_options(key: str) -> dict:
    """The options passed to ``key``'s solver; HiGHS options newer than the installed HiGHS are left out."""
    opts = dict(_EXACT[key])
    if key == "HIGHS":
        import highspy

        h = highspy.Highs()
        known = h.getOptions()
        opts.update({k: v for k, v in _HIGHS_OPTIONAL.items() if hasattr(known, k)})
    return opts


def _cvxpy_solver(name: str) -> str:
    import cvxpy as cp

    key = SOLVERS.get(name)
    if key not in cp.installed_solvers():
        extra = " (pip install 'nasjax[gurobi]')" if name == "gurobi" else ""
        raise NasjaxInputError(
            f"solver: {name!r} is not installed{extra}; installed MILP solvers: "
            + ", ".join(s.lower() for s in cp.installed_solvers() if s in ("HIGHS", "GUROBI"))
        )
    return key


def _undominated_cells(objective: Table, constraints: Sequence[Constraint]) -> np.ndarray:
    """Cells that can be part of an optimum: a cell is dropped when another choice of the same position
    is at least as good in the objective and at most as costly in every constraint (ties keep the lower
    index). Dropping it keeps the program exact and makes it smaller."""
    keep = []
    v = objective.coef
    for i in range(v.shape[0]):
        cs = np.flatnonzero(objective.mask[i])
        cols = np.stack([-v[i, cs]] + [c.A[i, cs] for c in constraints], 1)  # smaller is better everywhere
        le = np.all(cols[:, None, :] <= cols[None, :, :], axis=2)  # [t, s]: t weakly dominates s
        eq = np.all(cols[:, None, :] == cols[None, :, :], axis=2)
        dominated = np.any((le & ~eq) | np.triu(eq, 1), axis=0)
        keep += [(i, c) for c in cs[~dominated]]
    return np.array(keep, dtype=np.int64)


class ILPSearch:
    """A parametrised CVXPY model of the program in the module docstring."""

    def __init__(self, objective: Table, constraints: Sequence[Constraint] = (), solver: str = "highs"):
        import cvxpy as cp

        self.objective = objective
        self.constraints = list(constraints)
        self.solver_name = solver
        self._solver = _cvxpy_solver(solver)
        self._options = _solver_options(self._solver)
        mask = objective.mask
        for c in self.constraints:
            if c.table.mask.shape != mask.shape or not np.array_equal(c.table.mask, mask):
                raise NasjaxInputError(
                    f"{c.name}_constraint: table shape {c.table.mask.shape} with choice counts "
                    f"{c.table.mask.sum(1).tolist()}, expected the objective's {mask.sum(1).tolist()}"
                )
        self._cells = _undominated_cells(objective, self.constraints)  # [n, 2] (position, choice)
        n = len(self._cells)
        P = mask.shape[0]
        member = np.zeros((P, n))
        member[self._cells[:, 0], np.arange(n)] = 1.0
        self._x = cp.Variable(n, boolean=True)
        v = objective.coef[self._cells[:, 0], self._cells[:, 1]]
        cons = [member @ self._x == 1]
        self._b = []
        for c in self.constraints:
            p = cp.Parameter(name=f"b_{c.name}")
            a = c.A[self._cells[:, 0], self._cells[:, 1]]
            cons.append(a @ self._x <= p)
            self._b.append(p)
        self._problem = cp.Problem(cp.Maximize(v @ self._x), cons)

    def solve(self, bounds: Sequence[float] | None = None) -> SearchResult:
        """Solve for ``bounds`` (one per constraint, in the constraints' units; default: theirs)."""
        import cvxpy as cp

        t0 = time.perf_counter()
        cons = self.constraints
        if bounds is not None:
            if len(bounds) != len(cons):
                raise NasjaxInputError(f"bounds: got {len(bounds)} values, expected {len(cons)} (one per constraint)")
            cons = [c.with_bound(b) for c, b in zip(cons, bounds)]
        check_budgets(self.objective, cons)
        for p, c in zip(self._b, cons):
            p.value = c.b + 1e-9 * max(1.0, abs(c.b))
        try:
            self._problem.solve(solver=self._solver, **self._options)
        except cp.error.SolverError as e:
            raise RuntimeError(f"solver {self.solver_name!r} failed: {e}") from e
        if self._problem.status in ("infeasible", "infeasible_inaccurate"):
            raise joint_infeasible(cons)
        if self._x.value is None:
            raise RuntimeError(f"solver {self.solver_name!r} returned status {self._problem.status!r}")
        x = np.round(self._x.value).astype(bool)
        arch = np.zeros(self.objective.mask.shape[0], np.int64)
        arch[self._cells[x, 0]] = self._cells[x, 1]
        obj, res = evaluate_tables(arch, self.objective, cons)
        return SearchResult(arch, obj, res, (time.perf_counter() - t0) * 1e3, f"cvxpy/{self.solver_name}")
