"""scripts/measure_subnets.py refuses bad settings with exit code 2 and writes no file."""

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "measure_subnets.py"


@pytest.mark.parametrize("flag,field", [("--num_subnets=0", "--num_subnets"), ("--resolution=8", "--resolution")])
def test_bad_settings_exit_2_without_output(tmp_path, flag, field):
    out = tmp_path / "m.csv"
    r = subprocess.run([sys.executable, str(SCRIPT), f"--out={out}", flag], capture_output=True, text=True)
    assert r.returncode == 2 and field in r.stderr and not out.exists()
