"""Published multi-device latency tables, one reader per file: HELP, OneProxy and BRP-NAS (Eagle).

Readers of the reference data in ``../shared/data`` (never shipped with nasjax; see each folder's SOURCE.md):

* HELP (Lee et al., NeurIPS 2021): NAS-Bench-201 (15,625 cells x 27 devices), FBNet (5,000 archs of 22
  blocks x 27 devices) and OFA MobileNetV3 (5,000 subnets x 12 GPU settings), plus HELP's 10 reference
  architectures per space (the rows whose latencies form HELP's hardware embedding).
* OneProxy (Lu et al., SIGMETRICS 2022): 1,999 NAS-Bench-201 cells x 18 devices; each cell is mapped to its
  NAS-Bench-201 index by its arch string, and the mapping is checked against the index column of the file.
  ``rice_edgetpu`` has missing values (-1 upstream), stored as NaN.
* BRP-NAS (Dudziak et al., NeurIPS 2020) desktop Core i7-7820X: 15,284 NAS-Bench-201 cells (ms).

Each CSV is parsed by exactly one function (:func:`read_help_nasbench201_csv`, :func:`read_oneproxy_csv`,
:func:`read_brp_i7_csv`, :func:`load_help_fbnet`, :func:`load_help_ofa`); the NAS-Bench-201 columnar table
(:mod:`nasjax.benchmarks.nasbench201`) and the :class:`LatencySet` loaders both ask them. A set holds
architectures as choice vectors (the nasjax convention), a ``[N, D]`` latency matrix in **milliseconds**
(NaN where a device has no measurement) and device names.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nasjax.benchmarks.csv_files import float_column, int_column, read_csv, require_header, rows_by_arch_string
from nasjax.errors import NasjaxInputError, require
from nasjax.io import read_json, shared_data_dir
from nasjax.spaces.nasbench201 import strs_to_archs

#: file of each source, relative to ../shared/data
HELP_NB201_CSV = "HELP/derived/nasbench201_latency_ms.csv"
HELP_FBNET_CSV = "HELP/derived/fbnet_latency_ms.csv"
HELP_OFA_CSV = "HELP/derived/ofa_mbv3_latency_ms.csv"
HELP_REFERENCE_JSON = "HELP/derived/hardware_embedding_index.json"
ONEPROXY_CSV = "OneProxy/derived/oneproxy_nb201_latency_ms.csv"
BRP_I7_CSV = "brp-nas/derived/desktop-cpu-core-i7-7820x-fp32_latency_ms.csv"

#: FBNet block choices in HELP's op-index order (``op_idx_list`` value -> name), checked against the data.
FBNET_OPS = ("k3_e1", "k3_e1_g2", "k3_e3", "k3_e6", "k5_e1", "k5_e1_g2", "k5_e3", "k5_e6", "skip")
FBNET_BLOCKS = 22

#: HELP's split (paper, Table 2): meta-training devices and the six meta-test devices, NAS-Bench-201.
HELP_TRAIN_DEVICES_NB201 = (
    "1080ti_1", "1080ti_32", "1080ti_256", "silver_4114", "silver_4210r", "samsung_a50", "pixel3",
    "essential_ph_1", "samsung_s7", "titanx_1", "titanx_32", "titanx_256", "gold_6240",
)
HELP_TEST_DEVICES_NB201 = ("titan_rtx_256", "gold_6226", "fpga", "pixel2", "raspi4", "eyeriss")
#: HELP's reported 10-sample Spearman on its six test devices (paper, Table 2, NAS-Bench-201).
HELP_REPORTED_SPEARMAN_NB201 = dict(zip(HELP_TEST_DEVICES_NB201, (0.987, 0.989, 0.985, 0.802, 0.890, 0.940)))

#: OneProxy devices that are the very same HW-NAS-Bench measurements as a HELP device (SOURCE.md).
ONEPROXY_TWINS = {"rice_eyeriss": "eyeriss", "rice_fpga": "fpga", "rice_pixel3": "pixel3", "rice_raspi4": "raspi4"}


@dataclass(frozen=True)
class LatencySet:
    """Latency of ``N`` architectures on ``D`` devices.

    ``archs``: ``int64 [N, P]`` choice vectors of ``space``; ``latency_ms``: ``float64 [N, D]`` (NaN =
    not measured); ``devices``: the ``D`` column names; ``ids``: ``int64 [N]`` row ids in the source's own
    index (NAS-Bench-201 index for NB201 sets, row number otherwise); ``refs``: HELP's reference rows
    (indices into the N rows) when the set has them.
    """

    name: str
    space: str
    archs: np.ndarray
    latency_ms: np.ndarray
    devices: tuple[str, ...]
    ids: np.ndarray
    refs: tuple[int, ...] = ()
    extra: dict = field(default_factory=dict)

    unit: str = "ms"

    def column(self, device: str) -> np.ndarray:
        """Latency (ms) of every row on ``device``; an unknown device names the known ones.

        Args:
          device: a device column name.

        Returns:
          float64 ``[N]`` in ms (NaN where not measured).

        Raises:
          NasjaxInputError: when ``device`` is not a column of the set.
        """
        return self.latency_ms[:, self.device_index(device)]

    def device_index(self, device: str) -> int:
        """The column index of ``device``.

        Args:
          device: a device column name.

        Returns:
          Its index into ``devices`` (and the columns of ``latency_ms``).

        Raises:
          NasjaxInputError: when ``device`` is not a column of the set.
        """
        if device not in self.devices:
            raise NasjaxInputError(f"device: got {device!r}, expected one of {', '.join(self.devices)} ({self.name})")
        return self.devices.index(device)

    def subset_devices(self, devices) -> LatencySet:
        """The same set restricted to (and reordered as) ``devices``.

        Args:
          devices: device column names, in the order wanted.

        Returns:
          A new :class:`LatencySet` with ``latency_ms [N, len(devices)]``; rows, ids and refs unchanged.

        Raises:
          NasjaxInputError: when a device is not a column of the set.
        """
        cols = [self.device_index(d) for d in devices]
        return LatencySet(self.name, self.space, self.archs, self.latency_ms[:, cols], tuple(devices), self.ids,
                          self.refs, dict(self.extra))


@dataclass(frozen=True)
class NB201LatencyFile:
    """The content of one published latency CSV of NAS-Bench-201 cells, as written: each line's arch
    string, its listed NAS-Bench-201 index (``None`` when the file has no such column), the device
    columns and ``latency_ms [lines, devices]`` (NaN where the source marks a missing measurement)."""

    path: Path
    arch_strings: tuple[str, ...]
    listed_index: np.ndarray | None
    devices: tuple[str, ...]
    latency_ms: np.ndarray


def data_root(root=None) -> Path:
    """The reference data folder: ``root`` or ../shared/data.

    Args:
      root: a folder, or ``None``.

    Returns:
      ``Path(root)``, else the shared data folder.

    Raises:
      NasjaxInputError: when ``root`` is ``None`` and the shared data folder is absent.
    """
    return Path(root) if root is not None else shared_data_dir(required=True)


def read_help_nasbench201_csv(root=None) -> NB201LatencyFile:
    """HELP's NAS-Bench-201 latency CSV: ``nb201_index, arch_str, <27 devices>`` (ms).

    Args:
      root: the reference data folder (default ../shared/data).

    Returns:
      The :class:`NB201LatencyFile` (listed index and arch string of every line, ``latency_ms [lines, 27]``).

    Raises:
      NasjaxInputError: when the file is missing, its header differs, or a cell is not a finite number.
    """
    path = data_root(root) / HELP_NB201_CSV
    header, rows = read_csv(path)
    require_header(path, header, ["nb201_index", "arch_str"])
    devices = tuple(header[2:])
    lat = np.stack([float_column(path, rows, j, d) for j, d in enumerate(header) if j >= 2], 1)
    return NB201LatencyFile(path, tuple(r[1] for r in rows), int_column(path, rows, 0, "nb201_index"), devices, lat)


def read_oneproxy_csv(root=None) -> NB201LatencyFile:
    """OneProxy's CSV: ``row, nb201_index, arch_str, <18 devices>`` (ms; upstream ``-1`` = missing -> NaN).

    Args:
      root: the reference data folder (default ../shared/data).

    Returns:
      The :class:`NB201LatencyFile` (``latency_ms [lines, 18]``, NaN where missing).

    Raises:
      NasjaxInputError: when the file is missing, its header differs, or a cell is not a finite number.
    """
    path = data_root(root) / ONEPROXY_CSV
    header, rows = read_csv(path)
    require_header(path, header, ["row", "nb201_index", "arch_str"])
    lat = np.stack([float_column(path, rows, j, d, missing=-1.0) for j, d in enumerate(header) if j >= 3], 1)
    return NB201LatencyFile(path, tuple(r[2] for r in rows), int_column(path, rows, 1, "nb201_index"),
                            tuple(header[3:]), lat)


def read_brp_i7_csv(root=None) -> NB201LatencyFile:
    """BRP-NAS's desktop Core i7-7820X CSV: ``nb201_index, arch_str, arch_vector, latency_ms``.

    Args:
      root: the reference data folder (default ../shared/data).

    Returns:
      The :class:`NB201LatencyFile` with one device, ``i7_7820x`` (``latency_ms [lines, 1]``).

    Raises:
      NasjaxInputError: when the file is missing, its header is not exactly these columns, or a cell is not a
        finite number.
    """
    path = data_root(root) / BRP_I7_CSV
    header, rows = read_csv(path)
    require_header(path, header, ["nb201_index", "arch_str", "arch_vector", "latency_ms"], exact=True)
    lat = float_column(path, rows, 3, "latency_ms")[:, None]
    index = int_column(path, rows, 0, "nb201_index")
    return NB201LatencyFile(path, tuple(r[1] for r in rows), index, ("i7_7820x",), lat)


def help_reference_rows(space: str, root=None) -> tuple[int, ...]:
    """HELP's 10 reference architectures of ``space`` (``nasbench201``/``fbnet``/``ofa``) as row indices.

    Args:
      space: the HELP space key, ``nasbench201``, ``fbnet`` or ``ofa``.
      root: the reference data folder (default ../shared/data).

    Returns:
      The row indices into that space's HELP latency set, as listed in :data:`HELP_REFERENCE_JSON`.

    Raises:
      NasjaxInputError: when the JSON file is missing or not an object of lists, ``space`` is not a key, or an
        entry is not a non-negative integer.
    """
    path = data_root(root) / HELP_REFERENCE_JSON
    table = read_json(path, "HELP reference index")
    require(isinstance(table, dict) and all(isinstance(v, list) for v in table.values()), f"{path}",
            type(table).__name__, "a JSON object of space -> list of row indices")
    require(space in table, "space", space, f"one of {sorted(table)}")
    rows = table[space]
    require(all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in rows), f"{path} {space}", rows,
            "non-negative integer row indices")
    return tuple(int(i) for i in rows)


@functools.lru_cache(maxsize=8)
def _help_nb201(root: str) -> LatencySet:
    f = read_help_nasbench201_csv(root)
    require(np.array_equal(f.listed_index, np.arange(len(f.listed_index))), f"{f.path} nb201_index", "out of order",
            "rows in NAS-Bench-201 index order")
    archs = strs_to_archs(list(f.arch_strings))
    return LatencySet("help_nasbench201", "nasbench201", archs, f.latency_ms, f.devices, f.listed_index,
                      help_reference_rows("nasbench201", root), {"arch_str": list(f.arch_strings)})


def load_help_nasbench201(root=None) -> LatencySet:
    """HELP's NAS-Bench-201 latency: 15,625 cells (NAS-Bench-201 index order) x 27 devices, ms (cached per root).

    Args:
      root: the reference data folder (default ../shared/data).

    Returns:
      The :class:`LatencySet` (``refs``: HELP's reference rows; ``extra["arch_str"]``: the arch strings).

    Raises:
      NasjaxInputError: when a file is missing or malformed, or the rows are not in NAS-Bench-201 index order.
    """
    return _help_nb201(str(data_root(root)))


def _int_list(path, cell: str, line: int, name: str, n: int) -> list[int]:
    """A cell of ``n`` space-separated integers."""
    try:
        vals = [int(v) for v in cell.split()]
    except ValueError:
        vals = []
    if len(vals) != n:
        raise NasjaxInputError(f"{str(path)!r} line {line} column {name!r}: got {cell!r}, expected {n} integers")
    return vals


@functools.lru_cache(maxsize=8)
def _help_fbnet(root: str) -> LatencySet:
    path = Path(root) / HELP_FBNET_CSV
    header, rows = read_csv(path)
    require_header(path, header, ["row", "arch_ops_22_blocks", "op_idx_list"])
    archs = np.array([_int_list(path, r[2], line, "op_idx_list", FBNET_BLOCKS) for line, r in enumerate(rows, 2)],
                     dtype=np.int64)
    names = [r[1].split() for r in rows]
    require(bool(archs.min() >= 0 and archs.max() < len(FBNET_OPS)), f"{path} op_idx_list",
            (int(archs.min()), int(archs.max())), f"op indices in 0..{len(FBNET_OPS) - 1}")
    for a, nm in zip(archs[:50], names[:50]):  # the op-index -> name table is the data's own
        if [FBNET_OPS[i] for i in a] != nm:
            raise NasjaxInputError(f"{path}: op indices {a.tolist()} do not match names {nm}; expected order "
                                   f"{FBNET_OPS}")
    lat = np.stack([float_column(path, rows, j, d) for j, d in enumerate(header) if j >= 3], 1)
    ids = int_column(path, rows, 0, "row")
    return LatencySet("help_fbnet", "fbnet", archs, lat, tuple(header[3:]), ids, help_reference_rows("fbnet", root))


def load_help_fbnet(root=None) -> LatencySet:
    """HELP's FBNet space: 5,000 archs of 22 blocks (op index per block, :data:`FBNET_OPS`) x 27 devices, ms.

    Args:
      root: the reference data folder (default ../shared/data).

    Returns:
      The :class:`LatencySet` (``archs [5000, 22]`` op indices, ``refs``: HELP's reference rows).

    Raises:
      NasjaxInputError: when a file is missing or malformed, or the op indices disagree with the op names.
    """
    return _help_fbnet(str(data_root(root)))


def load_help_ofa(root=None) -> LatencySet:
    """HELP's OFA MobileNetV3 subnets: ``archs`` = [ks_20, e_20, d_5, resolution] integers, 12 GPU settings, ms.

    Args:
      root: the reference data folder (default ../shared/data).

    Returns:
      The :class:`LatencySet` (``archs [N, 46]`` raw values, not choice indices).

    Raises:
      NasjaxInputError: when a file is missing or malformed.
    """
    root = data_root(root)
    path = root / HELP_OFA_CSV
    header, rows = read_csv(path)
    require_header(path, header, ["row", "resolution", "ks_20", "e_20", "d_5"])
    archs = np.array([_int_list(path, r[2], line, "ks_20", 20) + _int_list(path, r[3], line, "e_20", 20)
                      + _int_list(path, r[4], line, "d_5", 5) + _int_list(path, r[1], line, "resolution", 1)
                      for line, r in enumerate(rows, 2)], dtype=np.int64)
    lat = np.stack([float_column(path, rows, j, d) for j, d in enumerate(header) if j >= 5], 1)
    ids = int_column(path, rows, 0, "row")
    return LatencySet("help_ofa", "ofa_mbv3", archs, lat, tuple(header[5:]), ids, help_reference_rows("ofa", root))


def nb201_index_of_strings(strings, root=None, listed=None, name: str = "arch string") -> np.ndarray:
    """NAS-Bench-201 index of each arch string, via HELP's table (:func:`rows_by_arch_string`).

    Args:
      strings: NAS-Bench-201 arch strings (``|op~0|+|op~0|op~1|+...``).
      root: the reference data folder (default ../shared/data).
      listed: the source's own index column, checked against the strings, or ``None``.
      name: the source, for error messages.

    Returns:
      int64 ``[len(strings)]`` NAS-Bench-201 indices, each at most once.

    Raises:
      NasjaxInputError: on an unknown or repeated string, or a listed index that disagrees with its string.
    """
    return rows_by_arch_string(name, list(strings), load_help_nasbench201(root).extra["arch_str"], listed)


def load_oneproxy(root=None) -> LatencySet:
    """OneProxy's 1,999 NAS-Bench-201 cells x 18 devices (ms), ``ids`` = NAS-Bench-201 index by arch string.

    Args:
      root: the reference data folder (default ../shared/data).

    Returns:
      The :class:`LatencySet` (NaN where OneProxy has no measurement).

    Raises:
      NasjaxInputError: when a file is missing or malformed, or an arch string is unknown or disagrees with its
        listed index.
    """
    f = read_oneproxy_csv(root)
    ids = nb201_index_of_strings(f.arch_strings, root, f.listed_index, f"source {f.path}")
    return LatencySet("oneproxy", "nasbench201", strs_to_archs(list(f.arch_strings)), f.latency_ms, f.devices, ids)


def load_brp_i7(root=None) -> LatencySet:
    """BRP-NAS desktop Core i7-7820X (fp32) on 15,284 NAS-Bench-201 cells, ms.

    Args:
      root: the reference data folder (default ../shared/data).

    Returns:
      The :class:`LatencySet` (one device, ``ids`` = NAS-Bench-201 index by arch string).

    Raises:
      NasjaxInputError: when a file is missing or malformed, or an arch string is unknown or disagrees with its
        listed index.
    """
    f = read_brp_i7_csv(root)
    ids = nb201_index_of_strings(f.arch_strings, root, f.listed_index, f"source {f.path}")
    return LatencySet("brp_i7", "nasbench201", strs_to_archs(list(f.arch_strings)), f.latency_ms, f.devices, ids)


def restrict_to_nb201_rows(target: LatencySet, source: LatencySet) -> np.ndarray:
    """``source``'s latency at ``target``'s cells: the rows of ``source`` (NB201 index order) at ``target.ids``.

    Args:
      target: an NB201 set whose ``ids`` are NAS-Bench-201 indices.
      source: an NB201 set with one row per NAS-Bench-201 index, in index order (e.g. HELP's).

    Returns:
      float64 ``[len(target.ids), D_source]`` in ms.

    Raises:
      NasjaxInputError: when either set is not a NAS-Bench-201 set.
    """
    require(target.space == "nasbench201" and source.space == "nasbench201", "space",
            (target.space, source.space), "two NAS-Bench-201 sets")
    return source.latency_ms[target.ids]
