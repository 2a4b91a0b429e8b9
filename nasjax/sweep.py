"""Flag sweeps over any experiment on Ray Tune: each setting runs ``python -m <experiment>`` in its own process.

A sweep is a base flagfile plus a set of flag overrides. ``--grid="a=1,2;b=x,y"`` expands to the cartesian
product with :func:`ray.tune.grid_search`; ``--space="lr=loguniform:1e-4:1e-1;bs=choice:16,32"`` with
``--random=N`` draws ``N`` settings with Ray Tune's samplers (``uniform``, ``loguniform``, ``randint``,
``choice``) from a seeded :class:`~ray.tune.search.basic_variant.BasicVariantGenerator` (both: the grid
repeated per draw). :class:`ray.tune.Tuner` schedules the settings on the Ray cluster (local, or
``ray_address``); each trial is a function trainable that starts the experiment as a subprocess::

    python -m <experiment> --flagfile=<base> --<flag>=<value> ... --<output_flag>=<save_dir>/runs/<key>/out

The key of a setting is a SHA-256 over the experiment name, every flag line of the base flagfile and every
override: the same flags give the same key. A finished run writes ``runs/<key>/result.json`` last (status,
return code, seconds, the tail of stderr, and the scalar values of every JSON / YAML file it wrote, flattened
to ``a.b.c`` names); a later sweep that meets a key whose result says ``ok`` reports it without running it
again (failed or timed-out settings run again). A failing setting is a row of the CSV with its status and
stderr tail; it never stops the other settings. The sweep's own result set is ``results.csv`` (one row per
setting), ``results.png`` (a metric against the first swept flag, one line per value of the others, failed
settings marked) and ``summary.json`` (written last).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import math
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nasjax.cli import ResultSet, option
from nasjax.errors import NasjaxInputError, require
from nasjax.io import read_json, read_yaml, write_csv, write_json

RESULT_FILE = "result.json"
_RANDOM_KINDS = ("uniform", "loguniform", "randint", "choice")


# --------------------------------------------------------------------------------------------------
# parsing


def _split_assignments(text: str, field: str) -> list[tuple[str, str]]:
    out = []
    for part in (p.strip() for p in str(text).split(";")):
        if not part:
            continue
        name, eq, values = part.partition("=")
        name = name.strip().lstrip("-")
        if not eq or not name or not values.strip():
            raise NasjaxInputError(f"{field}: got {part!r}, expected flag=values (assignments separated by ';')")
        out.append((name, values.strip()))
    names = [n for n, _ in out]
    dup = sorted({n for n in names if names.count(n) > 1})
    require(not dup, field, dup, "each flag once")
    return out


def parse_grid(text: str) -> dict[str, list[str]]:
    """``"a=1,2;b=x,y"`` -> ``{"a": ["1", "2"], "b": ["x", "y"]}`` (values stay strings, as on a command line).

    Args:
      text: assignments ``flag=v1,v2,...`` separated by ``;``.

    Returns:
      flag name -> list of values (order kept, each value once).
    """
    grid = {}
    for name, values in _split_assignments(text, "grid"):
        vals = [v.strip() for v in values.split(",")]
        require(all(vals) and len(set(vals)) == len(vals), f"grid.{name}", values,
                "distinct non-empty comma-separated values")
        grid[name] = vals
    return grid


def parse_space(text: str) -> dict[str, tuple[str, tuple]]:
    """``"lr=loguniform:1e-4:1e-1;n=randint:1:10;opt=choice:sgd,adamw"`` -> ``{flag: (kind, args)}``.

    Kinds: ``uniform:lo:hi`` and ``loguniform:lo:hi`` (floats, ``0 < lo`` for log), ``randint:lo:hi``
    (integers in ``[lo, hi)``), ``choice:v1,v2,...`` (strings).
    """
    space = {}
    for name, spec in _split_assignments(text, "space"):
        kind, _, rest = spec.partition(":")
        require(kind in _RANDOM_KINDS, f"space.{name}", spec, f"one of {'|'.join(_RANDOM_KINDS)} followed by ':'")
        if kind == "choice":
            vals = tuple(v.strip() for v in rest.split(","))
            require(len(vals) >= 1 and all(vals), f"space.{name}", spec, "choice:v1,v2,...")
            space[name] = (kind, vals)
            continue
        parts = rest.split(":")
        try:
            lo, hi = (int(p) for p in parts) if kind == "randint" else (float(p) for p in parts)
        except ValueError:
            raise NasjaxInputError(f"space.{name}: got {spec!r}, expected {kind}:lo:hi with numbers") from None
        require(lo < hi and (kind != "loguniform" or lo > 0), f"space.{name}", spec,
                f"{kind}:lo:hi with lo < hi" + (" and lo > 0" if kind == "loguniform" else ""))
        space[name] = (kind, (lo, hi))
    return space


def read_flag_lines(path: str | Path) -> list[str]:
    """The flag lines of a flagfile (comments and blank lines dropped), in order."""
    p = Path(path)
    require(p.is_file(), "flagfile", str(p), "an existing flagfile")
    lines = []
    for raw in p.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if line and not line.startswith(("#", "//")):
            lines.append(line)
    return lines


def setting_key(experiment: str, base_lines: list[str], overrides: dict[str, Any]) -> str:
    """16 hex digits of ``sha256(experiment, base flag lines, sorted overrides)``: the setting's identity."""
    doc = {"experiment": experiment, "base": list(base_lines),
           "overrides": sorted((str(k), _flag_value(v)) for k, v in overrides.items())}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:16]


