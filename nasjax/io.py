"""File helpers: atomic writes (temp file + rename), YAML/JSON/CSV, and the shared reference-data path."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from nasjax.errors import NasjaxInputError

_REPO_ROOT = Path(__file__).resolve().parent.parent


def shared_data_dir(required: bool = False) -> Path | None:
    """Directory of the published reference data (``../shared/data`` beside the checkout).

    ``NASJAX_SHARED_DATA`` overrides the location. Returns ``None`` (or raises when ``required``)
    when the folder is absent: nasjax never ships that data, it only reads it at run time.
    """
    env = os.environ.get("NASJAX_SHARED_DATA")
    cands = [Path(env)] if env else []
    cands += [_REPO_ROOT.parent / "shared" / "data", Path.cwd().parent / "shared" / "data"]
    for c in cands:
        if c.is_dir():
            return c
    if required:
        raise NasjaxInputError(
            "shared reference data: not found at "
            + ", ".join(str(c) for c in cands)
            + "; expected the ../shared/data folder beside the checkout (or set NASJAX_SHARED_DATA)"
        )
    return None


def repo_root() -> Path:
    return _REPO_ROOT


def jax_cache_dir() -> str:
    """The persistent JAX compilation cache: ``$JAX_COMPILATION_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/nasjax/jax`` (``~/.cache/nasjax/jax``), shared by every checkout on a machine."""
    env = os.environ.get("JAX_COMPILATION_CACHE_DIR")
    if env:
        return env
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return str(Path(base) / "nasjax" / "jax")


def enable_jax_cache(min_compile_secs: float = 0.5) -> str:
    """Turn on the persistent compilation cache (a second process reuses compiled programs)."""
    import jax

    d = jax_cache_dir()
    jax.config.update("jax_compilation_cache_dir", d)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", min_compile_secs)
    return d


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` only if the block succeeds."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        if tmp.exists():  # mkstemp creates 0600; give the file the mode a plain open() would
            umask = os.umask(0)
            os.umask(umask)
            os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def _plain(obj: Any) -> Any:
    """Convert numpy scalars/arrays (recursively) to plain Python for YAML/JSON."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _plain(obj.tolist())
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if isinstance(obj, np.bool_):
        return bool(obj)
    return obj


def write_json(path, obj, indent: int | None = 1) -> None:
    atomic_write_text(path, json.dumps(_plain(obj), indent=indent) + "\n")


def write_yaml(path, obj) -> None:
    import yaml

    atomic_write_text(path, yaml.safe_dump(_plain(obj), sort_keys=False, default_flow_style=None))


def read_yaml(path) -> Any:
    """Read a YAML file; a parse error names the file and the line."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise NasjaxInputError(f"load_path: no file {str(path)!r}; expected an existing .yml file")
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise NasjaxInputError(f"{path}: malformed YAML ({e}); expected a mapping of architecture keys") from e


def write_csv(path, header: list[str], rows: Iterable[Iterable[Any]]) -> None:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(header)
    for r in rows:
        w.writerow([_plain(x) for x in r])
    atomic_write_text(path, buf.getvalue())


def read_text(path, field: str) -> str:
    """A file's text, strictly UTF-8; a missing file or binary bytes name ``field`` and the file."""
    p = Path(path)
    if not p.is_file():
        raise NasjaxInputError(f"{field}: no file {str(p)!r}; expected an existing text file")
    try:
        return p.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise NasjaxInputError(f"{field}: {str(p)!r} is not UTF-8 text (bad byte at offset {e.start}); "
                               "expected a text file") from None


def read_json(path, field: str) -> Any:
    """Read a JSON file strictly (UTF-8, no NaN/Infinity literals); errors name ``field`` and the file."""
    p = Path(path)
    text = read_text(p, field)

    def _no_constant(c):
        raise NasjaxInputError(f"{field}: {str(p)!r} holds {c}, expected finite numbers")

    try:
        return json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as e:
        raise NasjaxInputError(f"{field}: {str(p)!r} is not valid JSON ({e.msg} at line {e.lineno}); "
                               "expected a JSON document") from None
