"""Block coordinate Frank-Wolfe with BINAS's sparsify phase (Nayman et al., arXiv 2110.12399; HardCoRe-NAS).

The relaxed program over fractional layer configurations ``alpha [L, K]`` and stage depths ``beta [S, D]``
(rows on the simplex)::

    max_{alpha, beta}  F(alpha, beta)    s.t.   T(alpha, beta) <= b

where ``F`` is the accuracy model's relaxation and ``T`` the latency model's, which is linear in ``alpha``
for fixed ``beta`` and in ``beta`` for fixed ``alpha`` (BINAS's bilinear form). Starting from the smallest
network (configuration 0, smallest depth), each of ``steps`` iterations picks a block (``alpha`` with
probability ``alpha_probability`` once two steps are done, else ``beta``), solves the linear program
``s = argmax_s grad F . s`` subject to the latency constraint with the other block fixed
(:func:`nasjax.search.mckp.lp_relaxation`) and moves ``x <- x + gamma (s - x)`` (BINAS's fixed step
``gamma = max_gamma_step``). The sparsify phase then alternates the blocks (beta first) with ``gamma = 1``
and the current attention as the objective, taking each LP's integral solution without its fractional
increment, until neither block changes: the result is a one-hot, feasible architecture. Registered as
``bcfw`` (option ``config``: a :class:`BCFWConfig`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nasjax.cli import option
from nasjax.errors import NasjaxInputError, require
from nasjax.hardware.binas_latency import BilinearForm
from nasjax.search.base import Searcher, SearchProblem, SearchResult, check_budgets, evaluate, register
from nasjax.search.mckp import lp_relaxation
from nasjax.spaces.binas import canonical, structure_of


@dataclass(frozen=True)
class BCFWConfig:
    """BINAS's BCFW settings (its flag names)."""

    steps: int = option(1000, flag="bcfw_steps", help="Block coordinate Frank-Wolfe steps before sparsifying.")
    gamma: float = option(0.002, flag="max_gamma_step", help="Frank-Wolfe step size (BINAS: fixed).")
    sparsify_steps: int = option(100, flag=False, help="Largest number of sparsify steps.")
    alpha_probability: float = option(0.5, flag=False, help="Probability of an alpha step.")

    def __post_init__(self):
        require(int(self.steps) >= 0, "bcfw_steps", self.steps, "an integer >= 0")
        require(0 < self.gamma <= 1, "max_gamma_step", self.gamma, "a step size in (0, 1]")
        require(int(self.sparsify_steps) >= 2, "sparsify_steps", self.sparsify_steps, "an integer >= 2")
        require(0 <= self.alpha_probability <= 1, "alpha_probability", self.alpha_probability, "a probability")


class BCFWSearcher(Searcher):
    """The BCFW of the module docstring."""

    name = "bcfw"
    kind = "query"
    spaces = ("binas",)

    def supports(self, problem: SearchProblem) -> str | None:
        """``None`` for a BINAS space, a relaxable objective and one stage-separable bilinear latency constraint.

        The objective needs ``relax(alpha, beta)`` (a BINAS bilinear, quadratic or MLP predictor); the constraint's
        model must be a stage-separable :class:`~nasjax.hardware.binas_latency.BilinearForm` of the same structure.

        Args:
          problem: the :class:`~nasjax.search.base.SearchProblem`.

        Returns:
          ``None`` or the reason, in words.
        """
        try:
            st = structure_of(problem.space)
        except NasjaxInputError as e:
            return str(e)
        if not callable(getattr(problem.objective, "relax", None)):
            return (f"objective: got {type(problem.objective).__name__}, expected a model with relax(alpha, beta) "
                    "(a BINAS bilinear, quadratic or MLP predictor)")
        if len(problem.constraints) != 1:
            return f"expected one latency constraint, got {len(problem.constraints)}"
        m = problem.constraints[0].model
        if not isinstance(m, BilinearForm) or not m.stage_separable or m.structure != st:
            return "constraint: expected a stage-separable bilinear model of this space (BINAS's latency model)"
        return None

    def _search(self, problem: SearchProblem, seed: int, config: BCFWConfig | None = None) -> SearchResult:
        cfg = config or BCFWConfig()
        st = structure_of(problem.space)
        con = problem.constraints[0]
        check_budgets([con])
        rng = np.random.default_rng(seed)
        alpha = np.eye(st.num_configs)[np.zeros(st.num_layers, int)]
        beta = np.eye(len(st.depths))[np.zeros(st.num_stages, int)]
        bound = con.bound + 1e-9 * max(1.0, abs(con.bound))

        def step(block: str, grad_a, grad_b, gamma: float, rounded: bool):
            nonlocal alpha, beta
            t, ta, tb = con.model.relax(alpha, beta)
            x, g, c = (alpha, grad_a, ta) if block == "alpha" else (beta, grad_b, tb)
            sol = lp_relaxation(g, c, bound - t + (c * x).sum())  # T linear in the block
            if sol is None:
                return False
            s = np.eye(x.shape[1])[sol[1]] if rounded else sol[0]
            new = x + gamma * (s - x)
            changed = not np.allclose(new, x)
            if block == "alpha":
                alpha = new
            else:
                beta = new
            return changed

        for k in range(int(cfg.steps)):
            _, ga, gb = problem.objective.relax(alpha, beta)
            block = "alpha" if rng.random() < cfg.alpha_probability and k > 1 else "beta"
            step(block, ga, gb, cfg.gamma, False)
        relaxed = float(problem.objective.relax(alpha, beta)[0])
        quiet = 0
        for k in range(int(cfg.sparsify_steps)):  # the current attention is the objective
            block = "beta" if k % 2 == 0 else "alpha"
            quiet = 0 if step(block, alpha.copy(), beta.copy(), 1.0, True) else quiet + 1
            if quiet >= 2 and k >= 1:
                break
        arch = np.zeros(st.num_stages * (1 + st.max_depth), np.int64)
        arch[st.layer_positions] = alpha.argmax(1)
        arch[st.depth_positions] = beta.argmax(1)
        arch = canonical(arch, st)
        obj, res = evaluate(arch, problem.objective, [con])
        if not con.satisfied(arch[None])[0]:
            raise RuntimeError(f"bcfw: the sparsified architecture violates {con.name} ({res[con.name]} > {con.bound})")
        return SearchResult(arch, obj, res, info={"steps": int(cfg.steps), "relaxed_objective": relaxed,
                                                  "sparsify_steps": k + 1})


register(BCFWSearcher())