def _flag_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return repr(v)
    return str(v)


# --------------------------------------------------------------------------------------------------
# one setting


def flatten_scalars(obj: Any, prefix: str = "") -> dict[str, Any]:
    """Numbers, strings and booleans of a nested dict as ``{"a.b.c": value}`` (lists and ``files`` skipped)."""
    out: dict[str, Any] = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            if prefix == "" and k == "files":
                continue
            out.update(flatten_scalars(v, f"{prefix}{k}."))
    elif isinstance(obj, (bool, int, float, str)) and prefix:
        out[prefix[:-1]] = obj
    return out


def collect_metrics(out_dir: Path) -> dict[str, Any]:
    """The run's results as flattened scalars: ``out_dir/summary.json`` (a result set's manifest) when it
    exists, else every ``.json`` / ``.yml`` / ``.yaml`` file below ``out_dir``.

    Names are ``<file stem>.<key path>``; ``summary.json``'s keys come without the stem.
    """
    out: dict[str, Any] = {}
    if not out_dir.is_dir():
        return out
    files = [p for p in sorted(out_dir.rglob("*")) if p.is_file() and not p.name.startswith(".")
             and p.suffix in (".json", ".yml", ".yaml")]
    if (out_dir / "summary.json").is_file():  # a result set's manifest summarises the run: it alone is read
        files = [out_dir / "summary.json"]
    for p in files:
        try:
            doc = read_json(p, "result") if p.suffix == ".json" else read_yaml(p, "result")
        except NasjaxInputError:
            continue
        stem = "" if p.name == "summary.json" else f"{p.relative_to(out_dir).with_suffix('').as_posix()}."
        out.update({stem + k: v for k, v in flatten_scalars(doc).items()})
    return out


@dataclass(frozen=True)
class SweepSpec:
    """What every trial needs: the experiment, its base flags, where runs go and how they are started."""

    experiment: str
    base_flagfile: str  # absolute path, or "" (no base)
    base_lines: tuple[str, ...]
    runs_dir: str  # absolute
    output_flag: str
    timeout_s: float
    python: str
    cwd: str
    stderr_tail: int = 2000


def cached_result(spec: SweepSpec, key: str) -> dict | None:
    """The stored result of setting ``key`` when it finished with status ``ok``, else ``None``."""
    p = Path(spec.runs_dir) / key / RESULT_FILE
    if not p.is_file():
        return None
    try:
        rec = read_json(p, "result")
    except NasjaxInputError:
        return None
    return rec if isinstance(rec, dict) and rec.get("status") == "ok" else None


