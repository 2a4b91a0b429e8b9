"""The readers of published latency and accuracy files (nasjax.benchmarks.csv_files / latency_sets /
nb201_accuracy / dgl): one reader per file, strict about encodings, JSON structure and finite values."""

import json

import numpy as np
import pytest
from conftest import require_shared

from nasjax.benchmarks import csv_files, latency_sets, nb201_accuracy
from nasjax.benchmarks import dgl as dgl_files
from nasjax.errors import NasjaxInputError


def _write(path, text: str | bytes):
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def test_csv_reader_refuses_binary_ragged_and_non_finite_cells(tmp_path):
    p = _write(tmp_path / "a.csv", "x,y\n1,2\n3,4\n")
    header, rows = csv_files.read_csv(p)
    assert header == ["x", "y"] and rows == [["1", "2"], ["3", "4"]]
    np.testing.assert_array_equal(csv_files.float_column(p, rows, 1, "y"), [2.0, 4.0])
    _write(p, b"x,y\n1,\xff\xfe\n")
    with pytest.raises(NasjaxInputError, match="not UTF-8"):
        csv_files.read_csv(p)
    _write(p, "x,y\n1,2\n3\n")
    with pytest.raises(NasjaxInputError, match="line 3: 1 cells, expected 2"):
        csv_files.read_csv(p)
    for cell, what in (("nan", "finite"), ("inf", "finite"), ("fast", "a number")):
        _write(p, f"x,y\n1,2\n3,{cell}\n")
        h, r = csv_files.read_csv(p)
        with pytest.raises(NasjaxInputError, match=f"line 3 column 'y'.*{what}"):
            csv_files.float_column(p, r, 1, "y")
    _write(p, "x,y\n1,-1\n3,5\n")  # the source's marker of a missing measurement becomes NaN
    h, r = csv_files.read_csv(p)
    v = csv_files.float_column(p, r, 1, "y", missing=-1.0)
    assert np.isnan(v[0]) and v[1] == 5.0
    _write(p, "x,y\n1,1e308\n3,1e308\n")
    h, r = csv_files.read_csv(p)
    with pytest.raises(NasjaxInputError, match="summed"):
        csv_files.float_column(p, r, 1, "y")
    with pytest.raises(NasjaxInputError, match="no file"):
        csv_files.read_csv(tmp_path / "missing.csv")


def test_arch_string_mapping_checks_the_listed_index():
    ref = ["a", "b", "c", "d"]
    np.testing.assert_array_equal(csv_files.rows_by_arch_string("src", ["c", "a"], ref, [2, 0]), [2, 0])
    with pytest.raises(NasjaxInputError, match="not a NAS-Bench-201 cell"):
        csv_files.rows_by_arch_string("src", ["z"], ref)
    with pytest.raises(NasjaxInputError, match="more than one line"):
        csv_files.rows_by_arch_string("src", ["a", "a"], ref)
    with pytest.raises(NasjaxInputError, match="line 1 has nb201_index 3 but its arch string is cell 1"):
        csv_files.rows_by_arch_string("src", ["a", "b"], ref, [0, 3])


def test_help_reference_index_structure(tmp_path):
    p = tmp_path / latency_sets.HELP_REFERENCE_JSON
    _write(p, json.dumps({"nasbench201": [3, 1, 2]}))
    assert latency_sets.help_reference_rows("nasbench201", tmp_path) == (3, 1, 2)
    for bad, match in (("[1, 2]", "JSON object"), ('{"nasbench201": [1, "x"]}', "integer"),
                       ('{"nasbench201": [1, NaN]}', "finite"), ('{"nasbench201": [1, -2]}', "non-negative"),
                       ("{nope", "not valid JSON")):
        _write(p, bad)
        with pytest.raises(NasjaxInputError, match=match):
            latency_sets.help_reference_rows("nasbench201", tmp_path)
    _write(p, b"\x89PNG\r\n")
    with pytest.raises(NasjaxInputError, match="not UTF-8"):
        latency_sets.help_reference_rows("nasbench201", tmp_path)


