"""Portable model files: named arrays in one ``.npz`` plus a JSON header; nothing is pickled.

A nasjax model file is a NumPy ``.npz`` archive (``allow_pickle=False`` on both ends) holding

* every weight array under its flattened name (``"linear/kernel"``, ``"w1"``, ``"x_mean"``...), and
* ``__header__``: the UTF-8 bytes of a JSON object with at least ``format`` (``"nasjax.model/1"``),
  ``kind`` (which builder re-creates the model), ``version`` (the kind's own version), ``arrays``
  (name -> shape and dtype) and ``sha256`` (a digest over every array's name, shape, dtype and bytes).
  Models add what a reader a year from now needs: the feature spec, the units of inputs and outputs,
  the training data's provenance.

Loading checks that the file is a zip archive (a pickle or any other file is refused before numpy sees
it), the header's structure, the format, the kind's version, the digest, the manifest and that weights are
finite, so a truncated, edited or foreign file fails with :class:`~nasjax.errors.NasjaxInputError` instead
of loading garbage. The module is generic: it stores any
``dict[str, np.ndarray]`` (:func:`save_arrays` / :func:`load_arrays`) and any Flax NNX module's state
(:func:`nnx_to_arrays` / :func:`arrays_into_nnx`, :func:`save_nnx` / :func:`load_nnx`).

Example::

    save_nnx("m.npz", module, kind="my.model", version=1, header={"features": [...], "unit": "ms"})
    module, header, extra = load_nnx("m.npz", build=lambda h: MyModule(..., rngs=nnx.Rngs(0)),
                                     kind="my.model")
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from nasjax.errors import NasjaxInputError
from nasjax.io import atomic_write_bytes

FORMAT = "nasjax.model/1"
HEADER_KEY = "__header__"
_SEP = "/"


def _digest(arrays: Mapping[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for name in sorted(arrays):
        a = np.ascontiguousarray(arrays[name])
        h.update(name.encode())
        h.update(str(a.shape).encode())
        h.update(a.dtype.str.encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _check_arrays(arrays: Mapping[str, Any]) -> dict[str, np.ndarray]:
    out = {}
    for name, a in arrays.items():
        if not isinstance(name, str) or not name or name == HEADER_KEY:
            raise NasjaxInputError(f"model array name: got {name!r}, expected a non-empty string other than "
                                   f"{HEADER_KEY!r}")
        arr = np.asarray(a)
        if arr.dtype == object or arr.dtype.kind not in "biuf":
            raise NasjaxInputError(f"model array {name!r}: dtype {arr.dtype}, expected a numeric or bool array")
        out[name] = arr
    return out


def save_arrays(path, arrays: Mapping[str, Any], *, kind: str, version: int = 1, header: Mapping | None = None) -> dict:
    """Write ``arrays`` and a JSON ``header`` to ``path`` atomically; returns the full header written.

    ``header`` must be JSON-serialisable (plain numbers, strings, lists, dicts).
    """
    arrs = _check_arrays(arrays)
    full = dict(header or {})
    full.update(
        {
            "format": FORMAT,
            "kind": str(kind),
            "version": int(version),
            "arrays": {k: {"shape": list(v.shape), "dtype": v.dtype.str} for k, v in sorted(arrs.items())},
            "sha256": _digest(arrs),
        }
    )
    try:
        blob = json.dumps(full, sort_keys=True).encode("utf-8")
    except (TypeError, ValueError) as e:
        raise NasjaxInputError(f"model header: not JSON-serialisable ({e}); expected plain "
                               "numbers/strings/lists/dicts") from e
    buf = io.BytesIO()
    np.savez(buf, **{HEADER_KEY: np.frombuffer(blob, dtype=np.uint8)}, **arrs)
    atomic_write_bytes(path, buf.getvalue())
    return full


def _header_of(blob: np.ndarray, where: str) -> dict:
    """The JSON header of a model file, its structure checked (format, kind, version, manifest, digest)."""
    try:
        header = json.loads(blob.tobytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise NasjaxInputError(f"{where}: corrupted JSON header ({e})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        got = header.get("format") if isinstance(header, dict) else type(header).__name__
        raise NasjaxInputError(f"{where}: format {got!r}, expected {FORMAT!r}")
    manifest = header.get("arrays")
    ok = isinstance(manifest, dict) and all(
        isinstance(spec, dict) and isinstance(spec.get("shape"), list) and isinstance(spec.get("dtype"), str)
        and all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in spec["shape"])
        for spec in manifest.values())
    if not ok:
        raise NasjaxInputError(f"{where}: header field 'arrays' is malformed; expected name -> {{shape, dtype}}")
    for key, types in (("kind", str), ("version", int), ("sha256", str)):
        if not isinstance(header.get(key), types) or isinstance(header.get(key), bool):
            raise NasjaxInputError(f"{where}: header field {key!r} is {header.get(key)!r}, expected a {types.__name__}")
    return header


def load_arrays(path, *, kind: str | None = None, versions: Collection[int] | None = None,
                finite: bool = True) -> tuple[dict[str, np.ndarray], dict]:
    """Read a model file; returns ``(arrays, header)``.

    Checks that the file is an ``.npz`` (zip) archive of numeric arrays (never unpickled), its header's
    structure, ``format``, ``kind`` and (when ``versions`` is given) ``version``, the manifest, the digest
    and (with ``finite``) that every floating-point array is free of NaN/inf.
    """
    path = Path(path)
    where = f"load_path {str(path)!r}"
    if not path.is_file():
        raise NasjaxInputError(f"load_path: no model file {str(path)!r}; expected a nasjax .npz model file")
    if not zipfile.is_zipfile(path):
        raise NasjaxInputError(f"{where}: not a readable .npz model file (no zip archive); expected a file "
                               "written by nasjax.hardware.model_io")
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except ValueError as e:
        if "pickle" in str(e) or "Object arrays" in str(e):
            raise NasjaxInputError(f"{where}: holds a pickled (object) array; expected a nasjax model file of "
                                   "numeric arrays (such arrays are never loaded)") from None
        raise NasjaxInputError(f"{where}: not a readable .npz model file ({e})") from None
    except (zipfile.BadZipFile, OSError, EOFError, KeyError) as e:
        raise NasjaxInputError(f"{where}: not a readable .npz model file ({e})") from None
    if HEADER_KEY not in data:
        raise NasjaxInputError(f"{where}: no {HEADER_KEY!r} entry; expected a file written by nasjax.hardware.model_io")
    header = _header_of(data.pop(HEADER_KEY), where)
    if kind is not None and header.get("kind") != kind:
        raise NasjaxInputError(f"{where}: model kind {header.get('kind')!r}, expected {kind!r}")
    if versions is not None and header["version"] not in versions:
        raise NasjaxInputError(f"{where}: {header['kind']} file version {header['version']!r}, expected "
                               f"{' or '.join(map(str, sorted(versions)))} (written by another nasjax version)")
    manifest = header["arrays"]
    if sorted(manifest) != sorted(data):
        missing = sorted(set(manifest) - set(data))
        extra = sorted(set(data) - set(manifest))
        raise NasjaxInputError(f"{where}: arrays do not match the header (missing {missing}, unexpected {extra})")
    for k, spec in manifest.items():
        if list(data[k].shape) != list(spec["shape"]) or data[k].dtype.str != spec["dtype"]:
            raise NasjaxInputError(
                f"{where}: array {k!r} has shape {list(data[k].shape)} {data[k].dtype.str}, "
                f"expected {spec['shape']} {spec['dtype']}"
            )
        if data[k].dtype.kind not in "biuf":
            raise NasjaxInputError(f"{where}: array {k!r} has dtype {data[k].dtype}, expected numeric or bool")
    if _digest(data) != header.get("sha256"):
        raise NasjaxInputError(f"{where}: checksum mismatch; the file is corrupted or was edited")
    if finite:
        for k, a in sorted(data.items()):
            if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
                raise NasjaxInputError(f"{where}: array {k!r} has NaN/inf entries; expected finite weights")
    return data, header


# --- Flax NNX modules ---------------------------------------------------------------------------------


def _path_name(path) -> str:
    parts = []
    for p in path:
        key = getattr(p, "key", getattr(p, "name", getattr(p, "idx", p)))
        parts.append(str(key))
    return _SEP.join(parts)


def nnx_to_arrays(module, prefix: str = "nnx/") -> dict[str, np.ndarray]:
    """Flatten every variable of an NNX module (params and any other state) to named NumPy arrays."""
    import jax
    from flax import nnx

    state = nnx.state(module)
    flat = jax.tree_util.tree_flatten_with_path(nnx.to_pure_dict(state))[0]
    return {prefix + _path_name(p): np.asarray(v) for p, v in flat}


def arrays_into_nnx(module, arrays: Mapping[str, np.ndarray], prefix: str = "nnx/"):
    """Load arrays written by :func:`nnx_to_arrays` into ``module`` (built with the same config), in place.

    Every variable must be present with the same shape; extra ``prefix`` arrays are an error too.
    """
    import jax
    import jax.numpy as jnp
    from flax import nnx

    state = nnx.state(module)
    pure = nnx.to_pure_dict(state)
    flat, treedef = jax.tree_util.tree_flatten_with_path(pure)
    wanted = {prefix + _path_name(p) for p, _ in flat}
    have = {k for k in arrays if k.startswith(prefix)}
    if wanted != have:
        raise NasjaxInputError(
            f"model weights: missing {sorted(wanted - have)}, unexpected {sorted(have - wanted)}; "
            "expected exactly the variables of the model described by the header"
        )
    leaves = []
    for p, v in flat:
        name = prefix + _path_name(p)
        a = np.asarray(arrays[name])
        if a.shape != np.shape(v):
            raise NasjaxInputError(f"model weights: {name!r} has shape {a.shape}, expected {np.shape(v)}")
        leaves.append(jnp.asarray(a, dtype=jnp.asarray(v).dtype))
    nnx.replace_by_pure_dict(state, jax.tree_util.tree_unflatten(treedef, leaves))
    nnx.update(module, state)
    return module


def save_nnx(path, module, *, kind: str, version: int = 1, header: Mapping | None = None,
             extra_arrays: Mapping[str, Any] | None = None) -> dict:
    """Save an NNX module's state (plus ``extra_arrays`` such as feature scalers) with a JSON header."""
    arrays = nnx_to_arrays(module)
    for k, v in (extra_arrays or {}).items():
        if k.startswith("nnx/"):
            raise NasjaxInputError(f"extra array name {k!r}: the prefix 'nnx/' is reserved for module weights")
        arrays[k] = np.asarray(v)
    return save_arrays(path, arrays, kind=kind, version=version, header=header)


def load_nnx(path, build: Callable[[dict], Any], *, kind: str | None = None, versions: Collection[int] | None = None):
    """Read a file written by :func:`save_nnx` (checked as :func:`load_arrays` does): ``build(header)`` makes
    a module of the right shape, whose weights are then replaced. Returns ``(module, header, extra_arrays)``."""
    arrays, header = load_arrays(path, kind=kind, versions=versions)
    module = build(header)
    arrays_into_nnx(module, arrays)
    extra = {k: v for k, v in arrays.items() if not k.startswith("nnx/")}
    return module, header, extra
