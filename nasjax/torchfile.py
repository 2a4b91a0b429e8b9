"""Read PyTorch ``.pt`` tensor files (``torch.save`` zip + pickle) without torch, with a restricted unpickler.

A ``torch.save`` archive is a zip holding ``<prefix>/data.pkl`` (the pickled object), one member
``<prefix>/data/<key>`` of raw little-endian bytes per storage, and small text members (``version``,
``byteorder``). Tensors are pickled as ``torch._utils._rebuild_tensor_v2(storage, offset, size, stride,
requires_grad, hooks)``: element ``(i_0, ..., i_{n-1})`` of the tensor is storage element
``offset + sum_k i_k * stride[k]``.

Only what plain tensor files contain is accepted: that rebuild function, the typed storages
(``torch.FloatStorage`` ...) and ``collections.OrderedDict``; anything else in the pickle is refused (a
``.pt`` file can execute code when loaded with the real ``pickle``; this reader cannot). Before a tensor
is built, its storage member must exist and hold exactly the declared number of elements, and the
tensor's offset, shape and strides must address only elements of that storage:
``0 <= offset`` and ``offset + sum_k (size[k] - 1) * stride[k] < numel(storage)``. Every violation raises
:class:`~nasjax.errors.NasjaxInputError` naming the file, the tensor and the storage member.
"""

from __future__ import annotations

import collections
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from nasjax.errors import NasjaxInputError
from nasjax.io import restricted_unpickle

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
FORMAT_VERSIONS = (1, 2, 3)  # values of the archive's ``version`` member this reader understands
MAX_BYTES = 1 << 30  # refuse a member, or a tensor, larger than this (1 GiB)
MAX_DEPTH = 64  # nesting depth of containers around the tensors
_SCALARS = (bool, int, float, str, type(None))


class _StorageType:
    """Stands for ``torch.<Name>Storage`` inside the pickle (never called)."""

    def __init__(self, name: str):
        self.name = name
        self.dtype = np.dtype(_STORAGE_DTYPES[name])

    def __repr__(self) -> str:
        return f"torch.{self.name}"


class _Storage:
    """One storage member read from the archive: its elements and the member name."""

    def __init__(self, values: np.ndarray, member: str):
        self.values, self.member = values, member


class _TensorSpec:
    """Arguments of one ``_rebuild_tensor_v2`` call; the tensor is built after unpickling, once named."""

    def __init__(self, args: tuple):
        self.args = args


def _rebuild_tensor_v2(*args):
    return _TensorSpec(args)


def _is_int(x) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _int_tuple(x) -> bool:
    return isinstance(x, (tuple, list)) and all(_is_int(v) for v in x)


def _build_tensor(spec: _TensorSpec, where: str) -> np.ndarray:
    """The tensor a rebuild call describes, after checking it stays inside its storage.

    Element ``i`` of the result is ``storage[offset + sum_k i_k * stride[k]]``.
    """
    if len(spec.args) < 4:
        raise NasjaxInputError(f"{where}: rebuild call with {len(spec.args)} arguments, expected (storage, "
                               "offset, size, stride, ...)")
    storage, offset, size, stride = spec.args[:4]
    if not isinstance(storage, _Storage):
        raise NasjaxInputError(f"{where}: storage is {type(storage).__name__}, expected a storage of the archive")
    values, member = storage.values, storage.member
    n = int(values.size)
    what = f"{where} (storage {member!r}, {n} {values.dtype} values)"
    if not _is_int(offset) or offset < 0:
        raise NasjaxInputError(f"{what}: offset {offset!r}, expected an integer >= 0")
    if not _int_tuple(size) or any(s < 0 for s in size):
        raise NasjaxInputError(f"{what}: shape {size!r}, expected a tuple of integers >= 0")
    if not _int_tuple(stride) or len(stride) != len(size) or any(s < 0 for s in stride):
        raise NasjaxInputError(f"{what}: strides {stride!r} for shape {tuple(size)}, expected {len(size)} "
                               "integers >= 0")
    size, stride = tuple(size), tuple(stride)
    numel = 1
    for s in size:
        numel *= s  # Python ints: no overflow
    if numel * values.itemsize > MAX_BYTES:
        raise NasjaxInputError(f"{what}: shape {size} is {numel} elements, expected at most "
                               f"{MAX_BYTES // values.itemsize} ({MAX_BYTES} bytes)")
    if numel == 0:
        if offset > n:
            raise NasjaxInputError(f"{what}: offset {offset} beyond the storage, expected <= {n}")
        return np.zeros(size, values.dtype)
    last = offset + sum((s - 1) * st for s, st in zip(size, stride))
    if last >= n:
        raise NasjaxInputError(
            f"{what}: shape {size} with strides {stride} at offset {offset} reads element {last}, expected a "
            f"tensor inside its storage (elements 0..{n - 1})"
        )
    # strides of length-1 dimensions never move; zero them so that no stride overflows numpy's int64
    byte_strides = tuple(0 if s == 1 else st * values.itemsize for s, st in zip(size, stride))
    view = np.lib.stride_tricks.as_strided(values[offset:], shape=size, strides=byte_strides, writeable=False)
    return np.array(view, copy=True)


