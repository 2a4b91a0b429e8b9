"""Fuzz suite of the experiments' command lines: every ``experiments/<name>.py`` with a ``main`` is found
automatically and fed malformed flags and unusable output paths.

For every case the suite asserts the entry-point contract of :mod:`nasjax.cli`: exit status 2, ONE line
``error: ...`` on stderr naming the flag or field, no traceback, nothing written (the output directory
and the working directory hold exactly what they held before, temporaries included) and, for output
paths, a refusal before any work starts. Generic cases come from the flags each module defines (an
unknown flag, a stray positional argument, a missing flagfile, bad enum / integer / float / boolean
values, NaN and infinities, a missing required flag); :data:`SPECS` adds, per experiment, cheap valid base
flags, its output flag and a flag that does not apply to a mode. An experiment without an entry in
:data:`SPECS` gets the generic cases only.

Each experiment runs in one long-lived worker process (``tests/experiment_worker.py``: absl flags are
process-global) that executes the command lines in-process, so a case costs milliseconds, not a
Python + JAX start.
"""

from __future__ import annotations

import json
import os
import selectors
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from nasjax.io import shared_data_dir  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
WORKER = Path(__file__).with_name("experiment_worker.py")
FUZZ = settings(derandomize=True, database=None, deadline=None, max_examples=40,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
REFUSAL_SECONDS = 5.0  # an output path is refused before any work: well below any experiment's work


def discover() -> list[str]:
    """Every public experiment module (``experiments/<name>.py``, not ``_private``) that defines ``main``."""
    out = []
    for p in sorted((ROOT / "experiments").glob("*.py")):
        if p.name.startswith("_"):
            continue
        text = p.read_text()
        if "def main(" in text or "\nmain = " in text:
            out.append(p.stem)
    return out


@dataclass(frozen=True)
class Spec:
    """Per-experiment facts the generic cases cannot derive.

    ``base``: cheap flags of a valid run (placeholders ``{out}`` output path, ``{binas}`` BINAS inputs,
    ``{dgl}`` a small DGL data folder, ``{flags}`` a folder of damaged flagfiles). ``out``: the output
    flag and whether it names a directory or a file. ``wrong_mode``: (flags, the flag that does not
    apply). ``needs``: folders of the shared data a valid run reads. ``bad``: more (flags, field named)
    cases of this experiment.
    """

    base: tuple[str, ...] = ()
    out: tuple[str, str] | None = None
    wrong_mode: tuple[tuple[tuple[str, ...], str], ...] = ()
    needs: tuple[str, ...] = ()
    bad: tuple[tuple[tuple[str, ...], str], ...] = ()
    extra_base: tuple[tuple[str, ...], ...] = field(default=())  # more valid bases whose output is checked


ALONE = "<without the base flags>"  # first element of a case's flags: the case is the whole command line


def _command(base, argv) -> list[str]:
    argv = list(argv)
    return argv[1:] if argv and argv[0] == ALONE else [*base, *argv]


_MATHNAS_WRONG = (((ALONE, "--mode=predict", "--latency_constraint=5"), "latency_constraint"),
                  ((ALONE, "--mode=predict", "--solver=mckp"), "solver"),
                  ((ALONE, "--mode=pareto", "--load_path=x.yml", "--save_path={out}"), "load_path"),
                  (("--mode=nas", "--pareto_resource=latency"), "pareto_resource"))
_MATHNAS_BAD = ((("--latency_constraint=abc",), "latency_constraint"),
                (("--latency_constraint=1e999",), "latency_constraint"),
                (("--latency_constraint=5parsecs",), "latency_constraint"),
                ((ALONE, "--mode=predict"), "load_path"),
                (("--tables_dir={out}/missing",), "tables_dir"),
                (("--device=NAS",), "device"), (("--device=",), "device"), (("--device=acc.txt",), "device"))

SPECS: dict[str, Spec] = {
    "nasbench201_search": Spec(("--mode=nas", "--latency_constraint=1000", "--solver=mckp", "--save_path={out}"),
                               ("save_path", "dir"), _MATHNAS_WRONG, ("MathNAS",), _MATHNAS_BAD),
    "mobilenetv3_search": Spec(("--mode=nas", "--latency_constraint=500", "--solver=mckp", "--save_path={out}"),
                               ("save_path", "dir"),
                               _MATHNAS_WRONG + ((("--mode=nas", "--rebuild"), "rebuild"),
                                                 (("--mode=pareto", "--latency_budgets=4"), "latency_budgets")),
                               ("MathNAS",), _MATHNAS_BAD,
                               extra_base=(("--mode=quickstart", "--save_path={out}"),)),
    "supertransformer_search": Spec(("--mode=nas", "--latency_constraint=300", "--solver=mckp",
                                     "--save_path={out}"), ("save_path", "dir"), _MATHNAS_WRONG, ("MathNAS",),
                                    _MATHNAS_BAD),
    "supervit_search": Spec(("--mode=nas", "--flops_constraint=1101", "--solver=mckp", "--save_path={out}"),
                            ("save_path", "dir"),
                            ((("--mode=predict", "--flops_constraint=5"), "flops_constraint"),),
                            ("MathNAS",), ((("--device=tx2gpu",), "device"),)),
    "mathnas_nb201_regret": Spec(("--datasets=cifar10", "--bases=ref", "--save_path={out}/regret.json"),
                                 ("save_path", "file"), (), ("MathNAS", "HELP"),
                                 ((("--bases=0",), "bases"), (("--bases=two",), "bases"))),
    "binas_search": Spec(("--nas_optimizer=exact", "--predictor_ckpt_filename={binas}/est.npz",
                          "--lut_filename={binas}/LUT.pkl", "--latency_unit=ms", "--inference_time_limit=45ms",
                          "--save_path={out}"), ("save_path", "dir"),
                         ((("--nas_optimizer=exact", "--bcfw_steps=3"), "bcfw_steps"),
                          (("--nas_optimizer=bcfw", "--iqcp_solver=highs"), "iqcp_solver")), (),
                         ((("--inference_time_limit=0.00125",), "inference_time_limit"),
                          (("--inference_time_limit=nanms",), "inference_time_limit"),
                          (("--predictor_ckpt_filename={out}/none.npz",), "none.npz"),
                          (("--latency_table={binas}/LUT.pkl",), "lut_filename/latency_table"))),
    "block_profile": Spec(("--space=nasbench201", "--blocks=0:1", "--num_archs=2", "--metrics=accuracy",
                           "--noplots", "--save_root={out}"), ("save_root", "dir"), (), ("HELP",),
                          ((("--blocks=0:1", "--all"), "blocks/all"), (("--num_archs=0",), "num_archs"),
                           (("--save=../x",), "save"), (("--space=nowhere",), "space"),
                           (("--blocks=9:9",), "blocks"), (("--metrics=",), "metrics"),
                           (("--metrics=latency/not_a_device",), "latency/not_a_device"))),
    "dgl": Spec(("--mode=train", "--data_path={dgl}", "--epoch=5", "--save_path={out}"), ("save_path", "dir"),
                (((ALONE, "--mode=test", "--latency_constraint=5"), "latency_constraint"),
                 (("--mode=train", "--test_devices=Phone A"), "test_devices"),
                 (("--mode=train", "--model=dgl_mlp", "--l2=3"), "l2")), (),
                (((ALONE, "--mode=test", "--data_path={dgl}", "--save_path={out}", "--test_devices="),
                  "test_devices"),
                 ((ALONE, "--mode=nas", "--data_path={dgl}", "--save_path={out}", "--latency_constraint=-1"),
                  "latency_constraint"),
                 (("--mode=train", "--holdout_frac=2"), "holdout_frac"),
                 (("--mode=train", "--train_devices=NAS"), "NAS"),
                 (("--mode=train", "--data_path={out}/nowhere"), "nowhere"),
                 *(((ALONE, "--mode=constrained", f"--quantiles={q}", "--save_path={out}"), "quantiles")
                   for q in ("nan", "1.5", "", "0", "x")))),
    "weaknas": Spec(("--method=random", "--repeat=1", "--max_sample=20", "--notsne", "--noprogress",
                     "--save_dir={out}"), ("save_dir", "dir"),
                    ((("--method=random", "--init_sample=5"), "init_sample"),
                     (("--method=weaknas", "--population_size=5"), "population_size")), ("WeakNAS",),
                    ((("--rand_seed=-1",), "rand_seed"), (("--repeat=0",), "repeat"),
                     (("--batch_seeds=0",), "batch_seeds"), (("--device=pixel3",), "device/latency_budget"),
                     (("--method=weaknas", "--mlp_size=a,b"), "mlp_size"),
                     (("--dataset=mnist",), "dataset"),
                     (("--device=not_a_device", "--latency_budget=5"), "device"),
                     (("--device=pixel3", "--latency_budget=-5"), "latency_budget"))),
}


# --- the worker --------------------------------------------------------------------------------------------
class Worker:
    """One experiment module imported once in a child process; :meth:`run` executes a command line there."""

    def __init__(self, module: str):
        env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               "JAX_PLATFORMS": "cpu"}
        self.proc = subprocess.Popen([sys.executable, str(WORKER), module], cwd=ROOT, env=env,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.proc.stdout, selectors.EVENT_READ)
        hello = self._read(300)
        assert hello.get("ready"), f"{module} does not import:\n{hello.get('traceback')}"
        self.flags = self._ask({"op": "describe"})["flags"]

    def _read(self, timeout: float) -> dict:
        if not self.sel.select(timeout):
            self.close()
            raise AssertionError(f"worker gave no answer within {timeout} s")
        line = self.proc.stdout.readline()
        assert line, "worker died"
        return json.loads(line)

    def _ask(self, req: dict, timeout: float = 600) -> dict:
        self.proc.stdin.write(json.dumps(req) + "\n")
        self.proc.stdin.flush()
        return self._read(timeout)

    def run(self, argv, cwd) -> dict:
        return self._ask({"op": "run", "argv": [str(a) for a in argv], "cwd": str(cwd)})

    def parse(self, argv, cwd) -> dict:
        return self._ask({"op": "parse", "argv": [str(a) for a in argv], "cwd": str(cwd)})

    def close(self):
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="module")
def workers():
    pool: dict[str, Worker] = {}

    def get(name: str) -> Worker:
        if name not in pool:
            pool[name] = Worker(f"experiments.{name}")
        return pool[name]

    yield get
    for w in pool.values():
        w.close()


