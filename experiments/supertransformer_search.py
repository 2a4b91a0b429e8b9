"""MathNAS on HAT's SuperTransformer space (WMT'14 En-De): latency-constrained exact BLEU search.

    python -m experiments.supertransformer_search --flagfile=experiments/flags/mathnas_supertransformer_titanxp.flags
    python -m experiments.supertransformer_search --mode=predict --device=titanxp \
        --load_path=../shared/data/MathNAS/results/supertransformer/titanxp/189ms.yml

Devices raspberrypi / xeon / titanxp. ``--latency_model`` picks the latency model of
:mod:`nasjax.problems.supertransformer`: ``additive`` (default) or ``mathnas_ilp`` (search.py's constraint,
bugs included). The published result files do not reproduce under the published tables (see that module).
"""

from absl import flags

from experiments import _mathnas as common
from nasjax import cli
from nasjax.problems.supertransformer import LATENCY_MODELS, SuperTransformerModel

common.define_flags("titanxp")
flags.DEFINE_enum("latency_model", "additive", list(LATENCY_MODELS),
                  "additive: plain one-block deltas; mathnas_ilp: MathNAS search.py's constraint verbatim.")
FLAGS = common.FLAGS


def build():
    return SuperTransformerModel(common.tables_dir_or_default(), FLAGS.device, FLAGS.latency_model).problem()


main = common.main_for(build)

if __name__ == "__main__":
    cli.run(main)
