"""Test configuration: CPU only, 8 virtual XLA host devices (for sharding tests), the persistent JAX
compilation cache (``nasjax.io.jax_cache_dir()``, shared by every checkout on the machine), and a
``shared_data`` fixture that skips when ../shared/data is absent."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
_flags = os.environ.get("XLA_FLAGS", "")
if "xla_force_host_platform_device_count" not in _flags:
    os.environ["XLA_FLAGS"] = (_flags + " --xla_force_host_platform_device_count=8").strip()

import subprocess  # noqa: E402
import sys  # noqa: E402
import zlib  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from nasjax.hardware import runtimes as _rt  # noqa: E402
from nasjax.io import enable_jax_cache, shared_data_dir  # noqa: E402

enable_jax_cache()

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def tiny():
    """``(state, config, block_set)``: a width-0.25 MobileNetV3 supernet (10 classes, 1 channel) for the
    latency-table tests."""
    from nasjax.models.mobilenetv3 import SupernetConfig
    from nasjax.profiling.contributions import nasjax_block_set
    from nasjax.train.trainer import init_state

    cfg = SupernetConfig(width_mult=0.25, num_classes=10, in_channels=1)
    return init_state(cfg, 0), cfg, nasjax_block_set()


def run_latency_table(*args, cwd=ROOT):
    """``python -m experiments.latency_table --noprogress ARGS`` in a subprocess (output captured)."""
    return subprocess.run([sys.executable, "-m", "experiments.latency_table", "--noprogress", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(ROOT)})


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The reference data folder; tests that need it skip with a clear message when it is absent."""
    d = shared_data_dir()
    if d is None:
        pytest.skip("reference data folder ../shared/data is absent (set NASJAX_SHARED_DATA); skipping")
    return d


def require_shared(*parts: str) -> Path:
    """Path below ../shared/data, or skip the test naming the missing folder."""
    d = shared_data_dir()
    if d is None:
        pytest.skip("reference data folder ../shared/data is absent; skipping")
    p = d.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"reference data {p} is absent; skipping")
    return p


class FakeRuntime(_rt.Runtime):
    """Deterministic 'timings' from the piece names, no compilation (for the latency-table builder's tests);
    records the names of the pieces it prepared; ``fail_after`` interrupts the build like a kill."""

    def __init__(self, fail_after: int | None = None):
        super().__init__(0)
        self.name = "fake"
        self.names = []
        self.fail_after = fail_after

    @property
    def prepared(self) -> int:
        return len(self.names)

    def prepare(self, piece, batch_size, resolution):
        if self.fail_after is not None and len(self.names) >= self.fail_after:
            raise KeyboardInterrupt  # an interrupted build
        self.names.append(piece.name)
        call = lambda: None  # noqa: E731
        call.cost = 0.1 + (zlib.crc32(piece.name.encode()) % 1000) / 1000.0
        return call

    def provenance(self):
        return {"runtime": "fake", "threads": 0, **_rt.machine_provenance()}


def fake_timing(calls, *, warmup, repeats, anchor_drift: bool = False, **_):
    """Stand-in for ``time_interleaved``: each call's ``cost`` as its median (with ``anchor_drift``, the first
    call -- the builder's anchor -- drifts with the chunk's size, which the drift correction must undo)."""
    med = np.array([c.cost for c in calls])
    if anchor_drift:
        med[0] *= 1.0 + 0.01 * len(calls)
    return _rt.Timing(med, 0.01 * med, np.tile(med, (repeats, 1)), warmup, repeats)
