"""Multi-device latency tables for few-shot latency prediction: HELP, OneProxy and BRP-NAS (Eagle).

Readers of the reference data in ``../shared/data`` (never shipped with nasjax; see each folder's SOURCE.md):

* HELP (Lee et al., NeurIPS 2021): NAS-Bench-201 (15,625 cells x 27 devices), FBNet (5,000 archs of 22
  blocks x 27 devices) and OFA MobileNetV3 (5,000 subnets x 12 GPU settings), plus HELP's 10 reference
  architectures per space (the rows whose latencies form HELP's hardware embedding).
* OneProxy (Lu et al., SIGMETRICS 2022): 1,999 NAS-Bench-201 cells x 18 devices; each cell is mapped to its
  NAS-Bench-201 index by its arch string (HELP's string -> index table), and the mapping is checked against
  the index column of the derived CSV. ``rice_edgetpu`` has missing values (-1 upstream), stored as NaN.
* BRP-NAS (Dudziak et al., NeurIPS 2020) desktop Core i7-7820X: 15,284 NAS-Bench-201 cells (ms).

Everything is returned as a :class:`LatencySet`: architectures as choice vectors (the nasjax convention),
a ``[N, D]`` latency matrix in **milliseconds** (NaN where a device has no measurement) and device names.
"""

from __future__ import annotations

import csv
import functools
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nasjax.errors import NasjaxInputError, require
from nasjax.io import shared_data_dir
from nasjax.spaces.nasbench201 import strs_to_archs

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
ONEPROXY_HELP_TWINS = {"rice_eyeriss": "eyeriss", "rice_fpga": "fpga", "rice_pixel3": "pixel3", "rice_raspi4": "raspi4"}


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
        """Latency (ms) of every row on ``device``; an unknown device names the known ones."""
        return self.latency_ms[:, self.device_index(device)]

    def device_index(self, device: str) -> int:
        if device not in self.devices:
            raise NasjaxInputError(f"device: got {device!r}, expected one of {', '.join(self.devices)} ({self.name})")
        return self.devices.index(device)

    def subset_devices(self, devices) -> LatencySet:
        cols = [self.device_index(d) for d in devices]
        return LatencySet(self.name, self.space, self.archs, self.latency_ms[:, cols], tuple(devices), self.ids,
                          self.refs, dict(self.extra))


def _data_dir(root) -> Path:
    return Path(root) if root is not None else shared_data_dir(required=True)


def _read_csv(path: Path) -> tuple[list[str], list[list[str]]]:
    if not path.is_file():
        raise NasjaxInputError(f"data_path: no file {str(path)!r}; expected the reference data (see its SOURCE.md)")
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if len(rows) < 2:
        raise NasjaxInputError(f"{path}: {len(rows)} lines, expected a header and data rows")
    return rows[0], rows[1:]


def _float_matrix(rows, cols, path) -> np.ndarray:
    try:
        return np.array([[float(r[c]) for c in cols] for r in rows], dtype=np.float64)
    except (ValueError, IndexError) as e:
        raise NasjaxInputError(f"{path}: non-numeric latency cell ({e}); expected floats in ms") from e


def help_reference_rows(space: str, root=None) -> tuple[int, ...]:
    """HELP's 10 reference architectures of ``space`` (``nasbench201``/``fbnet``/``ofa``) as row indices."""
    path = _data_dir(root) / "HELP" / "derived" / "hardware_embedding_index.json"
    if not path.is_file():
        raise NasjaxInputError(f"data_path: no file {str(path)!r}; expected HELP's derived reference index")
    table = json.loads(path.read_text())
    require(space in table, "space", space, f"one of {sorted(table)}")
    return tuple(int(i) for i in table[space])


@functools.lru_cache(maxsize=8)
def _help_nb201(root: str) -> LatencySet:
    path = Path(root) / "HELP" / "derived" / "nasbench201_latency_ms.csv"
    header, rows = _read_csv(path)
    require(header[:2] == ["nb201_index", "arch_str"], f"{path} header", header[:2], "['nb201_index', 'arch_str', devices...]")
    devices = tuple(header[2:])
    ids = np.array([int(r[0]) for r in rows], dtype=np.int64)
    require(np.array_equal(ids, np.arange(len(ids))), f"{path} nb201_index", "out of order", "rows in NAS-Bench-201 index order")
    archs = strs_to_archs([r[1] for r in rows])
    lat = _float_matrix(rows, range(2, len(header)), path)
    refs = help_reference_rows("nasbench201", root)
    return LatencySet("help_nasbench201", "nasbench201", archs, lat, devices, ids, refs,
                      {"arch_str": [r[1] for r in rows]})


def load_help_nasbench201(root=None) -> LatencySet:
    """HELP's NAS-Bench-201 latency: 15,625 cells (NAS-Bench-201 index order) x 27 devices, ms."""
    return _help_nb201(str(_data_dir(root)))


