"""File helpers: atomic writes (temp file + rename), YAML/JSON/CSV, and the shared reference-data path."""

from __future__ import annotations

import contextlib
import csv
import datetime as _dt
import functools
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

    ``NASJAX_SHARED_DATA`` overrides the location; otherwise ``../shared/data`` beside the checkout, then
    beside the working directory. nasjax never ships that data, it only reads it at run time.

    Args:
      required: raise instead of returning ``None`` when the folder is absent.

    Returns:
      The first existing candidate folder, or ``None``.

    Raises:
      NasjaxInputError: when ``required`` and no candidate exists (listing the candidates).
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
    """The checkout's root folder (the parent of the ``nasjax`` package)."""
    return _REPO_ROOT


def luts_dir() -> Path:
    """The shipped tables and default weights (``luts/``): the installed package data ``nasjax/luts``
    (found with ``importlib.resources``), else the checkout's top-level ``luts/``."""
    from importlib import resources

    try:
        p = Path(str(resources.files("nasjax") / "luts"))
    except (ModuleNotFoundError, TypeError):  # pragma: no cover - nasjax is importable whenever this runs
        p = None
    if p is not None and p.is_dir():
        return p
    return _REPO_ROOT / "luts"


def jax_cache_dir() -> str:
    """The persistent JAX compilation cache: ``$JAX_COMPILATION_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/nasjax/jax`` (``~/.cache/nasjax/jax``), shared by every checkout on a machine."""
    env = os.environ.get("JAX_COMPILATION_CACHE_DIR")
    if env:
        return env
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return str(Path(base) / "nasjax" / "jax")


def enable_jax_cache(min_compile_secs: float = 0.5, cache_dir: str | os.PathLike | None = None) -> str:
    """Turn on the persistent compilation cache (a second process reuses compiled programs).

    Args:
      min_compile_secs: programs compiling faster than this are not cached.
      cache_dir: the directory; default :func:`jax_cache_dir`.

    Returns:
      The cache directory. It applies from the next compilation, also in a process that has compiled before.
    """
    import jax

    d = str(cache_dir) if cache_dir is not None else jax_cache_dir()
    jax.config.update("jax_enable_compilation_cache", True)
    jax.config.update("jax_compilation_cache_dir", d)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", min_compile_secs)
    _reset_cache_decision()
    return d


def _reset_cache_decision() -> None:
    """Make JAX, which decides once per process whether and where the persistent cache is used, decide again at
    the next compilation (``jax._src.compilation_cache.reset_cache``, the only way to change it part-way
    through a process), without the INFO line it logs at every reset."""
    import logging

    from jax._src import compilation_cache

    log = logging.getLogger(compilation_cache.__name__)
    level = log.level
    log.setLevel(logging.WARNING)
    try:
        compilation_cache.reset_cache()
    finally:
        log.setLevel(level)


