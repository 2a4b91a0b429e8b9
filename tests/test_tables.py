"""Tables and constraints: validation at load, units, prediction, JSON round trip, torch-free .pt reader."""

import json

import numpy as np
import pytest
from conftest import require_shared

from nasjax.constraints import Constraint
from nasjax.errors import NasjaxInputError
from nasjax.tables import Table, from_ragged


def _t(**kw):
    base = dict(values=np.arange(6.0).reshape(2, 3), mask=None, metric="latency", unit="ms")
    base.update(kw)
    return Table(**base)


def test_predict_formula_and_bounds():
    t = _t(base=10.0, sign=-1)
    assert t.predict([0, 2]) == 10.0 - (0 + 5)
    np.testing.assert_allclose(t.predict(np.array([[0, 0], [2, 2]])), [10 - 3, 10 - 7])
    assert t.bounds() == (10 - 7, 10 - 3)


def test_ragged_mask():
    t = from_ragged([[1.0, 2.0], [3.0, 4.0, 5.0]], "flops", "MFLOPs")
    assert t.mask.tolist() == [[True, True, False], [True, True, True]]
    assert t.bounds() == (4.0, 7.0)
    with pytest.raises(NasjaxInputError, match="out of range"):
        t.predict([2, 0])


@pytest.mark.parametrize(
    "kw, msg",
    [
        (dict(values=np.array([[1.0, np.nan]])), r"values\[0, 1\] is nan"),
        (dict(values=np.ones(3)), "expected \\[positions, choices\\]"),
        (dict(mask=np.ones((3, 3), bool)), "mask shape"),
        (dict(unit="msec"), "unit: got 'msec'"),
        (dict(metric="speed"), "metric 'speed'"),
        (dict(sign=2), "sign 2"),
    ],
)
def test_bad_tables_are_rejected(kw, msg):
    with pytest.raises(NasjaxInputError, match=msg):
        _t(**kw)


def test_json_round_trip_and_corruption(tmp_path):
    t = _t(base=1.5, device="cpu", provenance={"how": "test"})
    p = tmp_path / "t.json"
    t.save(p)
    u = Table.load(p)
    np.testing.assert_array_equal(u.values, t.values)
    assert (u.unit, u.device, u.base, u.provenance) == ("ms", "cpu", 1.5, {"how": "test"})
    p.write_text(p.read_text()[:50])
    with pytest.raises(NasjaxInputError, match="not valid JSON"):
        Table.load(p)
    d = t.to_dict()
    d["values"] = [[1, 2], [3]]
    p.write_text(json.dumps(d))
    with pytest.raises(NasjaxInputError, match="values"):
        Table.load(p)


def test_unit_mismatch_is_an_error_not_a_rescale():
    t = _t()
    with pytest.raises(NasjaxInputError, match="bound in 's' but the latency table is in 'ms'"):
        Constraint(t, 0.5, "s")
    c = Constraint(t.to_unit("s"), 0.005, "s")
    assert c.table.predict([2, 2]) == pytest.approx(0.007)
    with pytest.raises(NasjaxInputError, match="cannot convert"):
        t.to_unit("mJ")


def test_check_space():
    from nasjax.spaces import get_space

    with pytest.raises(NasjaxInputError, match="expected 6 positions"):
        _t().check_space(get_space("nasbench201"))


def test_torch_free_reader_matches_derived_json():
    from nasjax.torchfile import load_pt

    root = require_shared("MathNAS")
    derived = json.loads((root / "_derived" / "tables.json").read_text())["files"]
    for rel in ("data/mobilenetv3/blockacc_cpu.pt", "data/nasbench201/blocklat_fpga.pt", "data/supervit/blockacc.pt"):
        np.testing.assert_array_equal(np.asarray(load_pt(root / rel), float), np.array(derived[rel]["values"]))


def test_torch_free_reader_rejects_garbage(tmp_path):
    from nasjax.torchfile import load_pt

    p = tmp_path / "x.pt"
    p.write_bytes(b"not a zip")
    with pytest.raises(NasjaxInputError, match="not a readable PyTorch zip"):
        load_pt(p)


