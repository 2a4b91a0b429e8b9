"""DGL (IEEE TMC 2023): train / test / NAS with the device-generic latency model, DGL's flag names.

    python -m experiments.dgl --flagfile=experiments/flags/dgl_nasbench201_train.flags
    python -m experiments.dgl --flagfile=experiments/flags/dgl_nasbench201_test.flags
    python -m experiments.dgl --flagfile=experiments/flags/dgl_nasbench201_nas.flags

Every flag is honoured (the original's ``parse_args([])`` ignores the command line). The algorithms live
in :mod:`nasjax.hardware.dgl`, :mod:`nasjax.search.genetic` and :mod:`nasjax.search.latency_constrained`.
Latencies and ``--latency_constraint`` are in DGL's raw latency-file units (see ``nasjax.hardware.dgl``;
DGL's own NAS-Bench-201 constraint 40 is in units of 100, i.e. 4000 here). Bad input exits with code 2
and writes nothing.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

import numpy as np
from absl import app, flags, logging

from nasjax.errors import NasjaxInputError

DEFAULT_TEST = {
    "nasbench201": "Huawei Mate 20,Samsung Galaxy A10s,Xiaomi Redmi 5 Plus,Sony Xperia XZ2,Motorola Moto E6s",
    "fbnetv3": "Asus ROG Phone 3,Oppo A5,Xiaomi Mi 8 Lite,Samsung Galaxy S8+",
}

flags.DEFINE_enum("search_space", "nasbench201", ["nasbench201", "fbnetv3"], "DGL search space.")
flags.DEFINE_enum("mode", "test", ["train", "test", "nas", "eval", "constrained"],
                  "train | test | nas (DGL's modes); eval: unseen devices with archs held out over --n_splits splits, "
                  "ours vs the authors' shipped predictions; constrained: budget-violation rate and accuracy gap of "
                  "NAS-Bench-201 search with predicted latency on DGL's phones.")
flags.DEFINE_list("train_devices", [], "Devices whose measured latency (data_path/latency, data_path/hardware) "
                  "defines the training target A = latency / c(hw), averaged over devices. Empty: a.txt (the "
                  "authors' A, derived from their 12 training phones whose data is not published).")
flags.DEFINE_list("test_devices", None, "Unseen devices to score (default: DGL's test phones of the space).")
flags.DEFINE_string("load_path", None, "Model file (.npz); default <save_path>/<search_space>/model.npz.")
flags.DEFINE_string("data_path", None, "DGL data folder of the space; default ../shared/data/DGL/data/<space>.")
flags.DEFINE_string("save_path", "results/dgl", "Output folder.")
flags.DEFINE_integer("epoch", None, "Training steps (DGL: 50000 SGD epochs for --model=dgl_mlp; ours default 1500).")
flags.DEFINE_float("lr", None, "Learning rate (DGL: 0.1 SGD for dgl_mlp; ours default 3e-3 AdamW).")
flags.DEFINE_enum("model", "ours", ["ours", "dgl_mlp"], "ours: features + regularised NNX model; dgl_mlp: DGL's MLP.")
flags.DEFINE_integer("members", None, "MLP ensemble members of our model (default per space, see DEFAULT_CONFIG).")
flags.DEFINE_float("l2", None, "L2 penalty of our model (default per space).")
flags.DEFINE_float("holdout_frac", 0.2, "train: fraction of architectures held out (recorded; test scores them).")
flags.DEFINE_integer("seed", 0, "Seed of the split, the model init and the genetic search.")
flags.DEFINE_string("nas_target_device", "Samsung Galaxy A10s", "NAS target device (data_path/NAS or hardware/).")
flags.DEFINE_float("latency_constraint", 4000.0, "NAS latency budget in raw latency units (DGL's NB201 40 x 100).")
flags.DEFINE_float("latency_offset", 0.0, "Constant added to predicted latency in NAS (DGL's FBNetV3 NAS adds 15).")
flags.DEFINE_integer("POPULATION_SIZE", 100, "GA population size.")
flags.DEFINE_integer("EPOCH", 10, "GA generations.")
flags.DEFINE_float("CROSSOVER_RATE", 2.0, "GA crossover probability per individual (>= 1: always).")
flags.DEFINE_integer("GENE_LENGTH", None, "GA gene length; must equal the space's positions (6 or 28).")
flags.DEFINE_float("MUTATION_RATE", 0.05, "GA mutation probability per individual.")
flags.DEFINE_enum("searcher", "genetic", ["genetic", "exhaustive"], "nasbench201 NAS: GA or exhaustive pool scan.")
flags.DEFINE_enum("accuracy", "dgl_oracle", ["dgl_oracle", "200ep"], "nasbench201 NAS accuracy source.")
flags.DEFINE_enum("dataset", "cifar100", ["cifar10-valid", "cifar100", "ImageNet16-120"], "200ep accuracy dataset.")
flags.DEFINE_enum("objective", "macs", ["macs", "params"], "fbnetv3 NAS objective (DGL's NARS accuracy "
                  "predictor is not published): the largest network under the latency budget.")
flags.DEFINE_integer("n_splits", 5, "eval/constrained: random architecture splits (20 % held out each).")
flags.DEFINE_bool("include_dgl_mlp", False, "eval: also re-train DGL's MLP on each split (--epoch steps, default 50000).")
flags.DEFINE_integer("k", 0, "constrained: 0 = 4 hardware parameters; k > 0 = device constant fitted on k measured archs.")
flags.DEFINE_list("quantiles", ["0.1", "0.2", "0.3", "0.4", "0.5", "0.6", "0.7", "0.8", "0.9"],
                  "constrained: budgets as quantiles of each device's true latency on the pool.")
FLAGS = flags.FLAGS


def _space_dir() -> Path:
    from nasjax.hardware import dgl

    return Path(FLAGS.data_path) if FLAGS.data_path else dgl.default_data_path(FLAGS.search_space)


def _model_path() -> Path:
    return Path(FLAGS.load_path) if FLAGS.load_path else Path(FLAGS.save_path) / FLAGS.search_space / "model.npz"


def run_train():
    from nasjax.hardware import dgl

    space, root = FLAGS.search_space, _space_dir()
    data = dgl.load_dgl(space, root, devices=[])
    if FLAGS.train_devices:
        targets = []
        for d in FLAGS.train_devices:
            hw = dgl.load_hardware(root, d)
            targets.append(dgl.load_latency(root, d, len(data.archs)) / dgl.device_constant(hw))
        A, source = np.mean(targets, axis=0), f"latency / c(hw) of {FLAGS.train_devices}"
    else:
        A, source = data.A, "a.txt"
    tr, te = dgl.arch_splits(len(A), 1, FLAGS.holdout_frac, FLAGS.seed)[0]
    logging.info("training %s model on %d archs (%d held out), target %s", FLAGS.model, len(tr), len(te), source)
    model = dgl.train_a_model(
        space, data.archs[tr], A[tr], kind=FLAGS.model, steps=FLAGS.epoch, lr=FLAGS.lr, members=FLAGS.members,
        l2=FLAGS.l2, seed=FLAGS.seed,
        info={"target_source": source, "train_devices": list(FLAGS.train_devices), "data_path": str(root),
              "train_rows": tr.tolist(), "heldout_rows": te.tolist(), "holdout_frac": FLAGS.holdout_frac},
    )
    clean = te[~data.corrupt[te]]  # held-out rows whose A is trustworthy (see dgl.detect_corrupt_rows)
    held = dgl.regression_metrics(A[clean], model.predict_A(data.archs[clean]))
    out = _model_path()
    model.save(out)
    print(f"model saved to {out}; held-out A ({len(clean)} of {len(te)} rows not flagged corrupt): "
          f"R {held['R']:.4f} RMSE {held['RMSE']:.1f} MAE {held['MAE']:.1f}")


def run_test():
    from nasjax.hardware import dgl
    from nasjax.io import atomic_write_text, write_csv, write_json

    space, root = FLAGS.search_space, _space_dir()
    model = dgl.DGLLatencyModel.load(_model_path())
    if model.space != space:
        raise NasjaxInputError(f"load_path: model is for {model.space!r}, expected --search_space={space!r}")
    devices = FLAGS.test_devices if FLAGS.test_devices is not None else DEFAULT_TEST[space].split(",")
    leak = sorted(set(devices) & set(model.info.get("train_devices", [])))
    if leak:
        raise NasjaxInputError(f"test_devices: {leak} were training devices of this model; expected unseen devices")
    data = dgl.load_dgl(space, root, devices=devices)
    held = np.asarray(model.info.get("heldout_rows", []), np.int64)
    A_hat = model.predict_A(data.archs)
    rows, preds = [], {}
    for d in devices:
        pred = dgl.dgl_latency(A_hat, data.hardware[d])
        preds[d] = pred
        row = {"device": d, "hardware": " ".join(f"{x:g}" for x in data.hardware[d])}
        row.update({f"all_{k}": v for k, v in dgl.regression_metrics(data.latency[d], pred).items()})
        if held.size >= 2:
            row.update({f"heldout_{k}": v for k, v in dgl.regression_metrics(data.latency[d][held], pred[held]).items()})
        row["published_R"] = dgl.PUBLISHED_R[space].get(d)
        rows.append(row)
        print(f"device = {d}: " + ", ".join(f"{k} {v:.4f}" for k, v in row.items() if isinstance(v, float)))
    out = Path(FLAGS.save_path) / space
    header = sorted({k for r in rows for k in r}, key=lambda k: (k != "device", k))
    for d, p in preds.items():
        atomic_write_text(out / f"{d}_timepre.txt", " ".join(f"{x:.3f}" for x in p) + "\n")
    write_csv(out / "test_metrics.csv", header, [[r.get(k) for k in header] for r in rows])
    write_json(out / "test_metrics.json", {"model": str(_model_path()), "unit": dgl.LATENCY_UNIT,
                                           "n_heldout": int(held.size), "rows": rows})
    print(f"wrote {out}/test_metrics.csv and {len(preds)} *_timepre.txt (raw units, not /100)")


def _target_hardware(root: Path, device: str):
    from nasjax.hardware import dgl

    for sub in ("NAS", "hardware"):
        if (root / sub / f"{device}.txt").is_file():
            return dgl.load_hardware(root, device, sub)
    known = sorted(set(dgl.list_devices(root, "NAS")) | set(dgl.list_devices(root, "hardware")))
    raise NasjaxInputError(f"nas_target_device {device!r}: no hardware parameters in {root}/NAS or {root}/hardware; "
                           f"known devices: {', '.join(known)}")


def _ga_config(space=None):
    from nasjax.search.genetic import GAConfig

    return GAConfig(population_size=FLAGS.POPULATION_SIZE, epochs=FLAGS.EPOCH, crossover_rate=FLAGS.CROSSOVER_RATE,
                    mutation_rate=FLAGS.MUTATION_RATE, gene_length=FLAGS.GENE_LENGTH)


def run_nas():
    from nasjax.hardware import dgl
    from nasjax.io import write_yaml
    from nasjax.search.genetic import FnConstraint, GeneticSearch
    from nasjax.spaces import get_space

    space_name, root = FLAGS.search_space, _space_dir()
    space = get_space(space_name)
    cfg = _ga_config(space)
    if cfg.gene_length is not None and cfg.gene_length != space.num_positions:
        raise NasjaxInputError(f"GENE_LENGTH: got {cfg.gene_length}, expected {space.num_positions} for {space_name}")
    model = dgl.DGLLatencyModel.load(_model_path())
    if model.space != space_name:
        raise NasjaxInputError(f"load_path: model is for {model.space!r}, expected --search_space={space_name!r}")
    hw = _target_hardware(root, FLAGS.nas_target_device)
    budget = FLAGS.latency_constraint
    if not np.isfinite(budget) or budget <= 0:
        raise NasjaxInputError(f"latency_constraint: got {budget!r}, expected a latency > 0 (raw units)")
    pred_lat = lambda a: model.predict_latency(a, hw) + FLAGS.latency_offset
    result: dict = {"search_space": space_name, "device": FLAGS.nas_target_device, "hardware": hw.tolist(),
                    "latency_constraint": budget, "latency_offset": FLAGS.latency_offset, "unit": dgl.LATENCY_UNIT,
                    "model": str(_model_path()), "seed": FLAGS.seed, "ga": dataclasses.asdict(cfg)}
    if space_name == "nasbench201":
        from nasjax.search.latency_constrained import nb201_accuracy, search_pool
        from nasjax.spaces.nasbench201 import arch_to_str

        archs, acc = nb201_accuracy(FLAGS.accuracy, FLAGS.dataset, nas_dir=root / "NAS")
        lat = pred_lat(archs)
        t0 = time.perf_counter()
        idx, info = search_pool(archs, acc, lat, budget, searcher=FLAGS.searcher, seed=FLAGS.seed, ga_config=cfg,
                                details=True)
        exact = search_pool(archs, acc, lat, budget)
        if idx is None:
            raise NasjaxInputError(
                f"latency_constraint: {budget:g} is infeasible on {FLAGS.nas_target_device!r}; the smallest predicted "
                f"latency among the {len(archs)} candidates is {lat.min():.1f}")
        a = archs[idx]
        result.update({"arch": arch_to_str(a), "arch_choices": a.tolist(), "accuracy": float(acc[idx]),
                       "accuracy_source": FLAGS.accuracy, "predicted_latency": float(lat[idx]),
                       "searcher": FLAGS.searcher, "search_ms": (time.perf_counter() - t0) * 1e3,
                       "exact_pool_optimum_accuracy": float(acc[exact]), "n_candidates": len(archs), **info})
        lat_file = root / "latency" / f"{FLAGS.nas_target_device}.txt"
        if lat_file.is_file():
            data = dgl.load_dgl(space_name, root, devices=[FLAGS.nas_target_device])
            hit = np.flatnonzero((data.archs == a).all(1))
            if hit.size:
                true = float(data.latency[FLAGS.nas_target_device][hit[0]])
                result.update({"measured_latency": true, "truly_meets_budget": bool(true <= budget)})
    else:
        def objective(a):
            c = dgl.fbnetv3_costs(dgl.arch_to_genes(a))
            return np.log(c[:, 0] if FLAGS.objective == "macs" else c[:, 1])

        ga = GeneticSearch(space, objective, [FnConstraint("latency", pred_lat, budget, dgl.LATENCY_UNIT)], cfg)
        r = ga.solve(FLAGS.seed)
        genes = dgl.arch_to_genes(r.arch)
        costs = dgl.fbnetv3_costs(genes)[0]
        result.update({"genes": genes.tolist(), "objective": FLAGS.objective, "MACs": float(costs[0]),
                       "params": float(costs[1]), "predicted_latency": r.resources["latency"],
                       "evaluations": r.evaluations, "search_ms": r.solve_time_ms,
                       "best_per_epoch": r.best_per_epoch})
    out = Path(FLAGS.save_path) / space_name / "nas" / f"{FLAGS.nas_target_device}_{budget:g}.yml"
    write_yaml(out, result)
    print(f"found: {result.get('arch', result.get('genes'))}; predicted latency {result['predicted_latency']:.1f}; "
          f"wrote {out}")


def _model_kwargs() -> dict:
    kw = {"members": FLAGS.members, "l2": FLAGS.l2}
    if FLAGS.model == "ours":
        kw.update({"steps": FLAGS.epoch, "lr": FLAGS.lr})
    return kw


def run_eval():
    from nasjax.hardware import dgl
    from nasjax.io import write_csv, write_json

    if FLAGS.model != "ours":
        raise NasjaxInputError("model: eval trains ours on each split; add --include_dgl_mlp for DGL's MLP rows")
    if FLAGS.train_devices:
        raise NasjaxInputError("train_devices: eval is the k = 0 protocol on a.txt; use --mode=train for device targets")
    rows = dgl.dgl_unseen_device_eval(FLAGS.search_space, FLAGS.n_splits, FLAGS.seed, data_path=FLAGS.data_path,
                                      devices=FLAGS.test_devices,
                                      model_kwargs=_model_kwargs(), include_dgl_mlp=FLAGS.include_dgl_mlp,
                                      dgl_mlp_steps=FLAGS.epoch or 50000, progress=True)
    for r in rows:
        extra = f" dgl_mlp {r['dglmlp_heldout_R']:.3f}" if "dglmlp_heldout_R" in r else ""
        print(f"{r['device']:22s} R held-out: ours {r['ours_heldout_R']:.3f} (worst split {r['ours_R_min']:.3f}) "
              f"theirs {r['theirs_heldout_R']:.3f}{extra} | theirs all {r['theirs_all_R']:.3f} published "
              f"{r['published_R']:.3f} | RMSE ours {r['ours_heldout_RMSE']:.1f} theirs {r['theirs_heldout_RMSE']:.1f}")
    out = Path(FLAGS.save_path) / FLAGS.search_space
    header = sorted({k for r in rows for k in r}, key=lambda k: (k not in ("space", "device"), k))
    write_csv(out / "eval_unseen_devices.csv", header, [[r.get(k) for k in header] for r in rows])
    write_json(out / "eval_unseen_devices.json", {"unit": dgl.LATENCY_UNIT, "rows": rows})
    print(f"wrote {out}/eval_unseen_devices.csv")


def run_constrained():
    from nasjax.io import write_csv, write_json
    from nasjax.search.latency_constrained import dgl_devices_constrained_eval

    if FLAGS.search_space != "nasbench201":
        raise NasjaxInputError("search_space: constrained mode needs accuracies, expected nasbench201")
    try:
        qs = [float(q) for q in FLAGS.quantiles]
    except ValueError as e:
        raise NasjaxInputError(f"quantiles: got {FLAGS.quantiles}, expected fractions in (0, 1)") from e
    rows = dgl_devices_constrained_eval(FLAGS.accuracy, dataset=FLAGS.dataset, k=FLAGS.k, n_splits=FLAGS.n_splits,
                                        seed=FLAGS.seed, quantiles=qs, searcher=FLAGS.searcher,
                                        model_kwargs={"members": FLAGS.members, "l2": FLAGS.l2},
                                        ga_config=_ga_config(None) if FLAGS.searcher == "genetic" else None)
    for r in rows:
        print(f"{r['device']:22s} k={r['k']} violation rate {r['violation_rate']:.3f}  accuracy gap (truly feasible) "
              f"mean {r['mean_gap_feasible']:.3f} max {r['max_gap_feasible']:.3f}  pool {r['n_pool_mean']:.0f}")
    out = Path(FLAGS.save_path) / "nasbench201"
    stem = f"constrained_{FLAGS.accuracy}_k{FLAGS.k}"
    header = list(rows[0])
    write_csv(out / f"{stem}.csv", header, [[r[k] for k in header] for r in rows])
    write_json(out / f"{stem}.json", {"rows": rows})
    print(f"wrote {out}/{stem}.csv")


def main(argv):
    if len(argv) > 1:
        print(f"error: unexpected arguments {argv[1:]}", file=sys.stderr)
        raise SystemExit(2)
    t0 = time.perf_counter()
    try:
        {"train": run_train, "test": run_test, "nas": run_nas, "eval": run_eval,
         "constrained": run_constrained}[FLAGS.mode]()
    except NasjaxInputError as e:
        print(f"error: {e}", file=sys.stderr)
        raise SystemExit(2)
    print(f"done in {time.perf_counter() - t0:.2f} s")


if __name__ == "__main__":
    app.run(main)
