"""Fuzz suite of the readers: malformed input raises NasjaxInputError naming the file or field, nothing else.

Every reader gets random bytes, truncations and bit flips of a valid file written by the project's own
writer, and structural mutations of a valid document (a node replaced by junk -- wrong types, NaN/inf,
huge numbers, deep lists --, a key removed or added). For every example the test asserts that the reader
either returns or raises :class:`~nasjax.errors.NasjaxInputError` whose message names the file or the
field, and that the directory holds exactly the files it held before (no temp file left behind).
Hypothesis runs derandomized (the same examples every run), without an example database.
"""

from __future__ import annotations

import copy
import json
import shutil
import tempfile
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from test_readers_checkpoint import STATE, _restore, saved  # noqa: E402, F401 (saved: a fixture)
from test_readers_torchfile import tensor_pickle, write_pt, write_state_dict, write_tensor  # noqa: E402

from nasjax.errors import NasjaxInputError  # noqa: E402

FUZZ = settings(derandomize=True, database=None, deadline=None, max_examples=200,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.function_scoped_fixture])
SLOW = settings(FUZZ, max_examples=60)  # readers that build orbax / TFDS objects per example

# --- shared strategies ---------------------------------------------------------------------------------
_leaf = (st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.sampled_from([0, 1, -1, 3, 5, 10**400])
         | st.floats(allow_nan=True, allow_infinity=True) | st.sampled_from([1e308, -1e308, 1e-320, 1e17])
         | st.text(max_size=12) | st.sampled_from(["ms", "input", "|none~0|", "nan", "3"]))
JUNK = st.recursive(_leaf, lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=6), c, max_size=3),
                    max_leaves=8)


def _paths(tree, prefix=()):
    yield prefix
    if isinstance(tree, dict):
        for k, v in tree.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(tree, (list, tuple)):
        for i, v in enumerate(tree):
            yield from _paths(v, (*prefix, i))


def mutate(tree, data, junk=JUNK):
    """A deep copy of ``tree`` with one node replaced by junk, removed, or given an extra key."""
    tree = copy.deepcopy(tree)
    paths = list(_paths(tree))
    path = data.draw(st.sampled_from(paths[1:] or paths))
    action = data.draw(st.sampled_from(["replace", "replace", "delete", "add"]))
    if not path:
        return data.draw(junk)
    parent = tree
    for k in path[:-1]:
        parent = parent[k]
    key = path[-1]
    if isinstance(parent, tuple):  # tuples (NB101 records) are rebuilt on the way back
        return mutate_tuple(tree, path, data.draw(junk))
    if action == "replace" or (action == "delete" and isinstance(parent, list)):
        parent[key] = data.draw(junk)
    elif action == "delete":
        del parent[key]
    elif isinstance(parent[key], dict):
        parent[key][data.draw(st.text(max_size=6))] = data.draw(junk)
    elif isinstance(parent[key], list):
        parent[key].append(data.draw(junk))
    else:
        parent[key] = [parent[key], data.draw(junk)]
    return tree


def mutate_tuple(tree, path, value):
    if not path:
        return value
    k, rest = path[0], path[1:]
    if isinstance(tree, tuple):
        items = list(tree)
        items[k] = mutate_tuple(items[k], rest, value)
        return tuple(items)
    tree[k] = mutate_tuple(tree[k], rest, value)
    return tree


def damage_bytes(raw: bytes, data) -> bytes:
    """Random bytes, a truncation, bit flips, or a spliced slice of ``raw``."""
    kind = data.draw(st.sampled_from(["random", "truncate", "flip", "flip", "splice"]))
    if kind == "random":
        return data.draw(st.binary(max_size=400))
    if kind == "truncate":
        return raw[: data.draw(st.integers(0, max(0, len(raw) - 1)))]
    if kind == "flip":
        b = bytearray(raw)
        for _ in range(data.draw(st.integers(1, 4))):
            if b:
                i = data.draw(st.integers(0, len(b) - 1))
                b[i] ^= 1 << data.draw(st.integers(0, 7))
        return bytes(b)
    i = data.draw(st.integers(0, len(raw)))
    return raw[:i] + data.draw(st.binary(max_size=16)) + raw[i + data.draw(st.integers(0, 16)):]


def _listing(d: Path) -> list[str]:
    return sorted(str(p.relative_to(d)) for p in d.rglob("*"))


