"""The torch-free ``.pt`` reader: storage bounds, storage members, zip damage and the pickle whitelist.

``write_pt`` writes ``torch.save``'s zip layout byte by byte (protocol-2 pickle, one raw member per
storage), so every field a malformed file could carry -- the declared element count, offset, shape,
strides, storage type -- can be set freely; with torch installed the same files load with ``torch.load``.
"""

from __future__ import annotations

import pickle
import struct
import zipfile
from pathlib import Path

import numpy as np
import pytest

from nasjax.errors import NasjaxInputError
from nasjax.torchfile import load_pt, load_pt_tensor

_TYPES = {np.dtype(np.float32): "FloatStorage", np.dtype(np.float64): "DoubleStorage",
          np.dtype(np.int64): "LongStorage", np.dtype(np.int32): "IntStorage", np.dtype(np.bool_): "BoolStorage",
          np.dtype(np.uint8): "ByteStorage", np.dtype(np.float16): "HalfStorage"}


# --- a minimal torch.save writer --------------------------------------------------------------------------
def _int(x: int) -> bytes:
    if 0 <= x < 256:
        return b"K" + bytes([x])
    if -(2**31) <= x < 2**31:
        return b"J" + struct.pack("<i", x)
    raw = x.to_bytes((x.bit_length() + 8) // 8, "little", signed=True)
    return b"\x8a" + bytes([len(raw)]) + raw  # LONG1


def _str(s: str) -> bytes:
    raw = s.encode()
    return b"X" + struct.pack("<I", len(raw)) + raw


def _global(module: str, name: str) -> bytes:
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def _tuple(items: list[bytes]) -> bytes:
    return b"(" + b"".join(items) + b"t"


def tensor_pickle(key: str, numel: int, offset: int, size, stride, storage_type: str = "FloatStorage") -> bytes:
    """Opcodes of ``_rebuild_tensor_v2(storage, offset, size, stride, False, OrderedDict())``."""
    pid = _tuple([_str("storage"), _global("torch", storage_type), _str(key), _str("cpu"), _int(numel)]) + b"Q"
    args = _tuple([pid, _int(offset), _tuple([_int(s) for s in size]), _tuple([_int(s) for s in stride]),
                   b"\x89", _global("collections", "OrderedDict") + b")R"])
    return _global("torch._utils", "_rebuild_tensor_v2") + args + b"R"


def write_pt(path, pickled: bytes, storages: dict[str, bytes], prefix: str = "archive",
             extra: dict[str, bytes] | None = None) -> Path:
    """A ``torch.save`` zip: ``<prefix>/data.pkl`` = PROTO 2 + ``pickled`` + STOP, a member per storage."""
    path = Path(path)
    members = {"data.pkl": b"\x80\x02" + pickled + b".", "byteorder": b"little",
               **{f"data/{k}": raw for k, raw in storages.items()}, "version": b"3\n", **(extra or {})}
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as z:
        for k, raw in members.items():
            z.writestr(f"{prefix}/{k}", raw)
    return path


def write_tensor(path, array: np.ndarray, *, numel: int | None = None, size=None, stride=None,
                 offset: int = 0, storage_type: str | None = None) -> Path:
    """``array`` as a one-tensor file; ``numel``/``size``/``stride``/``offset`` override what is declared."""
    a = np.array(array, order="C")
    size = a.shape if size is None else size
    if stride is None:
        stride = [int(np.prod(size[i + 1:])) for i in range(len(size))]
    n = a.size if numel is None else numel
    return write_pt(path, tensor_pickle("0", n, offset, size, stride, storage_type or _TYPES[a.dtype]),
                    {"0": a.tobytes()})


def write_state_dict(path, tensors: dict[str, np.ndarray]) -> Path:
    """``OrderedDict(name -> tensor)``, one storage per tensor (keys "0", "1", ...)."""
    body = _global("collections", "OrderedDict") + b")R("
    storages = {}
    for i, (name, a) in enumerate(tensors.items()):
        a = np.array(a, order="C")
        stride = [int(np.prod(a.shape[j + 1:])) for j in range(a.ndim)]
        body += _str(name) + tensor_pickle(str(i), a.size, 0, a.shape, stride, _TYPES[a.dtype])
        storages[str(i)] = a.tobytes()
    return write_pt(path, body + b"u", storages)


# --- the out-of-bounds read -------------------------------------------------------------------------------
def test_storage_shorter_than_the_declared_shape_is_refused(tmp_path):
    """25 stored values declared as 6 x 5: the last 5 would come from memory beyond the buffer."""
    vals = np.arange(25, dtype=np.float32)
    p = write_tensor(tmp_path / "blocklat.pt", vals, size=(6, 5))
    for _ in range(3):  # the same refusal every time, never a different table
        with pytest.raises(NasjaxInputError) as e:
            load_pt(p)
        msg = str(e.value)
        assert str(p) in msg and "tensor (root)" in msg and "archive/data/0" in msg
        assert "(6, 5)" in msg and "25 float32 values" in msg
    # the same storage declared 5 x 5 loads exactly
    good = write_tensor(tmp_path / "good.pt", vals.reshape(5, 5))
    np.testing.assert_array_equal(load_pt(good), vals.reshape(5, 5))
    # a state dict names the tensor by its key
    sd = tmp_path / "sd.pt"
    body = _global("collections", "OrderedDict") + b")R(" + _str("acc") + tensor_pickle("0", 25, 0, (6, 5), (5, 1))
    write_pt(sd, body + b"u", {"0": vals.tobytes()})
    with pytest.raises(NasjaxInputError, match=r"tensor \['acc'\].*reads element 29"):
        load_pt(sd)


def test_intact_files_load_identically(tmp_path):
    rng = np.random.default_rng(0)
    tensors = {"f32": rng.normal(size=(6, 5)).astype(np.float32), "f64": rng.normal(size=(3,)),
               "i64": np.arange(-3, 9).reshape(3, 4), "b": np.array([True, False, True]),
               "empty": np.zeros((0, 4), np.float32), "scalar": np.array(7.5, np.float32)}
    out = load_pt(write_state_dict(tmp_path / "sd.pt", tensors))
    assert list(out) == list(tensors)
    for k, a in tensors.items():
        assert out[k].dtype == a.dtype and out[k].shape == a.shape
        np.testing.assert_array_equal(out[k], a)
    # a strided view: rows 1..3 of a 4 x 6 storage, every second column, transposed
    base = np.arange(24, dtype=np.float32)
    view = write_tensor(tmp_path / "view.pt", base, size=(3, 3), stride=(2, 6), offset=6)
    np.testing.assert_array_equal(load_pt(view), base.reshape(4, 6)[1:, ::2].T)
    torch = pytest.importorskip("torch")
    for name in ("sd.pt", "view.pt"):
        ref = torch.load(tmp_path / name, weights_only=True)
        mine = load_pt(tmp_path / name)
        if isinstance(ref, dict):
            for k in ref:
                np.testing.assert_array_equal(mine[k], ref[k].numpy())
        else:
            np.testing.assert_array_equal(mine, ref.numpy())
    t = torch.arange(30, dtype=torch.float64).reshape(5, 6)[:, 1:4]
    torch.save({"t": t, "n": 3, "l": [t.t(), torch.tensor(2, dtype=torch.int32)]}, tmp_path / "torch.pt")
    got = load_pt(tmp_path / "torch.pt")
    np.testing.assert_array_equal(got["t"], t.numpy())
    np.testing.assert_array_equal(got["l"][0], t.t().numpy())
    assert got["n"] == 3 and got["l"][1] == 2


@pytest.mark.parametrize(
    "kw, msg",
    [
        (dict(offset=-1), "offset -1"),
        (dict(offset=2**70), "offset"),
        (dict(size=(2, -3)), r"shape \(2, -3\)"),
        (dict(size=(6,), stride=(-1,)), r"strides \(-1,\)"),
        (dict(size=(6,), stride=(2**64,)), "reads element"),
        (dict(size=(2**40, 2**40), stride=(0, 0)), "elements, expected at most"),
        (dict(size=(6,), stride=(1, 1)), "strides"),
        (dict(offset=1), "reads element 6"),
        (dict(numel=7), "holds 24 bytes, expected 28"),
        (dict(numel=5), "holds 24 bytes, expected 20"),
        (dict(storage_type="BFloat16Storage"), "refuses to unpickle torch.BFloat16Storage"),
        (dict(storage_type="ComplexFloatStorage"), "refuses to unpickle torch.ComplexFloatStorage"),
    ],
)
def test_bad_tensor_declarations(tmp_path, kw, msg):
    p = write_tensor(tmp_path / "t.pt", np.arange(6, dtype=np.float32), **kw)
    with pytest.raises(NasjaxInputError, match=msg) as e:
        load_pt(p)
    assert str(p) in str(e.value)


def test_size_one_dimensions_ignore_their_stride(tmp_path):
    p = write_tensor(tmp_path / "t.pt", np.arange(6, dtype=np.float32), size=(1, 6), stride=(2**62, 1))
    np.testing.assert_array_equal(load_pt(p), np.arange(6, dtype=np.float32)[None])


def test_archive_damage(tmp_path):
    vals = np.arange(6, dtype=np.float32)
    p = write_tensor(tmp_path / "t.pt", vals)
    raw = p.read_bytes()
    # truncated anywhere
    for cut in (0, 10, len(raw) // 2, len(raw) - 1):
        q = tmp_path / f"cut{cut}.pt"
        q.write_bytes(raw[:cut])
        with pytest.raises(NasjaxInputError, match="cut"):
            load_pt(q)
    # a storage member missing
    miss = write_pt(tmp_path / "miss.pt", tensor_pickle("0", 6, 0, (6,), (1,)), {})
    with pytest.raises(NasjaxInputError, match="'archive/data/0' is missing"):
        load_pt(miss)
    # no data.pkl / two of them
    with zipfile.ZipFile(tmp_path / "nopkl.pt", "w") as z:
        z.writestr("archive/data/0", vals.tobytes())
    with pytest.raises(NasjaxInputError, match="0 '<prefix>/data.pkl' members"):
        load_pt(tmp_path / "nopkl.pt")
    # a flipped byte inside a member fails its CRC
    i = raw.index(vals.tobytes()) + 5
    flipped = tmp_path / "flip.pt"
    flipped.write_bytes(raw[:i] + bytes([raw[i] ^ 0x40]) + raw[i + 1:])
    with pytest.raises(NasjaxInputError, match="unreadable"):
        load_pt(flipped)
    # unknown archive version and byte order
    with pytest.raises(NasjaxInputError, match="archive version '9'"):
        load_pt(write_pt(tmp_path / "v.pt", tensor_pickle("0", 6, 0, (6,), (1,)), {"0": vals.tobytes()},
                         extra={"version": b"9"}))
    with pytest.raises(NasjaxInputError, match="byteorder"):
        load_pt(write_pt(tmp_path / "bo.pt", tensor_pickle("0", 6, 0, (6,), (1,)), {"0": vals.tobytes()},
                         extra={"byteorder": b"middle"}))
    with pytest.raises(NasjaxInputError, match="no such file"):
        load_pt(tmp_path / "absent.pt")
    big = write_pt(tmp_path / "big.pt", tensor_pickle("0", 6, 0, (6,), (1,)), {"0": vals.astype(">f4").tobytes()},
                   extra={"byteorder": b"big"})
    np.testing.assert_array_equal(load_pt(big), vals)


def test_pickle_whitelist(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    for name, body in {
        "evil": pickle.dumps(Evil(), protocol=2)[2:-1],
        "os": _global("os", "system") + _tuple([_str("true")]) + b"R",
        "builtins": _global("builtins", "eval") + _tuple([_str("1")]) + b"R",
        "parameter": _global("torch._utils", "_rebuild_parameter") + b")R",
    }.items():
        with pytest.raises(NasjaxInputError, match="refuses to unpickle") as e:
            load_pt(write_pt(tmp_path / f"{name}.pt", body, {}))
        assert name + ".pt" in str(e.value)
    # a storage type used as a callable, a bare storage, a bad persistent id, a huge memo slot
    for name, body, msg in [
        ("call", _global("torch", "FloatStorage") + b")R", "corrupted pickle"),
        ("bare", _tuple([_str("storage"), _global("torch", "FloatStorage"), _str("0"), _str("cpu"), _int(6)]) + b"Q",
         "bare storage"),
        ("pid", _str("x") + b"Q", "persistent id"),
        ("memo", _int(1) + b"r" + struct.pack("<I", 2**31 - 1), "memo slot"),
        ("set", b"\x8f", "is a set"),
    ]:
        with pytest.raises(NasjaxInputError, match=msg):
            load_pt(write_pt(tmp_path / f"{name}.pt", body, {"0": bytes(24)}))


def test_load_pt_tensor(tmp_path):
    p = write_state_dict(tmp_path / "sd.pt", {"a": np.ones(2, np.float32)})
    with pytest.raises(NasjaxInputError, match="expected one tensor"):
        load_pt_tensor(p, "block table")
    np.testing.assert_array_equal(load_pt_tensor(write_tensor(tmp_path / "t.pt", np.ones(3))), np.ones(3))
