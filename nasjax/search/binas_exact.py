"""Certified exact search of BINAS's bilinear program (Nayman et al., arXiv 2110.12399) by decomposition.

The program: maximise an accuracy model ``f`` subject to resource models ``r_j(a) <= b_j``, where ``f`` and
every ``r_j`` are :class:`~nasjax.hardware.binas_latency.BilinearForm` s over a BINAS space
(``base + alpha.p_a + beta.p_b + alpha^T Q beta``, alpha zero on inactive layers).

* Stage-separable models (``Q`` couples each layer only with its own stage's depth: the contribution
  estimator, a stage-coupled fit, the latency model) are sums of per-stage terms. Each stage's options are
  its (depth, layer configurations) with the layers beyond the depth canonical, ``sum_d K^d`` of them
  (144 + 1,728 + 20,736 for HardCoRe-NAS), each with its value under every model; the program is then a
  multiple-choice knapsack over the stages, solved exactly by :func:`nasjax.search.mckp.solve_mckp`
  (which first drops every option another option of its stage matches or beats in value and every
  resource: the stage's Pareto front).
* A model that couples layers with other stages' depths is additive in the layer configurations once the
  depths are fixed (:meth:`~nasjax.hardware.binas_latency.BilinearForm.layer_values`): every depth
  combination is a multiple-choice knapsack over the active layers, solved exactly in decreasing order of
  an upper bound on its optimum (the smallest Lagrangian bound ``f_0 + lam (b - r_0) + sum_l max_c
  (u_l[c] - lam t_l[c])`` over a grid of prices ``lam >= 0``) until the bound is below the best solution
  found.

Either way the answer is proven optimal: the returned architecture's value is recomputed with the models
(``certified=True``; ties: the smaller first resource). Registered as ``binas-exact``.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict

import numpy as np

from nasjax.errors import NasjaxInputError
from nasjax.hardware.binas_latency import BilinearForm
from nasjax.search.base import (
    Searcher,
    SearchProblem,
    SearchResult,
    check_budgets,
    evaluate,
    joint_infeasible,
    register,
)
from nasjax.search.mckp import solve_mckp, undominated_choices
from nasjax.spaces.base import SearchSpace
from nasjax.spaces.binas import BinasStructure, structure_of


def binas_support(problem: SearchProblem, separable_constraints: bool = False) -> str | None:
    """``None`` when ``problem`` is a program over a BINAS space whose objective and constraints are bilinear forms
    of that space, else why not.

    Args:
      problem: the :class:`~nasjax.search.base.SearchProblem`.
      separable_constraints: also require every constraint's model to be stage-separable.

    Returns:
      ``None`` or the reason (naming the objective or the constraint).
    """
    try:
        st = structure_of(problem.space)
    except NasjaxInputError as e:
        return str(e)
    models = [("objective", problem.objective)] + [(f"{c.name}_constraint", c.model) for c in problem.constraints]
    for name, m in models:
        if not isinstance(m, BilinearForm):
            return (f"{name}: got {type(m).__name__}, expected a bilinear model (nasjax.hardware.binas_latency."
                    "BilinearForm: the estimator, a bilinear predictor or a latency model)")
        if m.structure != st:
            return f"{name}: the model's structure differs from the space's, expected a model of this BINAS space"
    if separable_constraints:
        for c in problem.constraints:
            if not c.model.stage_separable:
                return f"{c.name}_constraint: expected a stage-separable model (its Q couples other stages' depths)"
    return None


_OPTIONS: OrderedDict = OrderedDict()


def stage_options(st: BinasStructure) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per stage, every option ``(depth_index [n], configs [n, max_depth])`` (inactive layers 0), depth first.

    Args:
      st: the BINAS structure (cached per structure object).

    Returns:
      One ``(depth_index, configs)`` pair per stage, ``n = sum_d K^{depth_d}`` options each.
    """
    return cached(_OPTIONS, (st,), lambda: _enumerate_options(st), size=8)


def _enumerate_options(st: BinasStructure) -> list[tuple[np.ndarray, np.ndarray]]:
    K, M = st.num_configs, st.max_depth
    per = []
    for d, depth in enumerate(st.depths):
        grid = np.array(list(itertools.product(range(K), repeat=depth)), np.int64).reshape(-1, depth)
        per.append((np.full(len(grid), d), np.pad(grid, ((0, 0), (0, M - depth)))))
    opts = (np.concatenate([p[0] for p in per]), np.concatenate([p[1] for p in per]))
    return [opts] * st.num_stages


