"""Few-shot latency model (nasjax.hardware.fewshot) and its protocols: Bayesian expert math, adaptation on
synthetic devices, members and blend rules, meta-validation, save/load, splits, errors."""

import math

import numpy as np
import pytest

from nasjax import metrics
from nasjax.errors import NasjaxInputError
from nasjax.hardware import fewshot as fs
from nasjax.protocols import dgl_kshot
from nasjax.protocols import fewshot_eval as fe


def _synthetic(n=240, d=7, seed=0):
    """Devices whose log latency is an affine function of a shared 3-d arch basis (plus small noise)."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 2, size=(n, 12)).astype(np.float32)
    basis = np.tanh(x @ rng.normal(size=(12, 3)) / 2)
    coef = rng.normal(size=(d, 3)) * 0.4
    loglat = 1.0 + rng.normal(size=d) * 0.3 + basis @ coef.T + 0.01 * rng.normal(size=(n, d))
    return x, np.exp(loglat)


def test_blr_matches_least_squares_and_gaussian_evidence():
    rng = np.random.default_rng(1)
    h, y = rng.normal(size=(10, 3)), rng.normal(size=10)
    w, _ = fs.blr(h, y, np.zeros(3), 1e8 * np.eye(3), 0.5)
    np.testing.assert_allclose(w, np.linalg.lstsq(h, y, rcond=None)[0], rtol=1e-5)
    m, s_cov, s2 = rng.normal(size=3), np.diag([0.5, 1.0, 2.0]), 0.3
    _, ev = fs.blr(h, y, m, s_cov, s2)
    from scipy.stats import multivariate_normal

    ref = multivariate_normal(h @ m, s2 * np.eye(10) + h @ s_cov @ h.T).logpdf(y)
    assert math.isclose(ev, ref, rel_tol=1e-9)


def test_table_model_adapts_to_a_new_device():
    x, lat = _synthetic()
    devices = [f"d{i}" for i in range(6)]
    model = fs.FewShotLatencyModel.train_table(lat[:, :6], devices, fs.FewShotConfig(rank=3))
    target = lat[:, 6]
    rows = np.arange(len(lat))
    refs = model.select_refs(rows, 10)
    assert len(set(refs.tolist())) == 10
    rest = np.setdiff1d(rows, refs)
    p10 = model.predict_k(rest, refs, target[refs])
    assert metrics.spearman(target[rest], p10) > 0.95
    assert metrics.mape(target[rest], p10) < 10.0
    # k = 0 is the prior mean: every expert at its prior, the same for any device
    ad0 = model.adapt()
    assert ad0.k == 0 and abs(sum(ad0.weights.values()) - 1) < 1e-9
    np.testing.assert_allclose(model.predict(rest, ad0), model.predict_k(rest), rtol=0)


def test_save_load_identical_table_and_net(tmp_path):
    x, lat = _synthetic(n=80, d=4)
    tab = fs.FewShotLatencyModel.train_table(lat[:, :3], ["a", "b", "c"], fs.FewShotConfig(rank=2),
                                             arch_features=x[:, :3])
    tab.save(tmp_path / "t.npz")
    again = fs.FewShotLatencyModel.load(tmp_path / "t.npz")
    refs = np.arange(10)
    np.testing.assert_array_equal(again.predict_k(np.arange(80), refs, lat[refs, 3]),
                                  tab.predict_k(np.arange(80), refs, lat[refs, 3]))
    assert again.config == tab.config and again.choices() == tab.choices()
    cfg = fs.FewShotConfig(rank=2, hidden=(8,), steps=20, batch=32, eval_every=10, tau_grid=(1.0,))
    spec = {"name": "toy bits", "length": 12}
    net = fs.FewShotLatencyModel.train(x, lat[:, :3], ["a", "b", "c"], spec, cfg)
    net.save(tmp_path / "n.npz")
    net2 = fs.FewShotLatencyModel.load(tmp_path / "n.npz")
    assert net2.meta["unit"] == "ms" and net2.meta["feature_spec"] == spec
    np.testing.assert_array_equal(net2.predict_k(x, x[refs], lat[refs, 3]), net.predict_k(x, x[refs], lat[refs, 3]))
    # same seed, same model
    net3 = fs.FewShotLatencyModel.train(x, lat[:, :3], ["a", "b", "c"], spec, cfg)
    np.testing.assert_array_equal(net3.predict_k(x), net.predict_k(x))
    # a corrupted file fails clearly
    blob = (tmp_path / "n.npz").read_bytes()
    (tmp_path / "bad.npz").write_bytes(blob[: len(blob) // 2])  # truncated file
    with pytest.raises(NasjaxInputError):
        fs.FewShotLatencyModel.load(tmp_path / "bad.npz")


def test_leave_device_out_never_leaks_the_target():
    assert fe.lodo_split(["a", "b", "c", "d"], "b") == ["a", "c", "d"]
    assert fe.lodo_split(["a", "b", "c", "d"], "b", twins={"b": ["d"]}) == ["a", "c"]
    _, lat = _synthetic(n=120, d=5)
    devs = [f"d{i}" for i in range(5)]
    rows = fe.evaluate_lodo(lat, devs, refs=np.arange(6), ks=(0, 5), targets=["d1", "d3"],
                            config=fs.FewShotConfig(rank=2, tau_grid=(1.0,)))
    for r in rows:
        assert r["device"] not in r["train_devices"] and len(r["train_devices"]) == 4
        assert -1 <= r["k5_spearman"] <= 1 and r["baseline_hindsight_device"] != r["device"]
        mem = r["k5_members"]  # the expert average alone, with its weight in the k = 5 blend
        assert "expert_average" in mem and -1 <= mem["expert_average"]["spearman"] <= 1
        assert abs(sum(m["weight"] for m in mem.values()) - 1.0) < 1e-9
        assert all(m["loo"] is None or m["loo"] >= 0 for m in mem.values())


def test_bad_input_errors():
    x, lat = _synthetic(n=60, d=4)
    model = fs.FewShotLatencyModel.train_table(lat[:, :3], ["a", "b", "c"], fs.FewShotConfig(rank=2, tau_grid=(1.0,)))
    with pytest.raises(NasjaxInputError, match="device"):
        model.predict_training_device(np.arange(3), "zz")
    with pytest.raises(NasjaxInputError, match="exclude"):
        model.adapt(np.arange(3), lat[:3, 3], exclude=["zz"])
    with pytest.raises(NasjaxInputError, match="features"):
        model.predict_k(np.array([0, 60]))  # row 60 does not exist
    with pytest.raises(NasjaxInputError, match="ref_latency_ms"):
        model.adapt(np.arange(3), np.array([1.0, -2.0, 3.0]))
    with pytest.raises(NasjaxInputError, match="k"):
        model.select_refs(np.arange(5), 6)
    with pytest.raises(NasjaxInputError, match="k"):
        fe.evaluate_lodo(lat, ["a", "b", "c", "d"], refs=np.arange(3), ks=(0, 10))
    with pytest.raises(NasjaxInputError, match="target device"):
        fe.lodo_split(["a", "b"], "c")
    with pytest.raises(NasjaxInputError, match="latency_ms"):
        fs.FewShotLatencyModel.train_table(np.where(lat > 0, np.nan, 0)[:, :3], ["a", "b", "c"])
    spec = {"name": "toy", "length": 12}
    cfg = fs.FewShotConfig(rank=2, hidden=(4,), steps=10, batch=16, eval_every=10, tau_grid=(1.0,))
    net = fs.FewShotLatencyModel.train(x, lat[:, :3], ["a", "b", "c"], spec, cfg)
    with pytest.raises(NasjaxInputError, match=r"features: shape \(2, 11\)"):
        net.predict_k(x[:2, :11])
    with pytest.raises(NasjaxInputError, match="feature_spec"):
        fs.FewShotLatencyModel.train(x, lat[:, :3], ["a", "b", "c"], {"name": "toy", "length": 5}, cfg)
    # configs are typed: a string where an object belongs, or an unknown value, names the field
    with pytest.raises(NasjaxInputError, match="config.experts"):
        fs.FewShotConfig(experts=("lowrank", "single"))
    with pytest.raises(NasjaxInputError, match="config.members"):
        fs.FewShotConfig(members=("nnls",))
    with pytest.raises(NasjaxInputError, match="config.rank"):
        fs.FewShotConfig(rank=0)
    with pytest.raises(NasjaxInputError, match="ridge"):
        fs.OpCostMember(ridge=0.0)


def test_ridge_columns_and_op_cost_blend():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(80, 5))
    y = np.stack([x @ np.array([1.0, -2.0, 0.5, 0.0, 3.0]) + 4.0, np.full(80, np.nan)], 1)
    y[:60, 1] = x[:60, 0] * 2.0
    pred, alphas = dgl_kshot.ridge_columns(x, y, np.arange(60))
    # held-out rows of exact linear targets: the smallest penalty wins, predictions within ridge shrinkage
    np.testing.assert_allclose(pred[60:, 0], y[60:, 0], rtol=0.05, atol=0.3)
    np.testing.assert_allclose(pred[60:, 1], 2.0 * x[60:, 0], rtol=0.05, atol=0.1)
    assert alphas[0] == 1.0
    # a device whose latency is exactly per-op costs: the LOO blend puts its weight on the per-op cost member
    counts = rng.integers(0, 4, size=(200, 3)).astype(float)
    _, lat = _synthetic(n=200, d=4)
    model = fs.FewShotLatencyModel.train_table(lat, ["a", "b", "c", "d"], fs.FewShotConfig(rank=2, tau_grid=(1.0,)),
                                               arch_features=counts)
    target = 2.0 + counts @ np.array([1.0, 3.0, 0.5])
    refs = np.arange(10)
    ad = model.adapt(refs, target[refs])
    assert ad.blend["op_cost"] > 0.9
    rest = np.arange(10, 200)
    assert metrics.spearman(target[rest], model.predict(rest, ad)) > 0.99


def test_additive_log_member_is_the_bayesian_additive_fit():
    # training devices and the target: log latency additive in the features, coefficients near each other
    rng = np.random.default_rng(4)
    x = rng.integers(0, 2, size=(150, 6)).astype(float)
    base = np.array([0.5, -0.3, 0.8, 0.2, -0.6, 0.4])
    coefs = base + 0.1 * rng.normal(size=(5, 6))
    lat = np.exp(1.0 + x @ coefs.T + 0.002 * rng.normal(size=(150, 5)))
    cfg = fs.FewShotConfig(rank=2, tau_grid=(1.0,), members=(fs.DeviceMixMember(), fs.AdditiveLogMember()))
    model = fs.FewShotLatencyModel.train_table(lat[:, :4], ["a", "b", "c", "d"], cfg, arch_features=x)
    refs, rest = np.arange(10), np.arange(10, 150)
    ad = model.adapt(refs, lat[refs, 4])
    assert "additive_log" in ad.blend and "op_cost" not in ad.blend and abs(sum(ad.blend.values()) - 1) < 1e-9
    xa = np.concatenate([np.ones((10, 1)), x[refs]], 1)
    tau = model.choices()[0].tau
    tau = 1.0 if tau == "auto" else tau  # "auto": the additive member uses tau = 1
    arr = model.arrays
    w, _ = fs.blr(xa, np.log(lat[refs, 4]), arr["add_m"], arr["add_S"], float(arr["s2_additive"][0]) * tau)
    np.testing.assert_allclose(ad.fits["additive_log"], w, rtol=1e-10)
    assert metrics.spearman(lat[rest, 4], model.predict(rest, ad)) > 0.97
    # without arch features there is no additive member (and the additive prior needs them)
    plain = fs.FewShotLatencyModel.train_table(lat[:, :4], ["a", "b", "c", "d"],
                                               fs.FewShotConfig(rank=2, tau_grid=(1.0,)))
    assert "additive_log" not in plain.adapt(refs, lat[refs, 4]).fits
    with pytest.raises(NasjaxInputError, match="arch_features"):
        fs.FewShotLatencyModel.train_table(lat[:, :4], ["a", "b", "c", "d"], cfg)


def test_onehot_features():
    oh = fs.onehot_features(np.array([[0, 2], [1, 0]]), 3)
    np.testing.assert_array_equal(oh, [[1, 0, 0, 0, 0, 1], [0, 1, 0, 1, 0, 0]])
    assert fs.onehot_features(np.array([[0, 2]])).shape == (1, 6)
    with pytest.raises(NasjaxInputError, match="n_choices"):
        fs.onehot_features(np.array([[0, 3]]), 3)
    with pytest.raises(NasjaxInputError, match="archs"):
        fs.onehot_features(np.array([0.5, 1.0]))


def test_batched_blr_and_thin_svd_match_the_direct_forms():
    rng = np.random.default_rng(5)
    h, y = rng.normal(size=(4, 10, 3)), rng.normal(size=10)
    m, s_cov, s2 = rng.normal(size=3), np.array([[0.5, 0.1, 0.0], [0.1, 1.0, -0.2], [0.0, -0.2, 2.0]]), 0.3
    w, ev = fs.blr_batch(h, y, m, s_cov, s2)
    for p in range(4):
        w1, ev1 = fs.blr(h[p], y, m, s_cov, s2)
        np.testing.assert_allclose(w[p], w1, rtol=1e-9)
        assert math.isclose(ev[p], ev1, rel_tol=1e-9)
    z = rng.normal(size=(50, 6))
    u, sv, vt = fs.thin_svd(z)
    np.testing.assert_allclose(u * sv @ vt, z, atol=1e-9)
    np.testing.assert_allclose(sv, np.linalg.svd(z, compute_uv=False), rtol=1e-9)


def test_blend_rules_and_pair_experts():
    loo = {"expert_average": 0.1, "device_mix": 0.2}
    assert fs.InverseErrorBlend().weights(loo) == pytest.approx({"expert_average": 0.8, "device_mix": 0.2})
    assert fs.InverseErrorBlend(1.0, ("expert_average", "device_mix")).weights(loo) == pytest.approx(
        {"expert_average": 2 / 3, "device_mix": 1 / 3})
    assert fs.InverseErrorBlend(2.0, ("expert_average",)).weights({**loo, "op_cost": 0.05}) == {"expert_average": 1.0}
    with pytest.raises(NasjaxInputError, match="power"):
        fs.InverseErrorBlend(-1.0, ("expert_average",))
    with pytest.raises(NasjaxInputError, match="blend rule"):
        fs.InverseErrorBlend(2.0, ("device_mix",)).weights({"expert_average": 0.1})
    # a target that is an exact mix of two training devices (in log space): the pair expert takes the mass
    y = np.random.default_rng(2).normal(size=(200, 5)) * 0.5 + 2.0  # unrelated devices
    lat = np.exp(y)
    target = np.exp(0.3 + 0.6 * y[:, 1] + 0.4 * y[:, 3])
    cfg = fs.FewShotConfig(rank=1, experts=(fs.LowRankExpert(), fs.SingleDeviceExperts(), fs.DevicePairExperts()))
    model = fs.FewShotLatencyModel.train_table(lat, [f"d{i}" for i in range(5)], cfg, calibrate=False)
    model.candidates = [fs.Candidate(cfg.experts, 1e-3)]  # the target is noise-free
    refs, rest = np.arange(12), np.arange(12, 200)
    ad = model.adapt(refs, target[refs])
    assert ad.weights["device_pair:d1|d3"] > 0.5
    assert metrics.spearman(target[rest], model.predict(rest, ad)) > 0.99


def test_meta_calibration_chooses_among_candidates_without_the_held_out_device(tmp_path):
    _, lat = _synthetic(n=120, d=5, seed=3)
    cfg = fs.meta_selected_config(refs=range(8), op_cost=False, rank=2, tau_grid=(1.0, 10.0))
    model = fs.FewShotLatencyModel.train_table(lat, [f"d{i}" for i in range(5)], cfg)
    best = model.choices()[0]
    assert best.tau in (1.0, 10.0, "auto") and best.rule in cfg.blend_rules
    assert best.experts in cfg.expert_sets
    scores = model.meta["meta_scores"]
    assert len(scores) == len(cfg.expert_sets) * 3 * len(cfg.blend_rules)
    assert max(scores, key=scores.get) == best.label()
    # the same seed and data give the same choice
    again = fs.FewShotLatencyModel.train_table(lat, [f"d{i}" for i in range(5)], cfg)
    assert again.meta["meta_scores"] == scores
    # every score is the objective of the per-episode Spearman values, one per held-out training device
    per = model.meta["meta_episode_scores"]
    assert sorted(model.meta["meta_episode_devices"]) == [f"d{i}" for i in range(5)]
    assert all(len(v) == 5 for v in per.values())
    assert all(abs(scores[k] - np.mean(per[k])) < 1e-4 for k in scores)
    # other objectives: the same episodes, each choice scored by its worst / its two lowest held-out devices
    for objective, of in ((fs.MeanCVaRScore(0.2), lambda v: 0.5 * (np.mean(v) + min(v))),  # 5 devices: the worst one
                          (fs.CVaRScore(0.4), lambda v: np.mean(sorted(v)[:2]))):
        other = fs.FewShotLatencyModel.train_table(
            lat, [f"d{i}" for i in range(5)], fs.meta_selected_config(refs=range(8), op_cost=False, rank=2,
                                                                      tau_grid=(1.0, 10.0), meta_objective=objective))
        assert other.meta["meta_episode_scores"] == per
        assert all(abs(other.meta["meta_scores"][k] - of(per[k])) < 1e-4 for k in per)
        assert max(other.meta["meta_scores"], key=other.meta["meta_scores"].get) == other.choices()[0].label()
    # meta_top = 2: the two best candidates, best first; the prediction is the mean of their log predictions,
    # each candidate adapted on its own
    assert cfg.meta_top == 2
    ranked = sorted(scores, key=lambda k: -scores[k])[:2]
    ens = model.choices()
    assert [c.label() for c in ens] == ranked
    assert ens[0] == best
    refs, rest = np.arange(10), np.arange(10, 120)
    target = lat[:, 4] * np.exp(0.05 * np.sin(np.arange(120)))
    ad = model.adapt(refs, target[refs])
    assert len(ad.ensemble) == 1
    each = [np.log(model.predict(rest, model.adapt(refs, target[refs], candidates=[c]))) for c in ens]
    assert np.allclose(np.log(model.predict(rest, ad)), np.mean(each, 0))
    model.save(tmp_path / "m.npz")  # the candidates travel with the file
    back = fs.FewShotLatencyModel.load(tmp_path / "m.npz")
    assert back.choices() == ens
    assert np.array_equal(back.predict(rest, back.adapt(refs, target[refs])), model.predict(rest, ad))
    w = ad.member_weights()
    assert abs(sum(v["weight"] for v in w.values()) - 1.0) < 1e-9 and all(v["loo"] >= 0 for v in w.values())
    with pytest.raises(NasjaxInputError, match="meta_top"):
        fs.FewShotLatencyModel.train_table(lat, [f"d{i}" for i in range(5)],
                                           fs.meta_selected_config(refs=range(8), op_cost=False, rank=2, meta_top=0))


def test_meta_objectives():
    v = [0.9, 0.5, 0.7, 1.0]
    assert fs.MeanScore()(v) == pytest.approx(0.775)
    assert fs.CVaRScore(0.25)(v) == pytest.approx(0.5)
    assert fs.CVaRScore(0.5)(v) == pytest.approx(0.6)
    assert fs.CVaRScore(0.1)(v) == pytest.approx(0.5)  # at least one value
    assert fs.CVaRScore(1)(v) == pytest.approx(0.775)
    assert fs.MeanCVaRScore(0.5)(v) == pytest.approx(0.6875)
    for bad in (lambda: fs.CVaRScore(0), lambda: fs.CVaRScore(1.5), lambda: fs.CVaRScore("x"),
                lambda: fs.MeanCVaRScore(0.0)):
        with pytest.raises(NasjaxInputError, match="q"):
            bad()
    with pytest.raises(NasjaxInputError, match="meta_objective"):
        fs.FewShotConfig(meta_objective="mean")


def test_dgl_kshot_candidates_calibrate_the_a_model():
    _, lat = _synthetic(n=100, d=4, seed=4)
    model = fs.FewShotLatencyModel.train_table(lat[:, :3], ["a", "b", "c"], fs.FewShotConfig(rank=2, tau_grid=(1.0,)),
                                               calibrate=False)
    a_hat = lat[:, 3] * 0.01
    target = 3.0 * a_hat + 1.0  # DGL's formula with a device constant and an offset: "calibrated_a" is exact
    ref, rows = np.arange(10), np.arange(10, 100)
    c = dgl_kshot.kshot_candidates(model, a_hat, ref, target[ref], rows)
    np.testing.assert_allclose(c["calibrated_a"], target[rows], rtol=1e-8)
    assert set(c) == set(dgl_kshot.DGL_KSHOT_CANDIDATES)
    assert metrics.pearson(target[rows], c["blend"]) > 0.999  # LOO error ~0 on calibrated_a: the blend follows it


def test_additive_ms_member_is_the_bayesian_additive_fit_in_ms(tmp_path):
    # latency (ms) additive in one-hot ops, per-op costs of every device near a common profile, scales apart
    rng = np.random.default_rng(7)
    archs = rng.integers(0, 3, size=(200, 5))
    x = fs.onehot_features(archs, 3)
    profile = rng.uniform(0.5, 2.0, size=15)
    scales = np.array([1.0, 3.0, 10.0, 0.5, 40.0])
    lat = np.stack([s * (1.0 + x @ (profile * rng.uniform(0.8, 1.2, 15))) for s in scales], 1)
    cfg = fs.FewShotConfig(rank=2, tau_grid=(1.0,), members=(fs.DeviceMixMember(), fs.AdditiveMsMember()))
    model = fs.FewShotLatencyModel.train_table(lat[:, :4], ["a", "b", "c", "d"], cfg, additive_features=x)
    refs, rest = np.arange(10), np.arange(10, 200)
    ad = model.adapt(refs, lat[refs, 4])
    assert "additive_ms" in ad.blend
    w, scale = ad.fits["additive_ms"]
    # the scale: mean of the refs over the training devices' mean ratio refs / all rows
    ratio = np.mean(lat[refs, :4].mean(0) / lat[:, :4].mean(0))
    assert math.isclose(scale, lat[refs, 4].mean() / ratio, rel_tol=1e-9)
    xa = np.concatenate([np.ones((200, 1)), x], 1)
    tau = model.choices()[0].tau
    tau = 1.0 if tau == "auto" else tau
    w_ref, _ = fs.blr(xa[refs], lat[refs, 4] / scale, model.arrays["additive_ms_m"], model.arrays["additive_ms_S"],
                      float(model.arrays["additive_ms_s2"][0]) * tau)
    np.testing.assert_allclose(w, w_ref, rtol=1e-10)
    member = np.exp(model.member_logs(ad, model.features_cache(rest))["additive_ms"])
    np.testing.assert_allclose(member, scale * xa[rest] @ w, rtol=1e-10)
    assert metrics.spearman(lat[rest, 4], member) > 0.95  # 16 coefficients from 10 refs, thanks to the prior
    model.save(tmp_path / "m.npz")
    again = fs.FewShotLatencyModel.load(tmp_path / "m.npz")
    np.testing.assert_array_equal(again.predict_k(rest, refs, lat[refs, 4]), model.predict_k(rest, refs, lat[refs, 4]))
    with pytest.raises(NasjaxInputError, match="additive_features"):
        fs.FewShotLatencyModel.train_table(lat[:, :4], ["a", "b", "c", "d"], cfg, additive_features=x[:5])


def test_greedy_design_is_the_greedy_d_optimal_choice():
    # each step must pick the row that maximises log det(S^-1 + H_S^T H_S / s2), checked by brute force
    rng = np.random.default_rng(11)
    h = rng.normal(size=(40, 4))
    a = rng.normal(size=(4, 4))
    cov, s2 = a @ a.T + 0.1 * np.eye(4), 0.3
    got = fs.greedy_design(h, cov, s2, 6)
    assert len(set(got.tolist())) == 6
    prec, chosen = np.linalg.inv(cov), []
    for _ in range(6):
        gains = [np.linalg.slogdet(prec + np.outer(h[i], h[i]) / s2)[1] if i not in chosen else -np.inf
                 for i in range(len(h))]
        chosen.append(int(np.argmax(gains)))
        prec = prec + np.outer(h[chosen[-1]], h[chosen[-1]]) / s2
    assert got.tolist() == chosen
    with pytest.raises(NasjaxInputError, match="s2"):
        fs.greedy_design(h, cov, 0.0, 2)


def test_designed_references_in_meta_validation_and_leave_device_out():
    rng = np.random.default_rng(5)
    archs = rng.integers(0, 3, size=(150, 4))
    x = fs.onehot_features(archs, 3)
    profile = rng.uniform(0.5, 2.0, size=12)
    lat = np.stack([s * (1.0 + x @ (profile * rng.uniform(0.7, 1.3, 12))) for s in (1.0, 2.0, 5.0, 0.5, 9.0)], 1)
    devs = [f"d{i}" for i in range(5)]
    design = fs.DOptimalRefs("additive_ms")
    cfg = fs.meta_selected_config(op_cost=False, additive_ms=True, ref_designs=(design,), rank=2, tau_grid=(1.0,),
                                  meta_k=6)
    model = fs.FewShotLatencyModel.train_table(lat[:, :4], devs[:4], cfg, additive_features=x)
    refs = model.select_refs(np.arange(150), 6, design)
    assert len(set(refs.tolist())) == 6
    # the design uses only the training devices: it does not change with the target's latency
    np.testing.assert_array_equal(refs, fs.FewShotLatencyModel.train_table(
        lat[:, :4], devs[:4], cfg, additive_features=x, calibrate=False).select_refs(np.arange(150), 6, design))
    rows = fe.evaluate_lodo(lat, devs, None, ks=(0, 6), targets=["d4"], config=cfg, additive_features=x)
    assert rows[0]["refs"] == refs.tolist() and rows[0]["k6_spearman"] > 0.9 and rows[0]["ref_design"] == str(design)
    # several candidate designs: meta-validation scores each on the training devices and keeps the best
    designs = (fs.FixedRefs(), design, fs.DOptimalRefs("additive_ms", 10.0))
    cfg2 = fs.meta_selected_config(refs=range(6), op_cost=False, additive_ms=True, ref_designs=designs, rank=2,
                                   tau_grid=(1.0,), meta_k=6)
    m2 = fs.FewShotLatencyModel.train_table(lat[:, :4], devs[:4], cfg2, additive_features=x)
    ds = m2.meta["design_scores"]
    assert set(ds) == {str(d) for d in designs} and str(m2.ref_design) == max(ds, key=ds.get)
    r2 = fe.evaluate_lodo(lat, devs, np.arange(6), ks=(0, 6), targets=["d4"], config=cfg2, additive_features=x)[0]
    assert r2["ref_design"] == str(m2.ref_design)
    assert (r2["refs"] == list(range(6))) == (r2["ref_design"] == "fixed")
    with pytest.raises(NasjaxInputError, match="ref_designs"):
        fe.evaluate_lodo(lat, devs, None, ks=(0, 6), targets=["d4"], config=cfg2, additive_features=x)
    with pytest.raises(NasjaxInputError, match="refs"):
        fs.meta_selected_config(ref_designs=(fs.FixedRefs(), design))
    with pytest.raises(NasjaxInputError, match="design"):
        model.select_refs(np.arange(150), 6, fs.FixedRefs())
    with pytest.raises(NasjaxInputError, match="design"):
        fs.DOptimalRefs("additive_ms", -1.0)
