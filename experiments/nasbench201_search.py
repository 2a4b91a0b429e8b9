"""MathNAS on NAS-Bench-201 (6 edges x 5 ops): latency- and energy-constrained exact search on fpga / edgegpu.

    python -m experiments.nasbench201_search --flagfile=experiments/flags/mathnas_nasbench201_fpga.flags

The problem (MathNAS's published tables) is :func:`nasjax.problems.mathnas.nasbench201_problem`.
"""

from experiments import _mathnas as common
from nasjax import cli
from nasjax.problems.mathnas import nasbench201_problem

common.define_flags("fpga")
FLAGS = common.FLAGS


def build():
    return nasbench201_problem(common.tables_dir_or_default(), FLAGS.device)


main = common.main_for(build)

if __name__ == "__main__":
    cli.run(main)
