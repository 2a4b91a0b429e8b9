"""Shared flags and the nas / predict / pareto runner of the MathNAS-style search experiments.

MathNAS's flags are kept (``--mode=nas|predict|pareto --device --latency_constraint --energy_constraint
--flops_constraint --load_path --save_path``) plus ``--tables_dir`` and ``--solver``. A constraint is a
number with an optional unit (``500`` or ``500ms``); a unit that differs from the table's is an error.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

from absl import flags

from nasjax.errors import NasjaxInputError
from nasjax.io import read_yaml, write_yaml
from nasjax.problems import Problem, parse_quantity

FLAGS = flags.FLAGS

RESOURCES = ("latency", "energy", "flops")


def define_flags(default_device: str | None, modes=("nas", "predict", "pareto")) -> None:
    flags.DEFINE_enum("mode", "nas", list(modes), "nas: search; predict: predict a yml; pareto: the front.")
    flags.DEFINE_string("device", default_device, "Target device of the tables.")
    for r in RESOURCES:
        flags.DEFINE_string(f"{r}_constraint", None, f"Upper bound on {r} (number, optional unit suffix).")
    flags.DEFINE_string("load_path", None, "predict: an architecture yml (MathNAS's or nasjax's).")
    flags.DEFINE_string("save_path", "results", "Output root: <save_path>/<space>/[<device>/]<constraint>.yml")
    flags.DEFINE_string("tables_dir", None, "Directory in MathNAS's published layout (default ../shared/data/MathNAS).")
    flags.DEFINE_enum("solver", "highs", ["highs", "gurobi", "mckp", "enumerate"],
                      "Exact solver: CVXPY over HiGHS/Gurobi, the pruned DP, or enumeration.")
    flags.DEFINE_string("pareto_resource", None, "pareto: resource axis (default: the first one with a table).")


def tables_dir_or_default() -> str:
    from nasjax.mathnas import default_tables_dir

    if FLAGS.tables_dir:
        return FLAGS.tables_dir
    d = default_tables_dir()
    if d is None:
        raise NasjaxInputError("tables_dir: not given and ../shared/data/MathNAS is absent; expected --tables_dir=DIR")
    return str(d)


def bounds_from_flags(problem: Problem) -> dict:
    out = {}
    for r in RESOURCES:
        v = getattr(FLAGS, f"{r}_constraint")
        if v is not None:
            default_unit = problem.resources[r].unit if r in problem.resources else "ms"
            out[r] = parse_quantity(v, f"{r}_constraint", default_unit)
    return out


def _fmt(v: float) -> str:
    return f"{v:g}" if abs(v - round(v)) > 1e-9 else str(int(round(v)))


def _outdir(problem: Problem) -> Path:
    p = Path(FLAGS.save_path) / problem.space
    return p / problem.device if problem.device else p


def _report(problem: Problem, arch, predicted: dict) -> None:
    print(f"The net arch is {problem.decode(arch)}")
    for m, (v, u) in predicted.items():
        print(f"The predicted {m} of the net is {v:.4f} {u}")


def run_nas(problem: Problem) -> Path:
    bounds = bounds_from_flags(problem)
    cons = problem.constraints(bounds)
    result = problem.solve(cons, FLAGS.solver)
    name = "_".join(_fmt(v) for v, _ in bounds.values()) or "unconstrained"
    out = _outdir(problem) / f"{name}.yml"
    native = problem.decode(result.arch)
    pred = problem.predict(result.arch)
    doc = dict(native)
    doc["predicted"] = {m: {"value": round(v, 6), "unit": u} for m, (v, u) in pred.items()}
    doc["constraints"] = {m: {"bound": v, "unit": u} for m, (v, u) in bounds.items()}
    doc["solver"] = result.solver
    doc["solve_time_ms"] = round(result.solve_time_ms, 3)
    print(f"search time is {result.solve_time_ms:.3f} ms ({result.solver})")
    print(f"The search net is {native}")
    for m, (v, u) in pred.items():
        print(f"The predicted {m} of the search net is {v:.2f} {u}")
    write_yaml(out, doc)
    print(f"network saved to {out}")
    return out


def run_predict(problem: Problem) -> None:
    if not FLAGS.load_path:
        raise NasjaxInputError("load_path: required with --mode=predict; expected a .yml architecture file")
    arch = problem.read_native(read_yaml(FLAGS.load_path))
    _report(problem, arch, problem.predict(arch))


def run_pareto(problem: Problem) -> Path:
    if not problem.resources:
        raise NasjaxInputError(f"pareto: space {problem.space!r} has no resource table")
    metric = FLAGS.pareto_resource or next(iter(problem.resources))
    front = problem.pareto(metric)
    out = _outdir(problem) / f"pareto_{metric}"
    front.write_csv(out.with_suffix(".csv"), codec=lambda a: str(problem.decode(a)))
    front.plot(out.with_suffix(".png"), title=f"{problem.space} {problem.device or ''} ({len(front)} Pareto archs)")
    print(f"{len(front)} Pareto-optimal architectures in {front.build_time_ms:.2f} ms; "
          f"{metric} {front.resource[0]:.3f}..{front.resource[-1]:.3f} {front.resource_table.unit}, "
          f"{front.objective_table.metric} {front.objective[0]:.3f}..{front.objective[-1]:.3f}")
    print(f"saved {out.with_suffix('.csv')} and {out.with_suffix('.png')}")
    return out


def main_for(build: Callable[[], Problem]):
    """absl main: build the problem from flags, run the mode; bad input -> message and exit code 2."""

    def main(argv):
        if len(argv) > 1:
            raise SystemExit(f"error: unexpected arguments {argv[1:]}")
        t0 = time.perf_counter()
        try:
            problem = build()
            {"nas": run_nas, "predict": run_predict, "pareto": run_pareto}[FLAGS.mode](problem)
        except NasjaxInputError as e:
            print(f"error: {e}", file=sys.stderr)
            raise SystemExit(2)
        print(f"done in {time.perf_counter() - t0:.2f} s")

    return main