@contextmanager
def workdir():
    d = Path(tempfile.mkdtemp(prefix="nasjax-fuzz-"))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def expect_clean(call: Callable, names, directory: Path | None = None):
    """Run ``call``: it returns, or raises a NasjaxInputError naming one of ``names``; no file appears."""
    before = _listing(directory) if directory is not None else None
    try:
        out = call()
    except NasjaxInputError as e:
        msg = str(e)
        assert any(str(n) in msg for n in names), f"message names none of {names}: {msg}"
        out = None
    if directory is not None:
        assert _listing(directory) == before, "files left behind"
    return out


# --- .pt files ------------------------------------------------------------------------------------------
def _storage_values(out):
    if isinstance(out, np.ndarray):
        return [out]
    if isinstance(out, dict):
        return [a for v in out.values() for a in _storage_values(v)]
    if isinstance(out, (list, tuple)):
        return [a for v in out for a in _storage_values(v)]
    return []


_EXTREME = st.sampled_from([-1, -(2**63), 2**31, 2**62, 2**63, 2**64, 2**70])


@settings(FUZZ, max_examples=600)
@given(data=st.data())
def test_fuzz_pt_declarations(data):
    """Any declared offset/shape/strides/element count: a tensor made only of stored values, or a refusal.

    Most examples are plausible views (in or just out of bounds); some carry one extreme or invalid field.
    """
    from nasjax.torchfile import load_pt

    ndim = data.draw(st.integers(0, 3))
    size = data.draw(st.lists(st.integers(0, 6), min_size=ndim, max_size=ndim))
    stride = data.draw(st.lists(st.integers(0, 8), min_size=ndim, max_size=ndim))
    offset = data.draw(st.integers(0, 30))
    stored = data.draw(st.integers(0, 40))
    numel = data.draw(st.just(stored) | st.integers(0, 45))
    stype = data.draw(st.sampled_from(["FloatStorage", "DoubleStorage", "LongStorage", "ByteStorage"])
                      | st.sampled_from(["BoolStorage", "BFloat16Storage", "QInt8Storage", "Storage"]))
    field = data.draw(st.sampled_from(["none"] * 6 + ["offset", "size", "stride", "rank"]))
    if field == "offset":
        offset = data.draw(_EXTREME)
    elif field in ("size", "stride") and ndim:
        (size if field == "size" else stride)[data.draw(st.integers(0, ndim - 1))] = data.draw(_EXTREME)
    elif field == "rank":
        stride = [*stride, 1]
    dtype = {"DoubleStorage": np.float64, "LongStorage": np.int64, "BoolStorage": np.bool_,
             "ByteStorage": np.uint8}.get(stype, np.float32)
    vals = (np.arange(stored) % 2).astype(dtype) if dtype == np.bool_ else (np.arange(stored) + 1).astype(dtype)
    with workdir() as d:
        p = write_pt(d / "t.pt", tensor_pickle("0", numel, offset, size, stride, stype), {"0": vals.tobytes()})
        out = expect_clean(lambda: load_pt(p), [str(p)], d)
        if out is not None:
            assert out.shape == tuple(size) and np.isin(out, vals).all()
            last = offset + sum((n - 1) * s for n, s in zip(size, stride)) if 0 not in size else -1
            assert last < stored and numel == stored  # it loaded, so it was a view inside the storage
            if 0 not in size:  # element i is storage[offset + sum_k i_k * stride[k]]
                idx = np.indices(size).reshape(len(size), -1) if size else np.zeros((0, 1), int)
                where = offset + (np.asarray(stride, np.int64)[:, None] * idx).sum(0)
                np.testing.assert_array_equal(out.reshape(-1), vals[where])


@pytest.fixture(scope="module")
def pt_seed(tmp_path_factory):
    d = tmp_path_factory.mktemp("pt")
    rng = np.random.default_rng(0)
    write_state_dict(d / "sd.pt", {"acc": rng.normal(size=(6, 5)).astype(np.float32), "lat": np.arange(25.0),
                                   "mask": np.array([True, False, True])})
    write_tensor(d / "view.pt", np.arange(24, dtype=np.float32), size=(3, 3), stride=(2, 6), offset=6)
    return d


@FUZZ
@given(data=st.data(), which=st.sampled_from(["sd.pt", "view.pt"]), level=st.sampled_from(["file", "pickle"]))
def test_fuzz_pt_damaged_files(pt_seed, data, which, level):
    """Damage to the zip (CRC, headers, truncation) or, inside an intact zip, to the pickle itself."""
    import zipfile

    from nasjax.torchfile import load_pt

    src = pt_seed / which
    with workdir() as d:
        p = d / which
        if level == "file":
            p.write_bytes(damage_bytes(src.read_bytes(), data))
        else:
            with zipfile.ZipFile(src) as z, zipfile.ZipFile(p, "w") as out:
                for name in z.namelist():
                    raw = z.read(name)
                    out.writestr(name, damage_bytes(raw, data) if name.endswith("data.pkl") else raw)
        out = expect_clean(lambda: load_pt(p), [str(p)], d)
        ref = load_pt(src)
        for a in _storage_values(out):  # whatever loads holds only values of the intact file's storages
            assert np.isin(a, np.concatenate([np.ravel(r).astype(np.float64) for r in _storage_values(ref)]
                                             + [np.arange(24.0)])).all()


