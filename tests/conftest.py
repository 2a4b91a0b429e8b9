"""Test configuration: CPU only, 4 virtual XLA host devices (for sharding tests), a persistent JAX
compilation cache, and a ``shared_data`` fixture that skips when ../shared/data is absent."""

import os
from pathlib import Path

os.environ.setdefault("JAX_PLATFORMS", "cpu")
_flags = os.environ.get("XLA_FLAGS", "")
if "xla_force_host_platform_device_count" not in _flags:
    os.environ["XLA_FLAGS"] = (_flags + " --xla_force_host_platform_device_count=4").strip()
_cache = os.environ.setdefault(
    "JAX_COMPILATION_CACHE_DIR", str(Path(__file__).resolve().parent.parent / ".cache" / "jax")
)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")

import pytest  # noqa: E402

from nasjax.io import shared_data_dir  # noqa: E402


def _configure_jax():
    try:
        import jax
    except ImportError:  # pragma: no cover
        return
    jax.config.update("jax_compilation_cache_dir", _cache)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


_configure_jax()


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
