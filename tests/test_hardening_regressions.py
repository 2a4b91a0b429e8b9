"""Regression tests of the entry-point helper :mod:`nasjax.cli`: result sets are atomic under exceptions and
kills, leftovers of killed runs are removed by the next run (and only those), output paths are checked
before work, and flag values that are not finite numbers are refused."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from nasjax import cli
from nasjax.errors import NasjaxInputError

ROOT = Path(__file__).resolve().parents[1]


def _names(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir())


def _publish(out: Path, files: dict, summary=None, manifest="summary.json"):
    with cli.ResultSet(out, manifest=manifest) as rs:
        for name, text in files.items():
            rs.path(name).write_text(text)
        rs.summary = dict(summary or {})


def test_result_set_publishes_manifest_last_with_digests(tmp_path):
    _publish(tmp_path, {"runs.csv": "a\n", "curve.csv": "b\n"}, {"runs": 2})
    assert _names(tmp_path) == ["curve.csv", "runs.csv", "summary.json"]
    man = json.loads((tmp_path / "summary.json").read_text())
    assert man["runs"] == 2 and sorted(man["files"]) == ["curve.csv", "runs.csv"]
    assert all(len(h) == 64 for h in man["files"].values())


def test_result_set_unchanged_when_the_command_fails(tmp_path):
    _publish(tmp_path, {"runs.csv": "old\n"}, {"v": 1})
    with pytest.raises(RuntimeError), cli.ResultSet(tmp_path, manifest="summary.json") as rs:
        rs.path("runs.csv").write_text("new\n")
        rs.path("curve.png").write_bytes(b"x")
        raise RuntimeError("the sweep failed half-way")
    assert _names(tmp_path) == ["runs.csv", "summary.json"]
    assert (tmp_path / "runs.csv").read_text() == "old\n"
    with pytest.raises(ValueError, match="manifest"), cli.ResultSet(tmp_path, manifest="summary.json") as rs:
        rs.path("summary.json")


_KILLED = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    from nasjax import cli
    out, when = Path(sys.argv[1]), sys.argv[2]
    real = os.replace
    def replace(src, dst, n=[0]):
        real(src, dst)
        n[0] += 1
        if when == "publishing" and n[0] == 1:
            os.kill(os.getpid(), signal.SIGKILL)
    os.replace = replace
    with cli.ResultSet(out, manifest="summary.json") as rs:
        for name in ("runs.csv", "curve.csv", "curve.png"):
            rs.path(name).write_text(name + " new")
            if when == "between files" and name == "curve.csv":
                os.kill(os.getpid(), signal.SIGKILL)
""")


