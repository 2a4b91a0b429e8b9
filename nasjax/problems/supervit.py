"""MathNAS's SuperViT problem (NASViT, ICLR 2022; MathNAS, NeurIPS 2023): corrected predictor and exact search.

The space (:mod:`nasjax.spaces.supervit`) is additive once the resolution ``r`` is fixed::

    acc(r, c)   = A_r + sum_i (a_r[i][c_i] - a_r[i][0])        (%)
    FLOPs(r, c) = F_r + sum_i (f_r[i][c_i] - f_r[i][0])        (MFLOPs)

(tables: :func:`nasjax.benchmarks.mathnas.supervit_tables`). :class:`SuperViTModel` holds one branch per
resolution; ``max acc s.t. FLOPs <= B`` is solved exactly by the ``branched`` searcher (one exact solve per
resolution, the best of the four). :func:`original_code_search` reproduces MathNAS's search.py program,
whose objective has the wrong sign and whose constraint leaves out the base FLOPs.
"""

from __future__ import annotations

import numpy as np

from nasjax.benchmarks.mathnas import supervit_tables
from nasjax.constraints import Constraint
from nasjax.problems.mathnas import Problem
from nasjax.search.base import SearchProblem, SearchResult, run_search
from nasjax.search.branched import Branch, BranchedObjective, branch_pareto
from nasjax.spaces import supervit as sv
from nasjax.tables import Table


class SuperViTModel:
    """MathNAS's corrected SuperViT predictor and exact search over all four resolutions.

    Args:
      tables: a MathNAS-layout directory, a :class:`~nasjax.benchmarks.mathnas.MathNASDir` or a mapping
        of arrays (see :func:`nasjax.benchmarks.mathnas.read_array`).
    """

    space_name = "supervit"

    def __init__(self, tables):
        self.tables = {r: supervit_tables(tables, r) for r in sv.RESOLUTIONS}
        self.space = sv.supervit_space()
        branches = []
        for ri, r in enumerate(sv.RESOLUTIONS):
            acc, fl = self.tables[r]
            branches.append(Branch(r, sv.block_space(r), acc, {"flops": fl},
                                   lambda a, ri=ri: np.concatenate([[ri], a]).astype(np.int64)))
        self.objective = BranchedObjective(tuple(branches), self._locate)

    def _locate(self, arch) -> tuple[int, np.ndarray]:
        a = self.space.validate(arch)
        return int(a[0]), a[1:]

    def predict(self, arch) -> dict[str, float]:
        """``{"accuracy": %, "flops": MFLOPs}`` of one full ``[10]`` choice vector.

        Args:
          arch: one SuperViT choice vector ``[10]`` (resolution index, then the 9 block choices).

        Returns:
          The predicted top-1 accuracy (%) and FLOPs (MFLOPs).

        Raises:
          NasjaxInputError: when ``arch`` is not a valid choice vector of the space.
        """
        return {"accuracy": float(self.objective.predict(arch)),
                "flops": float(self.objective.resource("flops").predict(arch))}

    def search_problem(self, flops: float) -> SearchProblem:
        """``max acc s.t. FLOPs <= flops`` (MFLOPs) over the whole space.

        Args:
          flops: the FLOPs budget, MFLOPs.

        Returns:
          The :class:`~nasjax.search.base.SearchProblem` (branched objective, one FLOPs constraint).
        """
        bound = Constraint(self.objective.resource("flops"), flops, "MFLOPs")
        return SearchProblem(self.space, self.objective, (bound,), name="supervit")

    def search(self, flops: float, solver: str = "mckp") -> SearchResult:
        """Exact argmax of predicted top-1 subject to FLOPs <= ``flops`` MFLOPs (best resolution).

        Args:
          flops: the FLOPs budget, MFLOPs.
          solver: the exact searcher of each resolution (the inner searcher of ``branched``).

        Returns:
          The :class:`~nasjax.search.base.SearchResult`.

        Raises:
          NasjaxInputError: on an unknown solver, or a budget no architecture meets
            (:class:`~nasjax.errors.InfeasibleError`).
        """
        return run_search("branched", self.search_problem(flops), inner=solver)

    def pareto(self) -> list[tuple[np.ndarray, float, float]]:
        """The exact (accuracy, FLOPs) front: ``[(arch, accuracy, flops)]`` sorted by FLOPs."""
        return branch_pareto(self.objective, "flops")

    def problem(self) -> Problem:
        """The nas / predict / pareto problem (NASViT configs as the native format)."""
        return Problem(self.space, None, self.objective, self.objective.resources, sv.arch_to_config,
                       sv.config_to_arch, {"branches": list(sv.RESOLUTIONS)})


def original_code_search(tables, flops: float) -> tuple[np.ndarray, float, float]:
    """What MathNAS's search.py does for SuperViT (documented, not used by nasjax): resolution 192 only,

        max  82.6 - sum_i (a[i][c_i] - a[i][0])     s.t.  sum_i (f[i][c_i] - f[i][0]) <= flops

    i.e. it *minimises* the accuracy gain (wrong sign) and bounds only the FLOPs *added* to the
    189.8-MFLOPs base network (missing base).

    Args:
      tables: see :class:`SuperViTModel`.
      flops: search.py's budget.

    Returns:
      ``(arch [10], its objective in search.py, the solve's FLOPs as search.py prints them)``; predict the
      arch with :class:`SuperViTModel` to see what it really is.
    """
    r = sv.RESOLUTIONS[0]
    acc, fl = supervit_tables(tables, r)
    legacy_obj = Table(acc.values, acc.mask, "accuracy", "%", base=82.6, sign=-1, space="supervit_r192")
    legacy_fl = Table(fl.values, fl.mask, "flops", "MFLOPs", base=0.0, sign=1, space="supervit_r192")
    problem = SearchProblem(sv.block_space(r), legacy_obj, (Constraint(legacy_fl, float(flops), "MFLOPs"),))
    res = run_search("mckp", problem)
    return np.concatenate([[0], res.arch]).astype(np.int64), res.objective, res.resources["flops"]
