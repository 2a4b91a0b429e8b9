"""DGL (IEEE TMC 2023): train / test / NAS with the device-generic latency model, DGL's flag names.

    python -m experiments.dgl --flagfile=experiments/flags/dgl_nasbench201_train.flags
    python -m experiments.dgl --flagfile=experiments/flags/dgl_nasbench201_test.flags
    python -m experiments.dgl --flagfile=experiments/flags/dgl_nasbench201_nas.flags

Modes: ``train`` / ``test`` / ``nas`` (DGL's), ``eval`` (unseen devices with archs held out over
``--n_splits`` splits, ours vs the authors' shipped predictions) and ``constrained`` (budget-violation rate
and accuracy gap of NAS-Bench-201 search with predicted latency on DGL's phones). The algorithms live in
:mod:`nasjax.hardware.dgl` and :mod:`nasjax.protocols` (``dgl_unseen``, ``latency_constrained``); the
model flags derive from :class:`nasjax.hardware.dgl.AModelConfig` / :class:`~nasjax.hardware.dgl.DGLMLPConfig`
and the genetic-search flags from :class:`nasjax.search.genetic.GAConfig`.
Latencies and ``--latency_constraint`` are in DGL's raw latency-file units (DGL's own NAS-Bench-201
constraint 40 is in units of 100, i.e. 4000 here). Bad input (a flag of another mode included) prints one
line and exits with code 2, writing nothing.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
from absl import flags, logging

from nasjax import cli
from nasjax.errors import NasjaxInputError, require
from nasjax.hardware import dgl
from nasjax.search.genetic import GAConfig

DEFAULT_TEST = {
    "nasbench201": ("Huawei Mate 20", "Samsung Galaxy A10s", "Xiaomi Redmi 5 Plus", "Sony Xperia XZ2",
                    "Motorola Moto E6s"),
    "fbnetv3": ("Asus ROG Phone 3", "Oppo A5", "Xiaomi Mi 8 Lite", "Samsung Galaxy S8+"),
}

flags.DEFINE_enum("search_space", "nasbench201", list(dgl.DGL_SPACES), "DGL search space.")
flags.DEFINE_enum("mode", "test", ["train", "test", "nas", "eval", "constrained"],
                  "train | test | nas (DGL's modes); eval: unseen devices with archs held out over --n_splits splits, "
                  "ours vs the authors' shipped predictions; constrained: budget-violation rate and accuracy gap of "
                  "NAS-Bench-201 search with predicted latency on DGL's phones.")
flags.DEFINE_list("train_devices", [], "train: devices whose measured latency (data_path/latency, data_path/hardware) "
                  "defines the training target A = latency / c(hw), averaged over devices. Empty: a.txt (the "
                  "authors' A, derived from their 12 training phones whose data is not published).")
flags.DEFINE_list("test_devices", None, "Unseen devices to score (default: DGL's test phones of the space).")
flags.DEFINE_string("load_path", None, "test/nas: model file (.npz); default <save_path>/<search_space>/model.npz.")
flags.DEFINE_string("data_path", None, "DGL data folder of the space; default ../shared/data/DGL/data/<space>.")
flags.DEFINE_string("save_path", "results/dgl", "Output folder.")
flags.DEFINE_enum("model", "ours", list(dgl.config.MODEL_KINDS), "train: ours (features + regularised NNX model) or "
                  "dgl_mlp (DGL's MLP).")
# per-kind (epoch, lr) and per-space (l2, target) defaults: a flag left out keeps dgl.default_config(space, kind)
A_MODEL_FLAGS = cli.define_config_flags(dgl.AModelConfig,
                                        defaults={"epoch": None, "lr": None, "l2": None, "target": None})
GA_FLAGS = cli.define_config_flags(GAConfig)
flags.adopt_module_key_flags(cli)  # the derived flags appear in --help
flags.DEFINE_float("holdout_frac", 0.2, "train: fraction of architectures held out (recorded; test scores them).")
flags.DEFINE_integer("seed", 0, "Seed of the split, the model init and the genetic search.")
flags.DEFINE_string("nas_target_device", "Samsung Galaxy A10s", "NAS target device (data_path/NAS or hardware/).")
flags.DEFINE_float("latency_constraint", 4000.0, "NAS latency budget in raw latency units (DGL's NB201 40 x 100).")
flags.DEFINE_float("latency_offset", 0.0, "Constant added to predicted latency in NAS (DGL's FBNetV3 NAS adds 15).")
flags.DEFINE_enum("searcher", "genetic", ["genetic", "exhaustive"], "nasbench201 NAS: GA or exhaustive pool scan.")
flags.DEFINE_enum("accuracy", "dgl_oracle", ["dgl_oracle", "200ep"], "nasbench201 NAS accuracy source.")
flags.DEFINE_enum("dataset", "cifar100", ["cifar10-valid", "cifar100", "ImageNet16-120"], "200ep accuracy dataset.")
flags.DEFINE_enum("objective", "macs", ["macs", "params"], "fbnetv3 NAS objective (DGL's NARS accuracy "
                  "predictor is not published): the largest network under the latency budget.")
flags.DEFINE_integer("n_splits", 5, "eval/constrained: random architecture splits (20 % held out each).")
flags.DEFINE_bool("include_dgl_mlp", False, "eval: also re-train DGL's MLP on each split (--epoch steps, default "
                  "50000).")
flags.DEFINE_integer("k", 0, "constrained: 0 = 4 hardware parameters; k > 0 = device constant fitted on k measured "
                     "archs.")
flags.DEFINE_list("quantiles", ["0.1", "0.2", "0.3", "0.4", "0.5", "0.6", "0.7", "0.8", "0.9"],
                  "constrained: budgets as quantiles of each device's true latency on the pool.")
FLAGS = flags.FLAGS

_OURS_ONLY = [n for n in A_MODEL_FLAGS if n not in ("epoch", "lr")]
MODE_FLAGS = {
    "train": ["train_devices", "holdout_frac", "model", "data_path", *A_MODEL_FLAGS],
    "test": ["test_devices", "load_path", "data_path"],
    "nas": ["load_path", "data_path", "nas_target_device", "latency_constraint", "latency_offset", "searcher",
            "accuracy", "dataset", "objective", *GA_FLAGS],
    "eval": ["test_devices", "data_path", "n_splits", "include_dgl_mlp", *A_MODEL_FLAGS],
    "constrained": ["n_splits", "k", "quantiles", "searcher", "accuracy", "dataset", *A_MODEL_FLAGS, *GA_FLAGS],
}


def _space_dir() -> Path:
    return Path(FLAGS.data_path) if FLAGS.data_path else dgl.default_data_path(FLAGS.search_space)


def _model_path() -> Path:
    return Path(FLAGS.load_path) if FLAGS.load_path else Path(FLAGS.save_path) / FLAGS.search_space / "model.npz"


def _given(config):
    """``config`` with the fields whose flags were given on the command line replaced by the flags' values."""
    kw = {f.name: FLAGS[f.metadata.get("flag") or f.name].value for f in dataclasses.fields(config)
          if (f.metadata.get("flag") or f.name) in FLAGS and cli.flag_given(f.metadata.get("flag") or f.name)}
    return dataclasses.replace(config, **kw)


