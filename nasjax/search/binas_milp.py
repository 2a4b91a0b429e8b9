"""BINAS's bilinear program as a mixed-integer linear program (CVXPY / HiGHS): the second certificate.

Binary ``y[s, d]`` (stage ``s`` has depth choice ``d``) and ``x[s, d, j, c]`` (layer ``j < depth_d`` of
stage ``s`` has configuration ``c`` and the stage has depth ``d``) linearise the products
``alpha_{l,c} beta_{s,d}`` of a layer with its own stage's depth::

    maximise    f_0 + sum y[s,d] p_b[s,d] + sum x[s,d,j,c] (p_a[l,c] + Q[l,c,s,d])      (l = layer j of s)
    subject to  sum_d y[s,d] = 1,      sum_c x[s,d,j,c] = y[s,d]      (every s, d, j < depth_d)
                the same linear form of every resource model <= its bound

A term coupling layer ``l`` with another stage's depth, ``Q[l, c, s', d'] alpha_{l,c} beta_{s',d'}``, gets
a product variable ``0 <= z <= 1`` with ``z <= alpha_{l,c}``, ``z <= y[s', d']`` and
``z >= alpha_{l,c} + y[s', d'] - 1`` (``alpha_{l,c} = sum_{d: j < depth_d} x[s, d, j, c]``), exact on binary
points. Bounds are CVXPY parameters, so the program of a model set compiles once and re-solves per budget,
with zero MIP gap (a certified optimum). Registered as ``binas-milp`` (option ``solver="highs"``).

With ``solver="gurobi"`` (gurobipy installed) the program is solved as BINAS states it, a mixed-integer
quadratically constrained program in BINAS's own variables (:meth:`BilinearForm.binas_matrices`:
binary ``x`` for every layer, ``y = beta``)::

    maximise  f_0 + y.p_b + x^T Q' y    s.t.   r_0 + y.p_r + x^T Q'_r y <= b_r,   one-hot blocks of x and y

(stage-separable models only), with zero MIP gap.
"""

from __future__ import annotations

import time
from collections import OrderedDict

import numpy as np

from nasjax.errors import NasjaxInputError
from nasjax.search.base import (
    Searcher,
    SearchProblem,
    SearchResult,
    check_budgets,
    evaluate,
    joint_infeasible,
    register,
)
from nasjax.search.binas_exact import binas_support, cached
from nasjax.search.ilp import installed, solve_parametrised, solver_output_to_log
from nasjax.spaces.binas import structure_of


