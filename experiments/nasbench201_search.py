"""MathNAS on NAS-Bench-201 (6 edges x 5 ops): latency- and energy-constrained exact search on fpga / edgegpu.

    python -m experiments.nasbench201_search --flagfile=experiments/flags/mathnas_nasbench201_fpga.flags
"""

from absl import app

from experiments import _mathnas as common
from nasjax.mathnas import nasbench201_tables
from nasjax.problems import Problem
from nasjax.spaces.nasbench201 import arch_to_str, nasbench201_space

common.define_flags("fpga")
FLAGS = common.FLAGS


def _encode(d: dict):
    from nasjax.errors import NasjaxInputError
    from nasjax.spaces.nasbench201 import str_to_arch

    if set(d) != {"arch"}:
        raise NasjaxInputError(f"architecture yml: keys {sorted(d)}, expected exactly 'arch' (an NB201 arch string)")
    return str_to_arch(d["arch"])


def build() -> Problem:
    acc, res = nasbench201_tables(common.tables_dir_or_default(), FLAGS.device)
    space = nasbench201_space()
    acc.check_space(space)
    return Problem("nasbench201", FLAGS.device, acc, res, lambda a: {"arch": arch_to_str(a)}, _encode)


if __name__ == "__main__":
    app.run(common.main_for(build))
