"""The accuracy-resource Pareto front of an additive space, exact, and run-time switching on it.

The front is every architecture ``a`` for which no other ``a'`` has ``obj(a') >= obj(a)`` and
``res(a') <= res(a)`` with one inequality strict. It is computed by the unbudgeted pruned DP of
:mod:`nasjax.search.mckp` (for additive tables the front of the whole space is built from the fronts
of its prefixes). Given the front, the best architecture under any budget ``b`` is the last front point
with ``res <= b``: a binary search, which is what MathNAS's dynamic network switching needs at run time.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from nasjax.errors import InfeasibleError
from nasjax.io import atomic_path, write_csv
from nasjax.search.base import SearchResult
from nasjax.search.mckp import dp_states
from nasjax.tables import Table


@dataclass
class ParetoFront:
    """A front: ``archs [M, P]`` sorted by resource ascending (and objective ascending), their values, and the
    models the values come from (tables, or any model with ``metric``, ``unit`` and ``device``: labels)."""

    archs: np.ndarray  # [M, P]
    objective: np.ndarray  # [M]
    resource: np.ndarray  # [M]
    objective_table: Table
    resource_table: Table
    build_time_ms: float = 0.0

    def __len__(self) -> int:
        return len(self.objective)

    def best_under(self, bound: float) -> SearchResult:
        """Best architecture with ``resource <= bound``: the last front point under it (O(log M)).

        Args:
          bound: the budget, in the resource table's unit.

        Returns:
          A :class:`~nasjax.search.base.SearchResult`; a bound below the front raises
          :class:`~nasjax.errors.InfeasibleError`.
        """
        t0 = time.perf_counter()
        j = int(np.searchsorted(self.resource, bound + 1e-9 * max(1.0, abs(bound)), side="right")) - 1
        if j < 0:
            t = self.resource_table
            raise InfeasibleError(
                f"{t.metric}_constraint: {bound:g} {t.unit} is infeasible; the smallest achievable "
                f"{t.metric} is {self.resource[0]:.4f} {t.unit}",
                {t.metric: float(self.resource[0])},
            )
        return SearchResult(
            self.archs[j], float(self.objective[j]), {self.resource_table.metric: float(self.resource[j])},
            (time.perf_counter() - t0) * 1e3, "pareto",
        )

    def select(self, lo: float | None = None, hi: float | None = None) -> ParetoFront:
        """The front points with ``lo <= resource <= hi`` (either bound optional), as a new front.

        Args:
          lo: the smallest resource kept, or ``None``.
          hi: the largest resource kept, or ``None``.

        Returns:
          A :class:`ParetoFront` with the same models and build time.
        """
        keep = np.ones(len(self), bool)
        if lo is not None:
            keep &= self.resource >= lo
        if hi is not None:
            keep &= self.resource <= hi
        return ParetoFront(self.archs[keep], self.objective[keep], self.resource[keep], self.objective_table,
                           self.resource_table, self.build_time_ms)

    def write_csv(self, path, codec=None) -> None:
        """CSV with one row per front point; ``codec(arch) -> str`` adds a native-format column.

        Columns: ``arch`` (space-separated choice indices), the objective and the resource (``metric (unit)``).

        Args:
          path: the ``.csv`` file to write (atomically).
          codec: a function of a choice vector giving its native form, or ``None``.
        """
        ot, rt = self.objective_table, self.resource_table
        header = ["arch", f"{ot.metric} ({ot.unit})", f"{rt.metric} ({rt.unit})"] + (["native"] if codec else [])
        rows = []
        for a, o, r in zip(self.archs, self.objective, self.resource):
            row = [" ".join(map(str, a)), f"{o:.6f}", f"{r:.6f}"]
            if codec:
                row.append(codec(a))
            rows.append(row)
        write_csv(path, header, rows)

    def plot(self, path, title: str = "", measured: list[tuple[float, float]] | None = None) -> None:
        """PNG of the front (step plot), optionally with measured (resource, objective) points.

        Args:
          path: the ``.png`` file to write (atomically).
          title: the figure title (default ``"Pareto front"``).
          measured: ``[(resource, objective)]`` measured points, drawn as crosses.
        """
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        ot, rt = self.objective_table, self.resource_table
        fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
        ax.step(self.resource, self.objective, where="post", color="C0", lw=1.2)
        ax.plot(self.resource, self.objective, ".", color="C0", ms=4, label=f"predicted front ({len(self)} archs)")
        if measured:
            mr, mo = zip(*measured)
            ax.plot(mr, mo, "x", color="C3", ms=7, label="measured")
        ax.set_xlabel(f"{rt.metric} ({rt.unit})" + (f" on {rt.device}" if rt.device else ""))
        ax.set_ylabel(f"{ot.metric} ({ot.unit})")
        ax.set_title(title or "Pareto front")
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
        fig.tight_layout()
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png")
        plt.close(fig)


def pareto_front(objective: Table, resource: Table) -> ParetoFront:
    """Exact front of (``resource`` to minimise, ``objective`` to maximise) over the whole space.

    Args:
      objective: the additive objective table.
      resource: the additive resource table (same shape).

    Returns:
      A :class:`ParetoFront`: every ``a`` with no ``a'`` such that ``obj(a') >= obj(a)`` and
      ``res(a') <= res(a)``, one strict, sorted by resource.
    """
    t0 = time.perf_counter()
    archs, V, W = dp_states(objective.coef, [resource.coef], objective.mask, None)
    obj = objective.base + V
    res = resource.base + W[:, 0]
    order = np.lexsort((obj, res))
    return ParetoFront(archs[order], obj[order], res[order], objective, resource, (time.perf_counter() - t0) * 1e3)
