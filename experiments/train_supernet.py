"""Sandwich-rule supernet training (OFA / BigNAS / BINAS) on one device, a device mesh, or many hosts.

    python -m experiments.train_supernet --dataset=digits --steps=50 --batch_size=32 --save_dir=results/supernet
    python -m experiments.train_supernet --flagfile=experiments/flags/multihost_train_supernet.flags \\
        --coordinator_address=10.0.0.1:1234 --num_processes=2 --process_id=0     # on host 0 (1 on host 1)

The global batch is split over every device of every process (``--num_devices=N``: the first N);
parameters and optimizer state are replicated (:mod:`nasjax.train.trainer`, :mod:`nasjax.train.mesh`). The
multi-host flags may come from the environment instead (``NASJAX_COORDINATOR_ADDRESS``,
``NASJAX_NUM_PROCESSES``, ``NASJAX_PROCESS_ID``); ``--coordinator_address=auto`` uses JAX's cluster
detection (SLURM, Open MPI, Cloud TPU). Checkpoints go to ``<save_dir>/checkpoints`` and a rerun resumes
there (on any device count); the trained weights to ``<save_dir>/weights``; ``<save_dir>/summary.json``
(written last, by process 0) holds the final metrics, the step rate and the device layout.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

from absl import flags

from nasjax import cli
from nasjax.train.mesh import DistributedConfig, device_mesh, initialize_distributed
from nasjax.train.trainer import TrainConfig


@dataclass(frozen=True)
class TrainSupernetConfig:
    """The command's settings: data, supernet shape, training, devices and processes, output."""

    dataset: str = cli.option("digits", help="Dataset: digits, mnist, or a TFDS array_record directory.")
    image_size: int = cli.option(0, help="Resize images to this size (0: the dataset's own).")
    width_mult: float = cli.option(0.1, help="Supernet width multiplier.")
    ks_list: tuple[int, ...] = cli.option((3,), help="Elastic kernel sizes.")
    expand_list: tuple[int, ...] = cli.option((3, 6), help="Elastic expand ratios.")
    depth_list: tuple[int, ...] = cli.option((1, 2), help="Elastic stage depths.")
    dropout_rate: float = cli.option(0.1, help="Dropout before the classifier.")
    train: TrainConfig = field(default_factory=TrainConfig)
    num_devices: int = cli.option(0, help="Devices of the data-parallel mesh (0: every device of every process).")
    distributed: DistributedConfig = field(default_factory=DistributedConfig)
    save_dir: str = cli.option("results/train_supernet", help="Output directory (checkpoints, weights, summary).")
    progress: bool = cli.option(True, help="Show a progress bar (process 0 only).")


cli.define_config_flags(TrainSupernetConfig)
FLAGS = flags.FLAGS


def main() -> None:
    cfg = cli.config_from_flags(TrainSupernetConfig)
    out = cli.check_output_dir(cfg.save_dir, "save_dir")
    info = initialize_distributed(cfg.distributed)  # before anything touches a device

    from nasjax.data import load_dataset
    from nasjax.io import enable_jax_cache
    from nasjax.models import SupernetConfig
    from nasjax.train.trainer import save_weights, train_supernet

    enable_jax_cache()
    ds = load_dataset(cfg.dataset, image_size=cfg.image_size or None)
    sc = SupernetConfig(width_mult=cfg.width_mult, num_classes=ds.num_classes, in_channels=ds.image_shape[-1],
                        ks_list=cfg.ks_list, expand_list=cfg.expand_list, depth_list=cfg.depth_list,
                        dropout_rate=cfg.dropout_rate)
    mesh = device_mesh(cfg.num_devices or None)
    lead = info["process_index"] == 0
    t0 = time.perf_counter()
    res = train_supernet(sc, ds, cfg.train, out / "checkpoints", progress=cfg.progress and lead, mesh=mesh)
    seconds = time.perf_counter() - t0
    save_weights(res.state, sc, out / "weights", {"train_config": cfg.train.to_dict(), "dataset": ds.name})
    last = res.history[-1] if res.history else {}
    done = res.step - (res.resumed_from or 0)
    summary = {"final_metrics": last, "steps": res.step, "resumed_from": res.resumed_from,
               "steps_run": done, "seconds": round(seconds, 3),
               "steps_per_second_with_compile": round(done / seconds, 4) if done else None,
               "mesh_devices": int(mesh.devices.size), "process_count": info["process_count"],
               "local_device_count": info["local_device_count"], "dataset": ds.name,
               "batch_size": cfg.train.batch_size, "load_average": list(os.getloadavg())}
    if lead:
        with cli.ResultSet(out, manifest="summary.json") as rs:
            rs.summary = summary
        print(f"trained {res.step} steps ({done} in this run) on {summary['mesh_devices']} device(s), "
              f"{info['process_count']} process(es): {summary['steps_per_second_with_compile']} steps/s (compilation "
              f"included); final {last}")
        print(f"saved {out / 'summary.json'} and {out / 'weights'}")


if __name__ == "__main__":
    cli.run(main)