@functools.lru_cache(maxsize=8)
def _help_fbnet(root: str) -> LatencySet:
    path = Path(root) / "HELP" / "derived" / "fbnet_latency_ms.csv"
    header, rows = _read_csv(path)
    require(header[:3] == ["row", "arch_ops_22_blocks", "op_idx_list"], f"{path} header", header[:3],
            "['row', 'arch_ops_22_blocks', 'op_idx_list', devices...]")
    archs = np.array([[int(v) for v in r[2].split()] for r in rows], dtype=np.int64)
    names = [r[1].split() for r in rows]
    require(archs.shape[1] == FBNET_BLOCKS, f"{path} op_idx_list", archs.shape[1], f"{FBNET_BLOCKS} blocks")
    for a, nm in zip(archs[:50], names[:50]):  # the op-index -> name table is the data's own
        if [FBNET_OPS[i] for i in a] != nm:
            raise NasjaxInputError(f"{path}: op indices {a.tolist()} do not match names {nm}; expected order {FBNET_OPS}")
    lat = _float_matrix(rows, range(3, len(header)), path)
    ids = np.array([int(r[0]) for r in rows], dtype=np.int64)
    return LatencySet("help_fbnet", "fbnet", archs, lat, tuple(header[3:]), ids, help_reference_rows("fbnet", root))


def load_help_fbnet(root=None) -> LatencySet:
    """HELP's FBNet space: 5,000 archs of 22 blocks (op index per block, :data:`FBNET_OPS`) x 27 devices, ms."""
    return _help_fbnet(str(_data_dir(root)))


def load_help_ofa(root=None) -> LatencySet:
    """HELP's OFA MobileNetV3 subnets: ``archs`` = [ks_20, e_20, d_5, resolution] integers, 12 GPU settings, ms."""
    path = _data_dir(root) / "HELP" / "derived" / "ofa_mbv3_latency_ms.csv"
    header, rows = _read_csv(path)
    require(header[:5] == ["row", "resolution", "ks_20", "e_20", "d_5"], f"{path} header", header[:5],
            "['row', 'resolution', 'ks_20', 'e_20', 'd_5', devices...]")
    archs = np.array([[int(v) for v in r[2].split()] + [int(v) for v in r[3].split()]
                      + [int(v) for v in r[4].split()] + [int(r[1])] for r in rows], dtype=np.int64)
    require(archs.shape[1] == 46, f"{path} arch", archs.shape[1], "20 ks + 20 e + 5 d + resolution")
    lat = _float_matrix(rows, range(5, len(header)), path)
    ids = np.array([int(r[0]) for r in rows], dtype=np.int64)
    return LatencySet("help_ofa", "ofa_mbv3", archs, lat, tuple(header[5:]), ids, help_reference_rows("ofa", root))


def nb201_index_of_strings(strings, root=None) -> np.ndarray:
    """NAS-Bench-201 index of each arch string, via HELP's table; an unknown string is an error."""
    help_set = load_help_nasbench201(root)
    table = {s: i for i, s in enumerate(help_set.extra["arch_str"])}
    out = np.empty(len(strings), dtype=np.int64)
    for j, s in enumerate(strings):
        if s not in table:
            raise NasjaxInputError(f"arch string: {s!r} is not a NAS-Bench-201 cell; expected an official arch string")
        out[j] = table[s]
    return out


def load_oneproxy(root=None) -> LatencySet:
    """OneProxy's 1,999 NAS-Bench-201 cells x 18 devices (ms), ``ids`` = NAS-Bench-201 index by arch string."""
    root = _data_dir(root)
    path = root / "OneProxy" / "derived" / "oneproxy_nb201_latency_ms.csv"
    header, rows = _read_csv(path)
    require(header[:3] == ["row", "nb201_index", "arch_str"], f"{path} header", header[:3],
            "['row', 'nb201_index', 'arch_str', devices...]")
    strings = [r[2] for r in rows]
    ids = nb201_index_of_strings(strings, root)
    listed = np.array([int(r[1]) for r in rows], dtype=np.int64)
    if not np.array_equal(ids, listed):
        bad = int(np.flatnonzero(ids != listed)[0])
        raise NasjaxInputError(f"{path} row {bad}: nb201_index {listed[bad]} but arch string maps to {ids[bad]}")
    lat = _float_matrix(rows, range(3, len(header)), path)
    lat[lat < 0] = np.nan  # upstream marks missing measurements with -1.0
    return LatencySet("oneproxy", "nasbench201", strs_to_archs(strings), lat, tuple(header[3:]), ids)


