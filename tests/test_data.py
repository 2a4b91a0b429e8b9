"""Datasets: bundled real digits, fixed splits, deterministic batch order, TFDS array_record reader."""

import io
import json
from pathlib import Path

import numpy as np
import pytest

from nasjax.data import batch_indices, eval_batches, load_dataset, load_tfds_directory, train_batches
from nasjax.errors import NasjaxInputError


def test_mnist_fixed_split_and_normalisation():
    ds = load_dataset("mnist")
    assert (len(ds.train), len(ds.val), ds.num_classes, ds.image_shape) == (4000, 1000, 10, (28, 28, 1))
    x, y = ds.arrays("val", limit=64)
    assert x.dtype == np.float32 and x.shape == (64, 28, 28, 1) and y.dtype == np.int32
    assert np.bincount(ds.val.labels, minlength=10).tolist() == [100] * 10
    xt, _ = ds.train.get(np.arange(len(ds.train)))
    assert abs(float(xt.mean())) < 1e-3 and abs(float(xt.std()) - 1.0) < 1e-3
    # the split is fixed (its own seed, not the user's): the same val indices every time
    from nasjax.data.datasets import _stratified_split
    tr, va = _stratified_split(np.repeat(np.arange(10), 500), 100)
    assert np.array_equal(va, _stratified_split(np.repeat(np.arange(10), 500), 100)[1]) and tr.size == 4000
    # resize and grey -> RGB
    ds2 = load_dataset("mnist", image_size=16, channels=3)
    assert ds2.image_shape == (16, 16, 3) and ds2.val.get([0, 1])[0].shape == (2, 16, 16, 3)


def test_digits_split():
    ds = load_dataset("digits")
    assert (len(ds.train), len(ds.val), ds.image_shape) == (1437, 360, (8, 8, 1))


def test_batch_order_is_a_function_of_seed_and_step():
    n, b = 10, 4
    stream = np.concatenate([batch_indices(n, b, seed=3, step=s) for s in range(5)])
    # each epoch (10 consecutive stream entries) is a permutation of range(10)
    assert sorted(stream[:10].tolist()) == list(range(10)) and sorted(stream[10:20].tolist()) == list(range(10))
    assert np.array_equal(batch_indices(n, b, 3, 4), stream[16:20])
    assert not np.array_equal(batch_indices(n, b, 4, 0), batch_indices(n, b, 3, 0))
    ds = load_dataset("digits")
    it = train_batches(ds, 8, seed=1, start_step=2)
    x2, y2 = next(it)
    x2b, y2b = ds.train.get(batch_indices(len(ds.train), 8, 1, 2))
    assert np.array_equal(x2, x2b) and np.array_equal(y2, y2b)
    assert sum(len(y) for _, y in eval_batches(ds.val, 100)) == 360


def test_bad_names():
    with pytest.raises(NasjaxInputError, match="known datasets"):
        load_dataset("mnistt")
    with pytest.raises(NasjaxInputError, match="data_dir"):
        load_tfds_directory("/nonexistent/dir")


_BUILDERS: dict = {}


def _write_tiny_tfds(root, n_train=12, n_test=6, size=10):
    """A tiny CIFAR-like dataset (PNG-encoded Image feature, as CIFAR-10's) written as array_record."""
    tfds = pytest.importorskip("tensorflow_datasets")
    if (n_train, n_test, size) in _BUILDERS:  # TFDS registers a builder class by name, once per process
        b = _BUILDERS[(n_train, n_test, size)](data_dir=str(root), file_format="array_record")
        b.download_and_prepare()
        return b.data_dir
    assert not _BUILDERS, "one tiny dataset layout per test process"
    from PIL import Image

    def png(arr):
        buf = io.BytesIO()
        Image.fromarray(arr).save(buf, format="PNG")
        return buf.getvalue()

    class TinyCifar(tfds.core.GeneratorBasedBuilder):
        VERSION = tfds.core.Version("1.0.0")

        def _info(self):
            return tfds.core.DatasetInfo(
                builder=self,
                features=tfds.features.FeaturesDict({
                    "image": tfds.features.Image(shape=(size, size, 3)),
                    "label": tfds.features.ClassLabel(num_classes=3),
                }),
            )

        def _split_generators(self, dl_manager):
            return {"train": self._generate_examples(n_train, 0), "test": self._generate_examples(n_test, 1)}

        def _generate_examples(self, n, seed):
            rng = np.random.default_rng(seed)
            for i in range(n):
                img = np.full((size, size, 3), 20 * i, np.uint8) + rng.integers(0, 5, (size, size, 3), dtype=np.uint8)
                yield i, {"image": png(img), "label": i % 3}

    _BUILDERS[(n_train, n_test, size)] = TinyCifar
    b = TinyCifar(data_dir=str(root), file_format="array_record")
    b.download_and_prepare()
    return b.data_dir


