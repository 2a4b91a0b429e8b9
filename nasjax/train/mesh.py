"""Device meshes and array placement shared by sharded training and batched evaluation; multi-host start-up.

One mesh helper serves the whole ``nasjax.train`` package: a one-axis :class:`jax.sharding.Mesh` over the
devices (``axis="data"``). Data-parallel training splits the global image batch along that axis and
replicates parameters, batch statistics and optimizer state; batched evaluation splits the subnet axis or
the image batch along it. A mesh of one device runs the same code as a mesh of many.

On one process arrays are placed with :func:`jax.device_put`; on several, with
:func:`jax.make_array_from_callback` from a host value that every process holds in full (the global batch
is a pure function of ``(seed, step)``, so each process computes the same one and contributes the shards
its devices own). The same call therefore works on one process and on many.

Multi-host: :func:`initialize_distributed` calls :func:`jax.distributed.initialize` with the coordinator
address, the process count and this process's id taken from arguments or, when those are not given, the
environment (``NASJAX_COORDINATOR_ADDRESS``, ``NASJAX_NUM_PROCESSES``, ``NASJAX_PROCESS_ID``), as
big_vision and MaxText start multi-host jobs. ``coordinator_address="auto"`` leaves the three to JAX's
cluster detection (SLURM, Open MPI, Cloud TPU, Kubernetes). On CPU the cross-process collectives are
JAX's gloo implementation (``jax_cpu_collectives_implementation``).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from nasjax.errors import NasjaxInputError, require

DATA_AXIS = "data"
ENV_COORDINATOR = "NASJAX_COORDINATOR_ADDRESS"
ENV_NUM_PROCESSES = "NASJAX_NUM_PROCESSES"
ENV_PROCESS_ID = "NASJAX_PROCESS_ID"


def device_mesh(devices: Sequence[Any] | int | None = None, axis: str = DATA_AXIS) -> Mesh:
    """A one-axis mesh.

    Args:
      devices: a sequence of devices, a device count ``n`` (the first ``n`` of ``jax.devices()``, across
        all processes), or ``None`` (every device of every process).
      axis: the mesh axis name.

    Returns:
      ``Mesh(devices, (axis,))``.
    """
    if devices is None:
        devs = jax.devices()
    elif isinstance(devices, (int, np.integer)) and not isinstance(devices, bool):
        avail = jax.device_count()
        require(1 <= int(devices) <= avail, "num_devices", int(devices), f"an integer in [1, {avail}] (the devices "
                "JAX sees; more host devices: XLA_FLAGS=--xla_force_host_platform_device_count=N)")
        devs = jax.devices()[: int(devices)]
    else:
        devs = list(devices)
        require(len(devs) > 0, "devices", devs, "a non-empty sequence of devices")
    return Mesh(np.array(devs), (axis,))


def mesh_size(mesh: Mesh) -> int:
    """Number of devices along the mesh's first axis."""
    return int(mesh.shape[mesh.axis_names[0]])


def replicated(mesh: Mesh) -> NamedSharding:
    """The sharding that keeps a full copy on every device of ``mesh``."""
    return NamedSharding(mesh, P())


def split_leading(mesh: Mesh) -> NamedSharding:
    """The sharding that splits axis 0 over the mesh's first axis (the rest of each array is whole)."""
    return NamedSharding(mesh, P(mesh.axis_names[0]))


def _place(x, sharding: NamedSharding) -> jax.Array:
    if jax.process_count() == 1:  # every device is local: a direct transfer
        return jax.device_put(x, sharding)
    host = np.asarray(jax.device_get(x)) if isinstance(x, jax.Array) and x.is_fully_addressable else x
    if isinstance(host, jax.Array):  # already a global array (multi-process): reshard
        return jax.jit(lambda a: a, out_shardings=sharding)(host)
    host = np.asarray(host)
    return jax.make_array_from_callback(host.shape, sharding, lambda idx: host[idx])


def replicate(tree: Any, mesh: Mesh | None) -> Any:
    """Every leaf of ``tree`` copied to every device of ``mesh`` (``mesh=None``: unchanged)."""
    if mesh is None:
        return tree
    sh = replicated(mesh)
    return jax.tree_util.tree_map(lambda x: _place(x, sh), tree)


def shard_batch(tree: Any, mesh: Mesh | None, field: str = "batch size") -> Any:
    """Every leaf of ``tree`` (a global batch, leading axis ``N``) split along axis 0 over ``mesh``.

    ``N`` must be a multiple of the mesh size (else :class:`NasjaxInputError` naming ``field``). Each
    process passes the whole global batch and keeps the shards of its own devices.
    """
    if mesh is None:
        return tree
    n_dev = mesh_size(mesh)
    sh = split_leading(mesh)

    def one(x):
        n = int(np.shape(x)[0])
        require(n % n_dev == 0, field, n, f"a multiple of the {n_dev} devices of the mesh")
        return _place(x, sh)

    return jax.tree_util.tree_map(one, tree)


