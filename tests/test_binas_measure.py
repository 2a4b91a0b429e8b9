"""Measurements of a BINAS supernet for its accuracy models (``nasjax.train.binas``) on a tiny supernet: the
fixed BN calibration batch shared by every subnet, the validation blocks, the repeat-noise decomposition,
and the larger cluttered validation set built from the same held-out digits."""

import numpy as np
import pytest
from flax import nnx

from nasjax.data import load_dataset
from nasjax.errors import NasjaxInputError
from nasjax.models.binas import binas_supernet_config
from nasjax.models.mobilenetv3 import OFAMobileNetV3, split_model
from nasjax.spaces.binas import BinasStructure, LayerConfig, binas_space, canonical
from nasjax.train.binas import (
    calibration_batches,
    kendall_ceiling,
    measure_archs,
    repeat_noise,
    validation_batches,
)

ST = BinasStructure(depths=(1, 2), configs=(LayerConfig(3, 3, 0.0), LayerConfig(6, 3, 0.25)))
# one chunk size and one image batch shape throughout, so that every measurement reuses one compiled program
CHUNK, VAL_BATCH, CAL_BATCH = 2, 40, 16


def _val(split, n, offset=0):
    return validation_batches(split, n, offset=offset, batch_size=VAL_BATCH)


def _calib(split, seed):
    return calibration_batches(split, 32, seed, batch_size=CAL_BATCH)


def _measure(state, archs, val, calib, **kw):
    return measure_archs(state, ST.to_dict(), archs, val, calib, chunk_size=CHUNK, progress=False, **kw)


@pytest.fixture(scope="module")
def setup():
    ds = load_dataset("digits")
    cfg = binas_supernet_config(ST.to_dict(), num_classes=10, in_channels=1, width_mult=0.1, dropout_rate=0.0)
    state = split_model(OFAMobileNetV3(cfg, rngs=nnx.Rngs(0)))
    archs = canonical(binas_space(ST).random(np.random.default_rng(0), 10), ST)
    return ds, state, archs


def test_calibration_batch_is_fixed_and_shared(setup):
    ds, state, archs = setup
    a, b = calibration_batches(ds.train, 40, 3, batch_size=16), calibration_batches(ds.train, 40, 3, batch_size=16)
    assert [x.shape[0] for x in a] == [16, 16, 8]
    for x, y in zip(a, b):
        np.testing.assert_array_equal(np.asarray(x), np.asarray(y))
    other = np.concatenate([np.asarray(x) for x in calibration_batches(ds.train, 40, 4)])
    assert not np.array_equal(np.concatenate([np.asarray(x) for x in a]), other)
    val = _val(ds.val, 120)
    together = _measure(state, archs, val, _calib(ds.train, 3))
    # the same calibration batch for every subnet: a subnet's accuracy does not depend on its neighbours
    alone = [_measure(state, archs[i:i + 1], val, _calib(ds.train, 3))[0] for i in (0, 9)]
    assert alone == [together[0], together[9]]
    again = _measure(state, archs[::-1], val, _calib(ds.train, 3))[::-1]
    np.testing.assert_array_equal(together, again)  # same seed, same numbers, whatever the order
    moved = _measure(state, archs, val, _calib(ds.train, 4))
    assert not np.array_equal(together, moved)  # another draw of the batch recalibrates differently
    with pytest.raises(NasjaxInputError, match="calib_images"):
        calibration_batches(ds.train, len(ds.train) + 1, 0)


def test_resume_extends_a_finished_measurement(setup, tmp_path):
    ds, state, archs = setup
    val, calib = _val(ds.val, 80), _calib(ds.train, 0)
    straight = _measure(state, archs, val, calib)
    first = _measure(state, archs[:8], val, calib, resume=tmp_path / "a.npy")  # one group: 4 chunks of 2
    np.testing.assert_array_equal(first, straight[:8])
    np.save(tmp_path / "a.npy", np.concatenate([[-1.0], first[1:]]))  # a resumed result is kept, not re-measured
    more = _measure(state, archs, val, calib, resume=tmp_path / "a.npy")
    assert more[0] == -1.0
    np.testing.assert_array_equal(more[1:], straight[1:])
    with pytest.raises(NasjaxInputError, match="resume file"):
        _measure(state, archs[:2], val, calib, resume=tmp_path / "a.npy")