@pytest.mark.parametrize("when", ["between files", "publishing"])
def test_a_killed_set_is_never_taken_for_a_whole_one_and_the_next_run_cleans_up(tmp_path, when):
    """A sweep killed between its output files (or while moving them into place) leaves no manifest (the
    reader's sign of a whole set) next to partial files; the next set removes the staging directory."""
    _publish(tmp_path, {"runs.csv": "runs.csv old", "curve.csv": "curve.csv old", "curve.png": "curve.png old"})
    r = subprocess.run([sys.executable, "-c", _KILLED, str(tmp_path), when], cwd=ROOT, capture_output=True,
                       text=True, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert r.returncode == -signal.SIGKILL, r.stderr
    names = _names(tmp_path)
    stages = [n for n in names if n.startswith(".staging-")]
    if when == "between files":  # nothing published: the old set is whole, the new one is only staged
        assert (tmp_path / "summary.json").exists() and (tmp_path / "runs.csv").read_text() == "runs.csv old"
    else:  # the manifest went first, so the mixed files are recognisably not a set
        assert not (tmp_path / "summary.json").exists()
    assert len(stages) == 1
    (tmp_path / ".runs.csv.k1ll3d.tmp").write_text("")  # an atomic write killed half-way
    _publish(tmp_path, {"runs.csv": "runs.csv again"})
    assert _names(tmp_path) == ["curve.csv", "curve.png", "runs.csv", "summary.json"]
    assert json.loads((tmp_path / "summary.json").read_text())["files"].keys() == {"runs.csv"}


def test_stale_temporaries_of_a_live_process_are_kept(tmp_path):
    live = tmp_path / f".staging-{os.getppid()}-abc"
    dead = tmp_path / ".staging-999999999-abc"
    live.mkdir()
    dead.mkdir()
    (tmp_path / ".x.json.tmp").write_text("")
    (tmp_path / "keep.tmp").write_text("a result named .tmp, not hidden")
    writing = tmp_path / f".y.json.pid{os.getppid()}-abc123.tmp"  # a concurrent run's write in progress
    writing.write_text("")
    killed = tmp_path / ".y.json.pid999999999-abc123.tmp"
    killed.write_text("")
    removed = {p.name for p in cli.remove_stale_temporaries(tmp_path)}
    assert removed == {dead.name, ".x.json.tmp", killed.name}
    assert _names(tmp_path) == sorted([live.name, "keep.tmp", writing.name])


def test_cleanup_never_breaks_a_concurrent_atomic_write(tmp_path):
    """Another run's cleanup while this one writes: the temporary carries this pid and is left alone."""
    from nasjax.io import atomic_path

    with atomic_path(tmp_path / "result.json") as tmp:
        tmp.write_text("{}")
        assert f".pid{os.getpid()}-" in tmp.name
        assert cli.remove_stale_temporaries(tmp_path) == []
    assert _names(tmp_path) == ["result.json"]


@pytest.mark.parametrize("path, match", [
    ("", "expected a directory path"), ("   ", "expected a directory path"), (None, "expected a directory path"),
    ("{file}", "is a file"), ("{file}/sub", "is a file"), ("/sys/nasjax-out", "cannot write"),
    ("/proc/nasjax/out", "cannot write"),
])
def test_output_paths_are_checked_and_nothing_is_created(tmp_path, path, match):
    f = tmp_path / "afile"
    f.write_text("x")
    target = None if path is None else path.format(file=f)
    with pytest.raises(NasjaxInputError, match=f"save_path: .*{match}"):
        cli.check_output_dir(target)
    assert _names(tmp_path) == ["afile"]
    assert cli.check_output_dir(tmp_path / "new" / "deeper") == tmp_path / "new" / "deeper"
    assert _names(tmp_path) == ["afile"]  # checking creates nothing


def test_non_finite_float_flags_and_list_items_are_refused(capsys):
    from absl import flags

    from nasjax.cli import _convert_list, _strict_parser

    fv = flags.FlagValues()
    flags.DEFINE_float("budget_x", 1.0, "", flag_values=fv)
    saved = flags.FLAGS
    flags.FLAGS = fv  # the parser reads the global FLAGS
    try:
        for bad in ("nan", "inf", "-inf", "1e999"):
            fv.unparse_flags()
            with pytest.raises(SystemExit) as e:
                _strict_parser(["prog", f"--budget_x={bad}"])
            assert e.value.code == 2
            assert capsys.readouterr().err.strip().startswith("error: budget_x: got ")
        fv.unparse_flags()
        assert _strict_parser(["prog", "--budget_x=2.5"]) == ["prog"] and fv.budget_x == 2.5
    finally:
        flags.FLAGS = saved
    with pytest.raises(NasjaxInputError, match=r"quantiles\[1\]: got 'nan', expected .*finite numbers"):
        _convert_list("quantiles", ["0.5", "nan"], tuple[float, ...])
    assert _convert_list("q", ["0.5", "1"], tuple[float, ...]) == (0.5, 1.0)


def test_gene_values_beyond_float_range_are_refused_naming_the_gene():
    """An integer gene too large for a float (10**400 in a yml) raised OverflowError from the codec."""
    from nasjax.spaces.fbnetv3 import genes_to_arch

    with pytest.raises(NasjaxInputError, match=r"genes\[0\]\[0\] \(kernel s1\): got 1000.*\(int\), expected one of"):
        genes_to_arch([[10**400] + [0] * 27])
    with pytest.raises(NasjaxInputError, match=r"genes\[1\]\[3\]"):
        genes_to_arch([[3] * 28, [3, 3, 3, -(10**400)] + [3] * 24])
