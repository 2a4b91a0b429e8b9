"""MathNAS's published directory: malformed ``_derived/tables.json`` entries and block-set pickles are refused
with a message naming the file or entry, through the API and through the experiments (exit 2, nothing written)."""

import json
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import require_shared

from nasjax.benchmarks.mathnas import mobilenetv3_tables, nasbench201_tables
from nasjax.errors import NasjaxInputError

ROOT = Path(__file__).resolve().parent.parent


def _derived_only(tmp_path, mutate) -> Path:
    """A MathNAS directory holding only ``_derived/tables.json``, changed by ``mutate(doc)``."""
    src = require_shared("MathNAS", "_derived", "tables.json")
    doc = json.loads(src.read_text())
    mutate(doc)
    d = tmp_path / "mathnas"
    (d / "_derived").mkdir(parents=True)
    (d / "_derived" / "tables.json").write_text(json.dumps(doc) if not isinstance(doc, str) else doc)
    return d


REL = "data/nasbench201/blocklat_fpga.pt"


@pytest.mark.parametrize("mutate, match", [
    (lambda d: d["files"][REL].update(values=[[1.0, 2.0], [3.0]]), "rectangular array of numbers"),
    (lambda d: d["files"][REL].update(values="abc"), "rectangular array of numbers"),
    (lambda d: d["files"][REL].update(values=[["x"] * 5] * 6), "rectangular array of numbers"),
    (lambda d: d["files"][REL].pop("values"), "expected an object with 'values'"),
    (lambda d: d["files"].__setitem__(REL, 3), "expected an object with 'values'"),
    (lambda d: d.pop("files"), "'files' mapping"),
])
def test_malformed_derived_entries(tmp_path, mutate, match):
    d = _derived_only(tmp_path, mutate)
    with pytest.raises(NasjaxInputError, match=match):
        nasbench201_tables(d, "fpga")


def test_truncated_derived_json(tmp_path):
    src = require_shared("MathNAS", "_derived", "tables.json")
    d = tmp_path / "mathnas"
    (d / "_derived").mkdir(parents=True)
    (d / "_derived" / "tables.json").write_text(src.read_text()[:5000])
    with pytest.raises(NasjaxInputError, match="tables.json.*not valid JSON"):
        nasbench201_tables(d, "fpga")


class _Evil:
    def __reduce__(self):
        return (print, ("ran",))


@pytest.mark.parametrize("payload, match", [
    (pickle.dumps({"config": _Evil()}), "refuse|not allowed|expected"),
    (pickle.dumps([1, 2, 3]), "expected a dict whose 'config'"),
    (pickle.dumps({"config": [1, 2]}), "expected a dict whose 'config'"),
    (pickle.dumps({"config": [{"d": 2}]})[:-3], "pickle|truncated|expected"),
])
def test_malformed_block_set_pickle(tmp_path, payload, match):
    src = require_shared("MathNAS")
    d = tmp_path / "mathnas"
    shutil.copytree(src / "data" / "mobilenetv3", d / "data" / "mobilenetv3")
    (d / "data" / "mobilenetv3" / "blocksCPU" / "block2.pickle").write_bytes(payload)
    with pytest.raises(NasjaxInputError, match=match) as e:
        mobilenetv3_tables(d, "tx2cpu")
    assert "block2.pickle" in str(e.value)


def test_experiment_refuses_damaged_table(tmp_path):
    d = _derived_only(tmp_path, lambda doc: doc["files"][REL].update(values=[[1.0, 2.0], [3.0]]))
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "experiments.nasbench201_search", "--mode=nas", "--device=fpga",
                        "--latency_constraint=2000", f"--tables_dir={d}", f"--save_path={out}"],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().count("\n") == 0 and "blocklat_fpga.pt" in r.stderr
    assert not out.exists() or not any(out.rglob("*"))