_ALLOWED = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("collections", "OrderedDict"): collections.OrderedDict,
    **{("torch", name): _StorageType(name) for name in _STORAGE_DTYPES},
}


class _StorageReader:
    """``persistent_load`` of a torch archive: reads and checks each storage member once."""

    def __init__(self, zf: zipfile.ZipFile, prefix: str, source: str, byteorder: str):
        self._zf, self._prefix, self._source, self._byteorder = zf, prefix, source, byteorder
        self._storages: dict[str, tuple[np.dtype, int, _Storage]] = {}

    def __call__(self, pid):
        src = self._source
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise NasjaxInputError(f"{src}: persistent id {str(pid)[:80]}, expected ('storage', type, key, "
                                   "location, numel)")
        _, stype, key, _location, numel = pid
        if not isinstance(stype, _StorageType):
            raise NasjaxInputError(f"{src}: storage type {str(stype)[:80]}, expected one of "
                                   + ", ".join(f"torch.{n}" for n in _STORAGE_DTYPES))
        if not isinstance(key, str) or not key or "/" in key:
            raise NasjaxInputError(f"{src}: storage key {str(key)[:80]!r}, expected a member name under "
                                   f"{self._prefix}/data/")
        if not _is_int(numel) or numel < 0:
            raise NasjaxInputError(f"{src}: storage {key!r} declares {str(numel)[:40]} elements, expected an "
                                   "integer >= 0")
        if key in self._storages:
            dtype, n, storage = self._storages[key]
            if (dtype, n) != (stype.dtype, numel):
                raise NasjaxInputError(f"{src}: storage {key!r} declared as {n} {dtype} and as {numel} "
                                       f"{stype.dtype}; expected one declaration per storage")
            return storage
        member = f"{self._prefix}/data/{key}"
        if numel * stype.dtype.itemsize > MAX_BYTES:
            raise NasjaxInputError(f"{src}: storage {member!r} declares {numel} elements, expected at most "
                                   f"{MAX_BYTES // stype.dtype.itemsize}")
        raw = _read_member(self._zf, member, src)
        expected = numel * stype.dtype.itemsize
        if len(raw) != expected:
            raise NasjaxInputError(f"{src}: storage member {member!r} holds {len(raw)} bytes, expected {expected} "
                                   f"({numel} {stype.dtype} values as declared)")
        if stype.dtype == np.bool_ and raw and max(raw) > 1:
            raise NasjaxInputError(f"{src}: bool storage {member!r} holds bytes other than 0/1")
        order = "<" if self._byteorder == "little" else ">"
        values = np.frombuffer(raw, dtype=stype.dtype.newbyteorder(order)).astype(stype.dtype, copy=False)
        storage = _Storage(values, member)
        self._storages[key] = (stype.dtype, numel, storage)
        return storage


def _read_member(zf: zipfile.ZipFile, name: str, source: str) -> bytes:
    try:
        info = zf.getinfo(name)
    except KeyError:
        raise NasjaxInputError(f"{source}: zip member {name!r} is missing; expected a complete torch.save "
                               "archive") from None
    if info.file_size > MAX_BYTES:
        raise NasjaxInputError(f"{source}: zip member {name!r} is {info.file_size} bytes, expected at most {MAX_BYTES}")
    try:
        return zf.read(info)
    except Exception as e:  # zipfile/zlib raise BadZipFile, zlib.error, EOFError, OSError, ... on damage
        raise NasjaxInputError(f"{source}: zip member {name!r} is unreadable ({type(e).__name__}: {e}); "
                               "expected an intact torch.save archive") from None


def _small_text(zf: zipfile.ZipFile, name: str, source: str) -> str | None:
    if name not in zf.NameToInfo:
        return None
    raw = _read_member(zf, name, source)
    try:
        return raw.decode("ascii").strip()
    except UnicodeDecodeError:
        raise NasjaxInputError(f"{source}: zip member {name!r} is not ASCII text") from None


