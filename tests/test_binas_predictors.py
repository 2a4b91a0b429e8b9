"""BINAS's accuracy models: the closed-form fits recover known bilinear / quadratic functions from noiseless
samples, the estimator follows its formula, relaxations agree with predictions, files round-trip, and the
insight figures read the coefficients."""

import numpy as np
import pytest

from nasjax import metrics
from nasjax.errors import NasjaxInputError
from nasjax.hardware.binas_latency import BilinearForm
from nasjax.io import write_json
from nasjax.predictors.bilinear import (
    QuadraticPredictor,
    contribution_estimator,
    fit_bilinear,
    fit_predictors,
    fit_quadratic,
    read_contributions,
    read_measured,
    write_measured,
    write_predictors,
)
from nasjax.predictors.binas_files import load_predictor
from nasjax.predictors.binas_insight import insight_figures, plot_coefficients
from nasjax.spaces import binas as bs

ST = bs.DEFAULT
SMALL = bs.BinasStructure(stages=bs.STAGES[:2], configs=bs.CONFIGS[:4])


def random_form(st, seed, coupling="stage", base=70.0) -> BilinearForm:
    rng = np.random.default_rng(seed)
    L, K, S, D = st.num_layers, st.num_configs, st.num_stages, len(st.depths)
    Q = rng.normal(size=(L, K, S, D))
    if coupling == "stage":
        Q *= (st.layer_stage[:, None] == np.arange(S)[None, :])[:, None, :, None]
    return BilinearForm(base, rng.normal(size=(L, K)), rng.normal(size=(S, D)), Q, structure=st)


def samples(st, n, seed):
    return bs.canonical(bs.binas_space(st).random(seed, n), st)


def test_closed_form_recovers_a_stage_bilinear_function_exactly():
    truth = random_form(ST, 0)
    fit_a, test_a = samples(ST, 800, 1), samples(ST, 300, 2)
    m = fit_bilinear(fit_a, truth.predict(fit_a))
    np.testing.assert_allclose(m.predict(test_a), truth.predict(test_a), atol=1e-8)
    assert m.stage_separable and m.provenance["rank"] == 505  # 5 stages x (23 + 34 + 45) - 5 + 1 - 1
    t, p = truth.predict(test_a), m.predict(test_a)
    assert metrics.kendall(t, p) == pytest.approx(1.0) and metrics.spearman(t, p) == pytest.approx(1.0)
    assert metrics.pearson(t, p) == pytest.approx(1.0)


@pytest.mark.parametrize("coupling", ["full", "stage", "none"])
def test_closed_form_on_a_reduced_space(coupling):
    truth = random_form(SMALL, 3, coupling if coupling != "none" else "stage")
    if coupling == "none":
        truth = BilinearForm(70.0, truth.p_a, truth.p_b, None, structure=SMALL)
    fit_a, test_a = samples(SMALL, 600, 4), samples(SMALL, 200, 5)
    m = fit_bilinear(fit_a, truth.predict(fit_a), SMALL, coupling=coupling)
    np.testing.assert_allclose(m.predict(test_a), truth.predict(test_a), atol=1e-8)
    # BINAS's fixed cut (0.1) gives the same answer on noiseless data
    m01 = fit_bilinear(fit_a, truth.predict(fit_a), SMALL, coupling=coupling, min_singular_value=0.1)
    np.testing.assert_allclose(m01.predict(test_a), truth.predict(test_a), atol=1e-6)


@pytest.mark.parametrize("coupling", ["stage", "none"])
def test_factored_fit_recovers_a_function_of_the_layer_attributes(coupling):
    # a bilinear function whose configuration terms are sums of attribute terms (expansion + kernel + SE)
    M, labels = ST.config_factors()
    assert M.shape == (12, 7) and labels == ["e3", "e4", "e6", "k3", "k5", "se0", "se0.25"]
    assert np.all(M.sum(1) == 3) and len({tuple(r) for r in M}) == 12
    rng = np.random.default_rng(7)
    L, S, D = ST.num_layers, ST.num_stages, len(ST.depths)
    Q_f = rng.normal(size=(L, 7, S, D)) * (ST.layer_stage[:, None] == np.arange(S))[:, None, :, None]
    Q = np.einsum("kf,lfsd->lksd", M, Q_f) if coupling == "stage" else None
    truth = BilinearForm(60.0, rng.normal(size=(L, 7)) @ M.T, rng.normal(size=(S, D)), Q, structure=ST)
    fit_a, test_a = samples(ST, 400, 8), samples(ST, 300, 9)
    m = fit_bilinear(fit_a, truth.predict(fit_a), coupling=coupling, layer_features="factors")
    np.testing.assert_allclose(m.predict(test_a), truth.predict(test_a), atol=1e-8)
    assert m.stage_separable and m.provenance["layer_features"] == "factors"
    # the per-configuration fit has too many free terms for 400 samples with the coupling
    if coupling == "stage":
        full = fit_bilinear(fit_a, truth.predict(fit_a), coupling=coupling)
        assert np.abs(full.predict(test_a) - truth.predict(test_a)).max() > 1e-3
    # a down-weighted coupling changes the prior, not the noiseless answer
    mw = fit_bilinear(fit_a, truth.predict(fit_a), coupling=coupling, layer_features="factors", coupling_weight=0.3)
    np.testing.assert_allclose(mw.predict(test_a), truth.predict(test_a), atol=1e-7)
    for bad, kw in (("layer_features", {"layer_features": "attributes"}), ("coupling_weight", {"coupling_weight": 0})):
        with pytest.raises(NasjaxInputError, match=bad):
            fit_bilinear(fit_a, truth.predict(fit_a), **kw)


