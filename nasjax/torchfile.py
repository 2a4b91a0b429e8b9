"""Read PyTorch ``.pt`` tensor files (zip + pickle) without torch, with a restricted unpickler.

Only what plain tensor files contain is accepted: ``torch._utils._rebuild_tensor_v2``, the typed
storages (``torch.FloatStorage`` ...) and ``collections.OrderedDict``. Anything else in the pickle is
refused (a ``.pt`` file can execute code when loaded with the real ``pickle``; this reader cannot).
"""

from __future__ import annotations

import collections
import io
import pickle
import zipfile
from pathlib import Path

import numpy as np

from nasjax.errors import NasjaxInputError

_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


class _StorageType:
    def __init__(self, name):
        self.dtype = _STORAGE_DTYPES[name]


def _rebuild_tensor_v2(storage, offset, size, stride, *_args):
    arr = storage
    if not size:
        return arr[offset].copy()
    itemsize = arr.itemsize
    return np.lib.stride_tricks.as_strided(
        arr[offset:], shape=tuple(size), strides=tuple(s * itemsize for s in stride)
    ).copy()


class _Unpickler(pickle.Unpickler):
    def __init__(self, f, zf: zipfile.ZipFile, prefix: str, source: str):
        super().__init__(f)
        self._zf, self._prefix, self._source = zf, prefix, source

    def find_class(self, module, name):
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor_v2
        if module == "torch" and name in _STORAGE_DTYPES:
            return lambda *a: _StorageType(name)  # pragma: no cover - not called directly
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        raise NasjaxInputError(f"{self._source}: refuses to unpickle {module}.{name}; expected a plain tensor file")

    def persistent_load(self, pid):
        kind, stype, key, _loc, _numel = pid
        if kind != "storage":
            raise NasjaxInputError(f"{self._source}: unknown persistent id {kind!r}")
        name = stype.__name__ if isinstance(stype, type) else getattr(stype, "__name__", None)
        dtype = stype.dtype if isinstance(stype, _StorageType) else _STORAGE_DTYPES.get(name)
        if dtype is None:
            raise NasjaxInputError(f"{self._source}: unsupported storage {stype!r}")
        raw = self._zf.read(f"{self._prefix}/data/{key}")
        return np.frombuffer(raw, dtype=dtype)


class _TypeFinder(_Unpickler):
    def find_class(self, module, name):
        if module == "torch" and name in _STORAGE_DTYPES:
            return _StorageType(name)
        return super().find_class(module, name)


def load_pt(path) -> object:
    """Load a tensor (or an OrderedDict of tensors) saved with ``torch.save`` as numpy arrays."""
    path = Path(path)
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, FileNotFoundError) as e:
        raise NasjaxInputError(f"{path}: not a readable PyTorch zip file ({e})") from e
    with zf:
        names = [n for n in zf.namelist() if n.endswith("/data.pkl")]
        if not names:
            raise NasjaxInputError(f"{path}: no data.pkl inside; expected a torch.save zip archive")
        prefix = names[0][: -len("/data.pkl")]
        try:
            return _TypeFinder(io.BytesIO(zf.read(names[0])), zf, prefix, str(path)).load()
        except NasjaxInputError:
            raise
        except Exception as e:
            raise NasjaxInputError(f"{path}: corrupted tensor file ({type(e).__name__}: {e})") from e
