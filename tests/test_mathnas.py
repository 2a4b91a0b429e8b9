"""MathNAS reproduced on its published tables, through the library and through the absl experiments."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import require_shared

from nasjax.errors import NasjaxInputError

ROOT = Path(__file__).resolve().parent.parent


def run(module, *args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("name, expected", [("MathNAS-MB2", 76.41), ("MathNAS-MB3", 78.14), ("MathNAS-MB4", 79.23)])
def test_mobilenetv3_published_nets_predict(name, expected):
    from nasjax.benchmarks.mathnas import mobilenetv3_tables

    root = require_shared("MathNAS")
    bs, acc, _ = mobilenetv3_tables(root, "tx2cpu")
    y = yaml.safe_load((root / "results" / "mobilenetv3" / f"{name}.yml").read_text())
    assert acc.predict(bs.from_ofa(y)) == pytest.approx(expected, abs=0.01)


def test_readme_example_tx2gpu_500(tmp_path):
    root = require_shared("MathNAS")
    r = run("experiments.mobilenetv3_search", "--mode=nas", "--device=tx2gpu", "--latency_constraint=500",
            f"--save_path={tmp_path}", f"--tables_dir={root}")
    assert r.returncode == 0, r.stderr
    assert "79.30 %" in r.stdout and "68.86 ms" in r.stdout
    y = yaml.safe_load((tmp_path / "mobilenetv3" / "tx2gpu" / "500.yml").read_text())
    assert y["encodearch"] == [3, 4, 4, 4, 3]
    assert y["ks"] == [7, 5, 7, 7, 7, 5, 7, 7, 7, 7, 7, 7, 7, 5, 5, 7, 7, 3, 5, 5]
    assert y["predicted"]["latency"] == {"value": pytest.approx(68.8636, abs=1e-3), "unit": "ms"}
    # our own yml is valid input for --mode=predict
    r = run("experiments.mobilenetv3_search", "--mode=predict", "--device=tx2gpu",
            f"--load_path={tmp_path / 'mobilenetv3' / 'tx2gpu' / '500.yml'}", f"--tables_dir={root}")
    assert r.returncode == 0, r.stderr
    assert "79.2964 %" in r.stdout


@pytest.mark.parametrize(
    "args, message",
    [
        (["--device=tx3", "--latency_constraint=100"],
         "unknown mobilenetv3 device 'tx3'; known mobilenetv3 devices: raspberrypi, tx2cpu, tx2gpu"),
        (["--device=tx2cpu", "--latency_constraint=10"], "smallest achievable latency is 287.4300 ms"),
        (["--device=tx2cpu", "--latency_constraint=0.5s"], "bound in 's' but the latency table"),
        (["--device=tx2cpu", "--latency_constraint=fast"], "latency_constraint: got 'fast'"),
        (["--device=tx2cpu", "--flops_constraint=300"], "has no flops table"),
    ],
)
def test_bad_input_exits_nonzero_and_writes_nothing(tmp_path, args, message):
    root = require_shared("MathNAS")
    r = run("experiments.mobilenetv3_search", "--mode=nas", *args, f"--save_path={tmp_path}", f"--tables_dir={root}")
    assert r.returncode == 2
    assert message in r.stderr
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    "args, message",
    [
        (["--mode=predict", "--latency_constraint=500"], "latency_constraint: given with --mode=predict"),
        (["--mode=pareto", "--solver=mckp"], "solver: given with --mode=pareto"),
        (["--mode=nas", "--latency_constraint=500", "--seed=1"], "seed: given with --mode=nas"),
        (["--mode=nas", "--latency_constraint=500", "--solver=ilp"], "solver"),
        (["--mode=nas", "--latency_constraint=500", "extra"], "unexpected positional argument"),
        (["--mode=nas", "--latency_constraint=500", "--no_such_flag=1"], "no_such_flag"),
    ],
)
def test_flags_of_another_mode_and_stray_arguments_exit_2(tmp_path, args, message):
    root = require_shared("MathNAS")
    r = run("experiments.mobilenetv3_search", "--device=tx2cpu", *args, f"--save_path={tmp_path / 'out'}",
            f"--tables_dir={root}")
    assert r.returncode == 2, r.stderr
    assert message in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_unusable_save_path_is_refused_before_the_search(tmp_path):
    root = require_shared("MathNAS")
    (tmp_path / "file").write_text("x")
    r = run("experiments.nasbench201_search", "--mode=nas", "--device=fpga", "--latency_constraint=2000",
            f"--save_path={tmp_path / 'file'}", f"--tables_dir={root}")
    assert r.returncode == 2 and "save_path" in r.stderr and "is a file" in r.stderr
    assert "search time" not in r.stdout
    r = run("experiments.mathnas_nb201_regret", "--datasets=cifar10", "--bases=0", f"--save_path={tmp_path}/x.json")
    assert r.returncode == 2 and "bases: got '0'" in r.stderr


def test_predict_rejects_bad_yml(tmp_path):
    root = require_shared("MathNAS")
    y = yaml.safe_load((root / "results" / "mobilenetv3" / "MathNAS-MB3.yml").read_text())
    y["e"] = y["e"][:19]
    p = tmp_path / "bad.yml"
    p.write_text(yaml.safe_dump(y))
    predict = ("experiments.mobilenetv3_search", "--mode=predict", "--device=tx2cpu", f"--load_path={p}")
    r = run(*predict, f"--tables_dir={root}")
    assert r.returncode == 2 and "arch.e: " in r.stderr and "expected a list of 20" in r.stderr
    p.write_text("d: [2, 3\n e: x")
    r = run(*predict, f"--tables_dir={root}")
    assert r.returncode == 2 and "malformed YAML" in r.stderr


def test_nasbench201_nas_and_pareto(tmp_path):
    root = require_shared("MathNAS")
    r = run("experiments.nasbench201_search", "--mode=nas", "--device=fpga", "--latency_constraint=2000",
            "--energy_constraint=12000", f"--save_path={tmp_path}", f"--tables_dir={root}", "--solver=mckp")
    assert r.returncode == 0, r.stderr
    y = yaml.safe_load((tmp_path / "nasbench201" / "fpga" / "2000_12000.yml").read_text())
    assert y["arch"] == ("|nor_conv_3x3~0|+|nor_conv_1x1~0|nor_conv_1x1~1|+|skip_connect~0|nor_conv_1x1~1|"
                         "nor_conv_1x1~2|")
    assert y["predicted"]["accuracy"]["value"] == pytest.approx(38.01, abs=0.01)
    r = run("experiments.nasbench201_search", "--mode=pareto", "--device=edgegpu", f"--save_path={tmp_path}",
            f"--tables_dir={root}")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "nasbench201" / "edgegpu" / "pareto_latency.png").stat().st_size > 1000
    rows = (tmp_path / "nasbench201" / "edgegpu" / "pareto_latency.csv").read_text().splitlines()
    assert rows[0].startswith("arch,accuracy (%),latency (au)") and len(rows) > 3
    # the csv and the png are one result set: the manifest, written last, lists both
    import json

    manifest = json.loads((tmp_path / "nasbench201" / "edgegpu" / "pareto_latency.json").read_text())
    assert sorted(manifest["files"]) == ["pareto_latency.csv", "pareto_latency.png"]
    assert manifest["pareto_points"] == len(rows) - 1


def test_nb201_bases_follow_predict_py():
    """fpga energy/latency = 7.0 for bases and deltas alike (search.py swapped the devices: a bug)."""
    from nasjax.benchmarks.mathnas import nasbench201_tables

    root = require_shared("MathNAS")
    _, res = nasbench201_tables(root, "fpga")
    assert res["energy"].base / res["latency"].base == pytest.approx(7.0, rel=1e-3)
    nz = res["latency"].values != 0
    np.testing.assert_allclose(res["energy"].values[nz] / res["latency"].values[nz], 7.0, rtol=1e-3)


def test_tables_dir_missing_is_clear():
    from nasjax.benchmarks.mathnas import mobilenetv3_tables

    with pytest.raises(NasjaxInputError, match="tables_dir: '/nonexistent' is not a directory"):
        mobilenetv3_tables("/nonexistent", "tx2cpu")