def test_written_predictors_are_the_fitted_ones_and_the_search_reads_them(tmp_path):
    rng = np.random.default_rng(11)
    truth = random_form(SMALL, 12)
    a = samples(SMALL, 300, 13)
    y = truth.predict(a) + rng.normal(0, 0.1, len(a))
    est = contribution_estimator(70.0, 70 + rng.normal(size=(SMALL.num_layers, SMALL.num_configs)),
                                 70 + rng.normal(size=(SMALL.num_stages, len(SMALL.depths))), SMALL)
    names = write_predictors(tmp_path / "p", a, y, est, SMALL)
    assert names == ["additive.npz", "bilinear.npz", "bilinear_configs.npz", "estimator.npz", "quadratic.npz"]
    fitted = fit_predictors(a, y, SMALL)
    test_a = samples(SMALL, 100, 14)
    for name in names:
        m = load_predictor(tmp_path / "p" / name)
        want = est if name == "estimator.npz" else fitted[name[:-4]]
        np.testing.assert_allclose(m.predict(test_a), want.predict(test_a), atol=1e-9)
    b = load_predictor(tmp_path / "p" / "bilinear.npz")
    assert b.stage_separable and b.provenance["layer_features"] == "factors"
    assert b.provenance["coupling_weight"] == pytest.approx(0.3)
    assert load_predictor(tmp_path / "p" / "additive.npz").Q is None


def test_quadratic_fit_recovers_a_quadratic_function():
    st = bs.BinasStructure(stages=bs.STAGES[:2], configs=bs.CONFIGS[:2], depths=(2, 3))
    F = st.num_layers * st.num_configs + st.num_stages * len(st.depths)
    rng = np.random.default_rng(0)
    W = rng.normal(size=(F, F))
    truth = QuadraticPredictor(60.0, rng.normal(size=F), W, structure=st)
    space = bs.binas_space(st)
    a = bs.canonical(space.all_archs(), st)
    a = np.unique(a, axis=0)
    m = fit_quadratic(a, truth.predict(a), st)
    np.testing.assert_allclose(m.predict(a), truth.predict(a), atol=1e-7)


def test_estimator_formula():
    rng = np.random.default_rng(1)
    layers, depths = 70 + rng.normal(size=(20, 12)), 70 + rng.normal(size=(5, 3))
    est = contribution_estimator(70.0, layers, depths)
    a = samples(ST, 50, 0)
    alpha, beta = bs.encode(a)
    want = 70.0 + (alpha * (layers - 70)).sum((1, 2)) + (beta * (depths - 70)).sum((1, 2))
    np.testing.assert_allclose(est.predict(a), want)
    assert est.Q is None and est.stage_separable


@pytest.mark.parametrize("kind", ["stage", "full", "quadratic"])
def test_relaxation_agrees_with_prediction_and_its_gradient(kind):
    if kind == "quadratic":
        rng = np.random.default_rng(2)
        m = QuadraticPredictor(1.0, rng.normal(size=255), rng.normal(size=(255, 255)) * 0.1)
    else:
        m = random_form(ST, 2, kind)
    a = samples(ST, 5, 7)
    for row in a:
        alpha = np.eye(12)[bs.layer_choices(row[None])[0]]
        beta = np.eye(3)[bs.depth_choices(row[None])[0]]
        assert m.relax(alpha, beta)[0] == pytest.approx(m.predict(row))
    rng = np.random.default_rng(3)
    al, be = rng.dirichlet(np.ones(12), 20), rng.dirichlet(np.ones(3), 5)
    _, ga, gb = m.relax(al, be)
    d, e = rng.normal(size=al.shape), rng.normal(size=be.shape)
    h = 1e-6
    num = (m.relax(al + h * d, be + h * e)[0] - m.relax(al - h * d, be - h * e)[0]) / (2 * h)
    assert num == pytest.approx((ga * d).sum() + (gb * e).sum(), rel=1e-5, abs=1e-6)