def test_huge_finite_values_are_refused_naming_the_cell(tmp_path):
    """Finite but huge cells make CVXPY/HiGHS fail ("Cannot unpack invalid solution"): the table refuses them."""
    from nasjax.tables import MAX_MAGNITUDE

    v = np.arange(6.0).reshape(2, 3)
    v[1, 2] = 1e17
    with pytest.raises(NasjaxInputError, match=r"table 'latency'.*values\[1, 2\] is 1e\+17.*at most 1e\+12"):
        _t(values=v)
    # the sum over positions can exceed the bound although each cell is below it
    with pytest.raises(NasjaxInputError, match="at most"):
        _t(values=np.full((4, 3), 0.3 * MAX_MAGNITUDE))
    with pytest.raises(NasjaxInputError, match="base"):
        _t(base=2 * MAX_MAGNITUDE)
    with pytest.raises(NasjaxInputError, match="base"):
        _t(base="1.0")
    # padded cells do not count; a table at the bound is accepted and solvable
    m = np.ones((2, 3), bool)
    m[0, 2] = False
    v = np.full((2, 3), 0.4 * MAX_MAGNITUDE)
    v[0, 2] = 1e300
    t = _t(values=v, mask=m)
    assert t.bounds() == (0.8 * MAX_MAGNITUDE, 0.8 * MAX_MAGNITUDE)
    # converting to a smaller unit can cross the bound: refused, not silently imprecise
    with pytest.raises(NasjaxInputError, match="at most"):
        _t(values=np.full((2, 3), 1e9)).to_unit("us")
    # the same holds for a table file
    p = tmp_path / "t.json"
    d = _t().to_dict()
    d["values"][0][1] = 1e200
    p.write_text(json.dumps(d))
    with pytest.raises(NasjaxInputError, match=rf"{p}.*values\[0, 1\]"):
        Table.load(p)


@pytest.mark.parametrize(
    "change, msg",
    [
        (lambda d: d.update(values=[[1, 2, 3], [4, 5]]), r"values\[1\]: 2 entries, expected 3"),
        (lambda d: d.update(values=[[1, "2", 3], [4, 5, 6]]), r"values\[0\]\[1\]: got '2', expected a number"),
        (lambda d: d.update(values=[[1, True, 3], [4, 5, 6]]), r"values\[0\]\[1\]: got True"),
        (lambda d: d.update(values=[[1, None, 3], [4, 5, 6]]), r"values\[0\]\[1\]: got None"),
        (lambda d: d.update(values=[[1, 10**400, 3], [4, 5, 6]]), r"values\[0\]\[1\]"),
        (lambda d: d.update(values=[1, 2, 3]), r"values\[0\]: got 1, expected a non-empty list"),
        (lambda d: d.update(values=[]), "values: got \\[\\], expected a non-empty list"),
        (lambda d: d.update(values={"a": 1}), "values: got"),
        (lambda d: d.update(mask=[[True, True], [True, True]]), r"mask: shape \(2, 2\), expected \(2, 3\)"),
        (lambda d: d.update(mask=[[1, 1, 1], [1, 1, 1]]), r"mask\[0\]\[0\]: got 1, expected true or false"),
        (lambda d: d.update(mask=[[True, True, True], "abc"]), r"mask\[1\]"),
        (lambda d: d.pop("values"), "missing field 'values'"),
        (lambda d: d.pop("unit"), "missing field 'unit'"),
        (lambda d: d.update(unit=["ms"]), "unit: got \\['ms'\\], expected a string"),
        (lambda d: d.update(metric=3), "metric: got 3"),
        (lambda d: d.update(base="0.5"), "base: got '0.5', expected a number"),
        (lambda d: d.update(base=True), "base: got True"),
        (lambda d: d.update(sign=1.5), "sign: got 1.5"),
        (lambda d: d.update(sign=-2), "sign -2"),
        (lambda d: d.update(device=7), "device: got 7"),
        (lambda d: d.update(provenance=[1]), "provenance: got \\[1\\]"),
        (lambda d: d.update(vaules=[[1]]), r"unknown field\(s\) \['vaules'\]"),
        (lambda d: d.update(format="nasjax.table/2"), "format 'nasjax.table/2'"),
    ],
)
def test_from_dict_checks_the_structure(tmp_path, change, msg):
    d = _t(device="cpu").to_dict()
    change(d)
    with pytest.raises(NasjaxInputError, match=msg):
        Table.from_dict(d, source="lat.json")
    p = tmp_path / "lat.json"
    p.write_text(json.dumps(d))
    with pytest.raises(NasjaxInputError, match=str(p)):
        Table.load(p)


def test_load_is_strict_json(tmp_path):
    p = tmp_path / "t.json"
    p.write_bytes(b'{"format": "nasjax.table/1", "values": [[1, 2]], "metric": "latency", "unit": "\xff"}')
    with pytest.raises(NasjaxInputError, match="not UTF-8"):
        Table.load(p)
    p.write_text(json.dumps(_t().to_dict()).replace("1.0", "NaN"))
    with pytest.raises(NasjaxInputError, match="NaN"):
        Table.load(p)
    with pytest.raises(NasjaxInputError, match="no file"):
        Table.load(tmp_path / "absent.json")
