"""Checkpoint reader: damaged, truncated, incomplete and mismatched checkpoints give a NasjaxInputError."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from nasjax.errors import NasjaxInputError
from nasjax.train.checkpoint import FILE_MANIFEST, CheckpointStore

STATE = {"params": {"w": np.arange(12, dtype=np.float32).reshape(3, 4), "b": np.ones(4, np.float32)},
         "step": np.int64(3)}


def _files(d):
    return sorted(str(p.relative_to(d)) for p in d.rglob("*"))


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    d = tmp_path_factory.mktemp("ckpt") / "src"
    store = CheckpointStore(d)
    store.save(3, STATE, {"note": "x"})
    store.close()
    return d


def _restore(d, like=STATE, step=None):
    store = CheckpointStore(d, create=False)
    try:
        return store.restore(like, step)
    finally:
        store.close()


def _copy(saved, tmp_path):
    d = tmp_path / "ck"
    shutil.copytree(saved, d)
    return d


def test_intact_round_trip(saved, tmp_path):
    d = _copy(saved, tmp_path)
    out, meta = _restore(d)
    np.testing.assert_array_equal(out["params"]["w"], STATE["params"]["w"])
    assert meta["note"] == "x" and meta["files"] == FILE_MANIFEST and (d / "3" / FILE_MANIFEST).is_file()


def test_every_saved_file_damaged_or_missing_is_named(saved, tmp_path):
    src_files = [p.relative_to(saved) for p in (saved / "3").rglob("*") if p.is_file()
                 and p.parts[-2:] != ("3", FILE_MANIFEST) and p.relative_to(saved / "3").parts[0] in ("state", "meta")]
    assert len(src_files) >= 4
    for rel in src_files:
        for how in ("missing", "truncated", "garbage"):
            d = tmp_path / f"{how}_{str(rel).replace('/', '_')}"
            shutil.copytree(saved, d)
            p = d / rel
            if how == "missing":
                p.unlink()
            elif how == "truncated":
                p.write_bytes(p.read_bytes()[: max(0, p.stat().st_size // 2)])
            else:
                p.write_bytes(b"\xff\x00 not what was saved")
            before = _files(d)
            with pytest.raises(NasjaxInputError) as e:
                _restore(d)
            msg = str(e.value)
            assert str(d) in msg and ("meta" in msg or str(rel.relative_to("3")) in msg), msg
            assert _files(d) == before  # nothing written by a failed restore


def test_meta_checks(saved, tmp_path):
    def edit(name, change):
        d = tmp_path / name
        shutil.copytree(saved, d)
        p = d / "3" / "meta" / "metadata"
        m = json.loads(p.read_text())
        change(m)
        p.write_text(json.dumps(m))
        return d

    with pytest.raises(NasjaxInputError, match="meta/metadata' is corrupted"):
        _restore(edit("digest", lambda m: m.update(digest="0" * 64)))
    with pytest.raises(NasjaxInputError, match="meta digest 5"):
        _restore(edit("digest_type", lambda m: m.update(digest=5)))
    with pytest.raises(NasjaxInputError, match="num_leaves"):
        _restore(edit("leaves", lambda m: m.update(num_leaves="3")))
    with pytest.raises(NasjaxInputError, match="meta step 4, expected 3"):
        _restore(edit("step", lambda m: m.update(step=4)))
    d = _copy(saved, tmp_path)
    (d / "3" / "meta" / "metadata").write_bytes(b"\x89PNG\r\n")
    with pytest.raises(NasjaxInputError, match="not UTF-8"):  # not a UnicodeDecodeError traceback
        _restore(d)


def test_state_of_another_shape_is_refused_naming_the_leaf(saved, tmp_path):
    """orbax restores a saved (3, 4) array into a (4, 3) or (5,) slot without complaint."""
    d = _copy(saved, tmp_path)
    for like, msg in [
        ({**STATE, "params": {**STATE["params"], "w": np.zeros((4, 3), np.float32)}}, r"\['params'\]\['w'\]"),
        ({**STATE, "params": {**STATE["params"], "b": np.zeros(5, np.float32)}}, r"\['params'\]\['b'\]"),
        ({**STATE, "params": {**STATE["params"], "w": np.zeros((3, 4), np.float64)}}, "float64"),
        ({"step": np.int64(0)}, "3 arrays, expected 1"),
    ]:
        with pytest.raises(NasjaxInputError, match=msg):
            _restore(d, like)
    with pytest.raises(NasjaxInputError, match=r"step 5, expected one of the steps on disk \[3\]"):
        _restore(d, step=5)


def test_interrupted_save_falls_back_to_the_previous_step(tmp_path):
    d = tmp_path / "ck"
    store = CheckpointStore(d)
    store.save(2, STATE, {})
    later = {**STATE, "step": np.int64(4)}
    store.save(4, later, {})
    store.close()
    (d / "4" / FILE_MANIFEST).unlink()  # killed between orbax's finalisation and the manifest
    out, meta = _restore(d)
    assert meta["step"] == 2 and int(out["step"]) == 3
    with pytest.raises(NasjaxInputError, match="nasjax_files.json"):
        _restore(d, step=4)
    shutil.rmtree(d / "2")
    with pytest.raises(NasjaxInputError, match=r"no finished checkpoint step \(steps \[4\] are incomplete"):
        _restore(d)


def test_missing_directory_is_not_created(tmp_path):
    with pytest.raises(NasjaxInputError, match="no such directory"):
        CheckpointStore(tmp_path / "absent", create=False)
    assert not (tmp_path / "absent").exists()