def test_files_round_trip(tmp_path):
    m = random_form(ST, 4)
    m.save(tmp_path / "b.npz")
    back = load_predictor(tmp_path / "b.npz", "bilinear")
    a = samples(ST, 20, 0)
    np.testing.assert_array_equal(back.predict(a), m.predict(a))
    q = QuadraticPredictor(1.0, np.ones(255), np.eye(255))
    q.save(tmp_path / "q.npz")
    np.testing.assert_allclose(load_predictor(tmp_path / "q.npz").predict(a), q.predict(a))
    with pytest.raises(NasjaxInputError, match="holds a 'nasjax.binas.quadratic' model, expected"):
        load_predictor(tmp_path / "q.npz", "bilinear")
    write_measured(tmp_path / "m.json", a, m.predict(a))
    ra, ry = read_measured(tmp_path / "m.json")
    assert np.array_equal(ra, a) and np.allclose(ry, m.predict(a))
    write_json(tmp_path / "s.json", {"format": "nasjax.binas.measured/1", "binas": [bs.to_string(x) for x in a[:3]],
                                      "accuracy": [1.0, 2.0, 3.0]})
    assert np.array_equal(read_measured(tmp_path / "s.json")[0], a[:3])
    write_json(tmp_path / "c.json", {"format": "nasjax.binas.contributions/1", "unit": "%", "base": 70.0,
                                      "layers": np.full((20, 12), 71.0).tolist(),
                                      "depths": np.full((5, 3), 70.5).tolist()})
    est = read_contributions(tmp_path / "c.json")
    assert est.predict(a[0]) == pytest.approx(70 + 2.5 + bs.active(a[:1])[0].sum())
    with pytest.raises(NasjaxInputError, match="measured subnets .*expected a JSON object with format"):
        write_json(tmp_path / "bad.json", {"archs": []})
        read_measured(tmp_path / "bad.json")


def test_mlp_predictor_fits_saves_and_relaxes(tmp_path):
    from nasjax.predictors.binas_mlp import MLPPredictor
    from nasjax.predictors.mlp import MLPConfig

    truth = contribution_estimator(70.0, 70 + np.random.default_rng(0).normal(size=(20, 12)), np.full((5, 3), 70.0))
    a, t = samples(ST, 400, 1), samples(ST, 100, 2)
    m = MLPPredictor.fit(a, truth.predict(a), config=MLPConfig(hidden=(32,), iters=300, lr=1e-2, members=1))
    assert metrics.kendall(truth.predict(t), m.predict(t)) > 0.6
    m.save(tmp_path / "mlp.npz")
    back = load_predictor(tmp_path / "mlp.npz", "mlp")
    np.testing.assert_allclose(back.predict(t), m.predict(t), rtol=1e-6)
    alpha, beta = np.eye(12)[bs.layer_choices(t[:1])[0]], np.eye(3)[bs.depth_choices(t[:1])[0]]
    assert m.relax(alpha, beta)[0] == pytest.approx(m.predict(t[0]), rel=1e-5)


def test_insight_figures_read_the_coefficients(tmp_path):
    layers = np.full((20, 12), 70.0)
    exp = np.array([c.expansion for c in ST.configs])
    for i, (s, j) in enumerate(zip(ST.layer_stage, ST.layer_index)):
        layers[i] += (0.1 + 0.1 * s + (0.3 if j == 0 else 0.0)) * np.log(exp)  # width pays more deep and first
    depths = 70 + np.array([[0.0, 0.1 * s, 0.2 * s] for s in range(5)])
    fig = insight_figures(contribution_estimator(70.0, layers, depths))
    assert fig["width_gain_vs_stage_spearman"] == pytest.approx(1.0)
    assert fig["depth_gain_vs_stage_spearman"] == pytest.approx(1.0)
    assert fig["width_gain_first_of_resolution"] > fig["width_gain_other_layers"]
    assert fig["resolution_start_stages"] == [1, 2, 3, 5] and np.allclose(fig["se_gain"], 0.0)
    plot_coefficients(contribution_estimator(70.0, layers, depths), tmp_path / "coef.png", "test")
    assert (tmp_path / "coef.png").stat().st_size > 10_000