# --------------------------------------------------------------------------------------------------
# multi-host


@dataclass(frozen=True)
class DistributedConfig:
    """How this process joins a multi-process JAX job (all fields may come from the environment).

    ``coordinator_address``: ``host:port`` of process 0's coordinator service, ``"auto"`` (JAX's cluster
    detection), or ``""`` (single process unless the environment says otherwise). ``num_processes`` and
    ``process_id``: ``-1`` reads ``NASJAX_NUM_PROCESSES`` / ``NASJAX_PROCESS_ID``.
    ``initialization_timeout``: seconds to wait for every process to connect.
    """

    coordinator_address: str = ""
    num_processes: int = -1
    process_id: int = -1
    initialization_timeout: int = 300


def _env_int(name: str) -> int | None:
    v = os.environ.get(name, "").strip()
    if not v:
        return None
    try:
        return int(v)
    except ValueError:
        raise NasjaxInputError(f"{name}: got {v!r}, expected an integer") from None


def resolve_distributed(cfg: DistributedConfig) -> DistributedConfig | None:
    """The effective settings (arguments first, then the environment); ``None`` for a single process.

    Raises :class:`NasjaxInputError` for an incomplete or inconsistent setting (an address without a
    process count, an id outside ``[0, num_processes)``, an address without a port).
    """
    addr = cfg.coordinator_address or os.environ.get(ENV_COORDINATOR, "").strip()
    n = cfg.num_processes if cfg.num_processes >= 0 else _env_int(ENV_NUM_PROCESSES)
    pid = cfg.process_id if cfg.process_id >= 0 else _env_int(ENV_PROCESS_ID)
    require(isinstance(cfg.initialization_timeout, int) and cfg.initialization_timeout >= 1,
            "initialization_timeout", cfg.initialization_timeout, "a positive number of seconds")
    if addr == "auto":
        return DistributedConfig("auto", -1 if n is None else n, -1 if pid is None else pid,
                                 cfg.initialization_timeout)
    if not addr:
        require(n in (None, 0, 1), "num_processes", n, f"1 without a coordinator address (--coordinator_address "
                f"or {ENV_COORDINATOR}=host:port)")
        return None
    host, sep, port = addr.rpartition(":")
    require(bool(sep) and bool(host) and port.isdigit(), "coordinator_address", addr,
            "host:port (e.g. 10.0.0.1:1234) or 'auto'")
    require(n is not None and n >= 1, "num_processes", n, f"a positive integer with a coordinator address "
            f"(--num_processes or {ENV_NUM_PROCESSES})")
    require(pid is not None and 0 <= pid < n, "process_id", pid, f"an integer in [0, {n}) (--process_id or "
            f"{ENV_PROCESS_ID})")
    return DistributedConfig(addr, int(n), int(pid), cfg.initialization_timeout)


def initialize_distributed(cfg: DistributedConfig | None = None) -> dict:
    """Join the multi-process job described by ``cfg`` / the environment (no-op for a single process).

    Must run before anything else touches a JAX device. Calls ``jax.distributed.initialize(coordinator,
    num_processes, process_id)``; with ``"auto"`` it calls it without arguments (cluster detection).

    Args:
      cfg: the settings; ``None`` reads everything from the environment.

    Returns:
      ``{"process_index", "process_count", "device_count", "local_device_count", "coordinator_address"}``.
    """
    eff = resolve_distributed(cfg or DistributedConfig())
    if eff is not None:
        if eff.coordinator_address == "auto":
            kw = {}
            if eff.num_processes >= 0:
                kw["num_processes"] = eff.num_processes
            if eff.process_id >= 0:
                kw["process_id"] = eff.process_id
            jax.distributed.initialize(initialization_timeout=eff.initialization_timeout, **kw)
        else:
            jax.distributed.initialize(eff.coordinator_address, num_processes=eff.num_processes,
                                       process_id=eff.process_id,
                                       initialization_timeout=eff.initialization_timeout)
    return {"process_index": jax.process_index(), "process_count": jax.process_count(),
            "device_count": jax.device_count(), "local_device_count": jax.local_device_count(),
            "coordinator_address": None if eff is None else eff.coordinator_address}


def barrier(name: str, timeout_s: float = 1800.0) -> None:
    """Wait until every process of a multi-process job reaches ``barrier(name)`` (no-op on one process).

    Uses the coordination service of :func:`jax.distributed.initialize` (no device collective), so it
    tolerates peers that are minutes late (compiling, loading data).
    """
    if jax.process_count() <= 1:
        return
    from jax._src import distributed

    client = distributed.global_state.client
    require(client is not None, "barrier", name, "a job started by jax.distributed.initialize")
    client.wait_at_barrier(name, int(timeout_s * 1000))


__all__ = ["DATA_AXIS", "device_mesh", "mesh_size", "replicated", "split_leading", "replicate", "shard_batch",
           "barrier", "DistributedConfig", "resolve_distributed", "initialize_distributed"]