def test_tfds_array_record_directory(tmp_path):
    vdir = _write_tiny_tfds(tmp_path)
    ds = load_tfds_directory(tmp_path)  # finds the single version directory
    assert ds.num_classes == 3 and ds.image_shape == (10, 10, 3)
    assert (len(ds.train), len(ds.val)) == (12, 6)
    raw, y = ds.train.raw(np.arange(12))
    # examples come back exactly (lossless PNG) with their labels
    by_label = {int(np.round(np.median(r))) // 20: int(lab) for r, lab in zip(raw, y)}
    assert all(by_label[i] == i % 3 for i in range(12))
    x, _ = ds.train.get([0, 1, 2])
    assert x.dtype == np.float32 and x.shape == (3, 10, 10, 3)
    # resized reader (centre crop after shorter-side resize)
    ds8 = load_dataset(f"tfds:{vdir}", image_size=8)
    assert ds8.val.get([0])[0].shape == (1, 8, 8, 3)
    with pytest.raises(NasjaxInputError, match="val_split"):
        load_tfds_directory(vdir, val_split="nope")


@pytest.fixture(scope="module")
def tiny_tfds(tmp_path_factory):
    root = tmp_path_factory.mktemp("tfds")
    return Path(_write_tiny_tfds(root))


def _copy_tfds(vdir, tmp_path):
    import shutil

    d = tmp_path / "tiny_cifar" / "1.0.0"
    shutil.copytree(vdir, d)
    return d


def _edit_json(p, change):
    d = json.loads(p.read_text())
    change(d)
    p.write_text(json.dumps(d))


def _read_all(d):
    ds = load_tfds_directory(d)
    for split in (ds.train, ds.val):
        split.raw(np.arange(len(split)))
    return ds


def _dims(d, dims):
    d["featuresDict"]["features"]["image"]["image"]["shape"]["dimensions"] = dims


@pytest.mark.parametrize(
    "damage, msg",
    [
        (lambda d: (d / "dataset_info.json").unlink(), "has no dataset_info.json"),
        (lambda d: (d / "dataset_info.json").write_bytes(b"\xff\xfe{"), r"dataset_info.json.*not UTF-8"),
        (lambda d: (d / "dataset_info.json").write_text('{"name": "tiny_cifar", "splits": ['), "not valid JSON"),
        (lambda d: _edit_json(d / "dataset_info.json", lambda j: j.update(splits=[])), "splits: got \\[\\]"),
        (lambda d: _edit_json(d / "dataset_info.json", lambda j: j["splits"][0].update(shardLengths=["x"])),
         r"splits\[0\].shardLengths"),
        (lambda d: _edit_json(d / "dataset_info.json", lambda j: j.update(fileFormat="tfrecord")), "fileFormat"),
        (lambda d: _edit_json(d / "dataset_info.json", lambda j: j["splits"][0].update(shardLengths=["13"])),
         r"array_record-00000-of-00001 record 12: unreadable"),
        (lambda d: next(d.glob("*-train.array_record*")).unlink(), r"shard file .*-train\.array_record-00000-of-00001"
         "' is missing"),
        (lambda d: (d / "features.json").unlink(), "features.json: no file"),
        (lambda d: (d / "features.json").write_text('{"featuresDict": 3}'), "features.json"),
        (lambda d: _edit_json(d / "features.json", lambda j: j["featuresDict"]["features"]["label"]["classLabel"]
                              .update(numClasses="2")), r"array_record-00000-of-00001 record \d+: label 2, expected"
         r" an integer in 0\.\.1"),
        (lambda d: _edit_json(d / "features.json", lambda j: _dims(j, ["12", "12", "3"])),
         r"record \d+: image \[10, 10, 3\], expected \[12, 12, 3\]"),
        (lambda d: _edit_json(d / "features.json", lambda j: _dims(j, ["10", "10", "1"])), "uint8 \\[H, W, 1\\]"),
        (lambda d: _edit_json(d / "features.json", lambda j: j["featuresDict"]["features"]["image"]["image"]
                              .update(dtype="uint16")), "a uint8 image"),
    ],
)
def test_damaged_tfds_directories_name_the_file(tiny_tfds, tmp_path, damage, msg):
    d = _copy_tfds(tiny_tfds, tmp_path)
    damage(d)
    before = sorted(p.name for p in d.iterdir())
    with pytest.raises(NasjaxInputError, match=msg) as e:
        _read_all(d)
    assert str(d) in str(e.value) or "data_dir" in str(e.value)
    assert sorted(p.name for p in d.iterdir()) == before


def test_damaged_shards_name_the_shard(tiny_tfds, tmp_path):
    d = _copy_tfds(tiny_tfds, tmp_path)
    shard = next(d.glob("*-train.array_record*"))
    raw = shard.read_bytes()
    nonzero = np.flatnonzero(np.frombuffer(raw, np.uint8))
    for name, data in [("empty", b""), ("truncated", raw[: nonzero[-1] // 2]),
                       ("flipped", raw[: nonzero[500]] + bytes([raw[nonzero[500]] ^ 0x10]) + raw[nonzero[500] + 1:])]:
        shard.write_bytes(data)
        with pytest.raises(NasjaxInputError, match=rf"{shard.name} record \d+: unreadable") as e:
            _read_all(d)
        assert str(shard) in str(e.value), name
    shard.write_bytes(raw)
    assert len(_read_all(d).train) == 12