@pytest.fixture(scope="module")
def places(tmp_path_factory):
    """Inputs the base flags point at: BINAS's synthetic files and a small DGL data folder."""
    import numpy as np
    from test_binas_search import ST, contribution_estimator, synthetic_latency
    from test_dgl_hardening import _folder

    from nasjax.benchmarks.binas_lut import write_latency_lut

    root = tmp_path_factory.mktemp("fuzz_inputs")
    binas = root / "binas"
    binas.mkdir()
    general, layers = synthetic_latency(ST, 0)
    write_latency_lut(binas / "LUT.pkl", general, layers)
    rng = np.random.default_rng(0)
    contribution_estimator(70.0, 70 + rng.uniform(0, 1, (20, 12)), 70 + rng.uniform(0, 1, (5, 3))).save(
        binas / "est.npz")
    _folder(root / "dgl")
    bad = root / "flagfiles"
    bad.mkdir()
    (bad / "binary.flags").write_bytes(b"\xff\xfe--mode=nas\n\x00\x80")
    (bad / "stray.flags").write_text("stray_in_a_flagfile\n")
    (bad / "cycle_a.flags").write_text(f"--flagfile={bad / 'cycle_b.flags'}\n")
    (bad / "cycle_b.flags").write_text(f"--flagfile={bad / 'cycle_a.flags'}\n")
    return {"binas": binas, "dgl": root / "dgl", "flags": bad}


