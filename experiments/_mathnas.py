"""Shared flags and the nas / predict / pareto runner of the MathNAS-style search experiments.

MathNAS's flags are kept (``--mode=nas|predict|pareto --device --latency_constraint --energy_constraint
--flops_constraint --load_path --save_path``) plus ``--tables_dir``, ``--solver`` (an exact searcher of
nasjax's registry) and ``--pareto_resource``. A constraint is a number with an optional unit (``500`` or
``500ms``); a unit that differs from the table's is an error. A flag the chosen mode does not use is an
error, the output path is checked before any work starts, and bad input exits 2 with one line.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from absl import flags

from nasjax import cli
from nasjax.errors import NasjaxInputError
from nasjax.io import read_yaml, write_yaml
from nasjax.problems.mathnas import Problem, parse_quantity
from nasjax.search import exact_searchers

FLAGS = flags.FLAGS

RESOURCES = ("latency", "energy", "flops")
MODE_FLAGS = {
    "nas": [f"{r}_constraint" for r in RESOURCES] + ["solver", "save_path"],
    "predict": ["load_path"],
    "pareto": ["pareto_resource", "save_path"],
}


def define_flags(default_device: str | None, modes=("nas", "predict", "pareto")) -> None:
    flags.DEFINE_enum("mode", "nas", list(modes), "nas: search; predict: predict a yml; pareto: the front.")
    flags.DEFINE_string("device", default_device, "Target device of the tables.")
    for r in RESOURCES:
        flags.DEFINE_string(f"{r}_constraint", None, f"Upper bound on {r} (number, optional unit suffix).")
    flags.DEFINE_string("load_path", None, "predict: an architecture yml (MathNAS's or nasjax's).")
    flags.DEFINE_string("save_path", "results", "Output root: <save_path>/<space>/[<device>/]<constraint>.yml")
    flags.DEFINE_string("tables_dir", None, "Directory in MathNAS's published layout (default ../shared/data/MathNAS).")
    flags.DEFINE_enum("solver", "highs", exact_searchers(),
                      "Exact searcher: highs / gurobi (CVXPY integer program), mckp (pruned DP), enumerate.")
    flags.DEFINE_string("pareto_resource", None, "pareto: resource axis (default: the first one with a table).")


def tables_dir_or_default() -> str:
    from nasjax.benchmarks.mathnas import default_tables_dir

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
    p = Path(FLAGS.save_path) / problem.space.name
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
    cli.remove_stale_temporaries(out.parent)
    write_yaml(out, doc)
    print(f"network saved to {out}")
    return out


def run_predict(problem: Problem) -> None:
    arch = problem.read_native(read_yaml(FLAGS.load_path))
    _report(problem, arch, problem.predict(arch))


def run_pareto(problem: Problem) -> Path:
    if not problem.resources:
        raise NasjaxInputError(f"pareto: space {problem.space.name!r} has no resource table")
    metric = FLAGS.pareto_resource or next(iter(problem.resources))
    front = problem.pareto(metric)
    stem = f"pareto_{metric}"
    with cli.ResultSet(_outdir(problem), manifest=f"{stem}.json") as rs:
        front.write_csv(rs.path(f"{stem}.csv"), codec=lambda a: str(problem.decode(a)))
        title = f"{problem.space.name} {problem.device or ''} ({len(front)} Pareto archs)"
        front.plot(rs.path(f"{stem}.png"), title=title)
        rs.summary = {"space": problem.space.name, "device": problem.device, "resource": metric,
                      "pareto_points": len(front)}
    out = _outdir(problem) / stem
    print(f"{len(front)} Pareto-optimal architectures in {front.build_time_ms:.2f} ms; "
          f"{metric} {front.resource[0]:.3f}..{front.resource[-1]:.3f} {front.resource_table.unit}, "
          f"{front.objective_table.metric} {front.objective[0]:.3f}..{front.objective[-1]:.3f}")
    print(f"saved {out.with_suffix('.csv')} and {out.with_suffix('.png')}")
    return out


RUNNERS = {"nas": run_nas, "predict": run_predict, "pareto": run_pareto}


def main_for(build: Callable[[], Problem], mode_flags: dict | None = None) -> Callable[[], None]:
    """The ``cli.run`` main of a MathNAS experiment: refuse flags of other modes, check the output path,
    build the problem from flags and run the mode (bad input: one line, exit 2, no output)."""

    def main():
        cli.check_mode_flags("mode", {**MODE_FLAGS, **(mode_flags or {})})
        if FLAGS.mode in ("nas", "pareto"):
            cli.check_output_dir(FLAGS.save_path, "save_path")
        for r in RESOURCES:  # the number's syntax before the tables are read (the unit is checked against them)
            if getattr(FLAGS, f"{r}_constraint") is not None:
                parse_quantity(getattr(FLAGS, f"{r}_constraint"), f"{r}_constraint", "ms")
        if FLAGS.mode == "predict" and not FLAGS.load_path:
            raise NasjaxInputError("load_path: required with --mode=predict; expected a .yml architecture file")
        t0 = time.perf_counter()
        problem = build()
        RUNNERS[FLAGS.mode](problem)
        print(f"done in {time.perf_counter() - t0:.2f} s")

    return main