@contextlib.contextmanager
def fresh_compilation() -> Iterator[None]:
    """Compile the programs of the block without the persistent compilation cache (neither read nor written).

    A latency measurement must time a program as XLA compiles it. On the CPU backend (jax 0.10), each load of
    an executable from the persistent cache runs at its own speed: in ``scripts/bench_xla_cache.py`` (full-size
    MobileNetV3 subnets, one thread) four loads of the same program spread by 1.4-2.0 % (sd of log time) and
    ran 1.1-1.6 % slower on average than the compiled program, up to 8 % for one subnet, whoever wrote the
    cache entry; four fresh compilations agreed to 0.4 %. Outside the block the cache is as it was
    (:func:`enable_jax_cache`).

    JAX decides once per process whether the cache is in use; the block makes it decide again on entry and on
    exit (:func:`_reset_cache_decision`).
    """
    import jax

    before = jax.config.jax_enable_compilation_cache
    jax.config.update("jax_enable_compilation_cache", False)
    _reset_cache_decision()
    try:
        yield
    finally:
        jax.config.update("jax_enable_compilation_cache", before)
        _reset_cache_decision()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` only if the block succeeds.

    The parent folder is created; the file gets the mode a plain ``open()`` would give; a failed block leaves
    ``path`` untouched and removes the temporary file. The temporary is named ``.<name>.pid<pid>-*.tmp``
    (the writer's process id), so that :func:`nasjax.cli.remove_stale_temporaries` removes only what a process
    that is gone left behind, never a live run's file.

    Args:
      path: the final file.

    Returns:
      A context manager yielding the temporary :class:`~pathlib.Path` to write.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # the writer's pid in the name: a later run removes only the temporaries of processes that are gone
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.pid{os.getpid()}-", suffix=".tmp", dir=path.parent)
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
    """Write ``text`` to ``path`` atomically (temp file beside it, then rename), creating parent folders.

    Args:
      path: the file to write; an existing file is replaced only once the whole text is written.
      text: the content, written in the platform's default encoding.
    """
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file beside it, then rename), creating parent folders.

    Args:
      path: the file to write; an existing file is replaced only once all bytes are written.
      data: the content.
    """
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
    """Write ``obj`` as JSON (numpy scalars and arrays as plain numbers and lists), atomically, ending in a newline.

    Args:
      path: the ``.json`` file to write.
      obj: a JSON-able structure; dict keys become strings, tuples lists.
      indent: the indentation passed to :func:`json.dumps` (``None`` for one line).
    """
    atomic_write_text(path, json.dumps(_plain(obj), indent=indent) + "\n")


def write_yaml(path, obj) -> None:
    """Write ``obj`` as YAML (safe dumper, key order kept, numpy values as plain Python), atomically.

    Args:
      path: the ``.yml`` file to write.
      obj: a YAML-able structure of dicts, lists and scalars (numpy scalars and arrays allowed).
    """
    import yaml

    atomic_write_text(path, yaml.safe_dump(_plain(obj), sort_keys=False, default_flow_style=None))


@functools.lru_cache(maxsize=1)
def _strict_yaml_loader():
    """A PyYAML SafeLoader that refuses duplicate mapping keys (built on first use: yaml imports lazily)."""
    import yaml

    class StrictLoader(yaml.SafeLoader):
        source = "yaml"

        def construct_mapping(self, node, deep=False):
            if isinstance(node, yaml.MappingNode):
                seen: dict = {}
                for key_node, _ in node.value:
                    if key_node.tag == "tag:yaml.org,2002:merge":
                        continue  # '<<' merge keys may be overridden, as YAML specifies
                    key = self.construct_object(key_node, deep=True)
                    try:
                        first = seen.get(key)
                    except TypeError:
                        continue  # unhashable: the base constructor raises a ConstructorError
                    line = key_node.start_mark.line + 1
                    if first is not None:
                        raise NasjaxInputError(f"{self.source}: duplicate key {key!r} at line {line} (first at "
                                               f"line {first}); expected each key once per mapping")
                    seen[key] = line
            return super().construct_mapping(node, deep=deep)

    return StrictLoader


def _check_acyclic(obj: Any, source: str) -> None:
    """Raise if a YAML alias made a container contain itself (``&a [*a]``)."""
    stack = [(obj, frozenset())]
    while stack:
        x, active = stack.pop()
        if not isinstance(x, (dict, list)):
            continue
        if id(x) in active:
            raise NasjaxInputError(f"{source}: an alias makes a mapping or list contain itself; expected a tree")
        inner = active | {id(x)}
        stack.extend((v, inner) for v in (x.values() if isinstance(x, dict) else x))
        if isinstance(x, dict):
            stack.extend((k, inner) for k in x)


def read_yaml(path, field: str = "load_path") -> Any:
    """Read a YAML file strictly: UTF-8 text, safe tags only, each mapping key once, no self-containing alias.

    Args:
      path: the ``.yml`` file.
      field: what the file is (a flag name such as ``load_path``), for error messages.

    Returns:
      The document as plain Python (``None`` for an empty file).

    Raises:
      NasjaxInputError: missing file, non-UTF-8 bytes, malformed YAML (with its line), a duplicate key (the
        key and both lines), or nesting too deep to parse.
    """
    import yaml

    path = Path(path)
    text = read_text(path, field)
    source = f"{field}: {str(path)!r}"
    loader = None
    try:
        loader = _strict_yaml_loader()(text)  # the reader refuses control characters here already
        loader.source = source
        data = loader.get_single_data()
    except NasjaxInputError:
        raise
    except yaml.YAMLError as e:
        raise NasjaxInputError(f"{source}: malformed YAML ({e}); expected a YAML document such as a mapping of "
                               "architecture keys") from None
    except RecursionError:
        raise NasjaxInputError(f"{source}: nested too deeply to parse; expected a shallow YAML document") from None
    except (ValueError, TypeError, OverflowError) as e:  # e.g. an implicit timestamp 2001-13-45
        raise NasjaxInputError(f"{source}: invalid YAML value ({type(e).__name__}: {e})") from None
    finally:
        if loader is not None:
            loader.dispose()
    _check_acyclic(data, source)
    return data


def write_csv(path, header: list[str], rows: Iterable[Iterable[Any]]) -> None:
    """Write a CSV file (header row, then the rows; numpy values as plain Python), atomically.

    Args:
      path: the ``.csv`` file to write.
      header: the column names.
      rows: the data rows, each an iterable of cell values in the order of ``header``.
    """
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(header)
    for r in rows:
        w.writerow([_plain(x) for x in r])
    atomic_write_text(path, buf.getvalue())


def read_text(path, field: str) -> str:
    """A file's text, strictly UTF-8; a missing file or binary bytes name ``field`` and the file.

    Args:
      path: the text file.
      field: what the file is (a flag or key name), first in error messages.

    Returns:
      The decoded text.

    Raises:
      NasjaxInputError: when ``path`` is not an existing file or its bytes are not UTF-8 (with the offset).
    """
    p = Path(path)
    if not p.is_file():
        raise NasjaxInputError(f"{field}: no file {str(p)!r}; expected an existing text file")
    try:
        return p.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise NasjaxInputError(f"{field}: {str(p)!r} is not UTF-8 text (bad byte at offset {e.start}); "
                               "expected a text file") from None


def read_json(path, field: str) -> Any:
    """Read a JSON file strictly (UTF-8, no NaN/Infinity literals); errors name ``field`` and the file.

    Args:
      path: the ``.json`` file.
      field: what the file is (a flag or key name), first in error messages.

    Returns:
      The document as plain Python (dicts, lists, numbers, strings, ``None``).

    Raises:
      NasjaxInputError: missing file, non-UTF-8 bytes, a ``NaN`` / ``Infinity`` literal or malformed JSON
        (with its line).
    """
    p = Path(path)
    text = read_text(p, field)

    def _no_constant(c):
        raise NasjaxInputError(f"{field}: {str(p)!r} holds {c}, expected finite numbers")

    try:
        return json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as e:
        raise NasjaxInputError(f"{field}: {str(p)!r} is not valid JSON ({e.msg} at line {e.lineno}); "
                               "expected a JSON document") from None


MAX_PICKLE_MEMO = 1 << 20  # memo slots a restricted pickle may address (the C unpickler allocates up to it)


def _scan_pickle(data: bytes, source: str) -> None:
    """Parse ``data``'s opcodes without running them; refuse truncation and out-of-range memo slots."""
    import pickletools

    try:
        for op, arg, _pos in pickletools.genops(data):
            if op.name in ("PUT", "BINPUT", "LONG_BINPUT") and not 0 <= int(arg) < MAX_PICKLE_MEMO:
                raise NasjaxInputError(f"{source}: pickle memo slot {arg}, expected below {MAX_PICKLE_MEMO}")
    except NasjaxInputError:
        raise
    except Exception as e:  # genops raises ValueError on truncated / unknown opcodes, ...
        raise NasjaxInputError(f"{source}: corrupted pickle ({type(e).__name__}: {str(e)[:200]})") from None


def restricted_unpickle(data: bytes, source: str, allowed: dict, persistent_load=None) -> Any:
    """Unpickle ``data`` admitting only the globals in ``allowed``; any failure is a NasjaxInputError.

    Args:
      data: the pickle bytes.
      source: the file (or member) they come from, for error messages.
      allowed: ``{(module, name): object}``: what each admitted global resolves to; every other global is
        refused, so the pickle cannot run code.
      persistent_load: called with each persistent id (``torch.save`` storages), or ``None`` to refuse them.

    Returns:
      The unpickled object.
    """
    import pickle

    _scan_pickle(data, source)

    class Restricted(pickle.Unpickler):
        def find_class(self, module, name):
            if (module, name) in allowed:
                return allowed[(module, name)]
            names = ", ".join(sorted(f"{m}.{n}" for m, n in allowed)) or "no globals"
            raise NasjaxInputError(f"{source}: refuses to unpickle {module}.{name}; expected only {names}")

        def persistent_load(self, pid):
            if persistent_load is None:
                raise NasjaxInputError(f"{source}: unexpected persistent id {str(pid)[:80]}")
            return persistent_load(pid)

    try:
        return Restricted(io.BytesIO(data)).load()
    except NasjaxInputError:
        raise
    except Exception as e:  # a damaged pickle raises UnpicklingError, KeyError, EOFError, TypeError, ...
        raise NasjaxInputError(f"{source}: corrupted pickle ({type(e).__name__}: {str(e)[:200]})") from None


def utc_stamp(timestamp: float | None = None) -> str:
    """``YYYY-MM-DDTHH:MM:SSZ`` in UTC, of now or of a POSIX ``timestamp`` (the date of every record nasjax
    writes)."""
    t = _dt.datetime.now(_dt.timezone.utc) if timestamp is None else _dt.datetime.fromtimestamp(timestamp,
                                                                                                _dt.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")