def _tree(d: Path) -> list[str]:
    """Every entry below ``d`` (hidden files included), with file sizes."""
    if not d.exists():
        return []
    return sorted(f"{p.relative_to(d)}:{p.stat().st_size if p.is_file() else 'dir'}" for p in d.rglob("*"))


class Sandbox:
    """A fresh output root and working directory per case; checks that a refused case left both as they were."""

    def __init__(self, base: Path, places: dict):
        self.base, self.places, self.n = base, places, 0

    def case(self):
        self.n += 1
        d = self.base / f"case{self.n}"
        (d / "cwd").mkdir(parents=True)
        (d / "root").mkdir()
        return d / "cwd", d / "root"

    def fill(self, argv, root: Path):
        return [a.format(out=root / "out", root=root, **self.places) for a in argv]


@pytest.fixture
def sandbox(tmp_path, places):
    return Sandbox(tmp_path, places)


def refused(worker: Worker, sandbox: Sandbox, argv, names, *, prepare=None, fast=False) -> str | None:
    """Run ``argv`` (placeholders filled; ``prepare(root)`` first); ``None`` when the run kept the contract
    (exit 2, one line naming one of ``names``, nothing written and, with ``fast``, refused within
    :data:`REFUSAL_SECONDS`), else what went wrong (for one combined report)."""
    cwd, root = sandbox.case()
    if prepare is not None:
        prepare(root)
    argv = sandbox.fill(argv, root)
    before = _tree(root)
    r = worker.run(argv, cwd)
    lines = r["stderr"].strip().splitlines()
    where = f"{' '.join(argv)}\n  -> code {r['code']}, stderr {r['stderr'][-600:]!r}"
    if r["traceback"] is not None:
        return f"{where}\n  traceback:\n{r['traceback']}"
    if r["code"] != 2:
        return f"{where}: expected exit status 2"
    if len(lines) != 1 or not lines[0].startswith("error: ") or "Traceback" in r["stderr"]:
        return f"{where}: expected one line 'error: ...' on stderr"
    if names and not any(n in lines[0] for n in ([names] if isinstance(names, str) else names)):
        return f"{where}: the message does not name {names!r}"
    if _tree(root) != before:
        return f"{where}: wrote {sorted(set(_tree(root)) ^ set(before))}"
    if os.listdir(cwd):
        return f"{where}: wrote {os.listdir(cwd)} into the working directory"
    if fast and r["seconds"] > REFUSAL_SECONDS:
        return f"{where}: refused only after {r['seconds']:.1f} s (expected before any work)"
    return None