# --- tables ---------------------------------------------------------------------------------------------
def _table_dict():
    from nasjax.tables import Table

    m = np.ones((3, 4), bool)
    m[1, 3] = False
    return Table(np.arange(12.0).reshape(3, 4), m, "latency", "ms", base=1.0, device="cpu",
                 provenance={"how": "fuzz"}).to_dict()


@FUZZ
@given(data=st.data())
def test_fuzz_table_json(data):
    from nasjax.tables import Table

    with workdir() as d:
        p = d / "t.json"
        kind = data.draw(st.sampled_from(["structure", "structure", "bytes", "numbers"]))
        if kind == "structure":
            p.write_text(json.dumps(mutate(_table_dict(), data)))
        elif kind == "numbers":  # finite but huge, tiny, negative values in random cells
            doc = _table_dict()
            i, j = data.draw(st.integers(0, 2)), data.draw(st.integers(0, 3))
            doc["values"][i][j] = data.draw(st.floats(allow_nan=False, allow_infinity=False) | st.integers())
            p.write_text(json.dumps(doc))
        else:
            from nasjax.tables import Table as T

            T.from_dict(_table_dict()).save(p)
            p.write_bytes(damage_bytes(p.read_bytes(), data))
        t = expect_clean(lambda: Table.load(p), [str(p)], d)
        if t is not None:  # what loads predicts finite sums
            lo, hi = t.bounds()
            assert np.isfinite(lo) and np.isfinite(hi)


# --- architecture ymls and codecs -------------------------------------------------------------------------
def _ofa():
    from nasjax.spaces.mobilenetv3 import layers_to_ofa, mobilenetv3_layers_space

    return layers_to_ofa(mobilenetv3_layers_space().random(0, 1)[0])


def _block_set():
    from nasjax.spaces.mobilenetv3 import BlockSet

    cfgs = tuple(tuple({"d": d, "e": [3, 4, 6, 3], "ks": [3, 5, 7, 3]} for d in (2, 3, 4)) for _ in range(5))
    return BlockSet("fuzz", cfgs)


def _decode_yml(doc):
    """Every codec that reads an architecture yml: OFA dict, MathNAS stage blocks, NB201 string, genes."""
    from nasjax.spaces.fbnetv3 import genes_to_arch
    from nasjax.spaces.mobilenetv3 import ofa_to_layers
    from nasjax.spaces.nasbench201 import str_to_arch

    if isinstance(doc, dict) and "arch" in doc:
        return str_to_arch(doc["arch"])
    if isinstance(doc, dict) and "genes" in doc:
        return genes_to_arch(doc["genes"])
    if isinstance(doc, dict) and "encodearch" in doc:
        return _block_set().from_ofa(doc)
    return ofa_to_layers(doc)


@FUZZ
@given(data=st.data(), kind=st.sampled_from(["ofa", "mathnas", "nb201", "genes"]),
       how=st.sampled_from(["structure", "bytes", "duplicate", "text"]))
def test_fuzz_architecture_ymls(data, kind, how):
    from nasjax.io import read_yaml, write_yaml
    from nasjax.spaces.fbnetv3 import arch_to_genes, fbnetv3_space
    from nasjax.spaces.nasbench201 import arch_to_str

    doc = {"ofa": _ofa, "mathnas": lambda: _block_set().to_ofa([0, 1, 2, 0, 1]),
           "nb201": lambda: {"arch": arch_to_str([3, 1, 0, 2, 4, 1])},
           "genes": lambda: {"genes": arch_to_genes(fbnetv3_space().random(1, 1)[0]).tolist()}}[kind]()
    with workdir() as d:
        p = d / "arch.yml"
        write_yaml(p, doc)
        if how == "structure":
            write_yaml(p, mutate(doc, data))
        elif how == "bytes":
            p.write_bytes(damage_bytes(p.read_bytes(), data))
        elif how == "duplicate":
            lines = p.read_text().splitlines()
            p.write_text("\n".join([*lines, lines[data.draw(st.integers(0, len(lines) - 1))]]) + "\n")
        else:
            p.write_text(data.draw(st.text(max_size=200)))
        names = [str(p), "arch", "genes", "encodearch", "block set"]
        expect_clean(lambda: _decode_yml(read_yaml(p)), names, d)


