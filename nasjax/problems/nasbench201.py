"""NAS-Bench-201 (Dong & Yang, ICLR 2020) as a tabular search problem: the benchmark's measured cells.

``nb201_problem(dataset)`` is ``max_a ValAcc(a)`` over the 15,625 cells of
:func:`nasjax.benchmarks.nasbench201.load`, where the search signal is the 200-epoch seed-mean validation
accuracy (per-run values for ``signal="seed"``) and the 200-epoch test accuracy is reported for the found
cell; with a device and a budget it adds ``latency(device) <= budget`` (ms, the benchmark's measured
column) or ``energy(device) <= budget`` (mJ). A query-based searcher learns the cells through the query
harness; ``enumerate`` gives the exact optimum.
"""

from __future__ import annotations

from nasjax.constraints import Constraint
from nasjax.errors import require
from nasjax.search.base import ColumnModel, SearchProblem, TabularObjective
from nasjax.spaces.nasbench201 import nasbench201_space

RESOURCES = {"latency": "ms", "energy": "mJ"}


def nb201_objective(dataset: str, table=None) -> TabularObjective:
    """The 15,625 cells of ``dataset`` (``cifar10``, ``cifar100``, ``ImageNet16-120``) as an objective.

    Args:
      dataset: the dataset (any name :func:`nasjax.benchmarks.nasbench201.canonical_dataset` accepts).
      table: the loaded benchmark table (default: :func:`nasjax.benchmarks.nasbench201.load`).

    Returns:
      A :class:`~nasjax.search.base.TabularObjective`: seed-mean and per-run validation accuracy, test
      accuracy (%), named after the dataset.
    """
    from nasjax.benchmarks import nasbench201 as nb

    t = nb.load() if table is None else table
    ds = nb.canonical_dataset(dataset)
    return TabularObjective(nasbench201_space(), t.archs, t.val_acc(ds), t.test_acc(ds), t.val_acc_runs(ds), name=ds)


def nb201_problem(dataset: str, table=None, device: str | None = None, budget: float | None = None,
                  resource: str = "latency", query_budget: int | None = None,
                  objective: TabularObjective | None = None) -> SearchProblem:
    """The NAS-Bench-201 search problem of ``dataset``, constrained when ``device`` and ``budget`` are given.

    Args:
      dataset: the dataset.
      table: the loaded benchmark table (default: loaded once here).
      device: a device of the table (``table.devices()``), with ``budget``.
      budget: the bound of ``resource(device)``.
      resource: ``"latency"`` (ms) or ``"energy"`` (mJ).
      query_budget: unique queries a query-based searcher may make.
      objective: the :func:`nb201_objective` to reuse (problems sharing one objective share their cells,
        so a sweep over devices and budgets batches its WeakNAS fits).

    Returns:
      ``SearchProblem(nasbench201, objective, [resource(device) <= budget])`` named ``<dataset>`` or
      ``<dataset>|<resource>[<device>]<=<budget><unit>``.
    """
    from nasjax.benchmarks import nasbench201 as nb

    t = nb.load() if table is None else table
    obj = objective if objective is not None else nb201_objective(dataset, t)
    if device is None and budget is None:
        return SearchProblem(obj.space, obj, (), query_budget, obj.name)
    require(device is not None and budget is not None, "device/budget", (device, budget),
            "both a device and a budget for a constrained problem")
    require(resource in RESOURCES, "resource", resource, "'latency' or 'energy'")
    col = t.latency(device) if resource == "latency" else t.energy(device)
    unit = RESOURCES[resource]
    model = ColumnModel(obj.space, obj.archs, col, resource, unit, device)
    return SearchProblem(obj.space, obj, (Constraint(model, float(budget), unit),), query_budget,
                         f"{obj.name}|{resource}[{device}]<={float(budget):g}{unit}")