def generic_cases(flags: list[dict], base: tuple[str, ...]) -> list[tuple[list[str], object]]:
    """(argv, names the message must contain) for the flag errors every experiment must refuse."""
    base = list(base)
    cases = [(base + ["--nasjax_no_such_flag=1"], "nasjax_no_such_flag"),
             (base + ["stray_argument"], "stray_argument"),
             (base + ["--flagfile={out}/missing.flags"], "missing.flags"),
             (["--flagfile={out}/missing.flags"] + base, "missing.flags"),
             (base + ["--flagfile="], "flagfile"),
             (base + ["--flagfile={flags}/binary.flags"], "binary.flags"),
             (base + ["--flagfile={flags}/stray.flags"], "stray_in_a_flagfile"),
             (base + ["--flagfile={flags}/cycle_a.flags"], "cycle_"),
             (base + ["--flagfile={flags}"], "flags"),
             (base + ["--stderrthreshold="], "stderrthreshold"),  # absl's own flags keep the contract too
             (base + ["--verbosity=loud"], "verbosity")]
    for f in flags:
        n, kind = f["name"], f["kind"]
        bad = {"enum": ["not_a_choice", ""], "int": ["abc", "1.5", "", "nan", "1e3"],
               "float": ["abc", "", "nan", "inf", "-inf", "1e999", "NaN"], "bool": ["maybe", "2"]}.get(kind, [])
        cases += [(base + [f"--{n}={v}"], n) for v in bad]
        if f["required"]:
            cases.append(([a for a in base if not a.startswith(f"--{n}=")], n))
    return cases


