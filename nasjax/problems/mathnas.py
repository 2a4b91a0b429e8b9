"""MathNAS-style problems (NeurIPS 2023): one space on one device, an objective, resource models, a codec.

A :class:`Problem` bundles what the ``nas`` / ``predict`` / ``pareto`` modes of the search experiments
need, so that every space (MobileNetV3, NAS-Bench-201, SuperViT, SuperTransformer, nasjax's own supernet
tables) runs through one code path::

    nas:      a* = argmax_a objective(a)  s.t.  resource_m(a) <= bound_m     (run_search(solver, ...))
    predict:  objective(a) and resource_m(a) of one architecture
    pareto:   the exact (objective, resource_m) front

The objective is an additive :class:`~nasjax.tables.Table` (solved by the exact searcher named by
``solver``) or a :class:`~nasjax.search.branched.BranchedObjective` (solved by ``branched`` with ``solver``
as its inner searcher). :func:`mobilenetv3_problem` and :func:`nasbench201_problem` build the problems of
MathNAS's published tables.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nasjax.benchmarks.mathnas import mobilenetv3_tables, nasbench201_tables
from nasjax.constraints import Constraint
from nasjax.errors import NasjaxInputError
from nasjax.search.base import SearchProblem, SearchResult, run_search
from nasjax.search.branched import BranchedObjective, branch_pareto
from nasjax.spaces.base import RESULT_KEYS, SearchSpace
from nasjax.spaces.nasbench201 import arch_to_str, nasbench201_space, str_to_arch
from nasjax.tables import check_unit

_QTY = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*([A-Za-z%]*)\s*$")


def parse_quantity(text: str, field_name: str, default_unit: str) -> tuple[float, str]:
    """A number with an optional unit.

    Args:
      text: ``"500"`` or ``"68.9ms"``.
      field_name: the flag or field named in the error.
      default_unit: the unit of a bare number.

    Returns:
      ``(value, unit)``: ``"500"`` -> ``(500.0, default_unit)``, ``"68.9ms"`` -> ``(68.9, "ms")``; anything
      else raises naming the field.
    """
    m = _QTY.match(str(text))
    if not m:
        raise NasjaxInputError(f"{field_name}: got {text!r}, expected a number with an optional unit, "
                               "e.g. 500 or 500ms")
    value = float(m.group(1))
    unit = m.group(2) or default_unit
    check_unit(unit, field_name + " unit")
    if not np.isfinite(value):
        raise NasjaxInputError(f"{field_name}: got {text!r}, expected a finite number")
    return value, unit


@dataclass
class Problem:
    """A space on a device with its models (module docstring).

    Attributes:
      space: the search space.
      device: the device of the resource tables (``None`` for device-independent ones such as FLOPs).
      objective: an additive Table or a BranchedObjective.
      resources: ``{metric: model}``: Tables, or the BranchedObjective's resource models.
      decode: choice vector -> native format (a dict written as yml).
      encode: native format -> choice vector.
      notes: provenance shown nowhere else (block set, branches).
    """

    space: SearchSpace
    device: str | None
    objective: Any
    resources: dict[str, Any]
    decode: Callable[[np.ndarray], dict]
    encode: Callable[[dict], np.ndarray]
    notes: dict = field(default_factory=dict)

    def constraints(self, bounds: dict[str, tuple[float, str]]) -> list[Constraint]:
        """``Constraint(resource_m, value, unit)`` for every ``{metric: (value, unit)}`` of ``bounds``.

        Args:
          bounds: ``{metric: (value, unit)}`` upper bounds, e.g. ``{"latency": (68.9, "ms")}``.

        Returns:
          One :class:`~nasjax.constraints.Constraint` per bound, in the order given.

        Raises:
          NasjaxInputError: when the problem has no model of a metric (listing the known ones), or a bound's unit
            does not fit its model's.
        """
        out = []
        for metric, (value, unit) in bounds.items():
            if metric not in self.resources:
                known = ", ".join(sorted(self.resources)) or "none"
                raise NasjaxInputError(
                    f"{metric}_constraint: space {self.space.name!r}"
                    + (f" on {self.device!r}" if self.device else "")
                    + f" has no {metric} table; expected one of: {known}"
                )
            out.append(Constraint(self.resources[metric], value, unit))
        return out

    def search_problem(self, constraints: Sequence[Constraint]) -> SearchProblem:
        """The :class:`~nasjax.search.base.SearchProblem` of the objective under ``constraints``.

        Args:
          constraints: the resource constraints (:meth:`constraints`).

        Returns:
          The search problem, named ``<space>`` or ``<space>/<device>``.
        """
        return SearchProblem(self.space, self.objective, tuple(constraints),
                             name=f"{self.space.name}" + (f"/{self.device}" if self.device else ""))

    def solve(self, constraints: Sequence[Constraint], solver: str = "highs") -> SearchResult:
        """The exact optimum under ``constraints`` by the exact searcher ``solver``.

        For a branched objective ``solver`` is the inner searcher of ``branched``.

        Args:
          constraints: the resource constraints (:meth:`constraints`).
          solver: the registered exact searcher (e.g. ``"highs"``).

        Returns:
          The :class:`~nasjax.search.base.SearchResult`.

        Raises:
          NasjaxInputError: on an unknown solver, or a budget no architecture meets
            (:class:`~nasjax.errors.InfeasibleError`).
        """
        problem = self.search_problem(constraints)
        if isinstance(self.objective, BranchedObjective):
            return run_search("branched", problem, inner=solver)
        return run_search(solver, problem)

    def predict(self, arch: np.ndarray) -> dict[str, tuple[float, str]]:
        """``{metric: (value, unit)}`` of the objective and every resource for one architecture.

        Args:
          arch: one choice vector ``[P]`` of the space.

        Returns:
          ``{metric: (value, unit)}``, the objective first.

        Raises:
          NasjaxInputError: when ``arch`` does not fit the models.
        """
        out = {self.objective.metric: (float(self.objective.predict(arch)), self.objective.unit)}
        for m, t in self.resources.items():
            out[m] = (float(t.predict(arch)), t.unit)
        return out

    def pareto(self, metric: str):
        """Exact (objective, ``metric``) Pareto front of the space (a :class:`~nasjax.search.pareto.ParetoFront`).

        Args:
          metric: the resource to minimise, a key of ``resources``.

        Returns:
          The :class:`~nasjax.search.pareto.ParetoFront` (objective maximised, resource minimised).

        Raises:
          NasjaxInputError: when the problem has no model of ``metric``.
        """
        from nasjax.search.pareto import ParetoFront, pareto_front

        if metric not in self.resources:
            raise NasjaxInputError(f"pareto_resource: got {metric!r}, expected one of {sorted(self.resources)}")
        if not isinstance(self.objective, BranchedObjective):
            return pareto_front(self.objective, self.resources[metric])
        t0 = time.perf_counter()
        front = branch_pareto(self.objective, metric)
        return ParetoFront(np.stack([p[0] for p in front]), np.array([p[1] for p in front]),
                           np.array([p[2] for p in front]), self.objective, self.resources[metric],
                           (time.perf_counter() - t0) * 1e3)

    def read_native(self, d) -> np.ndarray:
        """A native architecture (a parsed yml), nasjax's own result keys ignored, as a choice vector.

        Args:
          d: the parsed yml mapping (e.g. OFA's ``d`` / ``e`` / ``ks``, or NB201's ``arch``).

        Returns:
          The choice vector ``[P]``.

        Raises:
          NasjaxInputError: when ``d`` is not a mapping or the codec refuses it.
        """
        if not isinstance(d, dict):
            raise NasjaxInputError(f"architecture yml: got {type(d).__name__}, expected a mapping of keys")
        return self.encode({k: v for k, v in d.items() if k not in RESULT_KEYS})


def mobilenetv3_problem(tables_dir, device: str) -> Problem:
    """MathNAS's MobileNetV3 stage-block problem on ``device`` (raspberrypi, tx2cpu, tx2gpu), OFA ymls.

    Args:
      tables_dir: MathNAS's published layout (e.g. ../shared/data/MathNAS).
      device: the device of MathNAS's tables.

    Returns:
      The :class:`Problem`: accuracy objective, the device's resource tables, the block set's OFA codec.

    Raises:
      NasjaxInputError: on an unknown device, or missing or malformed tables.
    """
    bs, acc, res = mobilenetv3_tables(tables_dir, device)
    space = bs.space()
    acc.check_space(space)
    return Problem(space, device, acc, res, bs.to_ofa, bs.from_ofa, {"block_set": bs.name})


def _nb201_encode(d: dict) -> np.ndarray:
    if set(d) != {"arch"}:
        raise NasjaxInputError(f"architecture yml: keys {sorted(d)}, expected exactly 'arch' (an NB201 arch string)")
    return str_to_arch(d["arch"])


def nasbench201_problem(tables_dir, device: str) -> Problem:
    """MathNAS's NAS-Bench-201 problem on ``device`` (fpga, edgegpu): latency and energy, arch-string ymls.

    Args:
      tables_dir: MathNAS's published layout (e.g. ../shared/data/MathNAS).
      device: the device of MathNAS's tables.

    Returns:
      The :class:`Problem`: accuracy objective, latency and energy tables, the ``{"arch": <string>}`` codec.

    Raises:
      NasjaxInputError: on an unknown device, or missing or malformed tables.
    """
    acc, res = nasbench201_tables(tables_dir, device)
    space = nasbench201_space()
    acc.check_space(space)
    return Problem(space, device, acc, res, lambda a: {"arch": arch_to_str(a)}, _nb201_encode)