def _a_config(kind: str = "ours"):
    return _given(dgl.default_config(FLAGS.search_space, kind))


def _genetic_settings() -> GAConfig:
    return cli.config_from_flags(GAConfig)


def _test_devices(default) -> list[str] | None:
    devices = FLAGS.test_devices if FLAGS.test_devices is not None else default
    require(devices is None or len(devices) > 0, "test_devices", FLAGS.test_devices, "at least one device name")
    return None if devices is None else list(devices)


def _load_model():
    model = dgl.DGLLatencyModel.load(_model_path())
    if model.space != FLAGS.search_space:
        raise NasjaxInputError(f"load_path: model is for {model.space!r}, expected "
                               f"--search_space={FLAGS.search_space!r}")
    return model


def run_train(out: Path):
    from nasjax.protocols.dgl_unseen import train_on_split

    space, root = FLAGS.search_space, _space_dir()
    require(0 < FLAGS.holdout_frac < 1, "holdout_frac", FLAGS.holdout_frac, "a fraction in (0, 1)")
    data = dgl.load_dgl(space, root, devices=[])
    if FLAGS.train_devices:
        A = dgl.a_from_devices(root, FLAGS.train_devices, len(data.archs))
        source = f"latency / c(hw) of {FLAGS.train_devices}"
    else:
        A, source = data.A, "a.txt"
    config = _a_config(FLAGS.model)
    logging.info("training %s model (%.0f %% of archs held out), target %s", config.kind, 100 * FLAGS.holdout_frac,
                 source)
    model = train_on_split(space, data, A, config, holdout_frac=FLAGS.holdout_frac, seed=FLAGS.seed,
                           info={"target_source": source, "train_devices": list(FLAGS.train_devices),
                                 "data_path": str(root)})
    te = np.asarray(model.info["heldout_rows"], np.int64)
    clean = te[~data.corrupt[te]]  # held-out rows whose A is trustworthy (see dgl.detect_corrupt_rows)
    held = dgl.latency_scores(A[clean], model.predict_A(data.archs[clean]))
    with cli.ResultSet(out / space, manifest="train_manifest.json") as rs:
        model.save(rs.path("model.npz"))
        rs.summary = {"mode": "train", "model": config.kind, "heldout_A": held, "n_heldout_clean": int(len(clean))}
    print(f"model saved to {out / space / 'model.npz'}; held-out A ({len(clean)} of {len(te)} rows not flagged "
          "corrupt): "
          f"R {held['R']:.4f} RMSE {held['RMSE']:.1f} MAE {held['MAE']:.1f}")


