"""DGL's published data (Wang & Zhang, IEEE TMC 2023), one reader for every file of its ``data/`` and ``result/``.

A DGL space folder (``../shared/data/DGL/data/<space>``, ``<space>`` = ``nasbench201`` or ``fbnetv3``) holds

* ``net.txt``: one architecture per line (NB201: 6 op codes in 1..5 = nasjax choice + 1; FBNetV3: the 28
  gene values of :mod:`nasjax.spaces.fbnetv3`);
* ``a.txt``: one "network parameter" A per line of ``net.txt`` (the authors' regression target, derived from
  their 12 training phones, whose own data is not published);
* ``hardware/<device>.txt``: 4 hardware parameters (:data:`HW_FIELDS`);
  ``latency/<device>.txt``: the measured latency of every line of ``net.txt``;
* ``NAS/``: the NB201 NAS pool ``net.txt`` + ``acc.txt`` (4000 archs, CIFAR-100 test accuracy %) and the
  hardware parameters of NAS target devices (``NAS/<device>.txt``; ``net.txt`` / ``acc.txt`` are data, not
  devices);

and ``../shared/data/DGL/result/<space>/<device>_timepre.txt`` the authors' shipped predictions.

Every file is read strictly (UTF-8 text, whitespace-separated finite numbers with a finite sum; binary
bytes, ``nan``/``inf`` or a wrong count name the file). Units: DGL never states them; ``a.txt`` and the
latency files share one raw unit that fits milliseconds (:data:`LATENCY_UNIT`), and DGL divides both by
:data:`A_SCALE` = 100 before training. nasjax keeps raw units; :func:`authors_predictions` multiplies the
shipped ``int(latency / 100)`` files back by 100.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nasjax.errors import NasjaxInputError, require
from nasjax.io import read_text, shared_data_dir
from nasjax.spaces.base import get_space
from nasjax.spaces.fbnetv3 import genes_to_arch

A_SCALE = 100.0
LATENCY_UNIT = "ms"  # DGL's raw latency-file unit (not stated by the authors; see the module docstring)
HW_FIELDS = ("frequency", "dispatch", "cache", "memory_speed")
DGL_SPACES = ("nasbench201", "fbnetv3")
#: files of ``NAS/`` that are data (the NB201 pool and its accuracies), not a device's hardware parameters
NAS_POOL_FILES = ("net.txt", "acc.txt")
# R published in the paper (NAS-Bench-201 Table; FBNetV3 Table), keyed by device. The shipped
# result/*_timepre.txt files reproduce each value to 3 decimals when scored on all archs (see
# :func:`authors_predictions`), which fixes the device of each FBNetV3 value.
PUBLISHED_R = {
    "nasbench201": {
        "Huawei Mate 20": 0.920,
        "Motorola Moto E6s": 0.901,
        "Samsung Galaxy A10s": 0.904,
        "Sony Xperia XZ2": 0.877,
        "Xiaomi Redmi 5 Plus": 0.918,
    },
    "fbnetv3": {"Asus ROG Phone 3": 0.639, "Oppo A5": 0.838, "Samsung Galaxy S8+": 0.760, "Xiaomi Mi 8 Lite": 0.826},
}


def check_space(space: str) -> str:
    """``space`` if it is one of :data:`DGL_SPACES`, else an error naming the field ``search_space``.

    Args:
      space: ``nasbench201`` or ``fbnetv3``.

    Returns:
      ``space`` unchanged.

    Raises:
      NasjaxInputError: on any other value.
    """
    if space not in DGL_SPACES:
        raise NasjaxInputError(f"search_space: got {space!r}, expected one of {', '.join(DGL_SPACES)}")
    return space


def default_data_path(space: str) -> Path:
    """``../shared/data/DGL/data/<space>``.

    Args:
      space: ``nasbench201`` or ``fbnetv3``.

    Returns:
      The folder's path (not checked for existence).

    Raises:
      NasjaxInputError: on an unknown space, or when the shared data folder is absent.
    """
    return shared_data_dir(required=True) / "DGL" / "data" / check_space(space)


def default_result_path(space: str) -> Path:
    """``../shared/data/DGL/result/<space>`` (the authors' shipped predictions).

    Args:
      space: ``nasbench201`` or ``fbnetv3``.

    Returns:
      The folder's path (not checked for existence).

    Raises:
      NasjaxInputError: on an unknown space, or when the shared data folder is absent.
    """
    return shared_data_dir(required=True) / "DGL" / "result" / check_space(space)


def read_numbers(path, field: str) -> np.ndarray:
    """Whitespace-separated numbers of a DGL text file, as ``float64``.

    Args:
      path: the file.
      field: what the file is (``"latency file of 'Oppo A5'"``), named by every error.
    Returns:
      The values in file order: finite, with a finite sum (so means and scales computed from them are too).
    """
    p = Path(path)
    text = read_text(p, field)
    try:
        vals = np.array([float(t) for t in text.split()], dtype=np.float64)
    except ValueError as e:
        raise NasjaxInputError(f"{field} {str(p)!r}: non-numeric entry ({e}); expected whitespace-separated "
                               "numbers") from None
    if not np.all(np.isfinite(vals)):
        i = int(np.flatnonzero(~np.isfinite(vals))[0])
        raise NasjaxInputError(f"{field} {str(p)!r}: entry {i} is {vals[i]!r}; expected finite numbers")
    with np.errstate(over="ignore"):
        total = vals.sum()
    if not np.isfinite(total):
        raise NasjaxInputError(f"{field} {str(p)!r}: the values overflow when summed; expected finite sums")
    return vals


def check_hardware(hw, device: str = "device") -> np.ndarray:
    """Four hardware parameters (:data:`HW_FIELDS`), each finite and strictly positive.

    Args:
      hw: the four values (any shape with 4 entries) in the order of :data:`HW_FIELDS`.
      device: the device they belong to, named by every error.

    Returns:
      The parameters as float64 ``[4]``.

    Raises:
      NasjaxInputError: when there are not 4 values or one is not finite and positive.
    """
    v = np.asarray(hw, dtype=np.float64).reshape(-1)
    if v.size != 4:
        raise NasjaxInputError(
            f"hardware parameters of {device!r}: got {v.size} values {v.tolist()}, expected 4 "
            f"({', '.join(HW_FIELDS)})"
        )
    for name, x in zip(HW_FIELDS, v):
        if not (np.isfinite(x) and x > 0):
            raise NasjaxInputError(f"hardware parameter {name} of {device!r}: got {x!r}, expected a finite number > 0")
    return v


def list_devices(data_path, sub: str = "hardware") -> list[str]:
    """Devices with a file in ``<data_path>/<sub>`` (``hardware``, ``latency`` or ``NAS``).

    The NAS pool's ``net.txt`` / ``acc.txt`` are not devices.

    Args:
      data_path: a DGL space folder.
      sub: the sub-folder to list.

    Returns:
      The device names (file names without ``.txt``), sorted; empty when the sub-folder is absent.
    """
    d = Path(data_path) / sub
    if not d.is_dir():
        return []
    return sorted(p.name[:-4] for p in d.glob("*.txt") if p.is_file() and p.name not in NAS_POOL_FILES)


def load_hardware(data_path, device: str, sub: str = "hardware") -> np.ndarray:
    """Four hardware parameters of ``device`` from ``<data_path>/<sub>/<device>.txt`` (validated).

    Args:
      data_path: a DGL space folder.
      device: the device name (file name without ``.txt``).
      sub: the sub-folder, ``hardware`` or ``NAS``.

    Returns:
      float64 ``[4]`` in the order of :data:`HW_FIELDS`.

    Raises:
      NasjaxInputError: when there is no such file (listing the known devices) or it does not hold 4 finite
        positive numbers.
    """
    p = Path(data_path) / sub / f"{device}.txt"
    if device in (n[:-4] for n in NAS_POOL_FILES) or not p.is_file():
        known = list_devices(data_path, sub)
        raise NasjaxInputError(
            f"device {device!r}: no hardware file {str(p)!r}; known devices: {', '.join(known) or '(none)'}"
        )
    return check_hardware(read_numbers(p, f"hardware file of {device!r}"), device)


def target_hardware(data_path, device: str) -> np.ndarray:
    """Hardware parameters of a NAS target: ``NAS/<device>.txt``, else ``hardware/<device>.txt``.

    Args:
      data_path: a DGL space folder.
      device: the target device name.

    Returns:
      float64 ``[4]`` in the order of :data:`HW_FIELDS`.

    Raises:
      NasjaxInputError: when neither folder has the device (listing the known ones) or its file is invalid.
    """
    root = Path(data_path)
    for sub in ("NAS", "hardware"):
        if device not in (n[:-4] for n in NAS_POOL_FILES) and (root / sub / f"{device}.txt").is_file():
            return load_hardware(root, device, sub)
    known = sorted(set(list_devices(root, "NAS")) | set(list_devices(root, "hardware")))
    raise NasjaxInputError(f"nas_target_device {device!r}: no hardware parameters in {root}/NAS or {root}/hardware; "
                           f"known devices: {', '.join(known) or '(none)'}")


def load_latency(data_path, device: str, n: int) -> np.ndarray:
    """Measured latency (raw units) of the ``n`` architectures of ``net.txt`` on ``device``; all > 0.

    Args:
      data_path: a DGL space folder.
      device: the device name (``latency/<device>.txt``).
      n: the number of architectures in ``net.txt``.

    Returns:
      float64 ``[n]`` in DGL's raw unit (:data:`LATENCY_UNIT`).

    Raises:
      NasjaxInputError: when the file is missing, unreadable, does not hold ``n`` values or holds one <= 0.
    """
    p = Path(data_path) / "latency" / f"{device}.txt"
    if not p.is_file():
        known = list_devices(data_path, "latency")
        raise NasjaxInputError(
            f"device {device!r}: no measured latency file {str(p)!r}; devices with latency: "
            f"{', '.join(known) or '(none)'}"
        )
    v = read_numbers(p, f"latency file of {device!r}")
    require(v.size == n, f"latency file of {device!r}", v.size, f"{n} values, one per row of net.txt")
    require(bool(np.all(v > 0)), f"latency file of {device!r}", "a non-positive value", "latencies > 0")
    return v


def read_archs(space: str, path) -> np.ndarray:
    """DGL's ``net.txt`` (NB201: 6 ints in 1..5; FBNetV3: 28 gene values) -> choice indices ``[N, P]``.

    Args:
      space: ``nasbench201`` or ``fbnetv3``.
      path: the ``net.txt`` file.

    Returns:
      int64 choice indices ``[N, 6]`` (NB201, op code - 1) or ``[N, P]`` of the FBNetV3 space
      (:func:`~nasjax.spaces.fbnetv3.genes_to_arch`).

    Raises:
      NasjaxInputError: on an unknown space, an unreadable file, a count that is not a multiple of the line
        length, non-integer entries or choices outside the space.
    """
    check_space(space)
    vals = read_numbers(path, "net.txt")
    p = 6 if space == "nasbench201" else 28
    require(vals.size > 0 and vals.size % p == 0, f"net.txt {str(path)!r}", f"{vals.size} numbers",
            f"a positive multiple of {p} ({p} per line)")
    raw = vals.reshape(-1, p)
    require(bool(np.all(raw == np.round(raw))), f"net.txt {str(path)!r}", "non-integer entries", "integers")
    raw = raw.astype(np.int64)
    if space == "nasbench201":
        return get_space("nasbench201").validate(raw - 1, f"net.txt {path}")
    return genes_to_arch(raw)


@dataclass
class DGLData:
    """DGL's data of one space: choice-index ``archs [N, P]``, ``A [N]`` and ``latency[device] [N]`` in raw
    units, ``hardware[device] [4]``. ``corrupt [N]`` marks rows of ``a.txt`` inconsistent with the rest
    (filled by :func:`nasjax.hardware.dgl.load_dgl`; ``None`` straight from :func:`read_dgl`)."""

    space: str
    path: Path
    archs: np.ndarray
    A: np.ndarray
    latency: dict[str, np.ndarray]
    hardware: dict[str, np.ndarray]
    corrupt: np.ndarray | None = None

    @property
    def devices(self) -> list[str]:
        """The devices with a latency column, sorted."""
        return sorted(self.latency)


def read_dgl(space: str, data_path=None, devices: Sequence[str] | None = None) -> DGLData:
    """Read ``net.txt``, ``a.txt`` and every (or each named) device's hardware and latency files.

    Args:
      space: ``nasbench201`` or ``fbnetv3``.
      data_path: the space folder (default :func:`default_data_path`).
      devices: devices to read; default every device with a latency file. An empty list reads none.
    Returns:
      :class:`DGLData` with ``corrupt = None``.
    """
    check_space(space)
    root = Path(data_path) if data_path else default_data_path(space)
    require(root.is_dir(), "data_path", str(root), "a DGL data folder with net.txt, a.txt, hardware/, latency/")
    archs = read_archs(space, root / "net.txt")
    A = read_numbers(root / "a.txt", "a.txt")
    require(A.size == len(archs), "a.txt", f"{A.size} values", f"{len(archs)} (one per row of net.txt)")
    require(bool(np.all(A > 0)), "a.txt", "a non-positive value", "A > 0")
    devs = list(devices) if devices is not None else list_devices(root, "latency")
    lat, hw = {}, {}
    for d in devs:
        hw[d] = load_hardware(root, d)
        lat[d] = load_latency(root, d, len(archs))
    return DGLData(space, root, archs, A, lat, hw)


def read_nas_pool(nas_dir) -> tuple[np.ndarray, np.ndarray]:
    """DGL's NB201 NAS pool: ``NAS/net.txt`` + ``NAS/acc.txt`` -> ``(archs [N, 6], accuracy [N] %)``.

    Args:
      nas_dir: DGL's ``NAS`` folder.

    Returns:
      ``(archs int64 [N, 6], accuracy float64 [N])``, CIFAR-100 test accuracy in %.

    Raises:
      NasjaxInputError: when a file is missing or malformed, the counts differ, or an accuracy is outside
        [0, 100].
    """
    base = Path(nas_dir)
    archs = read_archs("nasbench201", base / "net.txt")
    acc = read_numbers(base / "acc.txt", "NAS/acc.txt")
    require(acc.size == len(archs), "NAS/acc.txt", acc.size, f"{len(archs)} values, one per row of NAS/net.txt")
    require(bool(np.all((acc >= 0) & (acc <= 100))), "NAS/acc.txt", "a value outside [0, 100]", "accuracies in %")
    return archs, acc


def has_authors_predictions(space: str, device: str, result_path=None) -> bool:
    """Whether the authors shipped a prediction file for ``device``.

    Args:
      space: ``nasbench201`` or ``fbnetv3``.
      device: the device name.
      result_path: the folder of ``<device>_timepre.txt`` files; default the shared data's ``DGL/result/<space>``
        (False when the shared data is absent).

    Returns:
      True when ``<result_path>/<device>_timepre.txt`` exists.

    Raises:
      NasjaxInputError: on an unknown space.
    """
    check_space(space)
    if result_path is None:
        shared = shared_data_dir()
        if shared is None:
            return False
        result_path = shared / "DGL" / "result" / space
    return (Path(result_path) / f"{device}_timepre.txt").is_file()


def authors_predictions(space: str, device: str, result_path=None) -> np.ndarray:
    """The authors' shipped predictions ``result/<space>/<device>_timepre.txt``, back in raw units.

    latency = 100 * timepre (the file holds ``int(predicted_latency / 100)``; 100 = :data:`A_SCALE`).

    Args:
      space: ``nasbench201`` or ``fbnetv3``.
      device: the device name.
      result_path: the folder of the prediction files (default :func:`default_result_path`).

    Returns:
      float64 ``[N]``, one prediction per line of ``net.txt``, in DGL's raw unit.

    Raises:
      NasjaxInputError: on an unknown space, a missing file (listing the available devices) or an unreadable one.
    """
    check_space(space)
    root = Path(result_path) if result_path else default_result_path(space)
    p = root / f"{device}_timepre.txt"
    if not p.is_file():
        known = sorted(q.name[: -len("_timepre.txt")] for q in root.glob("*_timepre.txt"))
        raise NasjaxInputError(f"device {device!r}: no shipped prediction {str(p)!r}; available: {', '.join(known)}")
    return read_numbers(p, "timepre") * A_SCALE