def load_brp_i7(root=None) -> LatencySet:
    """BRP-NAS desktop Core i7-7820X (fp32) on 15,284 NAS-Bench-201 cells, ms (converted from seconds)."""
    root = _data_dir(root)
    path = root / "brp-nas" / "derived" / "desktop-cpu-core-i7-7820x-fp32_latency_ms.csv"
    header, rows = _read_csv(path)
    require(header == ["nb201_index", "arch_str", "arch_vector", "latency_ms"], f"{path} header", header,
            "['nb201_index', 'arch_str', 'arch_vector', 'latency_ms']")
    strings = [r[1] for r in rows]
    ids = nb201_index_of_strings(strings, root)
    require(np.array_equal(ids, [int(r[0]) for r in rows]), f"{path} nb201_index", "mismatch", "index of the arch string")
    lat = _float_matrix(rows, [3], path)
    return LatencySet("brp_i7", "nasbench201", strs_to_archs(strings), lat, ("i7_7820x",), ids)


def restrict_to_nb201_rows(target: LatencySet, source: LatencySet) -> np.ndarray:
    """Rows of ``source`` (an NB201 set in index order) matching ``target.ids``: ``source`` values at target's cells."""
    require(target.space == "nasbench201" and source.space == "nasbench201", "space",
            (target.space, source.space), "two NAS-Bench-201 sets")
    return source.latency_ms[target.ids]


def nb201_live_edges(archs) -> np.ndarray:
    """``bool [N, 6]``: edge carries a non-``none`` op on a path from the cell input (node 0) to its
    output (node 3). Ops on other edges are dead code that deployed graphs prune."""
    from nasjax.spaces.nasbench201 import EDGES, nasbench201_space

    a = np.atleast_2d(nasbench201_space().validate(archs))
    on = a != 0  # op index 0 is "none"

    def reach(start, order, src, dst):
        # nodes connected to ``start`` through non-none edges, walking ``src -> dst`` of each edge
        got = {start: np.ones(len(a), bool)}
        for node in order:
            got[node] = np.zeros(len(a), bool)
            for e, edge in enumerate(EDGES):
                if edge[dst] == node:
                    got[node] |= on[:, e] & got[edge[src]]
        return got

    fwd = reach(0, (1, 2, 3), src=1, dst=0)  # EDGES are (to, from)
    bwd = reach(3, (2, 1, 0), src=0, dst=1)
    return np.stack([on[:, e] & fwd[f] & bwd[t] for e, (t, f) in enumerate(EDGES)], 1)


def nb201_live_op_counts(archs) -> np.ndarray:
    """``float [N, 4]``: number of live edges (:func:`nb201_live_edges`) holding skip_connect,
    nor_conv_1x1, nor_conv_3x3 and avg_pool_3x3: the features of the per-op cost regression
    latency ~= c0 + sum_op c_op * count_op (ms)."""
    from nasjax.spaces.nasbench201 import nasbench201_space

    a = np.atleast_2d(nasbench201_space().validate(archs))
    live = nb201_live_edges(a)
    return np.stack([((a == o) & live).sum(1) for o in (1, 2, 3, 4)], 1).astype(np.float64)


#: HELP's NAS-Bench-201 meta-test protocol (its ``main.py`` / ``loader.py`` at commit 45f70eb, README command):
#: ``--num_meta_train_sample 900``, ``--num_query 1000`` (default), ``remove_outlier=True``.
HELP_NB201_PROTOCOL = {"num_meta_train_sample": 900, "num_query": 1000, "trim": 0.1, "num_samples": 10}


def help_query_rows(latency_ms, num_meta_train_sample: int = 900, num_query: int = 1000, trim: float = 0.1):
    """HELP's evaluation rows for one device, as its loader builds them: the query pool is rows
    ``[num_meta_train_sample, num_meta_train_sample + num_query)`` (NAS-Bench-201 index order) and,
    with HELP's ``remove_outlier``, only the middle ``1 - 2*trim`` of that pool by *this device's*
    latency is kept (the 10 % fastest and 10 % slowest are dropped: 800 of 1,000 rows). HELP's reported
    Spearman is computed on these rows. Also returns HELP's fine-tuning pool for the device (rows
    ``[0, num_meta_train_sample)`` trimmed the same way), from which HELP draws its ``num_samples`` random
    fine-tuning architectures *in addition to* the 10 reference architectures of its hardware embedding.
    Returns ``(query_rows, finetune_pool)``, both sorted int64."""
    y = np.asarray(latency_ms, np.float64).reshape(-1)
    require(0 <= trim < 0.5, "trim", trim, "a fraction in [0, 0.5)")
    require(num_meta_train_sample + num_query <= len(y), "num_query", num_query,
            f"num_meta_train_sample + num_query <= {len(y)} rows")

    def middle(rows):
        order = rows[np.argsort(y[rows], kind="stable")]
        return np.sort(order[int(len(rows) * trim):int(len(rows) * (1 - trim))])

    pool = np.arange(num_meta_train_sample, dtype=np.int64)
    query = np.arange(num_meta_train_sample, num_meta_train_sample + num_query, dtype=np.int64)
    return middle(query), middle(pool)