EXPERIMENTS = discover()


def test_discovery_finds_the_experiments():
    """Every public experiment module defines ``main`` (so the suite covers it) and runs it through
    ``nasjax.cli.run`` (the error contract)."""
    assert {"nasbench201_search", "dgl", "weaknas", "binas_search", "block_profile"} <= set(EXPERIMENTS)
    public = sorted(p.stem for p in (ROOT / "experiments").glob("*.py") if not p.name.startswith("_"))
    assert public == EXPERIMENTS, f"experiments without a module-level main: {sorted(set(public) - set(EXPERIMENTS))}"
    for name in EXPERIMENTS:
        assert "cli.run(main)" in (ROOT / "experiments" / f"{name}.py").read_text(), \
            f"experiments/{name}.py: expected `cli.run(main)` under __main__"


def auto_base(flags: list[dict]) -> tuple[str, ...]:
    """Base flags of an experiment without a :data:`SPECS` entry: a value for each required flag (a path
    below the output root for strings), so each case fails on its own flag, not on a missing one."""
    value = {"int": "1", "float": "1.0", "bool": "true", "list": "{out}/x"}
    return tuple(f"--{f['name']}=" + (f["enum"][0] if f["kind"] == "enum" else value.get(f["kind"], "{out}"))
                 for f in flags if f["required"])


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_flag_errors(workers, sandbox, name):
    w = workers(name)
    assert w.flags, f"{name} defines no flags"
    spec = SPECS.get(name) or Spec(base=auto_base(w.flags))
    cases = generic_cases(w.flags, spec.base)
    extra = spec.wrong_mode + (spec.bad if not _missing(spec) else ())  # some bad values are found in the data
    cases += [(_command(spec.base, argv), n) for argv, n in extra]
    problems = [p for argv, n in cases if (p := refused(w, sandbox, argv, n)) is not None]
    assert not problems, f"{len(problems)} of {len(cases)} cases broke the contract:\n" + "\n".join(problems)


def _file(root: Path):
    (root / "afile").write_text("keep\n")


def _dir(root: Path):
    (root / "adir").mkdir()


def _readonly(root: Path):
    (root / "ro").mkdir()
    os.chmod(root / "ro", 0o555)


@pytest.mark.parametrize("name", [n for n in EXPERIMENTS if SPECS.get(n, Spec()).out])
def test_output_paths(workers, sandbox, name):
    """Empty, a file, below a file, not writable, not creatable: refused before any work, nothing written."""
    spec = SPECS[name]
    flag, kind = spec.out
    w = workers(name)
    bases = (spec.base, *spec.extra_base)
    targets = [("", None), ("{root}/afile/sub", _file), ("/sys/nasjax-fuzz-out", None),
               ("/proc/nasjax-fuzz/out", None)]
    targets.append(("{root}/afile", _file) if kind == "dir" else ("{root}/adir", _dir))
    if kind == "file":
        targets += [("{root}/adir/", _dir), ("/sys/nasjax-fuzz.json", None)]
    if os.geteuid() != 0:  # root writes into a mode-555 directory
        targets.append(("{root}/ro/out" + ("/r.json" if kind == "file" else ""), _readonly))
    problems = []
    for base in bases:
        for target, prep in targets:
            argv = [a for a in base if not a.startswith(f"--{flag}=")] + [f"--{flag}={target}"]
            if (p := refused(w, sandbox, argv, flag, prepare=prep, fast=True)) is not None:
                problems.append(p)
    for p in Path(sandbox.base).rglob("ro"):
        os.chmod(p, 0o755)
    assert not problems, "\n".join(problems)


