"""Test configuration: CPU only, 8 virtual XLA host devices (for sharding tests), the persistent JAX
compilation cache (``nasjax.io.jax_cache_dir()``, shared by every checkout on the machine), and a
``shared_data`` fixture that skips when ../shared/data is absent."""

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
_flags = os.environ.get("XLA_FLAGS", "")
if "xla_force_host_platform_device_count" not in _flags:
    os.environ["XLA_FLAGS"] = (_flags + " --xla_force_host_platform_device_count=8").strip()

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from nasjax.io import enable_jax_cache, shared_data_dir  # noqa: E402

enable_jax_cache()


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
