"""scripts/measure_subnets.py refuses bad settings with exit code 2 and writes no file."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "measure_subnets.py"


@pytest.mark.parametrize("flag,field", [("--num_subnets=0", "--num_subnets"), ("--resolution=8", "--resolution")])
def test_bad_settings_exit_2_without_output(tmp_path, flag, field):
    out = tmp_path / "m.csv"
    r = subprocess.run([sys.executable, str(SCRIPT), f"--out={out}", flag], capture_output=True, text=True)
    assert r.returncode == 2 and field in r.stderr and not out.exists()


def _earlier_csv(path, n=12, resolution=224):
    rng = np.random.default_rng(0)
    rows = ["arch,resolution,latency_ms"]
    archs = rng.integers(0, 3, size=(n, 25))
    for a in archs:
        rows.append(f"{' '.join(map(str, a))},{resolution},{rng.uniform(4, 8):.4f}")
    path.write_text("\n".join(rows) + "\n")
    return archs


@pytest.mark.parametrize("flags,field", [(["--rows=5:3"], "--rows"), (["--rows=a:b"], "--rows"),
                                         (["--rows=0:99"], "--rows"), (["--resolution=160"], "--resolution")])
def test_archs_from_bad_slice_or_resolution_exit_2(tmp_path, flags, field):
    earlier = tmp_path / "earlier.csv"
    _earlier_csv(earlier)
    out = tmp_path / "m.csv"
    r = subprocess.run([sys.executable, str(SCRIPT), f"--out={out}", f"--archs_from={earlier}", *flags],
                       capture_output=True, text=True)
    assert r.returncode == 2 and field in r.stderr and not out.exists(), r.stderr


def test_rows_without_archs_from_exit_2(tmp_path):
    out = tmp_path / "m.csv"
    r = subprocess.run([sys.executable, str(SCRIPT), f"--out={out}", "--rows=0:3"], capture_output=True, text=True)
    assert r.returncode == 2 and "--rows" in r.stderr and not out.exists()


def test_archs_from_reads_the_slice_in_order(tmp_path):
    sys.path.insert(0, str(SCRIPT.parent))
    try:
        import measure_subnets
    finally:
        sys.path.remove(str(SCRIPT.parent))
    earlier = tmp_path / "earlier.csv"
    archs = _earlier_csv(earlier)
    np.testing.assert_array_equal(measure_subnets._archs_from(str(earlier), "3:7", 224), archs[3:7])
    np.testing.assert_array_equal(measure_subnets._archs_from(str(earlier), "", 224), archs)