def run_test(out: Path):
    from nasjax.io import write_csv
    from nasjax.protocols.dgl_unseen import score_devices

    space = FLAGS.search_space
    devices = _test_devices(DEFAULT_TEST[space])
    model = _load_model()
    leak = sorted(set(devices) & set(model.info.get("train_devices", [])))
    if leak:
        raise NasjaxInputError(f"test_devices: {leak} were training devices of this model; expected unseen devices")
    rows, preds = score_devices(model, dgl.load_dgl(space, _space_dir(), devices=devices))
    rows = [next(r for r in rows if r["device"] == d) for d in devices]  # the order asked for
    for row in rows:
        print(f"device = {row['device']}: " + ", ".join(f"{k} {v:.4f}" for k, v in row.items() if isinstance(v, float)))
    header = sorted({k for r in rows for k in r}, key=lambda k: (k != "device", k))
    with cli.ResultSet(out / space, manifest="test_metrics.json") as rs:
        for d in devices:
            rs.path(f"{d}_timepre.txt").write_text(" ".join(f"{x:.3f}" for x in preds[d]) + "\n")
        write_csv(rs.path("test_metrics.csv"), header, [[r.get(k) for k in header] for r in rows])
        rs.summary = {"model": str(_model_path()), "unit": dgl.LATENCY_UNIT,
                      "n_heldout": len(model.info.get("heldout_rows", [])), "rows": rows}
    print(f"wrote {out / space}/test_metrics.csv and {len(preds)} *_timepre.txt (raw units, not /100)")


def run_nas(out: Path):
    from nasjax.io import write_yaml
    from nasjax.protocols import latency_constrained as lc

    space, root, device = FLAGS.search_space, _space_dir(), FLAGS.nas_target_device
    genetic = _genetic_settings()
    budget = FLAGS.latency_constraint
    require(budget > 0 and budget != float("inf"), "latency_constraint", budget, "a latency > 0 (raw units)")
    model = _load_model()
    hw = dgl.target_hardware(root, device)
    result = {"search_space": space, "device": device, "hardware": hw.tolist(), "latency_constraint": budget,
              "latency_offset": FLAGS.latency_offset, "unit": dgl.LATENCY_UNIT, "model": str(_model_path()),
              "seed": FLAGS.seed, "ga": dataclasses.asdict(genetic)}
    if space == "nasbench201":
        archs, acc = lc.nb201_accuracy(FLAGS.accuracy, FLAGS.dataset, nas_dir=root / "NAS")
        measured = None
        if device in dgl.list_devices(root, "latency"):
            data = dgl.load_dgl(space, root, devices=[device])
            measured = (data.archs, data.latency[device])
        found = lc.dgl_nb201_nas(model, hw, budget, archs=archs, accuracy=acc, device=device, searcher=FLAGS.searcher,
                                 genetic=genetic, seed=FLAGS.seed, latency_offset=FLAGS.latency_offset,
                                 measured=measured)
        result.update({"accuracy_source": FLAGS.accuracy, **found})
    else:
        result.update(lc.dgl_fbnetv3_nas(model, hw, budget, objective=FLAGS.objective, device=device, genetic=genetic,
                                         seed=FLAGS.seed, latency_offset=FLAGS.latency_offset))
    stem = f"{device}_{budget:g}"
    with cli.ResultSet(out / space / "nas", manifest=f"{stem}.json") as rs:
        write_yaml(rs.path(f"{stem}.yml"), result)
        rs.summary = {"mode": "nas", "result": f"{stem}.yml"}
    print(f"found: {result.get('arch', result.get('genes'))}; predicted latency {result['predicted_latency']:.1f}; "
          f"wrote {out / space / 'nas' / (stem + '.yml')}")


