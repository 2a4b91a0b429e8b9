"""Run many command lines of one experiment in one process: ``python tests/experiment_worker.py experiments.X``.

absl flags are process-global, so each experiment module gets its own worker process; the worker imports
the module once and then runs command lines through ``nasjax.cli.run(module.main)`` exactly as
``python -m experiments.X ...`` would, resetting the flags between runs. That costs one Python + JAX start
per experiment instead of one per command line.

Protocol: one JSON request per line on stdin, one JSON reply per line on the worker's original stdout
(the command's own output, Python's and C libraries' alike, is captured at the file-descriptor level, so
a solver banner printed on fd 1 shows up in the reply, not in the protocol).

* ``{"op": "describe"}`` -> ``{"flags": [{"name", "kind", "enum", "default", "required"}, ...]}``: the
  flags the module defined when imported (its own and derived ones, not absl's).
* ``{"op": "parse", "argv": [...], "cwd": DIR}`` -> ``{"code", "stderr"}``: only the strict flag parse.
* ``{"op": "run", "argv": [...], "cwd": DIR}`` -> ``{"code", "stdout", "stderr", "seconds", "traceback"}``:
  ``code`` is the exit status (0 when ``main`` returned), ``traceback`` the formatted exception when
  something other than ``SystemExit`` escaped (``code`` is then ``null``).
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import tempfile
import time
import traceback

KINDS = {"IntegerParser": "int", "FloatParser": "float", "EnumParser": "enum", "BooleanParser": "bool",
         "ListParser": "list", "CsvListParser": "list", "ArgumentParser": "string"}


def _describe(names, FLAGS):
    out = []
    for name in sorted(names):
        fl = FLAGS[name]
        if fl.name != name:  # a short name
            continue
        kind = KINDS.get(type(fl.parser).__name__, type(fl.parser).__name__)
        required = any("must have a value other than None" in getattr(v, "message", "") for v in fl.validators)
        out.append({"name": name, "kind": kind, "enum": list(getattr(fl.parser, "enum_values", []) or []),
                    "default": None if fl.default is None else str(fl.default), "required": required})
    return {"flags": out}


def _run(main, argv, cwd, FLAGS):
    from nasjax import cli

    FLAGS.unparse_flags()
    saved_argv, saved_cwd = sys.argv, os.getcwd()
    sys.argv = ["worker", *argv]
    cap_out, cap_err = tempfile.TemporaryFile(), tempfile.TemporaryFile()
    sys.stdout.flush()
    sys.stderr.flush()
    old_out, old_err = os.dup(1), os.dup(2)
    os.dup2(cap_out.fileno(), 1)
    os.dup2(cap_err.fileno(), 2)
    code, tb = None, None
    t0 = time.perf_counter()
    try:
        os.chdir(cwd)
        cli.run(main)
        code = 0
    except SystemExit as e:
        code = 0 if e.code is None else (e.code if isinstance(e.code, int) else 1)
    except BaseException:  # noqa: BLE001 (anything else is what the suite looks for)
        tb = traceback.format_exc()
    finally:
        seconds = time.perf_counter() - t0
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(old_out, 1)
        os.dup2(old_err, 2)
        os.close(old_out)
        os.close(old_err)
        os.chdir(saved_cwd)
        sys.argv = saved_argv
        FLAGS.unparse_flags()
    texts = []
    for f in (cap_out, cap_err):
        f.seek(0)
        texts.append(f.read().decode("utf-8", "replace"))
        f.close()
    return {"code": code, "stdout": texts[0], "stderr": texts[1], "seconds": seconds, "traceback": tb}


def _parse(argv, cwd, FLAGS):
    """Only the strict parse of ``nasjax.cli.run`` (no ``main``): exit code and message."""
    import contextlib
    import io

    from nasjax import cli

    FLAGS.unparse_flags()
    err, code, saved = io.StringIO(), 0, os.getcwd()
    try:
        os.chdir(cwd)
        with contextlib.redirect_stderr(err):
            cli._strict_parser(["worker", *argv])
    except SystemExit as e:
        code = e.code
    finally:
        os.chdir(saved)
        FLAGS.unparse_flags()
    return {"code": code, "stderr": err.getvalue()}


def serve(module_name: str) -> None:
    proto = os.fdopen(os.dup(1), "w")
    os.dup2(os.open(os.devnull, os.O_WRONLY), 1)  # stray output between runs never reaches the protocol
    sys.path.insert(0, os.getcwd())
    from absl import app, flags, logging  # noqa: F401 (absl's own flags are not the experiment's)

    FLAGS = flags.FLAGS
    app.define_help_flags()
    before = set(FLAGS)
    try:
        module = importlib.import_module(module_name)
        main = module.main
        names = set(FLAGS) - before
        ready = {"ready": True}
    except BaseException:  # noqa: BLE001
        main, names, ready = None, set(), {"ready": False, "traceback": traceback.format_exc()}
    proto.write(json.dumps(ready) + "\n")
    proto.flush()
    for line in sys.stdin:
        req = json.loads(line)
        if req["op"] == "describe":
            reply = _describe(names, FLAGS)
        elif req["op"] == "run":
            reply = _run(main, req["argv"], req["cwd"], FLAGS)
        elif req["op"] == "parse":
            reply = _parse(req["argv"], req["cwd"], FLAGS)
        else:
            reply = {"error": f"unknown op {req['op']!r}"}
        proto.write(json.dumps(reply) + "\n")
        proto.flush()


if __name__ == "__main__":
    serve(sys.argv[1])