def test_latency_set_readers_on_broken_files(tmp_path):
    p = tmp_path / latency_sets.ONEPROXY_CSV
    _write(p, "row,nb201_index,arch_str,dev\n0,0,x,nan\n")
    with pytest.raises(NasjaxInputError, match="column 'dev'.*finite"):
        latency_sets.read_oneproxy_csv(tmp_path)
    _write(p, "row,index,arch_str,dev\n0,0,x,1.0\n")
    with pytest.raises(NasjaxInputError, match="header"):
        latency_sets.read_oneproxy_csv(tmp_path)
    p = tmp_path / latency_sets.HELP_FBNET_CSV
    _write(p, "row,arch_ops_22_blocks,op_idx_list,dev\n0,skip,0 1,1.0\n")
    with pytest.raises(NasjaxInputError, match="op_idx_list.*expected 22 integers"):
        latency_sets.load_help_fbnet(tmp_path)
    p = tmp_path / nb201_accuracy.CONSTRAINED_TPE_CSV
    _write(p, "nb201_index,arch_str\n0,x\n")
    with pytest.raises(NasjaxInputError, match="constrained-tpe: 1 rows, expected 15625"):
        nb201_accuracy.read_200ep(tmp_path)
    with pytest.raises(NasjaxInputError, match="not found"):
        nb201_accuracy.read_test_200ep(tmp_path / "nowhere")
    assert nb201_accuracy.read_12ep(tmp_path) is None  # optional source


def test_one_reader_feeds_the_table_and_the_latency_sets():
    require_shared("HELP")
    require_shared("OneProxy")
    from nasjax.benchmarks import nasbench201 as nb

    table = nb.load()
    help_set = latency_sets.load_help_nasbench201()
    for d in ("pixel3", "titan_rtx_256", "eyeriss"):
        np.testing.assert_array_equal(table.latency(d), help_set.column(d))
    op = latency_sets.load_oneproxy()
    for d in ("true_630", "rice_edgetpu"):
        np.testing.assert_array_equal(table.latency(d)[op.ids], op.column(d))
    assert nb.ONEPROXY_TWINS is latency_sets.ONEPROXY_TWINS
    acc = nb201_accuracy.read_200ep()
    np.testing.assert_array_equal(table.val_acc("cifar100"), acc.val_mean["cifar100"])


def test_dgl_reader_on_broken_files(tmp_path):
    _write(tmp_path / "net.txt", "1 2 3 4 5 1\n2 2 2 2 2\n")
    with pytest.raises(NasjaxInputError, match="multiple of 6"):
        dgl_files.read_archs("nasbench201", tmp_path / "net.txt")
    _write(tmp_path / "net.txt", "1 2 3 4 5 1\n2 2 2 2 2 7\n")
    with pytest.raises(NasjaxInputError, match="net.txt"):
        dgl_files.read_archs("nasbench201", tmp_path / "net.txt")
    _write(tmp_path / "net.txt", "1 2 3 4 5 1\n2 2 2 2 2 2\n")
    _write(tmp_path / "a.txt", "1000\n")
    with pytest.raises(NasjaxInputError, match="a.txt"):
        dgl_files.read_dgl("nasbench201", tmp_path, devices=[])
    _write(tmp_path / "a.txt", "1000\ninf\n")
    with pytest.raises(NasjaxInputError, match="a.txt.*finite"):
        dgl_files.read_dgl("nasbench201", tmp_path, devices=[])
    _write(tmp_path / "NAS" / "net.txt", "1 2 3 4 5 1\n")
    _write(tmp_path / "NAS" / "acc.txt", "173.5\n")
    with pytest.raises(NasjaxInputError, match="acc.txt"):
        dgl_files.read_nas_pool(tmp_path / "NAS")
    with pytest.raises(NasjaxInputError, match="search_space"):
        dgl_files.read_dgl("darts", tmp_path)
    assert not dgl_files.has_authors_predictions("nasbench201", "Nokia 3310", tmp_path)