class BinasMILP:
    """The parametrised program of the module docstring for an objective and resource models.

    The bounds are CVXPY parameters, so one compiled program serves every budget (:meth:`solve`).

    Args:
      space: the BINAS space.
      objective: the bilinear accuracy model.
      models: the bilinear resource models, one per constraint.
      solver: the CVXPY solver.

    Raises:
      NasjaxInputError: when the solver is not installed, or ``space`` is not a BINAS space.
    """

    def __init__(self, space, objective, models, solver: str = "highs"):
        import cvxpy as cp

        why = installed(solver)
        if why is not None:
            raise NasjaxInputError(why)
        self.st, self.objective, self.models, self.solver = structure_of(space), objective, list(models), solver
        st = self.st
        S, D, K = st.num_stages, len(st.depths), st.num_configs
        self._y = cp.Variable((S, D), boolean=True)
        keys = [(s, d, j) for s in range(S) for d in range(D) for j in range(st.depths[d])]
        self._keys = keys
        self._x = cp.Variable((len(keys), K), boolean=True)
        cons = [cp.sum(self._y, axis=1) == 1]
        rows_of = {}
        for r, (s, _, j) in enumerate(keys):
            rows_of.setdefault((s, j), []).append(r)
        sel = np.zeros((len(keys), S * D))
        sel[np.arange(len(keys)), [s * D + d for s, d, _ in keys]] = 1.0
        cons.append(cp.sum(self._x, axis=1) == sel @ cp.reshape(self._y, (S * D,), order="C"))
        layer = np.array([s * st.max_depth + j for s, _, j in keys])
        # cross-stage products z = alpha_{l,c} * y[s', d'] wherever a model has such a coefficient
        own = st.layer_stage[:, None] == np.arange(S)[None, :]
        cross = np.zeros((st.num_layers, K, S, D), bool)
        for m in [objective] + self.models:
            if m.Q is not None:
                cross |= (m.Q != 0) & ~own[:, None, :, None]
        zi = np.argwhere(cross)  # [nz, 4]: l, c, s', d'
        self._z = cp.Variable(len(zi)) if len(zi) else None
        if len(zi):
            amat = np.zeros((len(zi), len(keys) * K))
            for n, (li, c, _, _) in enumerate(zi):
                for r in rows_of[(int(st.layer_stage[li]), int(st.layer_index[li]))]:
                    amat[n, r * K + c] = 1.0
            alpha = amat @ cp.reshape(self._x, (len(keys) * K,), order="C")
            yz = cp.reshape(self._y, (S * D,), order="C")[[int(s) * D + int(d) for _, _, s, d in zi]]
            cons += [self._z >= 0, self._z <= alpha, self._z <= yz, self._z >= alpha + yz - 1]

        def linear(m):
            wx = m.p_a[layer] + m.within_stage()[layer, :, [d for _, d, _ in keys]] if m.Q is not None else \
                m.p_a[layer]
            e = cp.sum(cp.multiply(self._y, m.p_b)) + cp.sum(cp.multiply(self._x, wx))
            if self._z is not None:
                e = e + (m.Q[tuple(zi.T)] if m.Q is not None else np.zeros(len(zi))) @ self._z
            return e

        self._b = [cp.Parameter(name=f"b{j}") for j in range(len(self.models))]
        cons += [linear(m) <= p for m, p in zip(self.models, self._b)]
        self._problem = cp.Problem(cp.Maximize(linear(objective)), cons)
        self.size = {"binaries": int(self._y.size + self._x.size), "products": int(len(zi))}

    def solve(self, constraints) -> SearchResult:
        """The certified optimum under ``constraints`` (their models are this program's, in order).

        Only the bounds change between calls: they are the program's parameters.

        Args:
          constraints: one constraint per resource model of the program, in order, with their bounds.

        Returns:
          The :class:`~nasjax.search.base.SearchResult` (``certified=True``, ``info.program``: the program's size).

        Raises:
          NasjaxInputError: when a bound is below what its model can reach, or the bounds are jointly infeasible
            (:class:`~nasjax.errors.InfeasibleError`).
          RuntimeError: when the solver fails.
        """

        t0 = time.perf_counter()
        check_budgets(constraints)
        solve_parametrised(self._problem, self._b, [c.bound - c.model.base for c in constraints], self._y,
                           constraints, self.solver)
        st = self.st
        arch = np.zeros(st.num_stages * (1 + st.max_depth), np.int64)
        y = np.round(self._y.value).astype(bool)
        x = np.round(self._x.value).astype(bool)
        for s in range(st.num_stages):
            d = int(np.argmax(y[s]))
            arch[st.depth_position(s)] = d
        for r, (s, d, j) in enumerate(self._keys):
            if y[s, d]:
                arch[st.layer_position(s, j)] = int(np.argmax(x[r]))
        obj, res = evaluate(arch, self.objective, constraints)
        return SearchResult(arch, obj, res, (time.perf_counter() - t0) * 1e3, f"binas-milp/{self.solver}",
                            certified=True, info={"program": self.size})


_PROGRAMS: dict = {}


def compiled_milp(problem: SearchProblem, solver: str) -> BinasMILP:
    """The :class:`BinasMILP` of ``(space structure, objective, constraint models, solver)``, compiled once.

    Args:
      problem: the bilinear program over a BINAS space.
      solver: the CVXPY solver, ``"highs"`` or ``"gurobi"``.

    Returns:
      The cached :class:`BinasMILP` (keyed by the models' identity, per solver).

    Raises:
      NasjaxInputError: when the solver is not installed.
    """
    models = tuple(c.model for c in problem.constraints)
    cache = _PROGRAMS.setdefault(solver, OrderedDict())
    return cached(cache, (problem.objective, *models), lambda: BinasMILP(problem.space, problem.objective, models,
                                                                          solver))


