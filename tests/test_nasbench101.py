"""NAS-Bench-101 encoding, official hash and record reader, checked on 30 real cells (NASLib asset)."""

import itertools
import pickle

import numpy as np
import pytest
from conftest import require_shared

from nasjax.benchmarks.nasbench101 import OPS, Cell, graph_hash, read_records, records_table
from nasjax.errors import NasjaxInputError

C3, C1, MP = OPS


@pytest.fixture(scope="module")
def records():
    return read_records(require_shared("NASLib", "tests", "assets", "nb101_dummy.pkl"))


def test_hash_of_every_real_cell_equals_its_record_key(records):
    assert len(records) == 30
    for key, (fixed, _) in records.items():
        cell = Cell.from_spec(fixed["module_adjacency"], fixed["module_operations"])
        assert cell.valid and cell.hash() == key


def test_records_table(records):
    t = records_table(records)
    assert len(t) == 30 and t.epochs == 108
    key = t.hashes[0]
    runs = records[key][1][108]
    np.testing.assert_allclose(t.val_acc[0], 100 * np.mean([r["final_validation_accuracy"] for r in runs]))
    np.testing.assert_allclose(t.test_acc[0], 100 * np.mean([r["final_test_accuracy"] for r in runs]))
    assert t.params[0] == records[key][0]["trainable_parameters"]
    assert np.all(t.num_runs == 3) and t.val_acc_runs.shape == (30, 3)
    assert np.all((t.val_acc > 10) & (t.val_acc < 100))
    fixed = records[t.hashes[7]][0]
    assert t.row_of(fixed["module_adjacency"], fixed["module_operations"]) == 7
    with pytest.raises(NasjaxInputError, match="no 4-epoch"):
        records_table(records, epochs=4)
    bad = {"0" * 32: records[key]}
    with pytest.raises(NasjaxInputError, match="expected the record key"):
        records_table(bad)


def _topological_relabelings(m):
    """Permutations of the interior vertices that keep the matrix upper-triangular."""
    n = m.shape[0]
    for perm in itertools.permutations(range(1, n - 1)):
        p = [0, *perm, n - 1]
        m2 = np.zeros_like(m)
        for i in range(n):
            for j in range(n):
                m2[p[i], p[j]] = m[i, j]
        if not np.any(np.tril(m2)):
            yield p, m2


def test_hash_is_isomorphism_invariant(records):
    checked = 0
    for key, (fixed, _) in list(records.items())[:6]:
        m, ops = np.asarray(fixed["module_adjacency"]), list(fixed["module_operations"])
        for p, m2 in _topological_relabelings(m):
            ops2 = [None] * len(ops)
            for i, op in enumerate(ops):
                ops2[p[i]] = op
            assert Cell.from_spec(m2, ops2).hash() == key
            checked += 1
    assert checked > 6  # at least one non-identity relabelling was exercised
    # a different op on one vertex changes the hash
    key, (fixed, _) = next(iter(records.items()))
    ops = list(fixed["module_operations"])
    ops[1] = MP if ops[1] != MP else C1
    assert Cell.from_spec(fixed["module_adjacency"], ops).hash() != key


def test_pruning_and_vector_roundtrip(records):
    # vertex 2 hangs off the input with no path to the output: pruned away
    m = np.zeros((4, 4), int)
    m[0, 1] = m[1, 3] = m[0, 2] = 1
    c = Cell.from_spec(m, ["input", C3, MP, "output"])
    assert c.matrix.shape == (3, 3) and c.ops == ("input", C3, "output")
    assert c.hash() == Cell.from_spec(m[np.ix_([0, 1, 3], [0, 1, 3])], ["input", C3, "output"]).hash()
    # output unreachable: invalid, no hash
    m = np.zeros((3, 3), int)
    m[0, 1] = 1
    dead = Cell.from_spec(m, ["input", C1, "output"])
    assert not dead.valid
    with pytest.raises(NasjaxInputError, match="invalid"):
        dead.hash()
    for key, (fixed, _) in records.items():
        cell = Cell.from_spec(fixed["module_adjacency"], fixed["module_operations"])
        v = cell.to_vector()
        assert v.shape == (26,) and Cell.from_vector(v).hash() == key


def test_graph_hash_depends_on_labels_only_through_structure():
    m = np.array([[0, 1, 1, 0], [0, 0, 0, 1], [0, 0, 0, 1], [0, 0, 0, 0]])
    a = graph_hash(m, [-1, 0, 1, -2])
    b = graph_hash(m, [-1, 1, 0, -2])  # the two branches swapped: isomorphic
    assert a == b and len(a) == 32
    assert graph_hash(m, [-1, 0, 0, -2]) != a


