"""Multi-host start-up: flags / environment resolution, and two processes on this machine over 127.0.0.1.

The two-process test runs ``python -m experiments.train_supernet`` twice (process 0 and 1, two XLA host
devices each, so a mesh of 4 devices across 2 processes; JAX's CPU collectives are gloo) and checks that the
weights equal single-process training on the same global batch. The children are bounded in time and killed
(by their own process group) whatever happens.
"""

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from nasjax.errors import NasjaxInputError
from nasjax.io import read_json
from nasjax.train.mesh import ENV_COORDINATOR, ENV_NUM_PROCESSES, ENV_PROCESS_ID, DistributedConfig, resolve_distributed

ROOT = Path(__file__).resolve().parent.parent


def test_single_process_without_coordinator(monkeypatch):
    for v in (ENV_COORDINATOR, ENV_NUM_PROCESSES, ENV_PROCESS_ID):
        monkeypatch.delenv(v, raising=False)
    assert resolve_distributed(DistributedConfig()) is None
    with pytest.raises(NasjaxInputError, match="num_processes"):
        resolve_distributed(DistributedConfig(num_processes=2))


def test_flags_then_environment(monkeypatch):
    monkeypatch.setenv(ENV_COORDINATOR, "10.0.0.1:1234")
    monkeypatch.setenv(ENV_NUM_PROCESSES, "4")
    monkeypatch.setenv(ENV_PROCESS_ID, "3")
    assert resolve_distributed(DistributedConfig()) == DistributedConfig("10.0.0.1:1234", 4, 3)
    # flags win over the environment
    assert resolve_distributed(DistributedConfig("h:99", 2, 1)) == DistributedConfig("h:99", 2, 1)
    monkeypatch.setenv(ENV_PROCESS_ID, "4")
    with pytest.raises(NasjaxInputError, match="process_id"):
        resolve_distributed(DistributedConfig())
    monkeypatch.setenv(ENV_PROCESS_ID, "one")
    with pytest.raises(NasjaxInputError, match=ENV_PROCESS_ID):
        resolve_distributed(DistributedConfig())
    with pytest.raises(NasjaxInputError, match="coordinator_address"):
        resolve_distributed(DistributedConfig("10.0.0.1", 2, 0))
    monkeypatch.delenv(ENV_PROCESS_ID)
    auto = resolve_distributed(DistributedConfig("auto"))
    assert auto.coordinator_address == "auto"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_two_processes(save_dir: Path, args: list[str], timeout: float = 420.0) -> list[tuple[int, str]]:
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu",
               XLA_FLAGS="--xla_force_host_platform_device_count=2")
    procs = []
    try:
        for pid in range(2):
            cmd = [sys.executable, "-m", "experiments.train_supernet", f"--save_dir={save_dir}", "--noprogress",
                   f"--coordinator_address=127.0.0.1:{port}", "--num_processes=2", f"--process_id={pid}",
                   "--initialization_timeout=120", *args]
            procs.append(subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                          text=True, start_new_session=True))
        deadline = time.monotonic() + timeout
        out = []
        for p in procs:
            _, err = p.communicate(timeout=max(1.0, deadline - time.monotonic()))
            out.append((p.returncode, err[-3000:]))
        return out
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()


def test_two_processes_over_loopback_train_like_one(tmp_path):
    from nasjax.data import load_dataset
    from nasjax.models import SupernetConfig
    from nasjax.train.trainer import TrainConfig, init_state, load_weights, train_supernet

    args = ["--steps=3", "--batch_size=16", "--warmup_steps=1", "--checkpoint_every=2", "--seed=2"]
    results = _run_two_processes(tmp_path / "mp", args)
    for rc, err in results:
        assert rc == 0, err
    summary = read_json(tmp_path / "mp" / "summary.json", "summary")
    assert summary["process_count"] == 2 and summary["mesh_devices"] == 4 and summary["local_device_count"] == 2
    state, cfg, _ = load_weights(tmp_path / "mp" / "weights")

    tc = TrainConfig(steps=3, batch_size=16, warmup_steps=1, checkpoint_every=2, seed=2)
    single = train_supernet(cfg, load_dataset("digits"), tc, tmp_path / "single", progress=False)
    init = jax.tree_util.tree_leaves(init_state(cfg, 2).params)
    for a, b, a0 in zip(jax.tree_util.tree_leaves(single.state.params), jax.tree_util.tree_leaves(state.params),
                        init, strict=True):
        a, b, a0 = np.asarray(a), np.asarray(b), np.asarray(a0)
        np.testing.assert_allclose(a, b, rtol=0, atol=2e-3 * float(np.max(np.abs(a - a0))) + 1e-7)
    assert cfg == SupernetConfig(width_mult=0.1, num_classes=10, in_channels=1, ks_list=(3,), expand_list=(3, 6),
                                 depth_list=(1, 2), dropout_rate=0.1)


def test_unreachable_coordinator_fails_in_bounded_time(tmp_path):
    """Process 1 alone (no process 0): initialisation times out and the command exits non-zero."""
    port = _free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu")
    cmd = [sys.executable, "-m", "experiments.train_supernet", f"--save_dir={tmp_path / 'x'}", "--noprogress",
           f"--coordinator_address=127.0.0.1:{port}", "--num_processes=2", "--process_id=1",
           "--initialization_timeout=5", "--steps=2", "--warmup_steps=0"]
    p = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         start_new_session=True)
    try:
        _, err = p.communicate(timeout=120)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
    assert p.returncode != 0
    assert not (tmp_path / "x" / "summary.json").exists()