def run_setting(spec: SweepSpec, overrides: dict[str, Any]) -> dict:
    """Run one setting (or return its cached ``ok`` result): a record with ``status`` ``ok`` / ``failed`` /
    ``timeout``, ``returncode``, ``seconds``, ``stderr_tail``, ``metrics`` and ``cached``."""
    key = setting_key(spec.experiment, list(spec.base_lines), overrides)
    prev = cached_result(spec, key)
    if prev is not None:
        return dict(prev, cached=True)
    run_dir = Path(spec.runs_dir) / key
    out_dir = run_dir / "out"
    run_dir.mkdir(parents=True, exist_ok=True)
    cmd = [spec.python, "-m", spec.experiment]
    if spec.base_flagfile:
        cmd.append(f"--flagfile={spec.base_flagfile}")
    cmd += [f"--{k}={_flag_value(v)}" for k, v in overrides.items()]
    cmd.append(f"--{spec.output_flag}={out_dir}")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([spec.cwd] + [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p])
    t0 = time.perf_counter()
    with open(run_dir / "stdout.txt", "w") as fo, open(run_dir / "stderr.txt", "w") as fe:
        proc = subprocess.Popen(cmd, cwd=spec.cwd, env=env, stdout=fo, stderr=fe, start_new_session=True)
        try:
            rc = proc.wait(timeout=spec.timeout_s)
            status = "ok" if rc == 0 else "failed"
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            rc = proc.wait()
            status = "timeout"
    seconds = time.perf_counter() - t0
    err = (run_dir / "stderr.txt").read_text(errors="replace")
    rec = {"key": key, "status": status, "returncode": rc, "seconds": round(seconds, 3),
           "overrides": {k: _flag_value(v) for k, v in overrides.items()}, "command": cmd,
           "stderr_tail": err[-spec.stderr_tail:] if status != "ok" else "",
           "metrics": collect_metrics(out_dir) if status == "ok" else {}}
    write_json(run_dir / RESULT_FILE, rec)
    return dict(rec, cached=False)


# --------------------------------------------------------------------------------------------------
# the sweep on Ray Tune


@dataclass(frozen=True)
class SweepConfig:
    """A sweep: see the module docstring for ``grid`` / ``space`` syntax."""

    experiment: str = option("", help="Experiment module whose main each setting runs, e.g. experiments.binas_search.")
    base_flagfile: str = option("", help="The experiment's base flagfile (python -m experiments.sweep also takes "
                                "it as --flagfile).")
    grid: str = option("", help="Grid: 'flag=v1,v2;flag2=a,b' (cartesian product, tune.grid_search).")
    space: str = option("", help="Random space: 'flag=uniform:lo:hi;flag2=loguniform:lo:hi;n=randint:lo:hi;"
                        "c=choice:a,b' (with --random=N).")
    random: int = option(0, help="Number of random draws from --space (Ray Tune samplers, seeded by --seed).")
    seed: int = option(0, help="Seed of the random draws.")
    save_dir: str = option("results/sweep", help="Output: results.csv, results.png, summary.json, runs/<key>/.")
    output_flag: str = option("save_path", help="The experiment's output-directory flag; the sweep sets it to "
                              "<save_dir>/runs/<key>/out.")
    ray_address: str = option("", help="Address of a running Ray cluster ('' starts Ray locally).")
    num_cpus: int = option(2, help="CPUs of the local Ray instance (ignored with --ray_address).")
    cpus_per_trial: float = option(1.0, help="CPUs Ray reserves per setting.")
    max_concurrent: int = option(0, help="At most this many settings at once (0: as many as the CPUs allow).")
    timeout_s: float = option(3600.0, help="A setting running longer is killed and recorded as 'timeout'.")
    plot_metric: str = option("", help="Result plotted in results.png (default: the first numeric one).")


def _check_experiment(name: str) -> None:
    require(bool(name) and all(p.isidentifier() for p in name.split(".")), "experiment", name,
            "a module name such as experiments.binas_search")
    try:
        found = importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):
        found = False
    require(found, "experiment", name, "an importable module (run from the project root)")


def param_space(grid: dict[str, list[str]], space: dict[str, tuple[str, tuple]]) -> dict:
    """Ray Tune's ``param_space``: ``tune.grid_search`` per grid flag, a Tune sampler per random flag."""
    from ray import tune

    ps: dict[str, Any] = {k: tune.grid_search(list(v)) for k, v in grid.items()}
    for k, (kind, args) in space.items():
        ps[k] = {"uniform": lambda a: tune.uniform(*a), "loguniform": lambda a: tune.loguniform(*a),
                 "randint": lambda a: tune.randint(*a), "choice": lambda a: tune.choice(list(a))}[kind](args)
    return ps


def _trainable(config: dict, spec: SweepSpec) -> None:
    from ray import tune

    rec = run_setting(spec, dict(config))
    numeric = {k: float(v) for k, v in rec["metrics"].items()
               if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(float(v))}
    tune.report({"ok": float(rec["status"] == "ok"), "cached": float(rec["cached"]),
                 "run_seconds": float(rec["seconds"]), "setting_key": rec["key"], **numeric})


