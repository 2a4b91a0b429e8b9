"""Entry points: one way for every experiment to take flags, refuse bad input and publish results.

The error contract of every ``python -m experiments.<name>`` command: bad input -- a malformed flag,
an unknown flag, a missing flagfile, a stray positional argument, a flag that does not apply to the
chosen mode, an unusable output path, or any :class:`~nasjax.errors.NasjaxInputError` raised by the
library -- prints ONE line ``error: <field>: got <value>, expected <what>`` on stderr and exits with
status 2, and leaves no output behind.

* :func:`run` replaces ``absl.app.run`` (flag errors exit 2 instead of absl's 1 with usage).
* :func:`define_config_flags` / :func:`config_from_flags` derive absl flags from a typed dataclass
  config, so a setting is declared once (its default, type, choices and help live on the dataclass
  field) and the flag names stay those of the original papers' command lines.
* :func:`check_mode_flags` refuses flags that the chosen mode would silently ignore.
* :func:`check_output_dir` checks an output path before any work starts; :class:`ResultSet` publishes a
  command's result files as one set (staged, then moved into place with the manifest written last)
  and removes what a killed run left behind.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import math
import os
import re
import shutil
import sys
import tempfile
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from nasjax.errors import NasjaxInputError

__all__ = ["run", "fail", "option", "define_config_flags", "config_from_flags", "flag_given", "check_mode_flags",
           "reported_as", "check_output_dir", "ResultSet", "remove_stale_temporaries"]


def fail(message: str, code: int = 2) -> typing.NoReturn:
    """Print ``error: <message>`` (one line) on stderr and exit with ``code``."""
    text = " ".join(str(message).split())
    print(f"error: {text}", file=sys.stderr, flush=True)
    raise SystemExit(code)


def _strict_parser(argv: list[str]) -> list[str]:
    from absl import flags

    given = [a.partition("=") for a in argv[1:] if a.split("=", 1)[0] in ("--flagfile", "-flagfile")]
    files = [value for _, eq, value in given if eq]
    if any(not f.strip() for f in files):  # absl would silently read no file
        fail(f"flagfile: got {next(f for f in files if not f.strip())!r}, expected the path of a file of --flags")
    said = io.StringIO()  # absl reports a circular flagfile on stderr and goes on without it
    try:
        with contextlib.redirect_stderr(said):
            rest = flags.FLAGS(argv)
    except flags.Error as e:
        fail(f"flags: {e}")
    except UnicodeDecodeError as e:
        fail(f"flagfile: {files!r} holds bytes that are not UTF-8 text ({e.reason} at byte {e.start}), expected a "
             "text file of --flags")
    except ValueError as e:  # absl's logging flags (--stderrthreshold, --verbosity) raise it directly
        fail(f"flags: {e}")
    text = said.getvalue()
    if "circular flagfile" in text:
        fail(f"flagfile: {text.strip().rsplit(':', 1)[-1].strip()!r} includes itself (directly or through another "
             "flagfile); expected flagfiles that do not include one another in a cycle")
    sys.stderr.write(text)
    if len(rest) > 1:
        fail(f"arguments: got unexpected positional argument(s) {rest[1:]!r}, expected only --flags "
             "(and --flagfile=FILE)")
    for name, fl in flags.FLAGS._flags().items():
        if fl.present and isinstance(fl.parser, flags.FloatParser) and fl.value is not None \
                and not math.isfinite(fl.value) and name == fl.name:
            fail(f"{name}: got {fl.value!r}, expected a finite number")
    return rest


def run(main: Callable[[], Any]) -> None:
    """Parse the command line strictly and run ``main()`` (no arguments: everything comes from flags).

    ``NasjaxInputError`` raised by ``main`` becomes the one-line message and exit status 2.
    """
    from absl import app

    def _main(argv):
        try:
            main()
        except NasjaxInputError as e:
            fail(str(e))

    app.run(_main, flags_parser=_strict_parser)


# --------------------------------------------------------------------------------------------------
# typed configs -> absl flags


def option(default=dataclasses.MISSING, *, flag: str | None = None, help: str = "", choices: Sequence | None = None,
           default_factory=dataclasses.MISSING, **kw):
    """A dataclass field that carries its flag: ``x: int = option(10, help="...")``.

    ``flag`` renames the flag (the seeds' own names: ``mlp_size`` for ``hidden``), ``flag=False`` keeps the
    field out of the command line; ``choices`` makes it an enum. ``help`` is the flag's help text.
    """
    meta = dict(kw.pop("metadata", {}) or {})
    meta.update({"flag": flag, "help": help, "choices": tuple(choices) if choices is not None else None})
    if default_factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=meta, **kw)
    return dataclasses.field(default=default, metadata=meta, **kw)


def _flag_fields(cls, prefix: str = "") -> list[tuple[str, tuple[str, ...], Any, dataclasses.Field, Any]]:
    """(flag name, attribute path, type, field, default) of every flaggable field, nested dataclasses
    (with a default instance) flattened."""
    hints = typing.get_type_hints(cls)
    inst = cls()
    out = []
    for f in dataclasses.fields(cls):
        if not f.init or f.metadata.get("flag") is False:
            continue
        tp = hints[f.name]
        default = getattr(inst, f.name)
        if dataclasses.is_dataclass(default):
            for name, path, t, ff, d in _flag_fields(type(default), prefix):
                out.append((name, (f.name,) + path, t, ff, d))
            continue
        name = f.metadata.get("flag") or (prefix + f.name)
        out.append((name, (f.name,), tp, f, default))
    return out


def _base_type(tp):
    origin = typing.get_origin(tp)
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)) and len(args) == 1:
        return _base_type(args[0])[0], True
    return tp, False


def define_config_flags(cls, *, prefix: str = "", skip: Iterable[str] = (), defaults: Mapping[str, Any] | None = None,
                        flag_values=None) -> list[str]:
    """Define one absl flag per field of dataclass ``cls`` (nested dataclass fields included).

    Types map to flags: ``bool`` -> boolean, ``int`` -> integer, ``float`` -> float, ``str`` -> string (enum
    when the field has ``choices``), ``tuple[...]`` -> comma-separated list. ``defaults`` overrides a
    flag's default by flag name (a recipe that differs from the library's default). Returns the flag
    names defined.
    """
    from absl import flags

    fv = flags.FLAGS if flag_values is None else flag_values
    skip = set(skip)
    defaults = dict(defaults or {})
    names = []
    for name, _path, tp, f, default in _flag_fields(cls, prefix):
        if name in skip:
            continue
        default = defaults.pop(name, default)
        helptext = f.metadata.get("help") or f"{cls.__name__}.{'.'.join(_path)}"
        choices = f.metadata.get("choices")
        base, _optional = _base_type(tp)
        origin = typing.get_origin(base)
        if base is bool:
            flags.DEFINE_boolean(name, default, helptext, flag_values=fv)
        elif choices is not None:
            flags.DEFINE_enum(name, default, [str(c) for c in choices], helptext, flag_values=fv)
        elif base is int:
            flags.DEFINE_integer(name, default, helptext, flag_values=fv)
        elif base is float:
            flags.DEFINE_float(name, default, helptext, flag_values=fv)
        elif base is str:
            flags.DEFINE_string(name, default, helptext, flag_values=fv)
        elif origin in (tuple, list):
            flags.DEFINE_list(name, None if default is None else [str(v) for v in default], helptext, flag_values=fv)
        else:
            raise TypeError(f"{cls.__name__}.{f.name}: no flag type for {tp!r}")
        names.append(name)
    if defaults:
        raise TypeError(f"defaults for unknown flags {sorted(defaults)} of {cls.__name__}")
    return names


def _convert_list(name: str, values, tp):
    args = typing.get_args(tp)
    elem = args[0] if args else str
    out = []
    for i, v in enumerate(values):
        try:
            x = elem(v)
            if isinstance(x, float) and not math.isfinite(x):
                raise ValueError(v)
            out.append(x)
        except (TypeError, ValueError):
            what = "finite numbers" if elem is float else getattr(elem, "__name__", elem)
            raise NasjaxInputError(f"{name}[{i}]: got {v!r}, expected a comma-separated list of {what}") from None
    return tuple(out)


def config_from_flags(cls, *, prefix: str = "", skip: Iterable[str] = (), flag_values=None, **fixed):
    """Build ``cls`` from the flags :func:`define_config_flags` defined (``fixed`` sets fields directly).

    The dataclass's own validation (``__post_init__``) runs, so a bad value is reported with the
    field's name.
    """
    from absl import flags

    fv = flags.FLAGS if flag_values is None else flag_values
    skip = set(skip)
    values: dict[tuple[str, ...], Any] = {}
    for name, path, tp, _f, _default in _flag_fields(cls, prefix):
        if name in skip:
            continue
        v = fv[name].value
        base, _ = _base_type(tp)
        if v is not None and typing.get_origin(base) in (tuple, list):
            v = _convert_list(name, v, base)
        values[path] = v
    return _build(cls, values, fixed)


def _build(cls, values: dict[tuple[str, ...], Any], fixed: dict):
    inst = cls()
    kw = {}
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        sub = {p[1:]: v for p, v in values.items() if p[0] == f.name and len(p) > 1}
        if f.name in fixed:
            kw[f.name] = fixed[f.name]
        elif sub:
            kw[f.name] = _build(type(getattr(inst, f.name)), sub, {})
        elif (f.name,) in values:
            kw[f.name] = values[(f.name,)]
    return cls(**kw)


def flag_given(name: str, flag_values=None) -> bool:
    """True when flag ``name`` was set on the command line or in a flagfile."""
    from absl import flags

    fv = flags.FLAGS if flag_values is None else flag_values
    return bool(fv[name].present)


def check_mode_flags(mode_flag: str, applies: Mapping[str, Iterable[str]], flag_values=None) -> None:
    """Refuse flags given for a mode that does not use them.

    ``applies[mode]`` lists the flags only that mode uses; a flag listed under some mode but not under
    the chosen one, and given explicitly, is an error naming the flag and the modes that take it.
    """
    from absl import flags

    fv = flags.FLAGS if flag_values is None else flag_values
    mode = fv[mode_flag].value
    owners: dict[str, list[str]] = {}
    for m, names in applies.items():
        for n in names:
            owners.setdefault(n, []).append(m)
    for n, ms in sorted(owners.items()):
        if mode not in ms and fv[n].present:
            fail(f"{n}: given with --{mode_flag}={mode}, expected it only with --{mode_flag}="
                 + " or ".join(sorted(ms)) + " (it would be ignored)")


@contextlib.contextmanager
def reported_as(field: str, flag: str):
    """Within the block, a :class:`NasjaxInputError` about library field ``field`` (its message starts with
    ``"<field>:"``) is re-raised as one about the command's flag ``flag``, so the message names what the
    user typed (a searcher calls a latency bound ``latency_constraint``; the command calls it
    ``--inference_time_limit``)."""
    try:
        yield
    except NasjaxInputError as e:
        text = str(e)
        if text.startswith(field + ":"):
            raise NasjaxInputError(flag + text[len(field):]) from None
        raise


# --------------------------------------------------------------------------------------------------
# outputs


def check_output_dir(path, field: str = "save_path") -> Path:
    """Check, before any work starts, that ``path`` can hold a command's output directory.

    ``path`` must be a non-empty path that is a directory or does not exist yet, whose nearest existing
    ancestor is a directory we can create entries in (tried with a probe file, which also catches a
    read-only file system). Nothing is created. Returns the path.
    """
    if path is None or str(path).strip() == "":
        raise NasjaxInputError(f"{field}: got {path!r}, expected a directory path")
    p = Path(path)
    if p.exists() and not p.is_dir():
        raise NasjaxInputError(f"{field}: {str(p)!r} is a file, expected a directory (or a path to create)")
    anc = p
    while not anc.exists():
        if anc.parent == anc:
            break
        anc = anc.parent
    if not anc.is_dir():
        raise NasjaxInputError(f"{field}: {str(anc)!r} (an ancestor of {str(p)!r}) is a file, expected a directory")
    try:
        fd, probe = tempfile.mkstemp(prefix=".nasjax-probe-", dir=anc)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise NasjaxInputError(f"{field}: cannot write in {str(anc)!r} ({e.strerror or e}); expected a writable "
                               "directory") from None
    return p


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


_TMP_PID = re.compile(r"\.pid(\d+)-[^.]*\.tmp$")


def remove_stale_temporaries(directory) -> list[Path]:
    """Remove what killed runs left in ``directory``: atomic-write temporaries (``.<name>.*.tmp``; those
    named ``.<name>.pid<pid>-*.tmp`` only when process ``pid`` is gone) and result-set staging directories
    (``.staging-<pid>-*``) whose process is gone. Returns what was removed."""
    d = Path(directory)
    removed = []
    if not d.is_dir():
        return removed
    for e in d.iterdir():
        name = e.name
        if name.startswith(".staging-"):
            try:
                pid = int(name.split("-")[1])
            except (IndexError, ValueError):
                pid = -1
            if pid > 0 and pid != os.getpid() and _pid_alive(pid):
                continue
            shutil.rmtree(e, ignore_errors=True)
            removed.append(e)
        elif name.startswith(".") and name.endswith(".tmp") and e.is_file():
            m = _TMP_PID.search(name)
            if m and _pid_alive(int(m.group(1))):  # a write in progress (another run, or this one)
                continue
            try:
                e.unlink()
                removed.append(e)
            except OSError:
                pass
    return removed


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class ResultSet:
    """A command's result files, published together.

    ``with ResultSet(out_dir, manifest="summary.json") as rs:`` yields the set; ``rs.path(name)`` is where
    to write file ``name`` (a staging directory inside ``out_dir``). On success the old manifest is
    removed, the files are moved into ``out_dir`` and the manifest is written LAST, listing every file
    with its sha256 (plus ``rs.summary``, a dict the command fills): a reader that finds the manifest
    finds the whole set. On an exception nothing in ``out_dir`` changes and the staging directory is
    removed. Leftovers of a killed run are removed when the next set for the same directory starts.
    """

    def __init__(self, out_dir, manifest: str = "manifest.json"):
        self.out_dir = Path(out_dir)
        self.manifest = manifest
        self.summary: dict[str, Any] = {}
        self._stage: Path | None = None
        self.files: list[Path] = []

    def __enter__(self) -> ResultSet:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(self.out_dir)
        self._stage = Path(tempfile.mkdtemp(prefix=f".staging-{os.getpid()}-", dir=self.out_dir))
        return self

    @property
    def dir(self) -> Path:
        """The staging directory (for writers that take a directory): files in it are published with the set."""
        if self._stage is None:
            raise RuntimeError("ResultSet.dir outside its with-block")
        return self._stage

    def path(self, name: str) -> Path:
        """Staging path of result file ``name`` (relative to the set's directory)."""
        if self._stage is None:
            raise RuntimeError("ResultSet.path outside its with-block")
        if name == self.manifest:
            raise ValueError(f"{name} is the manifest; fill ResultSet.summary instead")
        p = self._stage / name
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def __exit__(self, exc_type, exc, tb) -> None:
        stage, self._stage = self._stage, None
        try:
            if exc_type is not None:
                return
            names = sorted(str(p.relative_to(stage)) for p in stage.rglob("*") if p.is_file())
            man = self.out_dir / self.manifest
            if man.exists():
                man.unlink()
            listing = {}
            for n in names:
                src = stage / n
                listing[n] = _sha256(src)
                dst = self.out_dir / n
                dst.parent.mkdir(parents=True, exist_ok=True)
                os.replace(src, dst)
                self.files.append(dst)
            from nasjax.io import write_json

            write_json(man, {**self.summary, "files": listing})
            self.files.append(man)
        finally:
            shutil.rmtree(stage, ignore_errors=True)

