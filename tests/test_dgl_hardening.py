"""Bad input to the DGL latency model and its entry point: each case raises NasjaxInputError from the API and,
from ``python -m experiments.dgl``, prints one line naming the field or file, exits with status 2 and leaves
no file behind (temporaries included)."""

import os
import pickle

import numpy as np
import pytest
from conftest import require_shared
from test_dgl import _run

from nasjax.errors import NasjaxInputError
from nasjax.hardware import dgl, model_io
from nasjax.spaces import get_space

HW = "2 3 1 7.46"


def _folder(root, n=40, seed=0):
    """A small NAS-Bench-201 DGL data folder: net.txt, a.txt, one phone's hardware and latency, a NAS pool."""
    rng = np.random.default_rng(seed)
    archs = np.unique(get_space("nasbench201").random(rng, 3 * n), axis=0)[:n]
    A = 1000 + 300 * dgl.features("nasbench201", archs)[:, :5].sum(1) + rng.uniform(0, 50, n)
    (root / "hardware").mkdir(parents=True)
    (root / "latency").mkdir()
    (root / "NAS").mkdir()
    (root / "net.txt").write_text("\n".join(" ".join(str(c + 1) for c in a) for a in archs) + "\n")
    (root / "a.txt").write_text("\n".join(f"{x:.3f}" for x in A) + "\n")
    (root / "hardware" / "Phone A.txt").write_text(HW + "\n")
    lat = np.round(A * dgl.device_constant([2, 3, 1, 7.46]))
    (root / "latency" / "Phone A.txt").write_text("\n".join(str(int(x)) for x in lat) + "\n")
    (root / "NAS" / "net.txt").write_text((root / "net.txt").read_text())
    (root / "NAS" / "acc.txt").write_text("\n".join(f"{x:.2f}" for x in rng.uniform(60, 70, n)) + "\n")
    (root / "NAS" / "Phone A.txt").write_text(HW + "\n")
    return archs, A


def _tree(d):
    """Every entry below ``d``, hidden files included."""
    return sorted(str(p.relative_to(d)) for p in d.rglob("*")) if d.exists() else []


