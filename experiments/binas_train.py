"""One-shot training of the BINAS supernet as BINAS trains it (Nayman et al., arXiv 2110.12399): the
heaviest network first, then multipath sampling (an independent uniform path per example) with in-place
distillation from the heaviest path, by nasjax's trainer (``sampling="multipath"``, ``heaviest_steps``).
Checkpoints every ``--checkpoint_every`` steps in ``--ckpt_dir``; a rerun resumes bit-identically::

    python -m experiments.binas_train --flagfile=experiments/flags/binas_train_clutter.flags

The result set in ``--save_path``: ``weights/`` (parameters and BN statistics, ``load_weights``) and
``summary.json`` (configurations, dataset provenance, loss history, wall time). ``--dataset`` is a bundled
name (``mnist_clutter``, ``mnist``, ``digits``) or a TFDS ``array_record`` directory (ImageNet).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from nasjax import cli
from nasjax.data.datasets import load_dataset
from nasjax.models.binas import binas_supernet_config
from nasjax.spaces.binas import DEFAULT
from nasjax.train.trainer import TrainConfig, save_weights, train_supernet


@dataclass(frozen=True)
class BinasTrainConfig:
    dataset: str = cli.option("mnist_clutter", help="bundled dataset name or a TFDS array_record directory")
    image_size: int = cli.option(0, help="resize images to this size (0: as stored)")
    width_mult: float = cli.option(1.0, help="width multiplier of every layer (1.0: HardCoRe-NAS's widths)")
    dropout_rate: float = cli.option(0.0, help="dropout before the classifier")
    steps: int = cli.option(1000, help="training steps in all")
    heaviest_steps: int = cli.option(200, help="first steps: the heaviest network alone")
    batch_size: int = cli.option(64, help="images per step")
    optimizer: str = cli.option("adamw", choices=("sgd", "adamw"), help="optimizer")
    learning_rate: float = cli.option(2e-3, help="peak learning rate (warmup then cosine)")
    weight_decay: float = cli.option(1e-4, help="weight decay (rank >= 2 weights)")
    warmup_steps: int = cli.option(50, help="linear warmup steps")
    kd_ratio: float = cli.option(1.0, help="in-place distillation weight")
    num_paths: int = cli.option(1, help="multipath students per step")
    checkpoint_every: int = cli.option(100, help="steps between checkpoints")
    seed: int = cli.option(0, help="seed of weights, batches and paths")
    ckpt_dir: str = cli.option("", help="checkpoint directory (resumed when it holds a checkpoint)")
    save_path: str = cli.option("", help="output directory of the trained weights")


cli.define_config_flags(BinasTrainConfig)


def main() -> None:
    cfg = cli.config_from_flags(BinasTrainConfig)
    out = cli.check_output_dir(cfg.save_path, "save_path")
    if not cfg.ckpt_dir:
        cli.fail("ckpt_dir: got '', expected a checkpoint directory")
    ds = load_dataset(cfg.dataset, image_size=cfg.image_size or None)
    sc = binas_supernet_config(DEFAULT.to_dict(), num_classes=ds.num_classes, in_channels=ds.image_shape[-1],
                               width_mult=cfg.width_mult, dropout_rate=cfg.dropout_rate)
    tc = TrainConfig(steps=cfg.steps, batch_size=cfg.batch_size, optimizer=cfg.optimizer,
                     learning_rate=cfg.learning_rate, weight_decay=cfg.weight_decay, warmup_steps=cfg.warmup_steps,
                     kd_ratio=cfg.kd_ratio, num_random=cfg.num_paths, checkpoint_every=cfg.checkpoint_every,
                     seed=cfg.seed, sampling="multipath", heaviest_steps=cfg.heaviest_steps)
    print(f"load average {os.getloadavg()}", flush=True)
    res = train_supernet(sc, ds, tc, cfg.ckpt_dir)
    print(f"trained {res.step} steps in {res.seconds:.0f} s (resumed from {res.resumed_from}); "
          f"load average {os.getloadavg()}", flush=True)
    with cli.ResultSet(out, manifest="summary.json") as rs:
        save_weights(res.state, sc, rs.path("weights"), {"dataset": ds.provenance, "train_config": tc.to_dict()})
        rs.summary.update({"supernet_config": sc.to_dict(), "train_config": tc.to_dict(),
                           "dataset": {"name": ds.name, **ds.provenance}, "history": res.history,
                           "seconds": res.seconds, "resumed_from": res.resumed_from,
                           "load_average": list(os.getloadavg())})


if __name__ == "__main__":
    cli.run(main)
