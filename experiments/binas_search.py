"""BINAS's search (Nayman et al., arXiv 2110.12399) with its flag names: an accuracy model, a latency model
and a latency budget in, the found architecture out (BINAS string, choice vector, predicted accuracy and
latency with units) as a result set::

    python -m experiments.binas_search --nas_optimizer=exact --predictor_type=bilinear \\
        --predictor_ckpt_filename=estimator.npz --lut_filename=LUT_CPU.pkl --latency_unit=ms \\
        --inference_time_limit=45ms --save_path=results/binas

``--nas_optimizer``: ``exact`` (certified, stage-wise; searcher ``binas-exact``), ``iqcp`` (the certified
MILP, ``binas-milp``; ``--iqcp_solver=gurobi`` solves BINAS's MIQCP when gurobipy is installed), ``bcfw``
(block coordinate Frank-Wolfe, ``--bcfw_steps``), ``evo`` (BINAS's evolution: ``genetic`` with
:func:`nasjax.search.genetic.binas_evolution`). The latency model is a BINAS LUT (``--lut_filename``,
seconds per image) or a nasjax latency table of the space (``--latency_table``). The budget carries its
unit (``45ms``, ``0.045s``); a bare number is refused (BINAS's default ``0.00125`` is in seconds). A budget
in another unit than the latency model's is an error naming both; ``--latency_unit`` converts the model
explicitly. Bad input: one line on stderr, exit 2, nothing written.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from absl import flags

from nasjax import cli
from nasjax.constraints import Constraint
from nasjax.errors import NasjaxInputError
from nasjax.hardware.binas_latency import latency_from_lut, latency_from_table
from nasjax.predictors.binas_files import load_predictor
from nasjax.search import SearchProblem, run_search
from nasjax.search.bcfw import BCFWConfig
from nasjax.search.genetic import binas_evolution
from nasjax.spaces.binas import binas_space, canonical, to_string
from nasjax.tables import Table, check_unit

OPTIMIZERS = {"exact": "binas-exact", "iqcp": "binas-milp", "bcfw": "bcfw", "evo": "genetic"}


@dataclass(frozen=True)
class BinasSearchConfig:
    """The command's settings (BINAS's flag names where BINAS has one)."""

    nas_optimizer: str = cli.option("exact", choices=tuple(OPTIMIZERS), help="exact | iqcp | bcfw | evo.")
    predictor_type: str = cli.option("bilinear", choices=("bilinear", "quadratic", "mlp"),
                                     help="Kind of the accuracy model in --predictor_ckpt_filename.")
    predictor_ckpt_filename: str = cli.option("", help="Accuracy model (.npz written by nasjax.predictors).")
    inference_time_limit: str = cli.option("", help="Latency budget with its unit, e.g. 45ms or 0.045s (a bare "
                                           "number is refused; BINAS's default 0.00125 is seconds).")
    lut_filename: str = cli.option("", help="BINAS latency LUT pickle (seconds per image).")
    latency_table: str = cli.option("", help="nasjax latency table (JSON) over the BINAS space's positions.")
    calibrate_latency: bool = cli.option(False, help="With --latency_table of this machine: scale it to the "
                                         "machine's speed now from its reference subnets (seconds) before the "
                                         "search.")
    latency_unit: str = cli.option("", help="Convert the latency model to this unit first (e.g. ms for a LUT in s).")
    latency_corrective_slope: float = cli.option(1.0, help="Latency model scale (BINAS's corrective slope).")
    latency_corrective_intercept: str = cli.option("0ms", help="Added to the latency model, with its unit (BINAS's "
                                                   "corrective intercept; its unit must be the model's).")
    iqcp_solver: str = cli.option("highs", choices=("highs", "gurobi"), help="iqcp: HiGHS MILP or Gurobi MIQCP.")
    bcfw: BCFWConfig = field(default_factory=BCFWConfig)
    seed: int = cli.option(0, help="Seed of bcfw / evo.")
    save_path: str = cli.option("results/binas", help="Output directory of the result set.")


cli.define_config_flags(BinasSearchConfig)
FLAGS = flags.FLAGS
MODE_FLAGS = {"bcfw": ["bcfw_steps", "max_gamma_step"], "iqcp": ["iqcp_solver"]}
_QTY = re.compile(r"^\s*([-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*([A-Za-z%]+)\s*$")


def quantity(text: str, field_name: str) -> tuple[float, str]:
    """``"45ms"`` -> ``(45.0, "ms")``; a bare number or anything else raises naming the field."""
    m = _QTY.match(str(text))
    if not m:
        raise NasjaxInputError(f"{field_name}: got {text!r}, expected a number with its unit, e.g. 45ms or 0.045s "
                               "(BINAS's default 0.00125 is seconds: 0.00125s)")
    return float(m.group(1)), check_unit(m.group(2), f"{field_name} unit")


def latency_model(cfg: BinasSearchConfig, structure):
    if bool(cfg.lut_filename) == bool(cfg.latency_table):
        raise NasjaxInputError("lut_filename/latency_table: expected exactly one latency model "
                               f"(got lut_filename={cfg.lut_filename!r}, latency_table={cfg.latency_table!r})")
    if cfg.calibrate_latency and not cfg.latency_table:
        raise NasjaxInputError("calibrate_latency: set without --latency_table, expected a nasjax latency table of "
                               "this machine to calibrate (a BINAS LUT has no reference subnets to time)")
    if cfg.lut_filename:
        model = latency_from_lut(cfg.lut_filename, structure=structure)
    else:
        table = Table.load(cfg.latency_table)
        if cfg.calibrate_latency:
            from nasjax.hardware.lut_binas import calibrate_found_table, report_calibration

            cal = calibrate_found_table(table)
            table = cal["table"]
            report_calibration(cal)
        model = latency_from_table(table, structure)
    if cfg.latency_unit:
        model = model.to_unit(check_unit(cfg.latency_unit, "latency_unit"))
    value, unit = quantity(cfg.latency_corrective_intercept, "latency_corrective_intercept")
    if cfg.latency_corrective_slope != 1.0 or value != 0.0:
        model = model.calibrated(cfg.latency_corrective_slope, value, unit)
    return model


def main() -> None:
    cli.check_mode_flags("nas_optimizer", MODE_FLAGS)
    cfg = cli.config_from_flags(BinasSearchConfig)
    out = cli.check_output_dir(cfg.save_path, "save_path")
    if not cfg.predictor_ckpt_filename:
        raise NasjaxInputError("predictor_ckpt_filename: not given, expected an accuracy model file (.npz)")
    budget, unit = quantity(cfg.inference_time_limit, "inference_time_limit")
    predictor = load_predictor(cfg.predictor_ckpt_filename, cfg.predictor_type)
    space = binas_space(predictor.structure)
    latency = latency_model(cfg, predictor.structure)
    if unit != latency.unit:
        raise NasjaxInputError(f"inference_time_limit: {budget:g} {unit} but the latency model is in {latency.unit!r}; "
                               f"expected a budget in {latency.unit} (or --latency_unit={unit} to convert the model)")
    problem = SearchProblem(space, predictor, (Constraint(latency, budget, unit),), name="binas")
    name = OPTIMIZERS[cfg.nas_optimizer]
    options = {"bcfw": {"config": cfg.bcfw}, "iqcp": {"solver": cfg.iqcp_solver},
               "evo": {"config": binas_evolution()}}.get(cfg.nas_optimizer, {})
    with cli.reported_as("latency_constraint", "inference_time_limit"):
        result = run_search(name, problem, cfg.seed, **options)
    arch = canonical(result.arch, predictor.structure)  # layers beyond a stage's depth at configuration 0
    text = to_string(arch, predictor.structure)
    acc, lat = float(predictor.predict(arch)), float(latency.predict(arch))
    doc = {"binas": text, "arch": [int(x) for x in arch],
           "predicted": {"accuracy": {"value": acc, "unit": predictor.unit}, "latency": {"value": lat, "unit": unit}},
           "constraint": {"latency": {"bound": budget, "unit": unit}},
           "nas_optimizer": cfg.nas_optimizer, "solver": result.solver, "certified": bool(result.certified),
           "solve_time_ms": round(result.solve_time_ms, 3), "seed": cfg.seed,
           "predictor": {"type": cfg.predictor_type, "file": cfg.predictor_ckpt_filename},
           "latency_model": {"file": cfg.lut_filename or cfg.latency_table, "unit": latency.unit,
                             "calibration_scale": latency.provenance.get("calibration_scale")}}
    from nasjax.io import write_json

    with cli.ResultSet(out, manifest="summary.json") as rs:
        write_json(rs.path("arch.json"), doc)
        rs.summary = {k: doc[k] for k in ("binas", "predicted", "constraint", "solver", "certified")}
    print(f"The found architecture is {text}")
    print(f"choice vector {doc['arch']}")
    print(f"predicted accuracy {acc:.4f} {predictor.unit}, predicted latency {lat:.4f} {unit} "
          f"(budget {budget:g} {unit}); {result.solver}{' certified optimal' if result.certified else ''} in "
          f"{result.solve_time_ms:.1f} ms")
    print(f"saved {out / 'arch.json'}")


if __name__ == "__main__":
    cli.run(main)