def _materialise(obj: Any, source: str) -> Any:
    """Replace every rebuild spec in the unpickled object by its checked tensor; refuse foreign leaves."""
    built: dict[int, np.ndarray] = {}

    def walk(x, path: str, depth: int, active: frozenset):
        where = f"{source}: tensor {path or '(root)'}"
        if depth > MAX_DEPTH:
            raise NasjaxInputError(f"{source}: {path}: nested deeper than {MAX_DEPTH}, expected a flat tensor file")
        if isinstance(x, _TensorSpec):
            if id(x) not in built:
                built[id(x)] = _build_tensor(x, where)
            return built[id(x)]
        if isinstance(x, _SCALARS):
            return x
        if id(x) in active:
            raise NasjaxInputError(f"{source}: {path}: contains itself, expected a tree of tensors")
        inner = active | {id(x)}
        if isinstance(x, dict):
            out = collections.OrderedDict() if isinstance(x, collections.OrderedDict) else {}
            for k, v in x.items():
                if not isinstance(k, (str, int)) or isinstance(k, bool):
                    raise NasjaxInputError(f"{source}: {path or '(root)'}: key {k!r}, expected str or int keys")
                out[k] = walk(v, f"{path}[{k!r}]", depth + 1, inner)
            return out
        if isinstance(x, (list, tuple)):
            items = [walk(v, f"{path}[{i}]", depth + 1, inner) for i, v in enumerate(x)]
            return items if isinstance(x, list) else tuple(items)
        if isinstance(x, _Storage):
            raise NasjaxInputError(f"{source}: {path or '(root)'} is a bare storage ({x.member!r}), expected tensors")
        raise NasjaxInputError(f"{source}: {path or '(root)'} is a {type(x).__name__}, expected tensors in "
                               "dicts/lists/tuples (with plain numbers and strings)")

    return walk(obj, "", 0, frozenset())


def load_pt(path) -> object:
    """Load a tensor (or a dict/list of tensors) saved with ``torch.save`` as numpy arrays.

    Args:
      path: a ``.pt`` file written by ``torch.save`` (zip format, torch >= 1.6).

    Returns:
      A numpy array per tensor, inside the same dicts / lists / tuples as in the file.

    Raises:
      NasjaxInputError: the file is missing, not a complete zip, asks the pickle for anything but plain
        tensors, or declares a tensor that does not fit its storage (see the module docstring).
    """
    path = Path(path)
    src = str(path)
    if not path.is_file():
        raise NasjaxInputError(f"{src}: no such file; expected a PyTorch .pt file written by torch.save")
    try:
        zf = zipfile.ZipFile(path)
    except Exception as e:  # BadZipFile, OSError, ValueError, ... depending on where the bytes are damaged
        raise NasjaxInputError(f"{src}: not a readable PyTorch zip file ({type(e).__name__}: {e})") from None
    with zf:
        pkls = [n for n in zf.namelist() if n.endswith("/data.pkl") and n.count("/") == 1]
        if len(pkls) != 1:
            raise NasjaxInputError(f"{src}: {len(pkls)} '<prefix>/data.pkl' members, expected exactly one "
                                   "(a torch.save zip archive)")
        prefix = pkls[0][: -len("/data.pkl")]
        version = _small_text(zf, f"{prefix}/version", src)
        if version is not None and version not in {str(v) for v in FORMAT_VERSIONS}:
            raise NasjaxInputError(f"{src}: archive version {version[:20]!r}, expected one of "
                                   f"{', '.join(map(str, FORMAT_VERSIONS))}")
        byteorder = _small_text(zf, f"{prefix}/byteorder", src) or "little"
        if byteorder not in ("little", "big"):
            raise NasjaxInputError(f"{src}: byteorder {byteorder[:20]!r}, expected 'little' or 'big'")
        data = _read_member(zf, pkls[0], src)
        reader = _StorageReader(zf, prefix, src, byteorder)
        obj = restricted_unpickle(data, f"{src}: {pkls[0]}", _ALLOWED, persistent_load=reader)
        return _materialise(obj, src)


def load_pt_tensor(path, name: str = "tensor") -> np.ndarray:
    """A ``.pt`` file that holds exactly one tensor, as a numpy array; anything else names ``name``.

    Args:
      path: a ``.pt`` file written by ``torch.save(tensor, path)``.
      name: what the tensor is, for error messages (``"block accuracy table"``).

    Returns:
      The tensor as a numpy array.
    """
    out = load_pt(path)
    if not isinstance(out, np.ndarray):
        raise NasjaxInputError(f"{path}: holds a {type(out).__name__}, expected one tensor ({name})")
    return out