class BinasMILPSearcher(Searcher):
    """The MILP of the module docstring (option ``solver``: ``"highs"`` or ``"gurobi"``)."""

    name = "binas-milp"
    kind = "exact"
    spaces = ("binas",)

    def supports(self, problem: SearchProblem) -> str | None:
        """``None`` for a bilinear program over a BINAS space (:func:`binas_support`) with HiGHS installed, else why.

        Args:
          problem: the :class:`~nasjax.search.base.SearchProblem`.

        Returns:
          ``None`` or the reason.
        """
        return binas_support(problem) or installed("highs")

    def _search(self, problem: SearchProblem, seed: int, solver: str = "highs") -> SearchResult:
        if solver == "gurobi":
            return solve_miqcp(problem)
        if solver != "highs":
            raise NasjaxInputError(f"solver: got {solver!r}, expected 'highs' (MILP) or 'gurobi' (MIQCP)")
        return compiled_milp(problem, solver).solve(list(problem.constraints))


def miqcp_support(problem: SearchProblem) -> str | None:
    """``None`` when the MIQCP applies (gurobipy installed, stage-separable models), else why not.

    Args:
      problem: the :class:`~nasjax.search.base.SearchProblem`.

    Returns:
      ``None`` or the reason.
    """
    why = binas_support(problem)
    if why is None and not all(m.stage_separable for m in [problem.objective] + [c.model for c in problem.constraints]):
        why = "expected stage-separable models for the MIQCP (BINAS's variables cannot express other couplings)"
    try:
        import gurobipy  # noqa: F401
    except ImportError:
        why = why or "solver: 'gurobi' is not installed (pip install 'nasjax[gurobi]'); expected gurobipy for the MIQCP"
    return why


def solve_miqcp(problem: SearchProblem) -> SearchResult:
    """BINAS's MIQCP (module docstring) through gurobipy, zero MIP gap.

    Args:
      problem: a stage-separable bilinear program over a BINAS space.

    Returns:
      The certified :class:`~nasjax.search.base.SearchResult` (canonical architecture).

    Raises:
      NasjaxInputError: when the MIQCP does not apply (:func:`miqcp_support`), a bound is below what its model
        can reach, or the bounds are jointly infeasible.
      RuntimeError: when Gurobi ends with a status other than optimal or infeasible.
    """
    why = miqcp_support(problem)
    if why is not None:
        raise NasjaxInputError(f"searcher 'binas-milp' with solver 'gurobi': {why}")
    import gurobipy as gp

    t0 = time.perf_counter()
    cons = list(problem.constraints)
    check_budgets(cons)
    st = structure_of(problem.space)
    L, K, S, D = st.num_layers, st.num_configs, st.num_stages, len(st.depths)
    with solver_output_to_log("gurobi"):
        m = gp.Model()
        m.Params.OutputFlag, m.Params.MIPGap, m.Params.MIPGapAbs = 0, 0.0, 0.0
        x = m.addMVar(L * K, vtype=gp.GRB.BINARY)
        y = m.addMVar(S * D, vtype=gp.GRB.BINARY)
        for li in range(L):
            m.addConstr(x[li * K:(li + 1) * K].sum() == 1)
        for s in range(S):
            m.addConstr(y[s * D:(s + 1) * D].sum() == 1)
        base, _, pb, Qf = problem.objective.binas_matrices()
        m.setObjective(base + pb @ y + x @ Qf @ y, gp.GRB.MAXIMIZE)
        for c in cons:
            rb, _, rp, rQ = c.model.binas_matrices()
            m.addConstr(rb + rp @ y + x @ rQ @ y <= c.bound + 1e-9 * max(1.0, abs(c.bound)))
        m.optimize()
    if m.Status == gp.GRB.INFEASIBLE:
        raise joint_infeasible(cons)
    if m.Status != gp.GRB.OPTIMAL:
        raise RuntimeError(f"solver 'gurobi' returned status {m.Status}")
    arch = np.zeros(S * (1 + st.max_depth), np.int64)
    arch[st.layer_positions] = np.round(x.X).reshape(L, K).argmax(1)
    arch[st.depth_positions] = np.round(y.X).reshape(S, D).argmax(1)
    from nasjax.spaces.binas import canonical

    arch = canonical(arch, st)
    obj, res = evaluate(arch, problem.objective, cons)
    return SearchResult(arch, obj, res, (time.perf_counter() - t0) * 1e3, "binas-milp/gurobi-miqcp", certified=True)


register(BinasMILPSearcher())