def run_sweep(cfg: SweepConfig, progress: bool = True) -> dict:
    """Run (or resume) the sweep ``cfg`` on Ray Tune and write its result set to ``cfg.save_dir``.

    Args:
      cfg: the sweep (experiment module, base flagfile, grid / random space, Ray settings, output).
      progress: print one line per finished setting.

    Returns:
      the summary (also ``summary.json``): settings, counts by status, how many came from the cache.
    """
    _check_experiment(cfg.experiment)
    grid = parse_grid(cfg.grid) if cfg.grid else {}
    space = parse_space(cfg.space) if cfg.space else {}
    require(isinstance(cfg.random, int) and cfg.random >= 0, "random", cfg.random, "an integer >= 0")
    require(bool(space) == (cfg.random > 0), "random", cfg.random,
            "a positive number of draws exactly when --space is given")
    require(bool(grid) or bool(space), "grid", cfg.grid, "at least one swept flag (--grid or --space with --random)")
    clash = sorted(set(grid) & set(space))
    require(not clash, "space", clash, "flags not also in --grid")
    require(cfg.output_flag not in grid and cfg.output_flag not in space, "output_flag", cfg.output_flag,
            "a flag that is not swept (the sweep sets it per run)")
    require(cfg.num_cpus >= 1 and cfg.cpus_per_trial > 0, "num_cpus", (cfg.num_cpus, cfg.cpus_per_trial),
            "num_cpus >= 1 and cpus_per_trial > 0")
    base = str(Path(cfg.base_flagfile).resolve()) if cfg.base_flagfile else ""
    lines = tuple(read_flag_lines(base)) if base else ()
    save = Path(cfg.save_dir).resolve()
    spec = SweepSpec(cfg.experiment, base, lines, str(save / "runs"), cfg.output_flag, float(cfg.timeout_s),
                     sys.executable, os.getcwd())
    swept = list(grid) + list(space)

    import ray
    from ray import tune
    from ray.tune.search.basic_variant import BasicVariantGenerator

    started = False
    if not ray.is_initialized():
        if cfg.ray_address:
            ray.init(address=cfg.ray_address, include_dashboard=False, log_to_driver=False)
        else:
            ray.init(address="local", num_cpus=cfg.num_cpus, include_dashboard=False, log_to_driver=False)
        started = True
    t0 = time.perf_counter()
    try:
        trainable = tune.with_resources(tune.with_parameters(_trainable, spec=spec), {"cpu": cfg.cpus_per_trial})
        tuner = tune.Tuner(
            trainable,
            param_space=param_space(grid, space),
            tune_config=tune.TuneConfig(num_samples=max(1, cfg.random),
                                        search_alg=BasicVariantGenerator(random_state=cfg.seed),
                                        max_concurrent_trials=cfg.max_concurrent or None,
                                        trial_dirname_creator=lambda t: f"trial_{t.trial_id}"),
            run_config=tune.RunConfig(name="tune", storage_path=str(save / ".ray"), verbose=1 if progress else 0,
                                      failure_config=tune.FailureConfig(max_failures=0, fail_fast=False)),
        )
        grid_result = tuner.fit()
    finally:
        if started:
            ray.shutdown()
    records = []
    for res in grid_result:
        overrides = {k: res.config[k] for k in swept}
        key = setting_key(cfg.experiment, list(lines), overrides)
        p = save / "runs" / key / RESULT_FILE
        rec = read_json(p, "result") if p.is_file() else {
            "key": key, "status": "error", "returncode": None, "seconds": None, "metrics": {},
            "overrides": {k: _flag_value(v) for k, v in overrides.items()},
            "stderr_tail": str(res.error)[-spec.stderr_tail:] if res.error else "trial produced no result"}
        rec["cached"] = bool((res.metrics or {}).get("cached", 0.0))
        records.append(rec)
        if progress:
            print(f"[sweep] {rec['status']:>7} {'(cached) ' if rec['cached'] else ''}{rec['overrides']}", flush=True)
    records.sort(key=lambda r: [r["overrides"].get(k, "") for k in swept])
    return write_results(save, cfg, swept, records, time.perf_counter() - t0)