def test_validation_blocks_are_disjoint_slices(setup):
    ds = setup[0]
    first, second = validation_batches(ds.val, 100, batch_size=30), validation_batches(ds.val, 100, offset=100)
    assert [len(y) for _, y in first] == [30, 30, 30, 10]
    x0, y0 = ds.val.get(np.arange(200))
    np.testing.assert_array_equal(np.concatenate([np.asarray(x) for x, _ in first]), x0[:100])
    np.testing.assert_array_equal(np.concatenate([np.asarray(y) for _, y in second]), y0[100:])
    with pytest.raises(NasjaxInputError, match="val_images"):
        validation_batches(ds.val, len(ds.val), offset=1)


def test_repeat_noise_recovers_its_sources():
    rng = np.random.default_rng(0)
    n = 4000
    truth = rng.normal(35.0, 2.0, n)
    img_a, img_b = rng.normal(0, 0.6, n), rng.normal(0, 0.6, n)
    bn_a, bn_b = rng.normal(0, 0.3, n), rng.normal(0, 0.3, n)
    base = truth + img_a + bn_a
    r = repeat_noise(base, truth + img_a + bn_b + 0.5, truth + img_b + bn_a - 1.0, 2000, population=base)
    assert r["calib_sd"] == pytest.approx(0.3, rel=0.05) and r["images_sd"] == pytest.approx(0.6, rel=0.05)
    assert r["calib_shift"] == pytest.approx(0.5, abs=0.02) and r["images_shift"] == pytest.approx(-1.0, abs=0.03)
    assert r["repeat_sd"] == pytest.approx(np.hypot(0.3, 0.6), rel=0.05)
    assert r["binomial_sd"] == pytest.approx(100 * np.sqrt(0.35 * 0.65 / 2000), rel=0.01)
    # the ceiling is what a noiseless predictor (the truth) reaches against the measured values
    from nasjax import metrics

    assert r["ceiling"]["kendall"] == pytest.approx(metrics.kendall(base, truth), abs=0.02)
    assert r["ceiling"]["pearson"] == pytest.approx(metrics.pearson(base, truth), abs=0.01)
    assert r["ceiling_calib_only"]["kendall"] > r["ceiling"]["kendall"]
    assert kendall_ceiling(0.0, 4.0)["kendall"] == pytest.approx(1.0)
    assert kendall_ceiling(5.0, 4.0) == {"reliability": 0.0, "pearson": 0.0, "kendall": 0.0}
    with pytest.raises(NasjaxInputError, match="repeat measurements"):
        repeat_noise(base[:5], base[:4], base[:5], 10)


def test_repeat_noise_on_the_supernet(setup):
    ds, state, archs = setup
    val, other = _val(ds.val, 80), _val(ds.val, 80, offset=80)
    calib, calib2 = _calib(ds.train, 1), _calib(ds.train, 2)
    m = [_measure(state, archs, v, c) for v, c in ((val, calib), (val, calib2), (other, calib))]
    r = repeat_noise(*m, 80)
    assert r["subnets"] == 10 and r["val_images"] == 80
    assert np.isfinite(r["repeat_sd"]) and r["repeat_sd"] ** 2 == pytest.approx(r["calib_sd"] ** 2
                                                                                + r["images_sd"] ** 2)
    none = repeat_noise(m[0], m[0], m[0], 80)
    assert none["repeat_sd"] == 0.0 and none["calib_shift"] == 0.0


def test_clutter_validation_copies():
    two, four = load_dataset("mnist_clutter"), load_dataset("mnist_clutter", val_copies=4)
    assert len(two.val) == 2000 and len(four.val) == 4000
    assert two.provenance["val_copies"] == 2 and four.provenance["val_copies"] == 4
    np.testing.assert_array_equal(two.train.images, four.train.images)  # the training set does not change
    np.testing.assert_array_equal(two.train.labels, four.train.labels)
    # copy-major: every block of 1,000 images holds each held-out digit once (100 per class)
    for ds in (two, four):
        blocks = ds.val.labels.reshape(-1, 1000)
        np.testing.assert_array_equal(blocks, np.broadcast_to(blocks[0], blocks.shape))
        assert np.all(np.bincount(blocks[0], minlength=10) == 100)
    assert not np.array_equal(four.val.images[:2000], four.val.images[2000:])
    with pytest.raises(NasjaxInputError, match="val_copies"):
        load_dataset("mnist_clutter", val_copies=0)
    with pytest.raises(NasjaxInputError, match="option"):
        load_dataset("digits", val_copies=2)
