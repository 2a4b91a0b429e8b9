"""The sequence latency predictor: encoding, masking, save/reload to identical predictions, the additive fit."""

import numpy as np
import pytest
from flax import nnx

from nasjax.errors import NasjaxInputError
from nasjax.predictors.additive_fit import fit_additive
from nasjax.predictors.sequence import (
    BiGRURegressor,
    SequenceConfig,
    SequenceLatencyPredictor,
    fit_layer_table,
    fit_sequence_predictor,
    layer_table_predict,
)
from nasjax.predictors.sequence_data import OFASequenceEncoder, help_ofa_archs, read_measured_csv
from nasjax.spaces import get_space
from nasjax.spaces.mobilenetv3 import layers_to_ofa
from nasjax.spaces.structure import structure_of

TINY = SequenceConfig(embed=4, shape_embed=4, hidden=8, epochs=2, batch_size=16, eval_every=1)


def _data(n=48, seed=0):
    space = get_space("mobilenetv3_layers")
    rng = np.random.default_rng(seed)
    lay = space.random(rng, n)
    res = rng.choice([160, 192, 224], size=n)
    archs = np.concatenate([lay, res[:, None]], 1)
    st = structure_of(space)
    lat = 1.0 + (st.active(lay) * (1 + lay % 3)).sum(1) * (res / 224.0) ** 2
    return archs, np.stack([lat, 2 * lat], 1)


