"""Exact constrained search as an integer linear program in CVXPY (MathNAS, NeurIPS 2023).

With a boolean one-hot ``x[i, c]`` per existing cell (position ``i``, choice ``c``)::

    maximise    sum_{i,c} v[i, c] x[i, c]
    subject to  sum_c x[i, c] = 1                         for every position i
                sum_{i,c} A_j[i, c] x[i, c] <= b_j         for every constraint j
                x[i, c] in {0, 1}

where ``v = objective.coef`` and ``A_j = constraint_j.table.coef``, ``b_j = bound_j - base_j``. The
bounds are CVXPY ``Parameter``s, so a program is compiled once (DPP) and a new budget only changes
parameter values before the re-solve. Registered searchers: ``highs`` (HiGHS through ``highspy``, always
installed) and ``gurobi`` (when ``gurobipy`` is installed). The registered searchers keep the compiled
program of each (objective table, constraint tables, solver) and re-solve it for new bounds.

Solver output never reaches stdout: the banner HiGHS prints when the first solver object of a process is
created goes to the ``nasjax.search.ilp`` logger (DEBUG), and so does anything a Gurobi solve prints.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import logging
import os
import sys
import tempfile
import time
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np

from nasjax.constraints import Constraint
from nasjax.errors import NasjaxInputError
from nasjax.registry import Registry
from nasjax.search.base import (
    Searcher,
    SearchProblem,
    SearchResult,
    check_budgets,
    evaluate,
    joint_infeasible,
    register,
)
from nasjax.tables import Table

log = logging.getLogger(__name__)

CVXPY_SOLVERS: Registry[str] = Registry("solver")
CVXPY_SOLVERS.add("highs", "HIGHS")
CVXPY_SOLVERS.add("gurobi", "GUROBI")
# exact answers: both solvers stop at a relative MIP gap of 1e-4 by default, which can return a net
# 0.008 accuracy points short of the optimum; nasjax asks for a zero gap. HiGHS's symmetry detection and
# log output cost more than they save on these tiny programs (measured: 13 -> 9 ms on NB201 fpga), and so
# does its feasibility-jump primal heuristic (HiGHS >= 1.10), which ran for ~5 of the remaining ~6 ms of a
# 16-25-binary solve (measured with highspy directly, 2-core VM: NB201 fpga 1.7 -> 0.9 ms, MBv3 tx2gpu
# 6.6 -> 1.2 ms median per solve). Heuristics only look for incumbents: with a zero gap the branch and bound
# still proves optimality, so switching one off cannot change the answer.
_EXACT = {"HIGHS": {"mip_rel_gap": 0.0, "mip_abs_gap": 0.0, "output_flag": False, "mip_detect_symmetry": False},
          "GUROBI": {"MIPGap": 0.0, "MIPGapAbs": 0.0, "OutputFlag": 0}}
_HIGHS_OPTIONAL = {"mip_heuristic_run_feasibility_jump": False}
_HIGHS_OPTIONS: dict | None = None


@contextlib.contextmanager
def solver_output_to_log(what: str):
    """Send what native code writes to file descriptor 1 (stdout) inside the block to the log (DEBUG).

    Args:
      what: the label of the log record (e.g. the solver's name).

    Returns:
      A context manager; on exit C stdio buffers are flushed, stdout is restored and the captured text (if any)
      is logged.
    """
    sys.stdout.flush()
    saved = os.dup(1)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 1)
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                ctypes.CDLL(None).fflush(None)  # C stdio buffers go to the sink, not to the restored stdout
            os.dup2(saved, 1)
            os.close(saved)
            sink.seek(0)
            text = sink.read().decode("utf-8", "replace").strip()
            if text:
                log.debug("%s: %s", what, text)


def _solver_options(key: str) -> dict:
    """The options passed to ``key``'s solver; HiGHS options newer than the installed HiGHS are left out.

    The first HiGHS object of the process prints HiGHS's banner; it is created here, with stdout captured.
    """
    global _HIGHS_OPTIONS
    if key != "HIGHS":
        return dict(_EXACT[key])
    if _HIGHS_OPTIONS is None:
        import highspy

        with solver_output_to_log("HiGHS"):
            known = highspy.Highs().getOptions()
        _HIGHS_OPTIONS = {**_EXACT["HIGHS"], **{k: v for k, v in _HIGHS_OPTIONAL.items() if hasattr(known, k)}}
    return dict(_HIGHS_OPTIONS)


def solve_parametrised(problem, bounds: Sequence, values: Sequence[float], variable, constraints,
                       solver: str) -> None:
    """Set a compiled program's bound parameters and solve it; the one solve path of the CVXPY searchers.

    Args:
      problem: the ``cvxpy.Problem`` (compiled once, bounds as parameters).
      bounds: its ``cvxpy.Parameter`` bounds, one per constraint.
      values: the right-hand sides ``b_j``; each is set to ``b_j + 1e-9 * max(1, |b_j|)`` so that an
        architecture exactly at its budget stays feasible under the solver's tolerances.
      variable: the decision variable whose value must be set after a successful solve.
      constraints: the constraints, for the infeasibility message.
      solver: ``"highs"`` or ``"gurobi"``.

    Raises:
      InfeasibleError: the budgets are jointly infeasible. ``RuntimeError``: the solver failed.
    """
    import cvxpy as cp

    for p, b in zip(bounds, values):
        p.value = b + 1e-9 * max(1.0, abs(b))
    key = CVXPY_SOLVERS.get(solver)
    try:
        if key == "HIGHS":  # its output is off by option; HiGHS prints only its banner, captured once
            problem.solve(solver=key, **_solver_options(key))
        else:
            with solver_output_to_log(solver):
                problem.solve(solver=key, **_solver_options(key))
    except cp.error.SolverError as e:
        raise RuntimeError(f"solver {solver!r} failed: {e}") from e
    if problem.status in ("infeasible", "infeasible_inaccurate"):
        raise joint_infeasible(constraints)
    if variable.value is None:
        raise RuntimeError(f"solver {solver!r} returned status {problem.status!r}")


@functools.cache
def installed(name: str) -> str | None:
    """``None`` when the CVXPY solver ``name`` (``highs`` / ``gurobi``) is installed, else why not.

    Asked once per process (cached): CVXPY's check takes milliseconds.

    Args:
      name: ``"highs"`` or ``"gurobi"``.

    Returns:
      ``None`` or the reason, naming the installed MILP solvers.
    """
    import cvxpy as cp

    key = CVXPY_SOLVERS.get(name)
    if key in cp.installed_solvers():
        return None
    extra = " (pip install 'nasjax[gurobi]')" if name == "gurobi" else ""
    have = ", ".join(s.lower() for s in cp.installed_solvers() if s in ("HIGHS", "GUROBI")) or "none"
    return f"solver: {name!r} is not installed{extra}; installed MILP solvers: {have}"


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
    """A parametrised CVXPY model of the program in the module docstring.

    Args:
      objective: the additive objective table ``v``.
      constraints: linear constraints (additive tables with the objective's shape); their bounds are the
        defaults of :meth:`solve`.
      solver: ``"highs"`` or ``"gurobi"``.
    """

    def __init__(self, objective: Table, constraints: Sequence[Constraint] = (), solver: str = "highs"):
        import cvxpy as cp

        why = installed(solver)
        if why is not None:
            raise NasjaxInputError(why)
        self.objective = objective
        self.constraints = list(constraints)
        self.solver_name = solver
        self._solver = CVXPY_SOLVERS.get(solver)
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
        """The optimum for ``bounds`` (one per constraint, in the constraints' units; default: theirs).

        Args:
          bounds: the budgets ``bound_j``; the program solves ``sum A_j x <= bound_j - base_j``.

        Returns:
          A certified :class:`SearchResult`; a budget below a table's smallest value or jointly infeasible
          budgets raise :class:`~nasjax.errors.InfeasibleError`.
        """

        t0 = time.perf_counter()
        cons = self.constraints
        if bounds is not None:
            if len(bounds) != len(cons):
                raise NasjaxInputError(f"bounds: got {len(bounds)} values, expected {len(cons)} (one per constraint)")
            cons = [c.with_bound(b) for c, b in zip(cons, bounds)]
        check_budgets(cons)
        solve_parametrised(self._problem, self._b, [c.b for c in cons], self._x, cons, self.solver_name)
        x = np.round(self._x.value).astype(bool)
        arch = np.zeros(self.objective.mask.shape[0], np.int64)
        arch[self._cells[x, 0]] = self._cells[x, 1]
        obj, res = evaluate(arch, self.objective, cons)
        return SearchResult(arch, obj, res, (time.perf_counter() - t0) * 1e3, self.solver_name, certified=True)


_PROGRAMS: OrderedDict = OrderedDict()
PROGRAM_CACHE_SIZE = 64


def compiled_program(objective: Table, constraints: Sequence[Constraint], solver: str) -> ILPSearch:
    """The :class:`ILPSearch` of ``(objective, constraint tables, solver)``, compiled once and kept.

    Programs are keyed by the identity of the table objects (a cached entry holds them, so an identity is
    never reused while its entry lives); the ``PROGRAM_CACHE_SIZE`` most recently used are kept.

    Args:
      objective: the additive objective table.
      constraints: the constraints (their tables are the program's; bounds are parameters).
      solver: the CVXPY solver, ``"highs"`` or ``"gurobi"``.

    Returns:
      The cached :class:`ILPSearch`.

    Raises:
      NasjaxInputError: when the solver is not installed.
    """
    models = tuple(c.model for c in constraints)
    key = (id(objective), tuple(id(m) for m in models), solver)
    hit = _PROGRAMS.get(key)
    if hit is not None and hit[0] is objective and all(a is b for a, b in zip(hit[1], models)):
        _PROGRAMS.move_to_end(key)
        return hit[2]
    program = ILPSearch(objective, constraints, solver)
    _PROGRAMS[key] = (objective, models, program)
    while len(_PROGRAMS) > PROGRAM_CACHE_SIZE:
        _PROGRAMS.popitem(last=False)
    return program


class CvxpySearcher(Searcher):
    """The integer program of the module docstring on an additive problem, solved by ``solver``.

    Args:
      solver: the CVXPY solver, ``"highs"`` or ``"gurobi"``; also the searcher's registered name.
    """

    kind = "exact"

    def __init__(self, solver: str):
        self.name = solver

    def supports(self, problem: SearchProblem) -> str | None:
        """``None`` for an additive problem (Table objective and constraints) with this CVXPY solver installed.

        Args:
          problem: the :class:`~nasjax.search.base.SearchProblem`.

        Returns:
          ``None`` or the reason, in words.
        """
        if not problem.additive:
            return "expected an additive problem (a Table objective and Table constraints)"
        return installed(self.name)

    def _search(self, problem: SearchProblem, seed: int) -> SearchResult:
        program = compiled_program(problem.objective, problem.constraints, self.name)
        return program.solve([c.bound for c in problem.constraints])


register(CvxpySearcher("highs"))
register(CvxpySearcher("gurobi"))
