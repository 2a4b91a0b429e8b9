"""Measurements of a trained BINAS supernet for its accuracy models (Nayman et al., arXiv 2110.12399):
random subnets measured by batched evaluation with per-subnet BN recalibration (a fit set for the
predictors and a held-out test set), and BINAS's contribution estimator (one option forced at a time
under multipath sampling, base subtracted)::

    python -m experiments.binas_measure --weights=results/binas_train/weights --save_path=results/binas_measure

Writes the files ``scripts/bench_binas.py`` reads (docs/binas.md, "Files the model side provides"):
``fit_subnets.json`` and ``test_subnets.json`` (``nasjax.binas.measured/1``), ``contributions.json``
(``nasjax.binas.contributions/1``), ``flops_table.json`` (the per-layer MFLOPs of the supernet at the
dataset's resolution, a cost model of the same bilinear form) and ``summary.json``. Evaluated chunks are
kept in ``--work_dir`` so that a killed run resumes where it stopped.

The estimator: ``A_base`` is the accuracy on the validation set with an independent uniform path per
image (multipath, the supernet's running BN statistics); a stage's depth option is measured with that
depth forced for every image; a layer's configuration with the configuration forced and the layer kept
active (its stage's depth drawn among the depths that contain it), minus the mean over the layer's
configurations (the layer-active baseline), plus ``A_base``. All forced measurements share the random
paths of the base (common random numbers), so their differences are not drowned by path noise.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import jax.numpy as jnp
import numpy as np

from nasjax import cli
from nasjax.data.datasets import eval_batches, load_dataset
from nasjax.hardware.flops import binas_flops
from nasjax.io import write_json
from nasjax.spaces.binas import DEFAULT, binas_space, canonical
from nasjax.train.binas import contribution_accuracies, measure_archs
from nasjax.train.trainer import load_weights


@dataclass(frozen=True)
class BinasMeasureConfig:
    weights: str = cli.option("", help="supernet weights (the weights/ directory of experiments.binas_train)")
    dataset: str = cli.option("mnist_clutter", help="dataset the supernet was trained on")
    image_size: int = cli.option(0, help="resize images to this size (0: as stored)")
    num_fit: int = cli.option(250, help="random subnets measured for fitting the predictors")
    num_test: int = cli.option(500, help="held-out random subnets measured for the rankings")
    val_images: int = cli.option(2000, help="validation images per measurement")
    contribution_images: int = cli.option(2000, help="validation images per contribution measurement")
    calib_images: int = cli.option(128, help="training images for each subnet's BN recalibration")
    batch_size: int = cli.option(500, help="images per evaluation batch")
    chunk_size: int = cli.option(8, help="subnets per vmapped evaluation call")
    seed: int = cli.option(1, help="seed of the random subnets and of the multipath draws")
    only: str = cli.option("all", choices=("all", "fit", "test", "contributions"),
                           help="measure only this part into work_dir (parallel processes); 'all' measures what is "
                           "missing and writes the result set")
    work_dir: str = cli.option("", help="resumable partial results (default: save_path/.work)")
    save_path: str = cli.option("", help="output directory")


cli.define_config_flags(BinasMeasureConfig)


def main() -> None:
    cfg = cli.config_from_flags(BinasMeasureConfig)
    out = cli.check_output_dir(cfg.save_path, "save_path")
    if not cfg.weights:
        cli.fail("weights: got '', expected the weights directory written by experiments.binas_train")
    work = Path(cfg.work_dir) if cfg.work_dir else out / ".work"
    work.mkdir(parents=True, exist_ok=True)
    state, sc, meta = load_weights(cfg.weights)
    ds = load_dataset(cfg.dataset, image_size=cfg.image_size or None)
    val = [(jnp.asarray(x), jnp.asarray(y)) for x, y in eval_batches(ds.val, cfg.batch_size, cfg.val_images)]
    calib_idx = np.random.default_rng(cfg.seed).permutation(len(ds.train))[:cfg.calib_images]
    calib = [jnp.asarray(ds.train.get(calib_idx[i:i + 256])[0]) for i in range(0, len(calib_idx), 256)]
    space = binas_space()
    archs = canonical(space.random(np.random.default_rng(cfg.seed), cfg.num_fit + cfg.num_test))
    print(f"load average {os.getloadavg()}", flush=True)
    sd = DEFAULT.to_dict()
    fit, test = slice(0, cfg.num_fit), slice(cfg.num_fit, cfg.num_fit + cfg.num_test)
    t0 = time.perf_counter()
    acc = np.full(len(archs), np.nan)
    for part, sl in (("fit", fit), ("test", test)):
        if cfg.only in ("all", part):
            acc[sl] = measure_archs(state, sd, archs[sl], val, calib, chunk_size=cfg.chunk_size,
                                    resume=work / f"{part}.npy")
    t_sub = time.perf_counter() - t0
    t0 = time.perf_counter()
    if cfg.only in ("all", "contributions"):
        n_batches = -(-cfg.contribution_images // cfg.batch_size)
        con = contribution_accuracies(state, sd, val[:n_batches], cfg.seed, resume=work / "contributions.npz")
    t_con = time.perf_counter() - t0
    if cfg.only != "all":
        print(f"measured {cfg.only} into {work} in {t_sub + t_con:.0f} s; load average {os.getloadavg()}")
        return
    fixed, layers = binas_flops(sc, ds.image_shape[0], sd["configs"])
    prov = {"weights": str(cfg.weights), "dataset": ds.name, "val_images": sum(len(y) for _, y in val),
            "contribution_images": min(cfg.contribution_images, sum(len(y) for _, y in val)),
            "calib_images": int(cfg.calib_images), "seed": cfg.seed}
    span = float(np.ptp(acc[test]))
    print(f"{len(archs)} subnets in {t_sub:.0f} s, contributions in {t_con:.0f} s; test accuracy "
          f"{acc[test].min():.2f}..{acc[test].max():.2f} % (span {span:.2f} points); multipath base "
          f"{con['base']:.2f} %; load average {os.getloadavg()}", flush=True)
    with cli.ResultSet(out, manifest="summary.json") as rs:
        for name, sl in (("fit_subnets.json", fit), ("test_subnets.json", test)):
            write_json(rs.path(name), {"format": "nasjax.binas.measured/1", "unit": "%",
                                       "archs": archs[sl].tolist(), "accuracy": acc[sl].tolist(),
                                       "provenance": prov})
        write_json(rs.path("contributions.json"), {
            "format": "nasjax.binas.contributions/1", "unit": "%", "base": con["base"],
            "layers": con["layers"].tolist(), "depths": con["depths"].tolist(),
            "layers_forced": con["forced"].tolist(), "provenance": prov})
        write_json(rs.path("flops_table.json"), {"unit": "MFLOPs", "resolution": ds.image_shape[0],
                                                 "fixed": fixed, "layers": layers.tolist()})
        rs.summary.update({"provenance": prov, "seconds_subnets": t_sub, "seconds_contributions": t_con,
                           "test_span": span, "fit_span": float(np.ptp(acc[fit])),
                           "test_min": float(acc[test].min()), "test_max": float(acc[test].max()),
                           "base": con["base"], "load_average": list(os.getloadavg())})


if __name__ == "__main__":
    cli.run(main)
