"""Measurements of a trained BINAS supernet for its accuracy models (Nayman et al., arXiv 2110.12399):
random subnets measured by batched evaluation with per-subnet BN recalibration (a fit set for the
predictors and a held-out test set), and BINAS's contribution estimator (one option forced at a time
under multipath sampling, base subtracted)::

    python -m experiments.binas_measure --weights=results/binas_train/weights --save_path=results/binas_measure

Writes the files ``scripts/bench_binas.py`` reads (docs/binas.md, "Files the model side provides"):
``fit_subnets.json`` and ``test_subnets.json`` (``nasjax.binas.measured/1``), ``contributions.json``
(``nasjax.binas.contributions/1``), ``flops_table.json`` (the per-layer MFLOPs of the supernet at the
dataset's resolution, a cost model of the same bilinear form), ``noise.json`` (the repeat noise of a
measurement, below), the fitted accuracy models ``estimator.npz``, ``bilinear.npz`` (on the layers' attributes,
the best-ranking fit), ``bilinear_configs.npz``, ``additive.npz`` and ``quadratic.npz``
(:func:`nasjax.predictors.bilinear.write_predictors`: the files ``experiments.binas_search
--predictor_ckpt_filename`` reads) and ``summary.json``. Evaluated chunks are kept in ``--work_dir`` so that a killed
run resumes where it stopped; the same flags give the same numbers.

Every subnet is measured on the same ``--val_images`` validation images (the first ones of the split;
``--val_copies`` builds a larger cluttered validation set from the same held-out digits) after BN
recalibration on one fixed batch of ``--calib_images`` training images drawn by ``--calib_seed``, shared
by all subnets. The repeat noise (``--noise_subnets``, the first held-out subnets): each is measured
again with another calibration draw (``calib_seed + 1``, the same images) and on the next
``--val_images`` validation images (the same calibration; needs a validation split of twice the size),
and ``nasjax.train.binas.repeat_noise`` splits the noise into the two sources and gives the Kendall
tau ceiling it sets against the held-out subnets' spread.

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

import numpy as np

from nasjax import cli
from nasjax.data.datasets import load_dataset
from nasjax.hardware.flops import binas_flops
from nasjax.io import write_json
from nasjax.predictors.bilinear import contribution_estimator, write_predictors
from nasjax.spaces.binas import DEFAULT, binas_space, canonical
from nasjax.train.binas import (
    calibration_batches,
    contribution_accuracies,
    measure_archs,
    repeat_noise,
    validation_batches,
)
from nasjax.train.trainer import load_weights


@dataclass(frozen=True)
class BinasMeasureConfig:
    weights: str = cli.option("", help="supernet weights (the weights/ directory of experiments.binas_train)")
    dataset: str = cli.option("mnist_clutter", help="dataset the supernet was trained on")
    image_size: int = cli.option(0, help="resize images to this size (0: as stored)")
    val_copies: int = cli.option(2, help="mnist_clutter: composites of each held-out digit in the validation set "
                                 "(1,000 images each; the training set does not change)")
    num_fit: int = cli.option(250, help="random subnets measured for fitting the predictors")
    num_test: int = cli.option(500, help="held-out random subnets measured for the rankings")
    val_images: int = cli.option(2000, help="validation images per measurement")
    contribution_images: int = cli.option(2000, help="validation images per contribution measurement")
    calib_images: int = cli.option(128, help="training images of the BN calibration batch (one batch shared by "
                                   "every subnet)")
    calib_seed: int = cli.option(1, help="seed of the BN calibration batch's draw")
    noise_subnets: int = cli.option(0, help="held-out subnets re-measured for the repeat noise (noise.json; 0: none)")
    batch_size: int = cli.option(500, help="images per evaluation batch")
    chunk_size: int = cli.option(8, help="subnets per vmapped evaluation call")
    seed: int = cli.option(1, help="seed of the random subnets and of the multipath draws")
    only: str = cli.option("all", choices=("all", "fit", "test", "contributions", "noise"),
                           help="measure only this part into work_dir (parallel processes); 'all' measures what is "
                           "missing and writes the result set")
    work_dir: str = cli.option("", help="resumable partial results (default: save_path/.work)")
    save_path: str = cli.option("", help="output directory")


cli.define_config_flags(BinasMeasureConfig)


def _repeat_noise(cfg: BinasMeasureConfig, state, sd: dict, test_archs, test_acc, ds, val, calib, work: Path
                  ) -> dict:
    """The first ``noise_subnets`` held-out subnets measured again with another BN calibration draw and on the
    next validation images (module docstring); the held-out measurements serve as the base when present."""
    n = cfg.noise_subnets
    sub, base = test_archs[:n], np.asarray(test_acc[:n])
    if np.isnan(base).any() and (work / "test.npy").exists():
        done = np.load(work / "test.npy")
        base = done[:n] if len(done) >= n else base
    if np.isnan(base).any():
        base = measure_archs(state, sd, sub, val, calib, chunk_size=cfg.chunk_size, resume=work / "noise_base.npy")
    other_val = validation_batches(ds.val, cfg.val_images, offset=cfg.val_images, batch_size=cfg.batch_size)
    other_calib = calibration_batches(ds.train, cfg.calib_images, cfg.calib_seed + 1)
    m = {name: measure_archs(state, sd, sub, v, c, chunk_size=cfg.chunk_size, resume=work / f"noise_{name}.npy")
         for name, v, c in (("other_calib", val, other_calib), ("other_images", other_val, calib))}
    population = test_acc if not np.isnan(test_acc).any() else None
    if population is None and (work / "test.npy").exists():
        done = np.load(work / "test.npy")
        population = done if len(done) == len(test_archs) and not np.isnan(done).any() else None
    noise = repeat_noise(base, m["other_calib"], m["other_images"], cfg.val_images, population=population)
    noise.update({"format": "nasjax.binas.noise/1", "unit": "%", "calib_images": int(cfg.calib_images),
                  "calib_seed": cfg.calib_seed, "other_calib_seed": cfg.calib_seed + 1,
                  "other_images": [cfg.val_images, 2 * cfg.val_images],
                  "accuracy": {"base": base.tolist(), **{k: v.tolist() for k, v in m.items()}}})
    msg = (f"repeat noise ({n} subnets, {cfg.val_images} images, {cfg.calib_images} calibration images): "
           f"calibration draw {noise['calib_sd']:.3f}, image sample {noise['images_sd']:.3f}, together "
           f"{noise['repeat_sd']:.3f} points (binomial {noise['binomial_sd']:.3f})")
    if population is not None:
        msg += (f"; held-out sd {noise['population_sd']:.2f}: Kendall tau ceiling {noise['ceiling']['kendall']:.3f} "
                f"(calibration noise alone {noise['ceiling_calib_only']['kendall']:.3f})")
    print(msg, flush=True)
    return noise


def main() -> None:
    cfg = cli.config_from_flags(BinasMeasureConfig)
    out = cli.check_output_dir(cfg.save_path, "save_path")
    if not cfg.weights:
        cli.fail("weights: got '', expected the weights directory written by experiments.binas_train")
    work = Path(cfg.work_dir) if cfg.work_dir else out / ".work"
    work.mkdir(parents=True, exist_ok=True)
    state, sc, meta = load_weights(cfg.weights)
    opts = {"val_copies": cfg.val_copies} if cfg.dataset == "mnist_clutter" else {}
    ds = load_dataset(cfg.dataset, image_size=cfg.image_size or None, **opts)
    val = validation_batches(ds.val, cfg.val_images, batch_size=cfg.batch_size)
    calib = calibration_batches(ds.train, cfg.calib_images, cfg.calib_seed)
    if cfg.noise_subnets and cfg.only in ("all", "noise"):
        if 2 * cfg.val_images > len(ds.val):
            cli.fail(f"noise_subnets: the repeat on other images needs {2 * cfg.val_images} validation images, the "
                     f"split has {len(ds.val)} (raise --val_copies)")
        if not 3 <= cfg.noise_subnets <= cfg.num_test:
            cli.fail(f"noise_subnets: got {cfg.noise_subnets}, expected 0 or 3..num_test ({cfg.num_test})")
    space = binas_space()
    # one stream: the held-out subnets first, then the fit subnets (a larger --num_fit extends the fit set)
    archs = canonical(space.random(np.random.default_rng(cfg.seed), cfg.num_test + cfg.num_fit))
    print(f"load average {os.getloadavg()}", flush=True)
    sd = DEFAULT.to_dict()
    test, fit = slice(0, cfg.num_test), slice(cfg.num_test, cfg.num_test + cfg.num_fit)
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
    t0 = time.perf_counter()
    noise = None
    if cfg.noise_subnets and cfg.only in ("all", "noise"):
        noise = _repeat_noise(cfg, state, sd, archs[test], acc[test], ds, val, calib, work)
    t_noise = time.perf_counter() - t0
    if cfg.only != "all":
        if noise is not None:
            write_json(work / "noise.json", noise)
        print(f"measured {cfg.only} into {work} in {t_sub + t_con + t_noise:.0f} s; load average {os.getloadavg()}")
        return
    fixed, layers = binas_flops(sc, ds.image_shape[0], sd["configs"])
    prov = {"weights": str(cfg.weights), "dataset": ds.name, "val_images": sum(len(y) for _, y in val),
            "contribution_images": min(cfg.contribution_images, sum(len(y) for _, y in val)),
            "calib_images": int(cfg.calib_images), "calib_seed": cfg.calib_seed, "seed": cfg.seed,
            **({"val_copies": cfg.val_copies} if opts else {})}
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
        if noise is not None:
            noise["provenance"] = prov
            write_json(rs.path("noise.json"), noise)
        est = contribution_estimator(con["base"], con["layers"], con["depths"], DEFAULT,
                                     {"source": "contributions.json"})
        predictors = write_predictors(rs.dir, archs[fit], acc[fit], est)
        write_json(rs.path("flops_table.json"), {"unit": "MFLOPs", "resolution": ds.image_shape[0],
                                                 "fixed": fixed, "layers": layers.tolist()})
        rs.summary.update({"provenance": prov, "predictors": predictors, "seconds_subnets": t_sub,
                           "seconds_contributions": t_con, "seconds_noise": t_noise,
                           "test_span": span, "fit_span": float(np.ptp(acc[fit])),
                           "test_min": float(acc[test].min()), "test_max": float(acc[test].max()),
                           "base": con["base"], "load_average": list(os.getloadavg())})


if __name__ == "__main__":
    cli.run(main)