def stage_values(model: BilinearForm, s: int, options: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """``[n]`` value of each option of stage ``s`` under a stage-separable form (without its ``base``).

    v = p_b[s, d] + sum_{j < depth_d} (p_a[l_j, c_j] + Q[l_j, c_j, s, d])

    Args:
      model: a stage-separable :class:`~nasjax.hardware.binas_latency.BilinearForm`.
      s: the stage index.
      options: ``(depth_index [n], configs [n, max_depth])`` of the stage (:func:`stage_options`).

    Returns:
      float64 ``[n]`` in the model's unit.
    """
    st = model.structure
    d, cfg = options
    layers = np.flatnonzero(st.layer_stage == s)  # [max_depth], in stage order
    u = model.p_a[layers][:, :, None] + model.within_stage()[layers]  # [M, K, D]
    u = u * st.layer_needs[layers][:, None, :]
    return model.p_b[s, d] + u[np.arange(st.max_depth)[None, :], cfg, d[:, None]].sum(1)


def _arch(st: BinasStructure, depth: np.ndarray, configs: np.ndarray) -> np.ndarray:
    a = np.zeros(st.num_stages * (1 + st.max_depth), np.int64)
    a[st.depth_positions] = depth
    a[st.layer_positions] = configs.reshape(-1)
    return a


def cached(cache: OrderedDict, objects: tuple, build, size: int = 16):
    """``build()`` once per tuple of model objects, the ``size`` most recently used kept.

    Entries are keyed by the objects' identity and hold the objects, so an identity is never reused while its
    entry lives.

    Args:
      cache: the ``OrderedDict`` holding the entries.
      objects: the objects the value depends on.
      build: a function of no arguments computing the value.
      size: the number of entries kept.

    Returns:
      The cached or newly built value.
    """
    key = tuple(id(o) for o in objects)
    hit = cache.get(key)
    if hit is not None and all(a is b for a, b in zip(hit[0], objects)):
        cache.move_to_end(key)
        return hit[1]
    value = build()
    cache[key] = (objects, value)
    while len(cache) > size:
        cache.popitem(last=False)
    return value


_PROGRAMS: OrderedDict = OrderedDict()


def stage_program(space: SearchSpace, objective: BilinearForm, models) -> dict:
    """The per-stage options of a stage-separable program, reduced to each stage's Pareto front.

    The options no other option of the stage matches or beats in value and every resource, computed once per
    (objective, resource models) and kept.

    Args:
      space: the BINAS space.
      objective: the stage-separable accuracy model.
      models: the stage-separable resource models.

    Returns:
      ``{"v": [S, n], "A": [[S, n] per model], "mask": [S, n], "options": per stage (depth_index, configs) of
      each column, "sizes": options per stage, "front": Pareto options per stage}``.
    """
    return cached(_PROGRAMS, (objective, *models), lambda: _build_stage_program(space, objective, models))


def _build_stage_program(space, objective, models) -> dict:
    st = structure_of(space)
    opts = stage_options(st)
    vals = [stage_values(objective, s, o) for s, o in enumerate(opts)]
    res = [[stage_values(m, s, o) for m in models] for s, o in enumerate(opts)]
    fronts = [undominated_choices(v[None], [r[None] for r in rs], np.ones((1, len(v)), bool))[0]
              for v, rs in zip(vals, res)]
    n = max(len(f) for f in fronts)
    prog = {"v": np.zeros((st.num_stages, n)), "A": [np.zeros((st.num_stages, n)) for _ in models],
            "mask": np.zeros((st.num_stages, n), bool), "options": [], "sizes": [int(len(o[0])) for o in opts],
            "front": [int(len(f)) for f in fronts]}
    for s, f in enumerate(fronts):
        prog["mask"][s, :len(f)] = True
        prog["v"][s, :len(f)] = vals[s][f]
        for j in range(len(models)):
            prog["A"][j][s, :len(f)] = res[s][j][f]
        prog["options"].append((opts[s][0][f], opts[s][1][f]))
    return prog


def solve_stagewise(space: SearchSpace, objective: BilinearForm, constraints) -> tuple[np.ndarray, dict] | None:
    """The optimum of a stage-separable program (module docstring), or ``None`` when infeasible.

    Args:
      space: the BINAS space.
      objective: the stage-separable accuracy model.
      constraints: the constraints (stage-separable bilinear models with their bounds).

    Returns:
      ``(arch [P], info)`` (``info``: method, options and Pareto options per stage), or ``None``.
    """
    st = structure_of(space)
    prog = stage_program(space, objective, [c.model for c in constraints])
    found = solve_mckp(prog["v"], prog["A"], prog["mask"], [c.bound - c.model.base for c in constraints])
    if found is None:
        return None
    pick = found[0]
    depth = np.array([prog["options"][s][0][pick[s]] for s in range(st.num_stages)])
    configs = np.stack([prog["options"][s][1][pick[s]] for s in range(st.num_stages)])
    return _arch(st, depth, configs), {"method": "stage-wise", "stage_options": prog["sizes"],
                                       "stage_pareto_options": prog["front"]}


def solve_by_depths(space: SearchSpace, objective: BilinearForm, constraints) -> tuple[np.ndarray, dict] | None:
    """The optimum of any bilinear program: one multiple-choice knapsack over the active layers per depth
    combination, in decreasing order of an upper bound on its optimum (module docstring).

    Args:
      space: the BINAS space.
      objective: the accuracy model.
      constraints: the constraints (bilinear models with their bounds).

    Returns:
      ``(arch [P], info)`` (``info``: method, depth combinations, knapsacks solved), or ``None`` when infeasible.
    """
    st = structure_of(space)
    D = np.array(list(itertools.product(range(len(st.depths)), repeat=st.num_stages)), np.int64)
    const, u = objective.layer_values(D)
    parts = [c.model.layer_values(D) for c in constraints]
    top = const + u.max(2).sum(1)
    for c, (cc, cu) in zip(constraints, parts):  # Lagrangian bounds: any price lam >= 0 of one constraint
        scale = np.median(np.abs(u[u != 0])) / max(np.median(np.abs(cu[cu != 0])) if cu.any() else 1.0, 1e-300)
        for lam in scale * np.geomspace(1e-2, 1e2, 17):
            top = np.minimum(top, const + lam * (c.bound - cc) + (u - lam * cu).max(2).sum(1))
    best, best_key, solved = None, None, 0
    act = st.layer_needs[np.arange(st.num_layers)[None, :], D[:, st.layer_stage]]
    for i in np.argsort(-top, kind="stable"):
        if best is not None and top[i] < best_key[0] - 1e-9 * max(1.0, abs(best_key[0])):
            break
        rows = np.flatnonzero(act[i])
        b = [c.bound - pc[0][i] for c, pc in zip(constraints, parts)]
        found = solve_mckp(u[i, rows], [pc[1][i, rows] for pc in parts], np.ones((len(rows), st.num_configs), bool), b)
        solved += 1
        if found is None:
            continue
        val = const[i] + found[1]
        key = (val, -(found[2][0] if len(constraints) else 0.0))
        if best is None or key > best_key:
            configs = np.zeros(st.num_layers, np.int64)
            configs[rows] = found[0]
            best, best_key = _arch(st, D[i], configs), key
    if best is None:
        return None
    return best, {"method": "depth enumeration", "depth_combinations": int(len(D)), "knapsacks_solved": solved}


class BinasExactSearcher(Searcher):
    """The certified exact searcher of the module docstring."""

    name = "binas-exact"
    kind = "exact"
    spaces = ("binas",)

    def supports(self, problem: SearchProblem) -> str | None:
        """``None`` when the problem is a bilinear program over a BINAS space (:func:`binas_support`), else why not.

        Args:
          problem: the :class:`~nasjax.search.base.SearchProblem`.

        Returns:
          ``None`` or the reason.
        """
        return binas_support(problem)

    def _search(self, problem: SearchProblem, seed: int) -> SearchResult:
        cons = list(problem.constraints)
        check_budgets(cons)
        separable = problem.objective.stage_separable and all(c.model.stage_separable for c in cons)
        found = (solve_stagewise if separable else solve_by_depths)(problem.space, problem.objective, cons)
        if found is None:
            raise joint_infeasible(cons)
        arch, info = found
        obj, res = evaluate(arch, problem.objective, cons)
        for c in cons:
            if not c.satisfied(arch[None])[0]:  # the certificate: the models themselves must agree
                raise RuntimeError(f"binas-exact: answer violates {c.name} ({res[c.name]} > {c.bound})")
        return SearchResult(arch, obj, res, certified=True, info=info)


register(BinasExactSearcher())