def _fails(argv, capsys, out, match):
    """Run the entry point expecting exit status 2, one line on stderr matching ``match``, ``out`` unchanged."""
    before = _tree(out)
    with pytest.raises(SystemExit) as e:
        _run(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert e.value.code == 2
    assert len(err) == 1 and err[0].startswith("error: "), err
    assert __import__("re").search(match, err[0]), err[0]
    assert _tree(out) == before


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A data folder and a model trained on it by the entry point (``<out>/nasbench201/model.npz``)."""
    root = tmp_path_factory.mktemp("dgl")
    data, out = root / "data", root / "out"
    _folder(data)
    _run(["--mode=train", f"--data_path={data}", f"--save_path={out}", "--epoch=30"])
    assert (out / "nasbench201" / "model.npz").is_file()
    return data, out


def _test_args(data, out, *more):
    return ["--mode=test", f"--data_path={data}", f"--save_path={out}", "--test_devices=Phone A", *more]


def test_binary_bytes_in_hardware_or_latency_file(trained, capsys, tmp_path):
    data, out = trained
    bad = tmp_path / "bad"
    _folder(bad)
    (bad / "hardware" / "Phone A.txt").write_bytes(b"\x80\x81\xfe 3 1 7.46\n")
    with pytest.raises(NasjaxInputError, match="hardware file of 'Phone A'.*not UTF-8"):
        dgl.load_hardware(bad, "Phone A")
    model = f"--load_path={out / 'nasbench201' / 'model.npz'}"
    _fails(_test_args(bad, out, model), capsys, out, "hardware file.*UTF-8")
    (bad / "hardware" / "Phone A.txt").write_text(HW)
    (bad / "latency" / "Phone A.txt").write_bytes(b"12\n\xff\xd8\xff 13\n")
    with pytest.raises(NasjaxInputError, match="latency file of 'Phone A'.*not UTF-8"):
        dgl.load_latency(bad, "Phone A", 40)
    _fails(_test_args(bad, out, model), capsys, out, "latency file.*UTF-8")
    # non-finite values and sums that overflow are refused the same way
    (bad / "latency" / "Phone A.txt").write_text("nan\n" * 40)
    with pytest.raises(NasjaxInputError, match="finite"):
        dgl.load_latency(bad, "Phone A", 40)
    (bad / "latency" / "Phone A.txt").write_text("1e308\n" * 40)
    with pytest.raises(NasjaxInputError, match="summed"):
        dgl.load_latency(bad, "Phone A", 40)


def test_a_file_that_is_not_an_npz_model(trained, capsys, tmp_path):
    data, out = trained
    fake = tmp_path / "model.npz"
    fake.write_bytes(pickle.dumps({"weights": [1, 2, 3]}))
    with pytest.raises(NasjaxInputError, match="not a readable .npz") as e:
        dgl.DGLLatencyModel.load(fake)
    assert "allow_pickle" not in str(e.value)
    _fails(_test_args(data, out, f"--load_path={fake}"), capsys, out, "model.npz.*not a readable .npz")
    fake.write_text("just text\n")
    with pytest.raises(NasjaxInputError, match="not a readable .npz"):
        dgl.DGLLatencyModel.load(fake)
    np.savez(fake, obj=np.array([{"a": 1}], dtype=object))  # a zip archive holding a pickled array
    with pytest.raises(NasjaxInputError, match="pickled") as e:
        model_io.load_arrays(fake)
    assert "allow_pickle" not in str(e.value)


def test_nas_pool_files_are_not_devices(trained, capsys, tmp_path):
    data, out = trained
    assert dgl.list_devices(data, "NAS") == ["Phone A"]
    with pytest.raises(NasjaxInputError, match=r"known devices: Phone A$"):
        dgl.target_hardware(data, "Nokia 3310")
    for name in ("acc", "net"):
        with pytest.raises(NasjaxInputError, match="known devices: Phone A"):
            dgl.target_hardware(data, name)
    nas = ["--mode=nas", f"--data_path={data}", f"--save_path={out}", "--latency_constraint=100000",
           "--searcher=exhaustive"]
    _fails(nas + ["--nas_target_device=acc"], capsys, out, "known devices: Phone A$")
    shared = require_shared("DGL", "data", "nasbench201")
    assert dgl.list_devices(shared, "NAS") == ["Samsung Galaxy A10s"]


def _rewrite(src, dst, edit_arrays=None, edit_header=None, version=None):
    """Copy a model file with its arrays / header edited (a valid file: the digest is recomputed)."""
    arrays, header = model_io.load_arrays(src, finite=False)
    if edit_arrays:
        edit_arrays(arrays)
    meta = {k: v for k, v in header.items() if k not in ("format", "kind", "version", "arrays", "sha256")}
    if edit_header:
        edit_header(meta)
    model_io.save_arrays(dst, arrays, kind=header["kind"], version=version or header["version"], header=meta)
    return dst


def test_model_file_with_nan_weights_or_bad_normalisers(trained, capsys, tmp_path):
    data, out = trained
    good = out / "nasbench201" / "model.npz"
    cases = {
        "nan_kernel": ({"edit_arrays": lambda a: a["nnx/linear/kernel"].__setitem__((0, 0), np.nan)}, "NaN/inf"),
        "zero_x_std": ({"edit_arrays": lambda a: a["x_std"].__setitem__(0, 0.0)}, "x_std"),
        "nan_x_mean": ({"edit_arrays": lambda a: a["x_mean"].__setitem__(3, np.nan)}, "x_mean"),
        "zero_y_std": ({"edit_header": lambda h: h.__setitem__("y_std", 0.0)}, "y_std"),
        "bad_config": ({"edit_header": lambda h: h.__setitem__("config", {"target": "cubic"})}, "target"),
    }
    for name, (edit, match) in cases.items():
        p = _rewrite(good, tmp_path / f"{name}.npz", **edit)
        with pytest.raises(NasjaxInputError, match=match):
            dgl.DGLLatencyModel.load(p)
        _fails(_test_args(data, out, f"--load_path={p}"), capsys, out, match)
    # the untouched file still loads and predicts
    archs = get_space("nasbench201").random(np.random.default_rng(1), 3)
    assert dgl.DGLLatencyModel.load(good).predict_A(archs).shape == (3,)


def test_unknown_model_file_version(trained, capsys, tmp_path):
    data, out = trained
    p = _rewrite(out / "nasbench201" / "model.npz", tmp_path / "v7.npz", version=7)
    with pytest.raises(NasjaxInputError, match="version 7, expected 1"):
        dgl.DGLLatencyModel.load(p)
    _fails(_test_args(data, out, f"--load_path={p}"), capsys, out, "version 7")
    from nasjax.hardware import fewshot as fs

    model_io.save_arrays(tmp_path / "fs_v1.npz", {"fs/coef_log": np.zeros((2, 3))}, kind=fs.KIND, version=1,
                         header={"mode": "table"})
    with pytest.raises(NasjaxInputError, match="version 1, expected 2"):
        fs.FewShotLatencyModel.load(tmp_path / "fs_v1.npz")


def test_empty_device_list_and_empty_save_path(trained, capsys, tmp_path, monkeypatch):
    data, out = trained
    model = f"--load_path={out / 'nasbench201' / 'model.npz'}"
    _fails(["--mode=test", f"--data_path={data}", f"--save_path={out}", "--test_devices=", model], capsys, out,
           "test_devices")
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    _fails(["--mode=test", f"--data_path={data}", "--save_path=", "--test_devices=Phone A", model], capsys, cwd,
           "save_path")
    _fails(["--mode=train", f"--data_path={data}", "--save_path=", "--epoch=5"], capsys, cwd, "save_path")
    assert _tree(cwd) == []


def test_finite_inputs_whose_predictions_overflow(trained, capsys, tmp_path):
    data, out = trained
    with pytest.raises(NasjaxInputError, match="c\\(hw\\)"):
        dgl.device_constant([1e-300, 3, 1, 1e-10])
    with pytest.raises(NasjaxInputError, match="overflows"):
        dgl.dgl_latency([1e306, 2e306], [1e-3, 3, 1, 7.46])
    fast = tmp_path / "fast"
    _folder(fast)
    (fast / "hardware" / "Phone A.txt").write_text("1e-300 3 1 1e-10\n")
    _fails(_test_args(fast, out, f"--load_path={out / 'nasbench201' / 'model.npz'}"), capsys, out, "c\\(hw\\)")
    # a model whose (finite) output scale makes exp overflow: log target with a huge y_std
    big = _rewrite(out / "nasbench201" / "model.npz", tmp_path / "big.npz",
                   edit_header=lambda h: (h.__setitem__("y_std", 1e300), h["config"].__setitem__("target", "log")))
    m = dgl.DGLLatencyModel.load(big)
    with pytest.raises(NasjaxInputError, match="overflow"):
        m.predict_A(get_space("nasbench201").random(np.random.default_rng(0), 5))
    _fails(_test_args(data, out, f"--load_path={big}"), capsys, out, "overflow")


def test_flags_of_another_model_kind_or_mode(trained, capsys):
    data, out = trained
    _fails(["--mode=train", f"--data_path={data}", f"--save_path={out}", "--model=dgl_mlp", "--l2=3"], capsys, out,
           "l2: given with --model=dgl_mlp")
    _fails(_test_args(data, out, "--POPULATION_SIZE=10"), capsys, out, "POPULATION_SIZE: given with --mode=test")
    _fails(["--mode=train", f"--data_path={data}", f"--save_path={out}", "--target=cubic"], capsys, out, "target")


def test_result_sets_leave_no_temporaries(trained, capsys):
    data, out = trained
    _run(_test_args(data, out, f"--load_path={out / 'nasbench201' / 'model.npz'}"))
    names = os.listdir(out / "nasbench201")
    assert "test_metrics.json" in names and "Phone A_timepre.txt" in names
    assert not [n for n in names if n.startswith(".")]
    import json

    manifest = json.loads((out / "nasbench201" / "test_metrics.json").read_text())
    assert set(manifest["files"]) == {"Phone A_timepre.txt", "test_metrics.csv"}
    row = manifest["rows"][0]
    assert {"all_R", "all_RMSE", "all_MAE"} <= set(row)
