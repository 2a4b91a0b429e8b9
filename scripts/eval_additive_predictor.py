"""Check MathNAS's additive accuracy predictor built from the supernet's contribution tables.

    python scripts/eval_additive_predictor.py [--luts_dir=luts/mobilenetv3_mnist] [--n=100] [--seed=0]

Draws ``--n`` random subnets in each view of the embedded default -- MathNAS's stage blocks
(``accuracy_stage.json``) and the layer view (``accuracy_layers.json``: kernel x expand per layer,
depth per stage) --, evaluates every one for real with the supernet (BN recalibrated, batched), and
compares with the table's prediction ``acc(a) = base - sum_i values[i, a_i]``: Kendall tau, Spearman
rho and mean absolute error (percentage points). Its last line is one JSON object with the figures.
"""

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from absl import app, flags

flags.DEFINE_string("luts_dir", None, "Embedded default directory (default: luts/mobilenetv3_mnist).")
flags.DEFINE_integer("n", 100, "Random subnets per view.")
flags.DEFINE_integer("seed", 0, "Seed of the random subnets and of the calibration batches.")
FLAGS = flags.FLAGS


def main(argv):
    import numpy as np
    from scipy.stats import kendalltau, spearmanr

    from nasjax import default
    from nasjax.errors import NasjaxInputError
    from nasjax.profiling.contributions import eval_data, evaluate_archs, layer_archs_to_subnets, stage_archs_to_subnets
    from nasjax.spaces.mobilenetv3 import mobilenetv3_layers_space

    try:
        if FLAGS.n < 3:
            raise NasjaxInputError(f"n: got {FLAGS.n}, expected at least 3 subnets")
        default._configure_cache()
        d = default.load_default(FLAGS.luts_dir or default.DEFAULT_DIR)
    except NasjaxInputError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    man, bs, state = d["manifest"], d["block_set"], d["state"]
    ds = default.load_recipe_dataset(man["recipe"])
    data, calib = eval_data(ds, calib_size=man["recipe"]["calib_size"], calib_seed=FLAGS.seed)
    views = {
        "stage": (d["tables"]["accuracy_stage"], bs.space().random(FLAGS.seed + 100, FLAGS.n),
                  lambda a: stage_archs_to_subnets(bs, a)),
        "layers": (d["tables"]["accuracy_layers"], mobilenetv3_layers_space().random(FLAGS.seed + 200, FLAGS.n),
                   layer_archs_to_subnets),
    }
    out = {"dataset": man["dataset"], "eval_images": int(sum(len(y) for _, y in data)), "n": FLAGS.n,
           "seed": FLAGS.seed}
    for name, (table, archs, to_sub) in views.items():
        t = time.perf_counter()
        meas = evaluate_archs(state, to_sub(archs), data, calib, chunk_size=8, desc=f"{name} view: real accuracy")
        pred = table.predict(archs)
        res = {"kendall_tau": float(kendalltau(pred, meas).statistic),
               "spearman": float(spearmanr(pred, meas).statistic),
               "mae_pp": float(np.mean(np.abs(pred - meas))),
               "measured_mean": float(meas.mean()), "measured_min": float(meas.min()),
               "measured_max": float(meas.max()),
               "predicted_mean": float(pred.mean()), "eval_seconds": round(time.perf_counter() - t, 1)}
        out[name] = res
        print(f"{name:>6} view, {FLAGS.n} random subnets: Kendall tau {res['kendall_tau']:.3f}, Spearman "
              f"{res['spearman']:.3f}, MAE {res['mae_pp']:.3f} pp (measured {res['measured_min']:.2f}.."
              f"{res['measured_max']:.2f} %, mean {res['measured_mean']:.2f} %)")
    print(json.dumps(out))


if __name__ == "__main__":
    app.run(main)
