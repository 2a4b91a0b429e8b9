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
    with pytest.raises(NasjaxInputError, match="not allowed"):
        read_records(p)
    with pytest.raises(NasjaxInputError, match="no file"):
        read_records(tmp_path / "missing.pkl")
