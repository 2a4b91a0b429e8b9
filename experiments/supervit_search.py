"""MathNAS on NASViT's SuperViT space: FLOPs-constrained exact search over 4 resolutions x 9 block positions.

    python -m experiments.supervit_search --flagfile=experiments/flags/mathnas_supervit_T1.flags
    python -m experiments.supervit_search --mode=nas --flops_constraint=1101
    python -m experiments.supervit_search --mode=predict \
        --load_path=../shared/data/MathNAS/results/supervit/MathNAS-T4.yml

The tables are FLOPs (device-independent), so ``--device`` must stay unset. The predictor and the
per-resolution exact search are :class:`nasjax.problems.supervit.SuperViTModel`; ``--solver`` is the exact
searcher of each resolution.
"""

from experiments import _mathnas as common
from nasjax import cli
from nasjax.errors import NasjaxInputError
from nasjax.problems.supervit import SuperViTModel

common.define_flags(None)
FLAGS = common.FLAGS


def build():
    if FLAGS.device:
        raise NasjaxInputError(f"device: got {FLAGS.device!r}, expected none (SuperViT's tables are FLOPs)")
    return SuperViTModel(common.tables_dir_or_default()).problem()


main = common.main_for(build)

if __name__ == "__main__":
    cli.run(main)
