"""A wheel built from the repository carries the shipped tables and default weights, and its main command
runs from a directory outside the checkout with the checkout not on sys.path."""

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("nasjax", "experiments", "luts", "pyproject.toml", "setup.py", "README.md")


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    if not (ROOT / "luts" / "mobilenetv3_mnist" / "manifest.json").is_file():
        pytest.skip("embedded default luts/mobilenetv3_mnist not built")
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", ".*.partial.json", ".*.tmp")
    for name in SOURCES:  # a clean copy: building in the checkout would leave build/ and *.egg-info there
        p = ROOT / name
        (shutil.copytree(p, src / name, ignore=ignore) if p.is_dir() else shutil.copy2(p, src / name))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp / "dist"), str(src)], check=True, timeout=300)
    wheel = next((tmp / "dist").glob("nasjax-*.whl"))
    target = tmp / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, timeout=300)
    return wheel, target, tmp


def test_wheel_holds_tables_and_weights(installed):
    wheel, target, _ = installed
    names = zipfile.ZipFile(wheel).namelist()
    for f in ("nasjax/luts/PROVENANCE.md", "nasjax/luts/mobilenetv3_mnist/manifest.json",
              "nasjax/luts/mobilenetv3_mnist/latency_stage.json", "experiments/flags/quickstart.flags"):
        assert f in names, f
    assert any(n.startswith("nasjax/luts/mobilenetv3_mnist/weights/") for n in names)


def test_main_command_from_installed_wheel(installed):
    _, target, tmp = installed
    work = tmp / "elsewhere"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = str(target)  # the venv's site-packages give the dependencies
    probe = subprocess.run([sys.executable, "-c", "import sys, nasjax, nasjax.io as io; "
                            "print(nasjax.__file__); print(io.luts_dir()); print(any(p.rstrip('/') == "
                            f"{str(ROOT)!r} for p in sys.path))"], cwd=work, env=env, capture_output=True,
                           text=True, timeout=120, check=True).stdout.split("\n")
    assert probe[0].startswith(str(target)) and probe[1].startswith(str(target)) and probe[2] == "False"
    flagfile = target / "experiments" / "flags" / "quickstart.flags"
    p = subprocess.run([sys.executable, "-m", "experiments.mobilenetv3_search", f"--flagfile={flagfile}",
                        f"--save_path={work / 'results'}", "--seed=0", "--latency_budgets=20,30,40"],
                       cwd=work, env=env, capture_output=True, text=True, timeout=900)
    assert p.returncode == 0, p.stderr[-3000:]
    assert "nasjax quickstart" in p.stdout and "has no manifest.json" not in p.stderr
    summary = json.loads((work / "results" / "mobilenetv3" / "quickstart" / "summary.json").read_text())
    assert len(summary["results"]) == 3