@FUZZ
@given(data=st.data())
def test_fuzz_nb201_strings(data):
    from nasjax.spaces.nasbench201 import arch_to_str, str_to_arch, strs_to_archs

    s = arch_to_str([4, 0, 1, 3, 2, 1])
    how = data.draw(st.sampled_from(["edit", "edit", "text", "junk"]))
    if how == "edit":
        i = data.draw(st.integers(0, len(s)))
        s = s[:i] + data.draw(st.text(alphabet="|+~0123_abcnoe", max_size=4)) + s[i + data.draw(st.integers(0, 4)):]
    elif how == "text":
        s = data.draw(st.text(max_size=80))
    else:
        s = data.draw(JUNK)
    a = expect_clean(lambda: str_to_arch(s), ["arch string"])
    if a is not None:
        assert arch_to_str(a) == s.strip()
    expect_clean(lambda: strs_to_archs([arch_to_str([0] * 6), s]), ["arch string"])


@FUZZ
@given(data=st.data())
def test_fuzz_ofa_dicts_and_genes(data):
    from nasjax.spaces.fbnetv3 import arch_to_genes, fbnetv3_space, genes_to_arch
    from nasjax.spaces.mobilenetv3 import BlockSet, ofa_to_layers

    expect_clean(lambda: ofa_to_layers(mutate(_ofa(), data)), ["arch"])
    expect_clean(lambda: _block_set().from_ofa(mutate(_block_set().to_ofa([2, 1, 0, 0, 1]), data)),
                 ["arch", "encodearch", "block set"])
    expect_clean(lambda: BlockSet.from_dict(mutate(_block_set().to_dict(), data)), ["block set"])
    genes = arch_to_genes(fbnetv3_space().random(2, 3)).tolist()
    g = expect_clean(lambda: genes_to_arch(mutate(genes, data)), ["genes"])
    if g is not None:
        assert g.shape[1] == 28
    arr = data.draw(st.sampled_from([np.float64, np.int64, np.uint64, object, str, bool]))
    expect_clean(lambda: genes_to_arch(np.asarray(genes).astype(arr)), ["genes"])


# --- NAS-Bench-101 records -------------------------------------------------------------------------------
def _nb101_records():
    from nasjax.benchmarks.nasbench101 import Cell

    m = np.zeros((4, 4), int)
    m[0, 1] = m[1, 3] = m[0, 2] = m[2, 3] = 1
    ops = ["input", "conv3x3-bn-relu", "maxpool3x3", "output"]
    run = {"final_validation_accuracy": 0.91, "final_test_accuracy": 0.9, "final_training_time": 1200.0}
    key = Cell.from_spec(m, ops).hash()
    return {key: ({"module_adjacency": m.tolist(), "module_operations": ops, "trainable_parameters": 12345},
                  {108: [dict(run), dict(run)]})}


@FUZZ
@given(data=st.data(), how=st.sampled_from(["structure", "structure", "bytes"]))
def test_fuzz_nb101_records(data, how):
    import pickle

    from nasjax.benchmarks.nasbench101 import read_records, records_table

    with workdir() as d:
        p = d / "nb101.pkl"
        if how == "structure":
            recs = mutate(_nb101_records(), data)
            expect_clean(lambda: records_table(recs), ["record", "records"])
            p.write_bytes(pickle.dumps(recs, protocol=4))
        else:
            p.write_bytes(damage_bytes(pickle.dumps(_nb101_records(), protocol=4), data))
        recs = expect_clean(lambda: read_records(p), [str(p)], d)
        if recs is not None:
            expect_clean(lambda: records_table(recs), ["record", "records"])


# --- checkpoints ---------------------------------------------------------------------------------------------
@SLOW
@given(data=st.data(), how=st.sampled_from(["bytes", "bytes", "delete", "meta"]))
def test_fuzz_checkpoints(saved, data, how):  # noqa: F811 (the fixture imported above)
    with workdir() as root:
        d = root / "store"
        shutil.copytree(saved, d)
        files = sorted(p for p in d.rglob("*") if p.is_file())
        target = data.draw(st.sampled_from(files))
        if how == "bytes":
            target.write_bytes(damage_bytes(target.read_bytes(), data))
        elif how == "delete":
            target.unlink()
        else:
            p = d / "3" / "meta" / "metadata"
            p.write_text(json.dumps(mutate(json.loads(p.read_text()), data)))
        out = expect_clean(lambda: _restore(d), [str(d)], d)
        if out is not None:  # whatever restores is exactly what was saved
            state, _ = out
            np.testing.assert_array_equal(state["params"]["w"], STATE["params"]["w"])
            np.testing.assert_array_equal(state["params"]["b"], STATE["params"]["b"])


