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