def _missing(spec: Spec) -> list[str]:
    d = shared_data_dir()
    return [n for n in spec.needs if d is None or not (d / n).exists()]


def _needs(spec: Spec):
    missing = _missing(spec)
    if missing:
        pytest.skip(f"reference data {missing} absent (set NASJAX_SHARED_DATA); skipping the valid run")


@pytest.mark.parametrize("name", [n for n in EXPERIMENTS if n in SPECS])
def test_base_flags_are_a_valid_run(workers, sandbox, name):
    """The base flags of :data:`SPECS` run (so the refusals above are about the one bad flag), write only
    below the output path, nothing into the working directory, and no solver banner on stdout."""
    spec = SPECS[name]
    _needs(spec)
    w = workers(name)
    cwd, root = sandbox.case()
    argv = sandbox.fill(spec.base, root)
    r = w.run(argv, cwd)
    assert r["traceback"] is None and r["code"] == 0, (argv, r)
    assert "HiGHS" not in r["stdout"] and "Running HiGHS" not in r["stderr"]
    assert os.listdir(cwd) == []
    written = _tree(root)
    assert written and all(e.startswith("out") for e in written), written
    names = [Path(e.split(":")[0]).name for e in written]
    assert not [n for n in names if n.startswith(".staging-") or (n.startswith(".") and n.endswith(".tmp"))], written


# --- generated values ----------------------------------------------------------------------------------------
_NUMBERISH = st.one_of(
    st.text(max_size=10),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-(10**30), 10**30).map(str),
    st.tuples(st.floats(-1e20, 1e20).map(repr), st.sampled_from(["", "ms", "s", "us", "MFLOPs", "mJ", "x", " ms",
                                                                  "ms ", "%"])).map("".join),
)


def _accepts_or_refuses(worker, sandbox, argv, generated, name):
    """``argv`` (placeholders filled) + ``generated`` (as is): exit 0, or the contract's refusal naming
    ``name``; never a traceback or another status."""
    cwd, root = sandbox.case()
    argv = sandbox.fill(argv, root) + list(generated)
    r = worker.run(argv, cwd)
    assert r["traceback"] is None, (argv, r["traceback"])
    assert r["code"] in (0, 2), (argv, r)
    if r["code"] == 2:
        lines = r["stderr"].strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), (argv, r["stderr"])
        assert name in lines[0] or "flags:" in lines[0], (argv, lines)
        assert _tree(root) == [], (argv, _tree(root))
    assert os.listdir(cwd) == []
    return r


@FUZZ
@given(value=_NUMBERISH)
def test_generated_mathnas_budgets(workers, sandbox, value):
    spec = SPECS["nasbench201_search"]
    _needs(spec)
    _accepts_or_refuses(workers("nasbench201_search"), sandbox,
                        spec.base, [f"--latency_constraint={value}"], "latency_constraint")


@FUZZ
@given(value=_NUMBERISH)
def test_generated_binas_budgets(workers, sandbox, value):
    _accepts_or_refuses(workers("binas_search"), sandbox,
                        SPECS["binas_search"].base, [f"--inference_time_limit={value}"], "inference_time_limit")


@FUZZ
@given(value=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-(10**20), 10**20)))
def test_generated_dgl_constraints(workers, sandbox, value):
    """DGL's NAS budget (a float flag) on a model-less run: refused naming the budget or the missing model."""
    r = _accepts_or_refuses(workers("dgl"), sandbox, ["--mode=nas", "--data_path={dgl}", "--save_path={out}"],
                            [f"--latency_constraint={value!r}"], "")
    assert r["code"] == 2  # no model file exists
    assert ("latency_constraint" in r["stderr"]) == (not (value > 0 and value != float("inf"))), r["stderr"]


_BLOCK = st.one_of(
    st.text(max_size=12),
    st.tuples(st.integers(-3, 12), st.integers(-3, 8)).map(lambda t: f"{t[0]}:{t[1]}"),
    st.tuples(st.text("0123456789ab/", max_size=4), st.text("0123456789:/", max_size=4)).map("/".join),
)


