"""The official NAS-Bench-201 file loader: damaged files and malformed contents name the path in the file."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest

from nasjax.errors import NasjaxInputError

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def doc():
    from nasjax.spaces.nasbench201 import arch_to_str, nasbench201_space

    strs = [arch_to_str(a) for a in nasbench201_space().all_archs()]
    res = {"epochs": 200, "params": 1.5, "train_times": {0: 2.0, 1: 3.0},
           "eval_acc1es": {"x-valid@199": 90.0, "ori-test@199": 89.0, "x-test@199": 88.5}}
    dsets = ("cifar10-valid", "cifar10", "cifar100", "ImageNet16-120")
    state = {"dataset_seed": {ds: [777] for ds in dsets}, "all_results": {(ds, 777): dict(res) for ds in dsets}}
    return {"meta_archs": strs, "arch2infos": {7: {"full": state, "less": copy.deepcopy(state)}},
            "evaluated_indexes": [7]}


def _with(doc, change):
    d = dict(doc, arch2infos=copy.deepcopy(doc["arch2infos"]))
    change(d)
    return d


def _result(d):
    return d["arch2infos"][7]["full"]["all_results"][("cifar10-valid", 777)]


@pytest.mark.parametrize(
    "change, msg",
    [
        (lambda d: d.update(meta_archs=d["meta_archs"][:-1]), "15624 meta_archs"),
        (lambda d: d.update(meta_archs="abc"), "str meta_archs"),
        (lambda d: d.update(meta_archs=["|x~0|"] + d["meta_archs"][1:]), r"meta_archs: arch strings\[0\]"),
        (lambda d: d.update(arch2infos=[1]), "arch2infos is a list"),
        (lambda d: d.update(evaluated_indexes=[99999]), "evaluated_indexes"),
        (lambda d: d.update(arch2infos={"7": d["arch2infos"][7]}), "arch2infos key '7'"),
        (lambda d: _result(d).update(epochs=float("inf")), r"\('cifar10-valid', 777\)\]\.epochs is inf"),
        (lambda d: _result(d)["eval_acc1es"].update({"x-valid@199": float("nan")}),
         r"eval_acc1es\['x-valid@199'\] is nan"),
        (lambda d: _result(d)["eval_acc1es"].update({"x-valid@199": "90"}), "is '90', expected a finite number"),
        (lambda d: _result(d).update(params=-1.0), r"\.params is -1\.0"),
        (lambda d: _result(d)["train_times"].update({0: None}), "train_times is None"),
        (lambda d: d["arch2infos"][7]["full"].update(all_results=[]), r"arch2infos\[7\] is malformed"),
    ],
)
def test_malformed_contents(doc, change, msg):
    from nasjax.benchmarks import nb201_file

    nb201_file.to_table(doc)  # the intact dict converts
    with pytest.raises(NasjaxInputError, match=msg):
        nb201_file.to_table(_with(doc, change))


def test_damaged_files_and_the_restricted_loader(doc, tmp_path):
    from nasjax.benchmarks import nb201_file

    path = tmp_path / "NAS-Bench-201-v1_1-096897.pth"
    torch.save(doc, path)
    raw = path.read_bytes()
    cache = tmp_path / "cache"
    for name, data in [("truncated.pth", raw[: len(raw) // 2]), ("empty.pth", b""), ("text.pth", b"hello"),
                       ("pickle.pth", pickle.dumps({"meta_archs": 1}, protocol=2))]:
        p = tmp_path / name
        p.write_bytes(data)
        with pytest.raises(NasjaxInputError, match=name):
            nb201_file.load_file(p, cache_dir=cache, trusted=False)
    assert not cache.exists() or not any(cache.iterdir())  # nothing cached for a failed load
    # trusted=False keeps the restricted loader: a file that pickles more than plain data is refused, not run
    assert nb201_file.torch_load(path, trusted=False)[1] is True
    numpy_file = tmp_path / "numpy.pth"
    torch.save(_with(doc, lambda d: _result(d).update(params=np.float64(1.5))), numpy_file)
    with pytest.raises(NasjaxInputError, match="refused by torch's weights_only loader.*trusted=True"):
        nb201_file.torch_load(numpy_file, trusted=False)
    assert nb201_file.torch_load(numpy_file, trusted=True)[1] is False
    # a malformed file's contents name the file
    bad = _with(doc, lambda d: _result(d)["eval_acc1es"].update({"x-valid@199": -3.0}))
    torch.save(bad, tmp_path / "bad.pth")
    with pytest.raises(NasjaxInputError, match=r"bad.pth.*eval_acc1es\['x-valid@199'\] is -3.0"):
        nb201_file.load_file(tmp_path / "bad.pth", cache_dir=cache)
    t = nb201_file.load_file(path, cache_dir=cache)
    assert np.isclose(t.val_acc("cifar10")[7], 90.0) and np.isnan(t.val_acc("cifar10")[8])