def _numeric(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def write_results(save: Path, cfg: SweepConfig, swept: list[str], records: list[dict], seconds: float) -> dict:
    """``results.csv``, ``results.png`` and ``summary.json`` (last) as one result set in ``save``."""
    metric_names = sorted({k for r in records for k in r.get("metrics", {})})
    header = ["key", "status", "cached", "returncode", "seconds", *swept, *metric_names, "stderr_tail"]
    rows = [[r["key"], r["status"], r["cached"], r["returncode"], r["seconds"],
             *[r["overrides"].get(k, "") for k in swept], *[r["metrics"].get(m, "") for m in metric_names],
             " ".join(str(r.get("stderr_tail", "")).split())[-500:]] for r in records]
    numeric_metrics = [m for m in metric_names if any(_numeric(r["metrics"].get(m)) for r in records)]
    metric = cfg.plot_metric or (numeric_metrics[0] if numeric_metrics else "")
    require(not cfg.plot_metric or cfg.plot_metric in numeric_metrics or not any(r["status"] == "ok" for r in records),
            "plot_metric", cfg.plot_metric, f"a numeric result of the runs: {numeric_metrics}")
    counts = {s: sum(r["status"] == s for r in records) for s in sorted({r["status"] for r in records})}
    summary = {"experiment": cfg.experiment, "base_flagfile": cfg.base_flagfile, "grid": cfg.grid,
               "space": cfg.space, "random": cfg.random, "seed": cfg.seed, "settings": len(records),
               "status": counts, "cached": sum(bool(r["cached"]) for r in records), "plot_metric": metric,
               "seconds": round(seconds, 3), "ray_address": cfg.ray_address or "local",
               "load_average": list(os.getloadavg())}
    with ResultSet(save, manifest="summary.json") as rs:
        write_csv(rs.path("results.csv"), header, rows)
        plot_sweep(rs.path("results.png"), records, swept, metric, cfg.experiment)
        rs.summary = summary
    return summary


def plot_sweep(path, records: list[dict], swept: list[str], metric: str, title: str) -> None:
    """``metric`` against the first swept flag, one line per combination of the other swept flags;
    failed settings are red crosses on the x axis."""
    from nasjax.plots import _plt, _save

    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    xname = swept[0]
    xs_all = [r["overrides"].get(xname, "") for r in records]
    numeric_x = all(_is_float(x) for x in xs_all)
    order = sorted(set(xs_all), key=lambda v: float(v) if numeric_x else v)
    pos = {v: (float(v) if numeric_x else i) for i, v in enumerate(order)}
    groups: dict[str, list] = {}
    for r in records:
        g = ", ".join(f"{k}={r['overrides'].get(k, '')}" for k in swept[1:]) or metric
        groups.setdefault(g, []).append(r)
    ok_y = [r["metrics"][metric] for r in records if r["status"] == "ok" and _numeric(r["metrics"].get(metric))]
    floor = min(ok_y) if ok_y else 0.0
    for g, rs in groups.items():
        pts = sorted((pos[r["overrides"].get(xname, "")], r["metrics"][metric]) for r in rs
                     if r["status"] == "ok" and _numeric(r["metrics"].get(metric)))
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=g)
    bad = [pos[r["overrides"].get(xname, "")] for r in records if r["status"] != "ok"]
    if bad:
        ax.plot(bad, [floor] * len(bad), "x", color="red", markersize=10, label="failed")
    if not numeric_x:
        ax.set_xticks(list(pos.values()), list(pos.keys()))
    ax.set_xlabel(xname)
    ax.set_ylabel(metric or "(no numeric result)")
    ax.set_title(f"{title}: {len(records)} settings")
    if groups or bad:
        ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    _save(fig, path)


def _is_float(v) -> bool:
    try:
        float(v)
        return True
    except (TypeError, ValueError):
        return False


__all__ = ["parse_grid", "parse_space", "read_flag_lines", "setting_key", "flatten_scalars", "collect_metrics",
           "SweepSpec", "SweepConfig", "cached_result", "run_setting", "param_space", "run_sweep", "write_results",
           "plot_sweep"]


def route_flagfiles(argv: list[str]) -> list[str]:
    """The sweep command's argument vector with its two flagfiles routed for absl.

    On the sweep's command line ``--flagfile=X`` is the experiment's base flagfile (``--base_flagfile=X``) and
    ``--sweep_flagfile=Y`` the sweep's own (absl's ``--flagfile=Y``).

    Args:
      argv: ``sys.argv``.

    Returns:
      The rewritten argument list.
    """
    out, it = [], iter(argv)
    for a in it:
        for own, to in (("--flagfile", "--base_flagfile"), ("--sweep_flagfile", "--flagfile")):
            if a == own:
                a = f"{to}={next(it, '')}"
            elif a.startswith(own + "="):
                a = to + a[len(own):]
        out.append(a)
    return out
