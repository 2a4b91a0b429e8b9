"""Metric sources of block profiles by name: what nasjax can measure or predict for a space.

A source is anything with ``metric``, ``unit``, ``device`` (or ``None``) and ``predict(archs [N, P]) -> [N]``
(:class:`nasjax.constraints.ResourceModel`); a latency table or device model of :mod:`nasjax.hardware`
plugs in as it is. Names (``available(space)`` lists them):

* ``nasbench201``: ``accuracy`` (200-epoch validation accuracy, CIFAR-10, seed mean; ``accuracy/<dataset>``
  for another dataset), ``params``, ``latency/<device>`` for any device of the NAS-Bench-201 table
  (HELP, OneProxy, BRP-NAS), ``latency/help`` / ``latency/oneproxy`` for all of a benchmark's devices.
* ``mobilenetv3_layers``: ``flops`` and ``params`` (analytic, OFA's ImageNet supernet at ``resolution``),
  ``accuracy_table`` (the default supernet's additive accuracy table), ``supernet_accuracy`` (the default
  supernet evaluated in batched passes), ``latency/<setting>`` of a trained sequence predictor
  (``latency/all`` for each of its settings), ``latency_table`` (a latency table model given as an object).

Objects the caller loads (the default supernet, a predictor, a latency table) come in as arguments, so
the profiler does not depend on where they are stored.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from nasjax.errors import NasjaxInputError, require
from nasjax.search.base import ColumnModel, FunctionModel
from nasjax.spaces.base import SearchSpace

NB201 = ("accuracy", "accuracy/<dataset>", "params", "latency/<device>", "latency/help", "latency/oneproxy")
OFA = ("flops", "params", "accuracy_table", "supernet_accuracy", "latency/<setting>", "latency/all",
       "latency_table")


def available(space: SearchSpace) -> tuple[str, ...]:
    """The metric names :func:`build_sources` knows for ``space``.

    Args:
      space: the search space.

    Returns:
      The names (patterns such as ``latency/<device>`` included); empty for a space without named sources.
    """
    return {"nasbench201": NB201, "mobilenetv3_layers": OFA}.get(space.name, ())


def _nb201(space: SearchSpace, names: Sequence[str], table) -> list:
    out = []
    for n in names:
        if n == "accuracy" or n.startswith("accuracy/"):
            ds = n.partition("/")[2] or "cifar10"
            out.append(ColumnModel(space, table.archs, table.val_acc(ds), "accuracy", "%", None if n == "accuracy"
                                   else ds))
        elif n == "params":
            out.append(ColumnModel(space, table.archs, table.params("cifar10"), "params", "M"))
        elif n in ("latency/help", "latency/oneproxy"):
            src = {"latency/help": "HELP", "latency/oneproxy": "OneProxy"}[n]
            out += [ColumnModel(space, table.archs, table.latency(d), "latency", "ms", d)
                    for d in table.devices(source=src)]
        elif n.startswith("latency/"):
            d = n.partition("/")[2]
            require(d in table.devices(), "metrics", n, f"latency/<device> with a device of {table.devices()}")
            out.append(ColumnModel(space, table.archs, table.latency(d), "latency", "ms", d))
        else:
            raise NasjaxInputError(f"metrics: got {n!r}, expected one of {', '.join(NB201)} for nasbench201")
    return out


def ofa_cost_model(kind: str, resolution: int = 224, config=None) -> FunctionModel:
    """Analytic MFLOPs (``kind="flops"``) or M parameters (``"params"``) of layer-view subnets.

    Args:
      kind: ``"flops"`` or ``"params"``.
      resolution: the input resolution, pixels.
      config: the supernet's ``SupernetConfig`` (default OFA's ImageNet supernet).

    Returns:
      A :class:`~nasjax.search.base.FunctionModel` over ``mobilenetv3_layers`` choice vectors ``[N, 25]``
      (unit ``MFLOPs`` or ``M``).

    Raises:
      KeyError: on another ``kind``.
    """
    from nasjax.hardware.flops import subnet_cost
    from nasjax.models.mobilenetv3 import SupernetConfig
    from nasjax.spaces.mobilenetv3 import layers_to_ofa

    cfg = config or SupernetConfig()
    j = {"flops": 0, "params": 1}[kind]

    def fn(archs):
        return np.array([subnet_cost(cfg, int(resolution), layers_to_ofa(a))[j] for a in archs])

    return FunctionModel(fn, kind, "MFLOPs" if kind == "flops" else "M")


def supernet_accuracy_model(default: dict, eval_limit: int | None = 500, chunk_size: int = 16) -> FunctionModel:
    """Accuracy (%) of layer-view subnets evaluated by the default supernet, BN recalibrated, in batched passes.

    Args:
      default: the default supernet's loaded directory: ``state``, ``manifest`` (its ``recipe.calib_size``
        and ``dataset``) and ``dataset`` (loaded by the caller).
      eval_limit: the number of val images evaluated, or ``None`` for the whole split.
      chunk_size: subnets evaluated together in one ``vmap``-ed program.

    Returns:
      A :class:`~nasjax.search.base.FunctionModel` over ``mobilenetv3_layers`` choice vectors (unit ``%``).
    """
    from nasjax.profiling.contributions import eval_data, evaluate_archs, layer_archs_to_subnets

    ds = default["dataset"]
    recipe = default["manifest"]["recipe"]
    data, calib = eval_data(ds, eval_limit=eval_limit, calib_size=recipe["calib_size"])

    def fn(archs):
        return evaluate_archs(default["state"], layer_archs_to_subnets(archs), data, calib, chunk_size=chunk_size,
                              progress=False)

    return FunctionModel(fn, "accuracy", "%", f"supernet {default['manifest']['dataset']}")


def _ofa(names: Sequence[str], *, resolution: int, default: dict | None, predictor, latency_table) -> list:
    out = []
    for n in names:
        if n in ("flops", "params"):
            out.append(ofa_cost_model(n, resolution))
        elif n == "accuracy_table":
            require(default is not None, "metrics", n, "the default supernet's tables (none loaded)")
            out.append(default["tables"]["accuracy_layers"])
        elif n == "supernet_accuracy":
            require(default is not None and "dataset" in default, "metrics", n, "the default supernet and dataset")
            out.append(supernet_accuracy_model(default))
        elif n == "latency_table":
            require(latency_table is not None, "metrics", n, "a latency table (--latency_table FILE)")
            out.append(latency_table)
        elif n.startswith("latency/"):
            require(predictor is not None, "metrics", n, "a sequence latency predictor (--predictor FILE)")
            s = n.partition("/")[2]
            settings = list(predictor.outputs) if s == "all" else [s]
            out += [predictor.model_for(x, resolution) for x in settings]
        else:
            raise NasjaxInputError(f"metrics: got {n!r}, expected one of {', '.join(OFA)} for mobilenetv3_layers")
    return out


def build_sources(space: SearchSpace, names: Sequence[str], *, table=None, default: dict | None = None,
                  predictor=None, latency_table=None, resolution: int = 224) -> list:
    """The metric sources ``names`` of ``space`` (module docstring).

    Args:
      space: the profiled space.
      names: metric names.
      table: the NAS-Bench-201 table (:func:`nasjax.benchmarks.nasbench201.load`) for ``nasbench201``.
      default: the default supernet's loaded directory (tables, state, manifest, dataset).
      predictor: a :class:`~nasjax.predictors.sequence.SequenceLatencyPredictor`.
      latency_table: any latency model with ``metric``, ``unit``, ``predict``.
      resolution: input resolution of the MobileNetV3 cost models and predictor.

    Returns:
      The sources, in order.
    """
    require(len(names) >= 1, "metrics", list(names), "at least one metric name")
    if space.name == "nasbench201":
        require(table is not None, "table", None, "the NAS-Bench-201 table")
        return _nb201(space, names, table)
    if space.name == "mobilenetv3_layers":
        return _ofa(names, resolution=resolution, default=default, predictor=predictor, latency_table=latency_table)
    raise NasjaxInputError(f"space: got {space.name!r}, expected nasbench201 or mobilenetv3_layers (spaces with "
                           "metric sources; profile_blocks takes sources of any other space directly)")