# --- TFDS directories -------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tfds_seed(tmp_path_factory):
    from test_data import _write_tiny_tfds

    return Path(_write_tiny_tfds(tmp_path_factory.mktemp("tfds")))


@SLOW
@given(data=st.data(), target=st.sampled_from(["dataset_info.json", "features.json", "shard", "shard"]))
def test_fuzz_tfds_directories(tfds_seed, data, target):
    from nasjax.data import load_tfds_directory

    with workdir() as root:
        d = root / "tiny_cifar" / "1.0.0"
        shutil.copytree(tfds_seed, d)
        if target == "shard":
            p = sorted(d.glob("*.array_record*"))[data.draw(st.integers(0, 1))]
            if data.draw(st.booleans()):
                p.write_bytes(damage_bytes(p.read_bytes(), data))
            else:
                p.unlink()
        elif data.draw(st.booleans()):
            p = d / target
            p.write_text(json.dumps(mutate(json.loads(p.read_text()), data)))
        else:
            p = d / target
            p.write_bytes(damage_bytes(p.read_bytes(), data))

        def read():
            ds = load_tfds_directory(root)
            for split in (ds.train, ds.val):
                split.raw(np.arange(len(split)))

        expect_clean(read, [str(d), "data_dir"], root)


# --- the official NAS-Bench-201 file loader ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def nb201_seed(tmp_path_factory):
    torch = pytest.importorskip("torch")
    from nasjax.spaces.nasbench201 import arch_to_str, nasbench201_space

    strs = [arch_to_str(a) for a in nasbench201_space().all_archs()]
    res = {"epochs": 200, "params": 1.5, "train_times": {0: 2.0, 1: 3.0},
           "eval_acc1es": {"x-valid@199": 90.0, "ori-test@199": 89.0, "x-test@199": 88.5}}
    dsets = ("cifar10-valid", "cifar10", "cifar100", "ImageNet16-120")
    state = {"dataset_seed": {ds: [777] for ds in dsets},
             "all_results": {(ds, 777): dict(res) for ds in dsets}}
    doc = {"meta_archs": strs, "arch2infos": {7: {"full": state, "less": copy.deepcopy(state)}},
           "evaluated_indexes": [7]}
    path = tmp_path_factory.mktemp("nb201") / "NAS-Bench-201-v1_1-096897.pth"
    torch.save(doc, path)
    return path, doc


@SLOW
@given(data=st.data(), how=st.sampled_from(["structure", "structure", "bytes"]))
def test_fuzz_nb201_file(nb201_seed, data, how):
    from nasjax.benchmarks import nb201_file

    path, doc = nb201_seed
    if how == "structure":
        info = {"full": doc["arch2infos"][7]["full"], "less": doc["arch2infos"][7]["less"]}
        bad = dict(doc, arch2infos={7: mutate(info, data)})
        if data.draw(st.booleans()):
            bad = mutate({k: v for k, v in bad.items() if k != "meta_archs"}, data)
            if isinstance(bad, dict):
                bad["meta_archs"] = doc["meta_archs"]
        t = expect_clean(lambda: nb201_file.to_table(bad), ["benchmark file"])
        if t is not None:
            assert t.archs.shape == (15625, 6)
        return
    with workdir() as d, workdir() as cache:
        p = d / path.name
        p.write_bytes(damage_bytes(path.read_bytes(), data))
        t = expect_clean(lambda: nb201_file.load_file(p, cache_dir=cache, trusted=False), [str(p)], d)
        if t is None:
            assert not any(cache.iterdir()), "a failed load cached something"


def test_fuzz_suite_covers_every_reader():
    """The suite names a test per reader of the task (a reader added later needs its own)."""
    names = {n for n in globals() if n.startswith("test_fuzz_")}
    assert {"test_fuzz_pt_declarations", "test_fuzz_pt_damaged_files", "test_fuzz_table_json",
            "test_fuzz_architecture_ymls", "test_fuzz_nb201_strings", "test_fuzz_ofa_dicts_and_genes",
            "test_fuzz_nb101_records", "test_fuzz_checkpoints", "test_fuzz_tfds_directories",
            "test_fuzz_nb201_file"} <= names
