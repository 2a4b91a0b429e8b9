"""Readers of the HELP / OneProxy / BRP-NAS latency tables (nasjax.benchmarks.latency_sets: shapes, device lists,
arch-string mapping, errors), NB201 live-edge features and HELP's evaluation rows."""

import numpy as np
import pytest
from conftest import require_shared

from nasjax.benchmarks import latency_sets as hd
from nasjax.errors import NasjaxInputError
from nasjax.hardware import fewshot as fs
from nasjax.protocols import fewshot_eval as fe
from nasjax.spaces.nasbench201 import str_to_arch


def test_help_nasbench201_shapes_and_refs():
    root = require_shared("HELP").parent
    ds = hd.load_help_nasbench201(root)
    assert ds.archs.shape == (15625, 6) and ds.latency_ms.shape == (15625, 27)
    assert len(set(ds.devices)) == 27 and {"pixel2", "titan_rtx_256", "eyeriss"} <= set(ds.devices)
    assert np.array_equal(ds.ids, np.arange(15625)) and ds.unit == "ms"
    assert ds.refs == (11982, 431, 55, 9, 14451, 8636, 9881, 13479, 6196, 1462)
    assert np.all(ds.latency_ms > 0)
    # the arch vector of a row is the one of its own arch string
    assert np.array_equal(ds.archs[123], str_to_arch(ds.extra["arch_str"][123]))
    assert set(hd.HELP_TRAIN_DEVICES_NB201) | set(hd.HELP_TEST_DEVICES_NB201) <= set(ds.devices)


def test_help_fbnet_and_ofa_shapes():
    root = require_shared("HELP").parent
    fb = hd.load_help_fbnet(root)
    assert fb.archs.shape == (5000, 22) and fb.latency_ms.shape == (5000, 27)
    assert fb.archs.min() >= 0 and fb.archs.max() == len(hd.FBNET_OPS) - 1 and len(fb.refs) == 10
    ofa = hd.load_help_ofa(root)
    assert ofa.archs.shape == (5000, 46) and len(ofa.devices) == 12


def test_oneproxy_mapping_by_arch_string():
    root = require_shared("OneProxy").parent
    op = hd.load_oneproxy(root)
    help_set = hd.load_help_nasbench201(root)
    assert op.archs.shape == (1999, 6) and op.latency_ms.shape == (1999, 18) and len(op.devices) == 18
    # ids come from the arch string: HELP's row at that index has the same cell
    assert np.array_equal(help_set.archs[op.ids], op.archs)
    assert int(np.isnan(op.column("rice_edgetpu")).sum()) == 259  # -1 upstream -> NaN
    # the HW-NAS-Bench twins hold the same measurements as HELP's columns (SOURCE.md)
    for twin, help_dev in hd.ONEPROXY_TWINS.items():
        np.testing.assert_allclose(op.column(twin), help_set.column(help_dev)[op.ids], rtol=1e-6)


def test_brp_i7_and_unknown_device():
    root = require_shared("brp-nas").parent
    i7 = hd.load_brp_i7(root)
    assert i7.latency_ms.shape == (15284, 1) and i7.devices == ("i7_7820x",)
    assert np.all(np.isin(hd.help_reference_rows("nasbench201", root), i7.ids))
    with pytest.raises(NasjaxInputError, match="device"):
        i7.column("i9")
    with pytest.raises(NasjaxInputError, match="space"):
        hd.help_reference_rows("darts", root)


def test_bad_files_fail_clearly(tmp_path):
    with pytest.raises(NasjaxInputError, match="no file"):
        hd.load_help_fbnet(tmp_path)
    d = tmp_path / "brp-nas" / "derived"
    d.mkdir(parents=True)
    (d / "desktop-cpu-core-i7-7820x-fp32_latency_ms.csv").write_text("nb201_index,arch_str\n0,x\n")
    with pytest.raises(NasjaxInputError, match="header"):
        hd.load_brp_i7(tmp_path)
    with pytest.raises(NasjaxInputError, match="arch string"):
        hd.nb201_index_of_strings(["|nope~0|"], require_shared("HELP").parent)


def test_live_edges_by_hand():
    # all 'none': nothing is live
    assert not fs.nb201_live_edges([0, 0, 0, 0, 0, 0]).any()
    # only 3<-0 conv3x3: that edge alone is live
    assert fs.nb201_live_edges([0, 0, 0, 3, 0, 0])[0].tolist() == [False, False, False, True, False, False]
    # 1<-0 conv but node 1 feeds nothing: dead; 3<-0 pool live
    live = fs.nb201_live_edges([3, 0, 0, 4, 0, 0])[0]
    assert live.tolist() == [False, False, False, True, False, False]
    # chain 0->1->2->3 all live, counts by op
    a = np.array([[2, 0, 1, 0, 0, 3]])
    assert fs.nb201_live_edges(a)[0].tolist() == [True, False, True, False, False, True]
    assert fs.nb201_live_op_counts(a)[0].tolist() == [1.0, 1.0, 1.0, 0.0]


def test_help_query_rows_follow_helps_loader():
    y = np.arange(3000, 0, -1).astype(float)  # latency decreasing with the row index
    query, pool = fe.help_query_rows(y)
    assert len(query) == 800 and len(pool) == 720
    # rows 900..1899; the 10 % slowest (lowest rows) and 10 % fastest (highest rows) are dropped
    assert query.min() == 1000 and query.max() == 1799 and pool.min() == 90 and pool.max() == 809
    with pytest.raises(NasjaxInputError, match="num_query"):
        fe.help_query_rows(y[:1000])