@FUZZ
@given(blocks=st.lists(_BLOCK, min_size=1, max_size=3))
def test_generated_block_keys(workers, sandbox, blocks):
    """Architecture blocks of ``--blocks`` (``<position>:<choice>``, ``<unit>/<layer>/<choice>``) as text."""
    spec = SPECS["block_profile"]
    _needs(spec)
    text = ",".join(blocks)
    _accepts_or_refuses(workers("block_profile"), sandbox,
                        [a for a in spec.base if not a.startswith("--blocks=")], [f"--blocks={text}"], "blocks")


# --- defects found at the entry points, one test each ----------------------------------------------------------
def test_solver_banner_stays_off_stdout(workers, sandbox):
    """An exact HiGHS solve through the experiment prints no solver banner on file descriptor 1."""
    spec = SPECS["nasbench201_search"]
    _needs(spec)
    cwd, root = sandbox.case()
    argv = [a for a in sandbox.fill(spec.base, root) if not a.startswith("--solver=")] + ["--solver=highs"]
    r = workers("nasbench201_search").run(argv, cwd)
    assert r["code"] == 0, r
    assert "highs" in r["stdout"]  # the experiment's own report names the solver ...
    assert "HiGHS" not in r["stdout"] and "Running HiGHS" not in r["stderr"]  # ... the banner is not printed


def test_predict_and_search_refuse_tables_whose_sums_overflow(workers, sandbox, tmp_path):
    """Finite cells whose sum overflows (1e300 each): predict must not print -inf / inf, search must not solve."""
    from test_readers_mathnas import REL, _derived_only

    spec = SPECS["nasbench201_search"]
    _needs(spec)
    w = workers("nasbench201_search")
    cwd, root = sandbox.case()
    ok = w.run(sandbox.fill(spec.base, root), cwd)
    assert ok["code"] == 0, ok
    yml = next((root / "out").rglob("*.yml"))
    huge = _derived_only(tmp_path, lambda d: d["files"][REL].update(
        values=[[1e300] * len(row) for row in d["files"][REL]["values"]]))
    for argv in (["--mode=predict", f"--load_path={yml}", f"--tables_dir={huge}"],
                 [*spec.base, f"--tables_dir={huge}"]):
        problem = refused(w, sandbox, argv, ["blocklat_fpga", "latency"])
        assert problem is None, problem
        assert "inf" not in w.run(argv, sandbox.case()[0])["stdout"]


def test_a_mode_flag_of_another_mode_is_refused_not_ignored(workers, sandbox):
    """``--latency_constraint`` with ``--mode=predict`` (once silently ignored) names the flag and its modes."""
    spec = SPECS["nasbench201_search"]
    cwd, root = sandbox.case()
    r = workers("nasbench201_search").run(["--mode=predict", "--latency_constraint=500", "--load_path=x.yml"], cwd)
    assert r["code"] == 2 and r["stderr"].strip() == ("error: latency_constraint: given with --mode=predict, "
                                                      "expected it only with --mode=nas (it would be ignored)")
    assert spec.base and os.listdir(cwd) == []


_JUNK = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70),
                  st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=8),
                  st.lists(st.integers(-5, 40), max_size=12),
                  st.dictionaries(st.text(max_size=4), st.integers(), max_size=2))