def test_bad_specs_and_hostile_pickles(tmp_path):
    ok = np.array([[0, 1], [0, 0]])
    with pytest.raises(NasjaxInputError, match="upper-triangular"):
        Cell.from_spec(np.array([[0, 0], [1, 0]]), ["input", "output"])
    with pytest.raises(NasjaxInputError, match="expected 'input' first"):
        Cell.from_spec(ok, ["output", "input"])
    with pytest.raises(NasjaxInputError, match=r"ops\[1\]"):
        Cell.from_spec(np.zeros((3, 3), int), ["input", "conv5x5", "output"])
    with pytest.raises(NasjaxInputError, match="vertices"):
        Cell.from_spec(np.zeros((8, 8), int), ["input"] + [C3] * 6 + ["output"])
    with pytest.raises(NasjaxInputError, match="0 or 1"):
        Cell.from_spec(np.array([[0, 2], [0, 0]]), ["input", "output"])
    with pytest.raises(NasjaxInputError, match="vector"):
        Cell.from_vector(np.zeros(5, int))

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    p = tmp_path / "evil.pkl"
    p.write_bytes(pickle.dumps({"k": Evil()}))
    with pytest.raises(NasjaxInputError, match="refuses to unpickle builtins.print"):
        read_records(p)
    with pytest.raises(NasjaxInputError, match="no file"):
        read_records(tmp_path / "missing.pkl")


def _one_record():
    m = np.zeros((3, 3), int)
    m[0, 1] = m[1, 2] = 1
    cell = Cell.from_spec(m, ["input", C3, "output"])
    run = {"final_validation_accuracy": 0.9, "final_test_accuracy": 0.89, "final_training_time": 1000.0}
    return cell.hash(), {"module_adjacency": m, "module_operations": ["input", C3, "output"],
                         "trainable_parameters": 1000}, {108: [dict(run), dict(run)]}


@pytest.mark.parametrize(
    "change, msg",
    [
        (lambda f, c: f.update(module_adjacency="abc"), "fixed_metrics: matrix"),
        (lambda f, c: f.update(module_adjacency=[[0, 1], [0]]), "fixed_metrics: matrix"),
        (lambda f, c: f.update(module_adjacency=np.full((3, 3), np.nan)), "entries must be 0 or 1"),
        (lambda f, c: f.update(module_operations="input"), "ops: got 'input'"),
        (lambda f, c: f.update(module_operations=["input", 3, "output"]), r"ops\[1\]: got 3 \(int\)"),
        (lambda f, c: f.update(module_operations=None), "ops: got"),
        (lambda f, c: f.pop("module_operations"), "lacks 'module_operations'"),
        (lambda f, c: f.update(trainable_parameters="many"), "trainable_parameters: got 'many'"),
        (lambda f, c: f.update(trainable_parameters=-1), "trainable_parameters: got -1"),
        (lambda f, c: c.update({108: []}), r"computed_metrics\[108\]: got \[\]"),
        (lambda f, c: c.update({108: "runs"}), r"computed_metrics\[108\]"),
        (lambda f, c: c[108][1].pop("final_test_accuracy"), r"\[108\]\[1\]: missing 'final_test_accuracy'"),
        (lambda f, c: c[108][0].update(final_validation_accuracy=float("nan")), "final_validation_accuracy: got nan"),
        (lambda f, c: c[108][0].update(final_validation_accuracy=93.2), r"93.2, expected a fraction in \[0, 1\]"),
        (lambda f, c: c[108][0].update(final_training_time="1h"), "final_training_time: got '1h'"),
        (lambda f, c: c[108][0].update(final_test_accuracy=True), "final_test_accuracy: got True"),
        (lambda f, c: c.pop(108), "no 108-epoch results"),
    ],
)
def test_malformed_records_name_the_field(change, msg):
    key, fixed, computed = _one_record()
    records_table({key: (fixed, computed)})  # intact: accepted
    change(fixed, computed)
    with pytest.raises(NasjaxInputError, match=msg) as e:
        records_table({key: (fixed, computed)})
    assert key in str(e.value) or "ops" in str(e.value)


def test_malformed_record_containers():
    key, fixed, computed = _one_record()
    for records, msg in [
        ([1, 2], "expected a mapping hash -> record"),
        ({7: (fixed, computed)}, "record key 7"),
        ({key: (fixed,)}, "expected \\(fixed_metrics, computed_metrics\\)"),
        ({key: ([1], computed)}, "fixed_metrics: got list"),
        ({key: (fixed, [1])}, "computed_metrics: got list"),
    ]:
        with pytest.raises(NasjaxInputError, match=msg):
            records_table(records)


def test_record_pickles_damaged(tmp_path):
    key, fixed, computed = _one_record()
    raw = pickle.dumps({key: (fixed, computed)}, protocol=4)
    p = tmp_path / "r.pkl"
    p.write_bytes(raw)
    assert len(records_table(read_records(p))) == 1
    for cut in (1, len(raw) // 3, len(raw) - 1):
        p.write_bytes(raw[:cut])
        with pytest.raises(NasjaxInputError, match="corrupted pickle"):
            read_records(p)
    p.write_bytes(pickle.dumps([1, 2]))
    with pytest.raises(NasjaxInputError, match="got list, expected a dict"):
        read_records(p)
