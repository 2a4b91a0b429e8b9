"""Flag sweeps on Ray Tune: grid / random parsing, setting keys, and a real sweep over experiments.binas_search
(synthetic inputs, about a second per setting) with one deliberately failing setting, run twice: the second
run reuses every finished setting and runs only the failed one again."""

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nasjax.errors import NasjaxInputError
from nasjax.io import read_json
from nasjax.sweep import flatten_scalars, parse_grid, parse_space, setting_key

ROOT = Path(__file__).resolve().parent.parent


def test_parse_grid_and_space():
    assert parse_grid("a=1,2; --b=x") == {"a": ["1", "2"], "b": ["x"]}
    for bad in ("a", "a=", "a=1,1", "a=1;a=2", "a=1,,2"):
        with pytest.raises(NasjaxInputError, match="grid"):
            parse_grid(bad)
    sp = parse_space("lr=loguniform:1e-4:1e-1;n=randint:1:10;o=choice:sgd,adamw;u=uniform:0:1")
    assert sp == {"lr": ("loguniform", (1e-4, 0.1)), "n": ("randint", (1, 10)), "o": ("choice", ("sgd", "adamw")),
                  "u": ("uniform", (0.0, 1.0))}
    for bad in ("lr=normal:0:1", "lr=loguniform:0:1", "n=randint:3:1", "u=uniform:a:b"):
        with pytest.raises(NasjaxInputError, match="space"):
            parse_space(bad)


def test_setting_key_covers_every_flag():
    k = setting_key("experiments.x", ["--a=1"], {"b": "2", "c": 0.5})
    assert k == setting_key("experiments.x", ["--a=1"], {"c": 0.5, "b": "2"})  # order of overrides is irrelevant
    assert k != setting_key("experiments.x", ["--a=2"], {"b": "2", "c": 0.5})  # a base flag changed
    assert k != setting_key("experiments.x", ["--a=1"], {"b": "3", "c": 0.5})
    assert k != setting_key("experiments.y", ["--a=1"], {"b": "2", "c": 0.5})
    assert flatten_scalars({"a": {"b": 1, "c": [1, 2]}, "files": {"x": "h"}, "d": "s"}) == {"a.b": 1, "d": "s"}


def test_flagfile_routing():
    from nasjax.sweep import route_flagfiles

    assert route_flagfiles(["p", "--flagfile=base", "--sweep_flagfile", "mine", "--grid=a=1"]) == \
        ["p", "--base_flagfile=base", "--flagfile=mine", "--grid=a=1"]


@pytest.fixture(scope="module")
def binas_inputs(tmp_path_factory):
    d = tmp_path_factory.mktemp("binas")
    subprocess.run([sys.executable, "scripts/bench_binas.py", f"--write_synthetic={d}"], cwd=ROOT, check=True,
                   capture_output=True, timeout=300, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    base = d / "base.flags"
    base.write_text("# base of the sweep test\n--nas_optimizer=exact\n--predictor_type=bilinear\n"
                    f"--predictor_ckpt_filename={d / 'estimator.npz'}\n--lut_filename={d / 'LUT_synthetic.pkl'}\n"
                    "--latency_unit=ms\n--save_path=unused\n")
    return base


def _sweep(base: Path, save: Path) -> subprocess.CompletedProcess:
    # 45 without a unit is refused by binas_search (exit 2): the deliberately failing setting
    cmd = [sys.executable, "-m", "experiments.sweep", "--experiment=experiments.binas_search", f"--flagfile={base}",
           "--grid=inference_time_limit=40ms,45ms,45", "--space=seed=randint:0:1000", "--random=1", "--seed=7",
           f"--save_dir={save}", "--num_cpus=2", "--plot_metric=predicted.accuracy.value"]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)))


def _rows(save: Path) -> dict[str, dict]:
    with open(save / "results.csv") as fh:
        return {r["inference_time_limit"]: r for r in csv.DictReader(fh)}


def test_sweep_records_failures_and_resumes(binas_inputs, tmp_path):
    pytest.importorskip("ray.tune", reason="Ray Tune is not installed (pip install nasjax[ray]); skipping")
    save = tmp_path / "sweep"
    first = _sweep(binas_inputs, save)
    assert first.returncode == 0, first.stderr[-3000:]
    rows = _rows(save)
    assert set(rows) == {"40ms", "45ms", "45"}
    assert rows["40ms"]["status"] == rows["45ms"]["status"] == "ok"
    assert float(rows["45ms"]["predicted.accuracy.value"]) > float(rows["40ms"]["predicted.accuracy.value"])
    assert float(rows["40ms"]["predicted.latency.value"]) <= 40.0
    assert rows["45"]["status"] == "failed" and rows["45"]["returncode"] == "2"
    assert "inference_time_limit" in rows["45"]["stderr_tail"]
    assert (save / "results.png").stat().st_size > 0
    summary = read_json(save / "summary.json", "summary")
    assert summary["status"] == {"failed": 1, "ok": 2} and summary["cached"] == 0
    seeds = {k: r["seed"] for k, r in rows.items()}
    stamps = {r["key"]: (save / "runs" / r["key"] / "stdout.txt").stat().st_mtime_ns for r in rows.values()}

    second = _sweep(binas_inputs, save)
    assert second.returncode == 0, second.stderr[-3000:]
    again = _rows(save)
    assert {k: r["seed"] for k, r in again.items()} == seeds  # the seeded draws repeat: same keys
    assert again["40ms"]["cached"] == again["45ms"]["cached"] == "True" and again["45"]["cached"] == "False"
    for lim in ("40ms", "45ms"):  # not run again: their logs are untouched
        key = again[lim]["key"]
        assert (save / "runs" / key / "stdout.txt").stat().st_mtime_ns == stamps[key]
        assert again[lim]["predicted.accuracy.value"] == rows[lim]["predicted.accuracy.value"]
    assert again["45"]["status"] == "failed"
    assert read_json(save / "summary.json", "summary")["cached"] == 2
