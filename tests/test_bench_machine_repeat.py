"""scripts/bench_profiling.py's repeatability of the machine measurement: the second timing of the held-out
subnets against the first, beside the table's and a variant's predictions of the first on the same subnets."""

import sys
from pathlib import Path

import numpy as np
import pytest

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(SCRIPTS))
    try:
        import bench_profiling
    finally:
        sys.path.remove(str(SCRIPTS))
    return bench_profiling


class _Stub:
    def __init__(self, value):
        self.value = value

    def predict_all(self, archs):
        return np.full((len(archs), 1), self.value)


def _write(path, archs, lat):
    rows = ["arch,resolution,latency_ms"] + [f"{' '.join(map(str, a[:25]))},{a[25]},{v:.6f}"
                                             for a, v in zip(archs, lat)]
    path.write_text("\n".join(rows) + "\n")


def test_a_scaled_second_timing_is_exact_and_only_matching_rows_count(bench, tmp_path):
    rng = np.random.default_rng(0)
    a = np.concatenate([rng.integers(0, 3, size=(200, 25)), np.full((200, 1), 224)], 1)
    y = 5 + rng.uniform(0, 1, size=200)
    test = np.arange(40)
    again = tmp_path / "again.csv"
    _write(again, a[10:60], 1.1 * y[10:60])  # rows 10..39 of the held-out subnets, and 20 training subnets
    out = bench.machine_repeatability(a, y, test, str(again), {"v": _Stub(5.5)}, "v")
    assert out["rows"] == 30
    assert out["second_timing_scaled"]["mape"] == pytest.approx(0.0, abs=1e-3)
    assert out["second_timing_scaled"]["scale"] == pytest.approx(1 / 1.1, abs=1e-4)
    assert out["second_timing"]["mape"] == pytest.approx(10.0, abs=0.01)
    y1 = y[10:40]
    assert out["v"]["mape"] == pytest.approx(100 * np.mean(np.abs(5.5 - y1) / y1), abs=1e-3)
    assert set(out) == {"rows", "second_timing", "second_timing_scaled", "additive", "v"}


def test_too_few_matching_rows_is_reported_not_scored(bench, tmp_path):
    rng = np.random.default_rng(1)
    a = np.concatenate([rng.integers(0, 3, size=(50, 25)), np.full((50, 1), 224)], 1)
    y = 5 + rng.uniform(0, 1, size=50)
    again = tmp_path / "again.csv"
    _write(again, a[:5], y[:5])
    out = bench.machine_repeatability(a, y, np.arange(10), str(again), {"v": _Stub(5.0)}, "v")
    assert out["rows"] == 5 and "skipped" in out