@FUZZ
@given(data=st.data())
def test_generated_architecture_ymls_for_predict(workers, sandbox, data):
    """``--mode=predict --load_path=<yml>`` with a published architecture yml changed in one place (a value
    replaced by junk, a list item changed, a key removed or added) or its bytes damaged."""
    import yaml

    spec = SPECS["supervit_search"]
    _needs(spec)
    src = shared_data_dir() / "MathNAS" / "results" / "supervit" / "MathNAS-T1.yml"
    doc = yaml.safe_load(src.read_text())
    how = data.draw(st.sampled_from(["value", "item", "delete", "add", "bytes"]))
    key = data.draw(st.sampled_from(sorted(doc)))
    if how == "value":
        doc[key] = data.draw(_JUNK)
    elif how == "item" and isinstance(doc[key], list) and doc[key]:
        doc[key][data.draw(st.integers(0, len(doc[key]) - 1))] = data.draw(_JUNK)
    elif how == "delete":
        del doc[key]
    elif how == "add":
        doc[data.draw(st.text(min_size=1, max_size=6))] = data.draw(_JUNK)
    text = yaml.safe_dump(doc).encode()
    if how == "bytes":
        raw = bytearray(src.read_bytes())
        cut = data.draw(st.integers(0, len(raw)))
        raw = raw[:cut] + data.draw(st.binary(max_size=6)) + raw[cut:]
        text = bytes(raw)
    cwd, root = sandbox.case()
    yml = root / "arch.yml"
    yml.write_bytes(text)
    before = _tree(root)
    r = workers("supervit_search").run(["--mode=predict", f"--load_path={yml}"], cwd)
    assert r["traceback"] is None, r["traceback"]
    assert r["code"] in (0, 2), r
    if r["code"] == 2:
        lines = r["stderr"].strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), r["stderr"]
        assert "arch.yml" in lines[0] or any(str(k) in lines[0] for k in doc), lines[0]
    else:
        assert "predicted" in r["stdout"] and "nan" not in r["stdout"].lower()
    assert _tree(root) == before and os.listdir(cwd) == []


@pytest.mark.parametrize("name", [n for n in EXPERIMENTS if n in SPECS])
def test_empty_and_odd_string_values(workers, sandbox, name):
    """Every string and list flag given as '' / ' ' / a NUL byte / a path-like junk value on top of the valid
    base: the run succeeds or is refused by the contract (never a traceback, never output outside ``{out}``)."""
    spec = SPECS[name]
    _needs(spec)
    w = workers(name)
    problems = []
    for f in w.flags:
        if f["kind"] not in ("string", "list") or (spec.out and f["name"] == spec.out[0]):
            continue
        for value in ("", " ", "\x00", "../" * 3 + "nowhere", ","):
            cwd, root = sandbox.case()
            argv = [a for a in sandbox.fill(spec.base, root) if not a.startswith(f"--{f['name']}=")]
            argv.append(f"--{f['name']}={value}")
            r = w.run(argv, cwd)
            lines = r["stderr"].strip().splitlines()
            where = f"{' '.join(argv)!r}\n  -> code {r['code']}, stderr {r['stderr'][-400:]!r}"
            if r["traceback"] is not None:
                problems.append(f"{where}\n{r['traceback']}")
            elif r["code"] not in (0, 2) or (r["code"] == 2 and (len(lines) != 1 or not lines[0].startswith("error:"))):
                problems.append(f"{where}: expected exit 0, or 2 with one line")
            elif os.listdir(cwd) or (r["code"] == 2 and _tree(root)):
                problems.append(f"{where}: wrote {os.listdir(cwd)} {_tree(root)}")
    assert not problems, f"{len(problems)} problems:\n" + "\n".join(problems)


FLAGFILES = sorted((ROOT / "experiments" / "flags").glob("*.flags"))


@pytest.mark.parametrize("flagfile", FLAGFILES, ids=[p.stem for p in FLAGFILES])
def test_every_shipped_flagfile_parses(workers, tmp_path, flagfile):
    """A shipped recipe names its command (``python -m experiments.<name>``) and every line parses there."""
    import re

    m = re.search(r"python -m experiments\.(\w+)", flagfile.read_text())
    assert m, f"{flagfile.name}: expected a comment line with its command 'python -m experiments.<name>'"
    name = m.group(1)
    assert name in EXPERIMENTS, f"{flagfile.name}: experiments.{name} is not an experiment"
    r = workers(name).parse([f"--flagfile={flagfile}"], ROOT)
    assert r["code"] == 0, r["stderr"]