def run_eval(out: Path):
    from nasjax.io import write_csv
    from nasjax.protocols.dgl_unseen import dgl_unseen_device_eval

    mlp = None
    if FLAGS.include_dgl_mlp:
        mlp = dgl.DGLMLPConfig(steps=FLAGS.epoch) if FLAGS.epoch is not None else dgl.DGLMLPConfig()
    rows = dgl_unseen_device_eval(FLAGS.search_space, FLAGS.n_splits, FLAGS.seed, data_path=FLAGS.data_path,
                                  devices=_test_devices(None), model_config=_a_config(), dgl_mlp_config=mlp,
                                  progress=True)
    for r in rows:
        extra = f" dgl_mlp {r['dglmlp_heldout_R']:.3f}" if "dglmlp_heldout_R" in r else ""
        print(f"{r['device']:22s} R held-out: ours {r['ours_heldout_R']:.3f} (worst split {r['ours_R_min']:.3f}) "
              f"theirs {r['theirs_heldout_R']:.3f}{extra} | theirs all {r['theirs_all_R']:.3f} published "
              f"{r['published_R']:.3f} | RMSE ours {r['ours_heldout_RMSE']:.1f} theirs {r['theirs_heldout_RMSE']:.1f}"
              f" | MAE ours {r['ours_heldout_MAE']:.1f} theirs {r['theirs_heldout_MAE']:.1f}")
    header = sorted({k for r in rows for k in r}, key=lambda k: (k not in ("space", "device"), k))
    with cli.ResultSet(out / FLAGS.search_space, manifest="eval_unseen_devices.json") as rs:
        write_csv(rs.path("eval_unseen_devices.csv"), header, [[r.get(k) for k in header] for r in rows])
        rs.summary = {"unit": dgl.LATENCY_UNIT, "rows": rows}
    print(f"wrote {out / FLAGS.search_space}/eval_unseen_devices.csv")


def run_constrained(out: Path):
    from nasjax.io import write_csv
    from nasjax.protocols.latency_constrained import dgl_devices_constrained_eval

    require(FLAGS.search_space == "nasbench201", "search_space", FLAGS.search_space,
            "nasbench201 (constrained mode needs accuracies)")
    try:
        qs = [float(q) for q in FLAGS.quantiles]
    except ValueError:
        qs = []
    require(len(qs) > 0 and all(0 < q < 1 for q in qs), "quantiles", FLAGS.quantiles,
            "fractions in (0, 1), comma-separated")  # checked before the pool and the models are built
    rows = dgl_devices_constrained_eval(FLAGS.accuracy, dataset=FLAGS.dataset, k=FLAGS.k, n_splits=FLAGS.n_splits,
                                        seed=FLAGS.seed, quantiles=qs, searcher=FLAGS.searcher,
                                        model_config=_a_config(), genetic=_genetic_settings())
    for r in rows:
        print(f"{r['device']:22s} k={r['k']} violation rate {r['violation_rate']:.3f}  accuracy gap (truly feasible) "
              f"mean {r['mean_gap_feasible']:.3f} max {r['max_gap_feasible']:.3f}  pool {r['n_pool_mean']:.0f}")
    stem = f"constrained_{FLAGS.accuracy}_k{FLAGS.k}"
    header = list(rows[0])
    with cli.ResultSet(out / "nasbench201", manifest=f"{stem}.json") as rs:
        write_csv(rs.path(f"{stem}.csv"), header, [[r[k] for k in header] for r in rows])
        rs.summary = {"rows": rows}
    print(f"wrote {out / 'nasbench201'}/{stem}.csv")


def main():
    cli.check_mode_flags("mode", MODE_FLAGS)
    cli.check_mode_flags("model", {"ours": _OURS_ONLY, "dgl_mlp": []})
    out = cli.check_output_dir(FLAGS.save_path, "save_path")
    t0 = time.perf_counter()
    modes = {"train": run_train, "test": run_test, "nas": run_nas, "eval": run_eval, "constrained": run_constrained}
    modes[FLAGS.mode](out)
    print(f"done in {time.perf_counter() - t0:.2f} s")


if __name__ == "__main__":
    cli.run(main)
