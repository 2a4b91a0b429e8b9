"""Portable model files (nasjax.hardware.model_io): exact round trips, header, and corrupted-file errors."""

import numpy as np
import pytest

from nasjax.errors import NasjaxInputError
from nasjax.hardware import model_io


def test_arrays_round_trip_exact(tmp_path):
    arrs = {"w": np.arange(12, dtype=np.float32).reshape(3, 4), "idx": np.array([1, 2, 3]), "flag": np.array([True])}
    p = tmp_path / "m.npz"
    model_io.save_arrays(p, arrs, kind="test.kind", version=3, header={"unit": "ms", "features": ["a", "b"]})
    got, h = model_io.load_arrays(p, kind="test.kind")
    assert sorted(got) == sorted(arrs)
    for k in arrs:
        assert got[k].dtype == arrs[k].dtype and np.array_equal(got[k], arrs[k])
    assert h["unit"] == "ms" and h["features"] == ["a", "b"] and h["version"] == 3
    assert h["format"] == model_io.FORMAT and h["arrays"]["w"]["shape"] == [3, 4]


def test_nnx_round_trip_identical_predictions(tmp_path):
    import jax.numpy as jnp
    from flax import nnx

    m = nnx.Sequential(nnx.Linear(3, 5, rngs=nnx.Rngs(0)), nnx.tanh, nnx.Linear(5, 1, rngs=nnx.Rngs(1)))
    p = tmp_path / "nnx.npz"
    model_io.save_nnx(p, m, kind="seq", header={"n_in": 3}, extra_arrays={"x_mean": np.ones(3)})
    build = lambda h: nnx.Sequential(nnx.Linear(h["n_in"], 5, rngs=nnx.Rngs(7)), nnx.tanh,
                                     nnx.Linear(5, 1, rngs=nnx.Rngs(8)))
    m2, h, extra = model_io.load_nnx(p, build, kind="seq")
    x = jnp.linspace(-1, 1, 12).reshape(4, 3)
    assert np.array_equal(np.asarray(m(x)), np.asarray(m2(x)))
    assert np.array_equal(extra["x_mean"], np.ones(3))


def test_corrupted_and_wrong_files(tmp_path):
    p = tmp_path / "m.npz"
    model_io.save_arrays(p, {"w": np.arange(100.0)}, kind="k")
    with pytest.raises(NasjaxInputError, match="kind"):
        model_io.load_arrays(p, kind="other")
    blob = bytearray(p.read_bytes())
    # flip bytes inside the stored array data (npz members are stored uncompressed)
    raw = np.arange(100.0).tobytes()
    at = bytes(blob).find(raw[80:120])
    assert at > 0
    blob[at:at + 8] = b"\x00" * 8
    bad = tmp_path / "bad.npz"
    bad.write_bytes(bytes(blob))
    with pytest.raises(NasjaxInputError, match="corrupted|checksum|readable"):
        model_io.load_arrays(bad)
    trunc = tmp_path / "trunc.npz"
    trunc.write_bytes(p.read_bytes()[:200])
    with pytest.raises(NasjaxInputError, match="readable"):
        model_io.load_arrays(trunc)
    with pytest.raises(NasjaxInputError, match="no model file"):
        model_io.load_arrays(tmp_path / "missing.npz")
    plain = tmp_path / "plain.npz"
    np.savez(plain, w=np.ones(2))
    with pytest.raises(NasjaxInputError, match="__header__"):
        model_io.load_arrays(plain)
    with pytest.raises(NasjaxInputError, match="dtype"):
        model_io.save_arrays(tmp_path / "o.npz", {"o": np.array([{"a": 1}], dtype=object)}, kind="k")
    assert not (tmp_path / "o.npz").exists()


def test_versions_foreign_files_and_non_finite_arrays(tmp_path):
    p = tmp_path / "m.npz"
    model_io.save_arrays(p, {"w": np.arange(4.0)}, kind="k", version=2)
    assert model_io.load_arrays(p, kind="k", versions=(2,))[1]["version"] == 2
    with pytest.raises(NasjaxInputError, match="k file version 2, expected 1 or 3"):
        model_io.load_arrays(p, kind="k", versions=(1, 3))
    # a pickle, or any non-zip file, is refused before numpy sees it (no advice to allow pickles)
    import pickle

    for blob in (pickle.dumps([1, 2]), b"\x93NUMPY fake", b"plain text"):
        (tmp_path / "f.npz").write_bytes(blob)
        with pytest.raises(NasjaxInputError, match="not a readable .npz") as e:
            model_io.load_arrays(tmp_path / "f.npz")
        assert "allow_pickle" not in str(e.value)
    # NaN / inf weights are refused on reading (unless the caller asks for the raw arrays)
    model_io.save_arrays(p, {"w": np.array([1.0, np.nan])}, kind="k")
    with pytest.raises(NasjaxInputError, match="array 'w' has NaN/inf"):
        model_io.load_arrays(p)
    assert np.isnan(model_io.load_arrays(p, finite=False)[0]["w"][1])
    # a header whose structure is wrong names the field
    import io
    import json

    def with_header(h):
        buf = io.BytesIO()
        np.savez(buf, __header__=np.frombuffer(json.dumps(h).encode(), dtype=np.uint8), w=np.ones(2))
        (tmp_path / "h.npz").write_bytes(buf.getvalue())
        return tmp_path / "h.npz"

    good = {"format": model_io.FORMAT, "kind": "k", "version": 1, "sha256": "x",
            "arrays": {"w": {"shape": [2], "dtype": "<f8"}}}
    for key, bad in (("arrays", {"w": {"shape": "2"}}), ("version", "one"), ("kind", 3), ("arrays", [1])):
        with pytest.raises(NasjaxInputError, match=key):
            model_io.load_arrays(with_header({**good, key: bad}))
    with pytest.raises(NasjaxInputError, match="checksum"):
        model_io.load_arrays(with_header(good))