def test_encoder_keeps_active_layers_in_order():
    archs, _ = _data(4)
    ops, shapes, mask = OFASequenceEncoder().encode(archs)
    for a, o, m, s in zip(archs, ops, mask, shapes):
        d = layers_to_ofa(a[:25])["d"]
        assert m.sum() == sum(d) and np.all(o[~m] == 0) and np.all(o[m] >= 1)
        idx = [st * 4 + i for st in range(5) for i in range(d[st])]
        np.testing.assert_array_equal(o[m], 1 + a[idx])
        assert s[0, 0] == pytest.approx((a[25] // 2) / 224)  # after the stride-2 stem (first block stride 1)
    with pytest.raises(NasjaxInputError, match="archs"):
        OFASequenceEncoder().encode(np.zeros((2, 25), int))


def test_help_rows_convert_to_layer_view():
    rows = np.array([[7] * 20 + [6] * 20 + [4] * 5 + [224], [3] * 20 + [3] * 20 + [2] * 5 + [128]])
    a = help_ofa_archs(rows)
    assert a[0].tolist() == [8] * 20 + [2] * 5 + [224] and a[1].tolist() == [0] * 20 + [0] * 5 + [128]


@pytest.mark.parametrize("readout", ["last", "ends", "mean", "sum"])
def test_padding_does_not_change_the_output(readout):
    model = BiGRURegressor(2, SequenceConfig(embed=4, shape_embed=4, hidden=8, readout=readout), rngs=nnx.Rngs(1))
    archs, _ = _data(6)
    ops, shapes, mask = OFASequenceEncoder().encode(archs)
    f1 = np.asarray(model(ops, shapes, mask))
    ops2, shapes2 = ops.copy(), shapes.copy()
    ops2[~mask], shapes2[~mask] = 5, 0.7
    np.testing.assert_allclose(np.asarray(model(ops2, shapes2, mask)), f1, atol=1e-6)


def test_last_readout_backward_half_sees_only_the_last_block():
    cfg = SequenceConfig(embed=4, shape_embed=4, hidden=8, readout="last")
    model = BiGRURegressor(1, cfg, rngs=nnx.Rngs(2))
    archs, _ = _data(3)
    ops, shapes, mask = OFASequenceEncoder().encode(archs)
    x = np.concatenate([np.asarray(model.embed(ops)), np.asarray(model.shape(shapes))], -1)
    hb = np.asarray(model.bwd.run(x, mask, reverse=True))
    first = np.asarray(model.bwd.run(x[:, -1:] * 0 + x[np.arange(3), mask.sum(1) - 1][:, None], np.ones((3, 1), bool),
                                     reverse=True))
    np.testing.assert_allclose(hb[np.arange(3), mask.sum(1) - 1], first[:, 0], atol=1e-6)


@pytest.mark.parametrize("base", ["none", "additive_log", "additive_ms"])
def test_save_reload_identical_predictions(tmp_path, base):
    archs, lat = _data()
    cfg = SequenceConfig(embed=4, shape_embed=4, hidden=8, epochs=2, batch_size=16, eval_every=1, base=base)
    p = fit_sequence_predictor(archs, lat, ("dev_a", "dev_b"), cfg)
    f = p.predict_all(archs)
    assert f.shape == (len(archs), 2) and np.all(f > 0)
    assert len(p.tables) == (0 if base == "none" else 2)
    p.save(tmp_path / "seq.npz")
    q = SequenceLatencyPredictor.load(tmp_path / "seq.npz")
    np.testing.assert_array_equal(q.predict_all(archs), f)
    assert q.outputs == ("dev_a", "dev_b") and q.config == cfg
    m = q.model_for("dev_b", resolution=192)
    assert m.metric == "latency" and m.unit == "ms" and m.device == "dev_b"
    sub = archs[:5].copy()
    sub[:, 25] = 192
    np.testing.assert_array_equal(m.predict(sub[:, :25]), q.predict_all(sub)[:, 1])
    p2 = fit_sequence_predictor(archs, lat, ("dev_a", "dev_b"), cfg)
    np.testing.assert_array_equal(p2.predict_all(archs), f)  # the same seed trains the same model


@pytest.mark.parametrize("base", ["additive_log", "additive_ms"])
def test_residual_base_table_and_untrained_network(base):
    """The stored base tables are the tables of all rows; the untrained residual network (epoch 0) predicts
    the table times exp(mu); the dev score is on one scale with the plain GRU's dev loss."""
    archs, lat = _data(80)
    cfg = SequenceConfig(embed=4, shape_embed=4, hidden=8, epochs=1, batch_size=16, eval_every=1, base=base)
    p = fit_sequence_predictor(archs, lat, ("dev_a", "dev_b"), cfg)
    rows = np.random.default_rng(cfg.seed).permutation(len(archs))
    for o, tab in enumerate(p.tables):
        y = np.log(lat[rows, o]) if base == "additive_log" else lat[rows, o]
        np.testing.assert_array_equal(tab.values, fit_layer_table(archs[rows], y).values)
    t = np.stack([layer_table_predict(tab, archs) for tab in p.tables], 1)
    t = np.exp(t) if base == "additive_log" else t
    q = SequenceLatencyPredictor(BiGRURegressor(2, cfg, rngs=nnx.Rngs(3)), cfg, p.outputs, p.mu, p.sd, p.encoder, {},
                                 p.tables)
    np.testing.assert_allclose(q.predict_all(archs), t * np.exp(p.mu)[None, :], rtol=1e-9)
    assert [e for e, _ in p.info["dev_curve"]] == [0, 1] and p.info["dev_score"] >= 0
    with pytest.raises(NasjaxInputError, match="readout"):
        SequenceConfig(readout="sum", base=base)
    plain = fit_sequence_predictor(archs, lat, ("dev_a", "dev_b"), SequenceConfig(
        embed=4, shape_embed=4, hidden=8, epochs=1, batch_size=16, eval_every=1))
    assert plain.info["dev_score"] == pytest.approx(plain.info["dev_loss"], rel=1e-4)


def test_measured_csv_hook(tmp_path):
    archs, lat = _data(3)
    path = tmp_path / "m.csv"
    path.write_text("arch,resolution,latency_ms\n" + "".join(
        f"{' '.join(map(str, a[:25]))},{a[25]},{y:.4f}\n" for a, y in zip(archs, lat[:, 0])))
    a, y = read_measured_csv(path)
    np.testing.assert_array_equal(a, archs)
    np.testing.assert_allclose(y, lat[:, 0], atol=1e-4)
    path.write_text("arch,resolution,latency_ms\n1 2 3,224,1.0\n")
    with pytest.raises(NasjaxInputError, match="line 2 column 'arch'"):
        read_measured_csv(path)


def test_additive_fit_recovers_a_gated_additive_function():
    space = get_space("mobilenetv3_layers")
    st = structure_of(space)
    rng = np.random.default_rng(0)
    V = rng.random((25, 9)) * space.mask
    R = {160: 1.0, 224: 3.0}
    a = space.random(rng, 600)
    res = rng.choice([160, 224], size=600)
    y = 2.0 + (V[np.arange(25), a] * st.active(a)).sum(1) + np.array([R[r] for r in res])
    f = fit_additive(a, y, space.num_choices, gate_position=st.gate_position, gate_min_choice=st.gate_min_choice,
                     extra=res[:, None])
    b = space.random(rng, 50)
    rb = rng.choice([160, 224], size=50)
    want = 2.0 + (V[np.arange(25), b] * st.active(b)).sum(1) + np.array([R[r] for r in rb])
    np.testing.assert_allclose(f.predict(b, rb[:, None]), want, atol=1e-3)


def test_sum_readout_saves_reloads_and_learns_the_scale(tmp_path):
    """The per-block-sum read-out: identical predictions after reload; after a short fit the predictions of
    the two outputs keep the targets' 1 : 2 ratio and lie in the targets' range."""
    archs, lat = _data()
    cfg = SequenceConfig(embed=4, shape_embed=4, hidden=8, epochs=30, batch_size=16, eval_every=5, readout="sum",
                         lr=1e-2)
    p = fit_sequence_predictor(archs, lat, ("dev_a", "dev_b"), cfg)
    f = p.predict_all(archs)
    p.save(tmp_path / "sum.npz")
    np.testing.assert_array_equal(SequenceLatencyPredictor.load(tmp_path / "sum.npz").predict_all(archs), f)
    np.testing.assert_allclose(f[:, 1] / f[:, 0], 2.0, rtol=0.1)
    assert np.median(np.abs(f[:, 0] / lat[:, 0] - 1)) < 0.25
