"""Few-shot device-generic latency model: a device is described by its latency on k reference architectures.

Follows the setting of HELP (Lee et al., NeurIPS 2021: a hardware embedding = measured latency of 10
reference architectures) with a different learner: a learned multi-device basis plus closed-form Bayesian
adaptation and a leave-one-out blend, so that k = 0, 1, 5, 10 are one model.

Math (all in log-milliseconds, y = log L):

1. Multi-device basis g(x) = [1, phi(x)] in R^{r+1} and per-device embeddings c'_d (y_d(x) ~= c'_d . g(x)):
   * net mode (Flax NNX): an MLP phi(x) of architecture features (standardised); with per-device
     standardisation (mu_d, s_d) the fit is (y_d(x) - mu_d) / s_d ~= c_d . g(x), mean Huber loss over the
     measured (x, d) pairs, Adam on random minibatches, a random 10 % of the architectures held out and
     the parameters of lowest held-out loss kept; c'_d = [mu_d + s_d c_d0, s_d c_d1..r].
   * table mode (spaces whose every architecture is measured on the training devices, e.g. NAS-Bench-201
     on HELP's 27 devices): phi = the top-r left singular vectors (times singular values / sqrt N) of the
     standardised log latency table, and y^_d(x) = the measured log latency.

2. Expert average ("bma") for a new device from k references (x_i, y_i): Bayesian model averaging of
   Gaussian linear experts y = w . h_m(x) + eps,  w ~ N(m_m, S_m),  eps ~ N(0, tau s2_m):
   * ``lowrank``:  h = g(x);  m, S = mean and covariance of the training devices' c'_d (+ 1e-4 I).
   * ``single:d`` (one per training device d): h = [1, y^_d(x) - ybar_d] (per-device affine calibration in
     log space); m = [mean_d c'_d0, 1], S = diag(var c'_d0 + 1e-3, 0.25).
   * ``pair:d1|d2`` (optional, one per pair of training devices): h = [1, u_d1, u_d2], u_d = y^_d(x) - ybar_d;
     m = [mean_d c'_d0, 1/2, 1/2], S = [[var c'_d0 + 1e-3, 0, 0], [0, C]], C = [[vb+vd, vb-vd], [vb-vd, vb+vd]] / 4
     (b1 + b2 has variance vb = 0.25 like a single expert's slope, b1 - b2 variance vd = ``pair_diff_var``);
     solved for all pairs at once (Woodbury / determinant lemma: only 3 x 3 systems).
   * ``additive`` (optional): h = [1, x]; m, S from the training devices' ridge fits.
   Posterior mean  w* = A^-1 (S^-1 m + H^T y / s2),  A = S^-1 + H^T H / s2; evidence
   log p(y) = log N(y; H m, s2 I + H S H^T); weights pi_m ~ prior_m p(y | m) (prior split equally over
   the expert kinds, a kind's share split over its members). k = 0 gives the prior mean (the average
   device). s2_m = median training residual variance; tau in ``tau_grid`` or ``"auto"`` (per target,
   the grid value of highest evidence of its own refs) is chosen by meta-validation: episodes holding
   out each training device in turn with ``meta_k`` random refs, scored by Spearman (``meta_calibrate``).

3. Blend (k >= 5): members m in {bma, nnls, opcost, additive, stack, msadd} are combined in log space with weights
   proportional to 1 / e_m^p over the members of the blend rule "p:m1,m2,..." (default p = 2, all),
   e_m = leave-one-out mean squared log error of m on the k references:
   * ``nnls``: L(x) ~= b + sum_d v_d L^_d(x), b, v >= 0 (nonnegative least squares on the refs, in ms);
   * ``opcost`` (table mode with ``arch_features``, e.g. NAS-Bench-201 live-edge op counts):
     L(x) ~= [1, counts(x)] . w, ridge (``opcost_ridge``) on the refs, in ms: the per-op cost model that
     carries over to devices unlike any training device.
   * ``additive`` (with ``arch_features`` and "additive" in ``config.blend``, e.g. HELP FBNet's one-hot
     block ops): the posterior mean of the additive expert alone, log L(x) ~= w . [1, x], w ~ N(m, S)
     from the training devices' ridge fits, noise tau s2_add (tau = 1 when tau is "auto"): an additive
     per-op model in log space whose prior makes it usable with 10 refs and 199 features. It lifts the
     phones of HELP FBNet, whose ranking the training devices explain poorly.

   * ``stack`` (optional): posterior mean of y = a + sum_d w_d u_d, w ~ N(1/D, (``stack_prior``/D) I).
   * ``msadd`` (table mode with ``additive_features``, e.g. one-hot edge/block ops): an additive model of the
     latency itself, in ms, not its log: L(x) / s ~= w . [1, x], w ~ N(m, S). Each training device d is
     scaled to mean 1 (L_d / mean_x L_d) and fitted by least squares, b_d; m = mean_d b_d,
     S = cov_d b_d + ``msadd_jitter`` I, noise s2 = tau x the median residual variance of those fits
     (tau = 1 when tau is "auto"). The new device's scale is s = mean(refs) / r, where
     r = mean_d [mean_refs L_d / mean_x L_d] over the training devices corrects for the refs being
     faster or slower than average. Why: on NAS-Bench-201 and FBNet, latency sums over edges / blocks in
     ms (a least-squares fit on one-hot ops reaches Spearman 0.99-0.9997 on HELP's GPUs, CPUs, FPGA and
     Eyeriss, against 0.83-0.84 on live-op counts and worse in log space), so the prior from the other
     devices makes 31 (NB201) or 199 (FBNet) coefficients usable with 10 refs.

   Meta-validation (``meta_calibrate``) chooses tau (grid or "auto"), the expert set (``expert_sets``) and the
   blend rule (``blend_rules``) jointly: one episode per training device t, in table mode with the model
   rebuilt on the other devices (so t is in neither the basis nor the priors), adapted with the fixed
   ``meta_refs`` rows (or ``meta_k`` random rows), scored by Spearman on t's other rows; candidates are
   ranked by ``meta_objective`` over those Spearman values (default the mean; ``"cvar:q"`` / ``"mean+cvar:q"``
   weigh the worst held-out devices) and the ``meta_top`` best are kept: the model averages their log
   predictions, each adapted on its own (the benchmark keeps 2).

4. Baselines (for the benchmark): the best single training device chosen with hindsight (oracle), the
   proxy device chosen from the k references, and low-rank transfer (SVD of the training devices' log
   latency table, rank-r least squares on the k references).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from nasjax.errors import NasjaxInputError, require

KIND = "nasjax.fewshot_latency"
VERSION = 1


# --------------------------------------------------------------------------------------------------
# metrics


def _rank(a: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    return rankdata(a)


def spearman(pred, true) -> float:
    """Spearman rank correlation (average ranks for ties)."""
    p, t = np.asarray(pred, float), np.asarray(true, float)
    return float(np.corrcoef(_rank(p), _rank(t))[0, 1])


def pearson(pred, true) -> float:
    return float(np.corrcoef(np.asarray(pred, float), np.asarray(true, float))[0, 1])


def mape(pred, true) -> float:
    """Mean absolute percentage error, %."""
    p, t = np.asarray(pred, float), np.asarray(true, float)
    return float(np.mean(np.abs(p - t) / np.abs(t)) * 100.0)


def regression_metrics(pred_ms, true_ms) -> dict:
    """R (Pearson), RMSE, MAE (both in the unit of the inputs), Spearman and MAPE."""
    p, t = np.asarray(pred_ms, float), np.asarray(true_ms, float)
    return {"R": pearson(p, t), "RMSE": float(np.sqrt(np.mean((p - t) ** 2))), "MAE": float(np.mean(np.abs(p - t))),
            "spearman": spearman(p, t), "MAPE": mape(p, t)}


# --------------------------------------------------------------------------------------------------
# input checks


def _check_latency(lat, field_name: str, allow_nan: bool) -> np.ndarray:
    a = np.asarray(lat, dtype=np.float64)
    finite = a[np.isfinite(a)]
    if not allow_nan and finite.size != a.size:
        raise NasjaxInputError(f"{field_name}: contains NaN/inf, expected finite latencies in ms")
    if finite.size and finite.min() <= 0:
        raise NasjaxInputError(f"{field_name}: min {finite.min()!r}, expected positive latencies in ms")
    return a


def _check_features(x, n_features: int, field_name: str = "features") -> np.ndarray:
    a = np.asarray(x, dtype=np.float32)
    if a.ndim == 1:
        a = a[None]
    if a.ndim != 2 or a.shape[1] != n_features:
        raise NasjaxInputError(f"{field_name}: shape {a.shape}, expected [N, {n_features}] architecture features")
    if not np.all(np.isfinite(a)):
        raise NasjaxInputError(f"{field_name}: contains NaN/inf, expected finite features")
    return a


# --------------------------------------------------------------------------------------------------
# basis network


@dataclass
class FewShotConfig:
    rank: int = 8
    hidden: tuple = (64, 64)
    steps: int = 600
    batch: int = 512
    lr: float = 3e-3
    weight_decay: float = 1e-5
    huber: float = 1.0
    val_frac: float = 0.1
    eval_every: int = 100
    seed: int = 0
    ridge: float = 1.0  # additive expert: ridge on the per-device fits
    tau_grid: tuple = (1.0, 3.0, 10.0, 30.0)
    experts: tuple = ("lowrank", "single")  # add "additive" for the op-additive expert
    blend: tuple = ("nnls",)  # members blended with the expert average by LOO error (k >= 5)
    opcost_ridge: float = 0.1  # > 0: per-op cost regression as LOO-selected alternative (table mode, k >= 5)
    meta_k: int = 10
    meta_episodes: int = 1
    meta_devices: int = 32  # meta-validation holds out at most this many training devices (seeded choice)
    meta_refs: tuple = ()  # fixed reference rows (table mode) for the meta-validation episodes; () = meta_k random
    # candidate blend rules "power:member,member,..." (weights 1/e^power over the listed members) chosen
    # between by meta-validation together with tau; () = the single rule "2:" + all members
    blend_rules: tuple = ()
    stack_prior: float = 1.0  # "stack" member: prior variance of each device weight = stack_prior / D
    pair_diff_var: float = 1.0  # "pair" experts: prior variance of b1 - b2 (b1 + b2 has the single experts' 0.25)
    expert_sets: tuple = ()  # candidate expert tuples for meta-validation (with tau and the blend rule); () = experts
    msadd_jitter: float = 1e-4  # "msadd" member: ridge added to the prior covariance of the per-op ms costs
    # candidate reference designs, chosen between by meta-validation (one candidate: no choice); () = ("fixed",).
    # "fixed" = fixed ``meta_refs`` (or random rows); "msadd" / "lowrank" (optionally "msadd*10": noise
    # variance times 10) = the model picks its own meta_k references (greedy Bayesian D-optimal,
    # :meth:`FewShotLatencyModel.select_refs`), in every meta-validation episode on the model rebuilt without
    # the held-out device, as at test time
    ref_designs: tuple = ()
    # what meta-validation maximises over its held-out training devices' Spearman values: "mean", or
    # "cvar:q" = the mean of the lowest fraction q of them (the expected shortfall: a choice judged by its
    # worst devices), or "mean+cvar:q" = the average of the two
    meta_objective: str = "mean"
    # average the log-latency predictions of this many best meta-validated candidates (experts, tau, rule),
    # each adapted to the target on its own; 1 = the best candidate alone. Candidates a few 1e-4 apart in
    # meta-validation score are a coin flip between them; averaging them lowers the variance of that choice
    meta_top: int = 1


def meta_selected_config(refs=(), opcost: bool = True, msadd: bool = False, ref_designs=(),
                         **overrides) -> FewShotConfig:
    """The configuration the benchmark uses: every switch below is chosen per model by
    :meth:`FewShotLatencyModel.meta_calibrate` over the *training* devices only (never the target):
    the experts (with or without the ``pair`` experts), tau (grid or per-target evidence ``"auto"``) and
    the blend rule (``bma`` alone, or ``bma``/``nnls``[/``opcost``] with weights 1/e^2 or 1/e^4); its
    episodes use the fixed reference rows ``refs`` when the test uses fixed refs (HELP's design), else
    ``meta_k`` random rows. ``opcost``: offer the per-op cost member (NAS-Bench-201 op counts); it is
    kept in every candidate rule, so that its weight stays a per-target leave-one-out decision: training
    devices cannot tell how unlike them a new device is (OneProxy's devices need it, HELP's do not).
    ``msadd``: also offer the additive-in-ms member (the model needs ``additive_features``); the rules with
    it are candidates next to the rules without it, so meta-validation decides whether it is used.
    ``ref_designs``: candidate reference designs (``"fixed"`` = ``refs``, ``"msadd"``, ``"msadd*10"``,
    ``"lowrank"``, see :meth:`FewShotLatencyModel.select_refs`); meta-validation picks one (its episodes
    design their references on the model rebuilt without the held-out device, as at test time).
    The model predicts with the average (in log space) of the **two** best candidates (``meta_top=2``), each
    adapted to the target on its own: the best few candidates are typically 1e-4 to 1e-3 apart in mean
    meta-validation Spearman, so the single best is a coin flip among them."""
    for d in ref_designs:
        _parse_design(d)
    require("fixed" not in ref_designs or len(refs) > 0, "refs", refs, "fixed reference rows for the 'fixed' design")
    members = "bma,nnls,opcost" if opcost else "bma,nnls"
    rules = (f"2:{members}", f"4:{members}", "2:bma,opcost" if opcost else "2:bma")
    if msadd:
        rules += (f"2:{members},msadd", f"4:{members},msadd")
    kw = {"blend": ("nnls", "msadd") if msadd else ("nnls",), "opcost_ridge": 0.1 if opcost else 0.0,
          "meta_refs": tuple(int(r) for r in refs), "blend_rules": rules, "ref_designs": tuple(ref_designs),
          "expert_sets": (("lowrank", "single"), ("lowrank", "single", "pair")), "meta_top": 2}
    kw.update(overrides)
    return FewShotConfig(**kw)


_NET_CLASS = None


def _net_class():
    """The NNX basis network class (defined once, so equal configs give equal graph definitions)."""
    global _NET_CLASS
    if _NET_CLASS is None:
        import jax.numpy as jnp
        from flax import nnx

        class BasisNet(nnx.Module):
            """phi(x) = MLP(x) in R^r (GELU); device head: z_d(x) = c_d . [1, phi(x)]."""

            def __init__(self, n_features, n_devices, hidden, rank, rngs):
                dims = (n_features, *hidden)
                self.layers = nnx.List([nnx.Linear(a, b, rngs=rngs) for a, b in zip(dims[:-1], dims[1:])])
                self.out = nnx.Linear(dims[-1], rank, rngs=rngs)
                self.heads = nnx.Param(0.1 * nnx.initializers.normal(1.0)(rngs.params(), (n_devices, rank + 1)))

            def basis(self, x):
                h = x
                for lyr in self.layers:
                    h = nnx.gelu(lyr(h))
                phi = self.out(h)
                return jnp.concatenate([jnp.ones_like(phi[:, :1]), phi], axis=1)

            def __call__(self, x):
                return self.basis(x) @ self.heads[...].T

        _NET_CLASS = BasisNet
    return _NET_CLASS


def _build_net(n_features: int, n_devices: int, cfg: FewShotConfig, seed: int):
    from flax import nnx

    return _net_class()(n_features, n_devices, tuple(cfg.hidden), cfg.rank, nnx.Rngs(seed))


_TRAINERS: dict = {}


def _trainer(graphdef, lr, steps, weight_decay, huber, batch, has_val):
    """One jitted chunk of Adam steps per (architecture, optimiser) setting, reused across models so that
    leave-one-out loops compile once (data are arguments, not closures)."""
    import jax
    import jax.numpy as jnp
    import optax
    from flax import nnx

    key = (graphdef, lr, steps, weight_decay, huber, batch, has_val)
    if key in _TRAINERS:
        return _TRAINERS[key]
    opt = optax.adamw(optax.cosine_decay_schedule(lr, steps, 0.05), weight_decay=weight_decay)

    def loss_fn(p, xb, zb, mb):
        pred = nnx.merge(graphdef, p)(xb)
        l = optax.huber_loss(pred, zb, delta=huber) * mb
        return l.sum() / jnp.maximum(mb.sum(), 1.0)

    @jax.jit
    def run(p, s, keys, data_tr, data_va):
        xtr, ztr, mtr = data_tr

        def chunk(carry, k):
            p, s = carry
            idx = jax.random.choice(k, xtr.shape[0], (batch,), replace=False)
            g = jax.grad(loss_fn)(p, xtr[idx], ztr[idx], mtr[idx])
            upd, s = opt.update(g, s, p)
            return (optax.apply_updates(p, upd), s), None

        (p, s), _ = jax.lax.scan(chunk, (p, s), keys)
        return p, s, loss_fn(p, *data_va) if has_val else jnp.float32(0)

    _TRAINERS[key] = (run, opt)
    return run, opt


def _train_net(x: np.ndarray, z: np.ndarray, cfg: FewShotConfig):
    """Fit the basis net on standardised log latency ``z [N, D]`` (NaN = unmeasured); returns the net."""
    import jax
    import jax.numpy as jnp
    from flax import nnx

    n, d = z.shape
    rng = np.random.default_rng(cfg.seed)
    perm = rng.permutation(n)
    n_val = max(1, int(round(cfg.val_frac * n))) if n > 20 else 0
    val, tr = perm[:n_val], perm[n_val:]
    net = _build_net(x.shape[1], d, cfg, cfg.seed)
    graphdef, params = nnx.split(net)
    mask = np.isfinite(z)
    zf = np.where(mask, z, 0.0).astype(np.float32)
    data_tr = tuple(map(jnp.asarray, (x[tr], zf[tr], mask[tr].astype(np.float32))))
    data_va = tuple(map(jnp.asarray, (x[val], zf[val], mask[val].astype(np.float32))))
    batch = int(min(cfg.batch, len(tr)))
    every = max(1, min(cfg.eval_every, cfg.steps))
    run, opt = _trainer(graphdef, cfg.lr, cfg.steps, cfg.weight_decay, cfg.huber, batch, bool(n_val))
    state = opt.init(params)

    key = jax.random.PRNGKey(cfg.seed)
    best, best_loss = params, math.inf
    for start in range(0, cfg.steps, every):
        key, sub = jax.random.split(key)
        params, state, vl = run(params, state, jax.random.split(sub, every), data_tr, data_va)
        vl = float(vl)
        if not n_val or vl < best_loss:
            best, best_loss = params, vl
    return nnx.merge(graphdef, best), best_loss


# --------------------------------------------------------------------------------------------------
# Bayesian linear experts


def _thin_svd(z):
    """Thin SVD of a tall matrix ``z [N, D]`` (N >> D) through the eigendecomposition of z^T z (D x D)."""
    lam, v = np.linalg.eigh(z.T @ z)
    order = np.argsort(lam)[::-1]
    lam, v = np.maximum(lam[order], 0.0), v[:, order]
    sv = np.sqrt(lam)
    u = (z @ v) / np.where(sv > 1e-12 * max(sv[0], 1e-300), sv, np.inf)
    return u, sv, v.T


def _blr_batch(h, y, m, s_cov, s2):
    """:func:`_blr` for P experts at once: ``h [P, k, q]`` -> posterior means ``[P, q]`` and log evidences
    ``[P]`` (Woodbury and the determinant lemma, so only q x q systems are solved)."""
    k = h.shape[1]
    prec = np.linalg.inv(s_cov)
    a = prec[None] + np.einsum("pki,pkj->pij", h, h) / s2
    w = np.linalg.solve(a, ((prec @ m)[None] + np.einsum("pki,k->pi", h, y) / s2)[..., None])[..., 0]
    if k == 0:
        return w, np.zeros(len(h))
    r = y[None] - h @ m
    hr = np.einsum("pki,pk->pi", h, r)
    quad = (r * r).sum(1) / s2 - np.einsum("pi,pi->p", hr, np.linalg.solve(a, hr[..., None])[..., 0]) / s2 ** 2
    logdet = k * math.log(s2) + np.linalg.slogdet(a)[1] + np.linalg.slogdet(s_cov)[1]
    return w, -0.5 * (quad + logdet + k * math.log(2 * math.pi))


def _blr(h_ref, y, m, s_cov, s2):
    """Posterior mean and log evidence of y = w.h + eps, w ~ N(m, S), eps ~ N(0, s2)."""
    k = len(y)
    if k == 0:
        return m, 0.0
    prec = np.linalg.inv(s_cov)
    a = prec + h_ref.T @ h_ref / s2
    w = np.linalg.solve(a, prec @ m + h_ref.T @ y / s2)
    kmat = s2 * np.eye(k) + h_ref @ s_cov @ h_ref.T
    resid = y - h_ref @ m
    _, logdet = np.linalg.slogdet(kmat)
    ev = -0.5 * (resid @ np.linalg.solve(kmat, resid) + logdet + k * math.log(2 * math.pi))
    return w, float(ev)


@dataclass
class Adapted:
    """A target device's embedding: per-expert posterior weights and the model-averaging weights."""

    k: int
    weights: dict
    coefs: dict = field(repr=False)
    nnls: np.ndarray | None = None  # [1 + D] intercept (ms) and nonnegative device weights, or None
    opcost: np.ndarray | None = None  # per-op cost regression (ms): latency = [1, op counts] . w
    additive: np.ndarray | None = None  # Bayesian additive log-latency fit on [1, x] (prior: training devices)
    stack: np.ndarray | None = None  # [1 + D] ridge-prior stacking of the devices' log latencies
    msadd: tuple | None = None  # (w [1 + F], scale s): additive per-op latency in ms, L(x) = s * [1, x] . w
    blend: dict | None = None  # member -> weight (1/e^power normalised); None: the expert average alone
    loo: dict | None = None  # leave-one-out mean squared log errors of the members on the refs
    ensemble: list = field(default_factory=list, repr=False)  # the other candidates' adaptations (meta_top > 1)

    def member_weights(self) -> dict:
        """Each member's blend weight and leave-one-out error, averaged over the adapted candidates
        (``{"bma": {"weight": 1.0, "loo": None}}`` when k < 5: the expert average alone)."""
        cands = (self, *self.ensemble)
        names = sorted({n for a in cands for n in (a.blend or {"bma": 1.0})})
        out = {}
        for n in names:
            loo = [a.loo[n] for a in cands if a.loo and n in a.loo]
            out[n] = {"weight": float(np.mean([(a.blend or {"bma": 1.0}).get(n, 0.0) for a in cands])),
                      "loo": float(np.mean(loo)) if loo else None}
        return out


class FewShotLatencyModel:
    """Multi-device basis network + Bayesian k-shot adaptation (module docstring has the math).

    Build with :meth:`train`; adapt with :meth:`adapt` (k reference features + their measured ms);
    predict with :meth:`predict` (ms).  ``feature_spec`` (a JSON dict naming the encoding and its length)
    travels with the model file.
    """

    def __init__(self, net, arrays: dict, meta: dict):
        self.net = net
        self.a = arrays
        self.meta = meta
        self._basis_fn = None

    # ---- construction ----------------------------------------------------------------------------
    @classmethod
    def train(cls, features, latency_ms, devices, feature_spec: dict, config: FewShotConfig | None = None,
              calibrate: bool = True) -> FewShotLatencyModel:
        """Fit on ``latency_ms [N, D]`` (ms, NaN = unmeasured) of ``devices`` at ``features [N, F]``."""
        cfg = config or FewShotConfig()
        lat = _check_latency(latency_ms, "latency_ms", allow_nan=True)
        require(lat.ndim == 2, "latency_ms", lat.shape, "[N architectures, D devices]")
        x = _check_features(features, np.asarray(features).shape[-1])
        require(x.shape[0] == lat.shape[0], "features", x.shape, f"{lat.shape[0]} rows like latency_ms")
        devices = [str(d) for d in devices]
        require(len(devices) == lat.shape[1] and len(set(devices)) == len(devices), "devices", devices,
                f"{lat.shape[1]} distinct names")
        require(isinstance(feature_spec, dict) and int(feature_spec.get("length", -1)) == x.shape[1],
                "feature_spec", feature_spec, f"a dict with length == {x.shape[1]}")
        counts = np.isfinite(lat).sum(0)
        require(counts.min() >= 3, "latency_ms", f"device {devices[int(counts.argmin())]} has {counts.min()} values",
                ">= 3 measurements per device")
        x_mean, x_sd = x.mean(0), x.std(0)
        x_sd = np.where(x_sd > 1e-8, x_sd, 1.0).astype(np.float32)
        x = ((x - x_mean) / x_sd).astype(np.float32)
        y = np.log(lat)
        mu, sd = np.nanmean(y, 0), np.nanstd(y, 0) + 1e-6
        net, val_loss = _train_net(x, (y - mu) / sd, cfg)
        heads = np.asarray(net.heads[...], np.float64)
        coef_log = heads * sd[:, None]
        coef_log[:, 0] += mu
        g = np.asarray(net.basis(x), np.float64)
        model = cls._assemble(net, {"x_mean": x_mean, "x_sd": x_sd}, y, g, coef_log, g @ coef_log.T, x, devices,
                              feature_spec, cfg, {"mode": "net", "val_loss": float(val_loss)})
        if calibrate and len(devices) > 2:
            model.meta_calibrate(np.asarray(features, np.float32), lat, cfg)
        return model

    @classmethod
    def train_table(cls, latency_ms, devices, config: FewShotConfig | None = None, row_name: str = "row",
                    calibrate: bool = True, arch_features=None, additive_features=None) -> FewShotLatencyModel:
        """Table mode, for spaces whose every architecture is measured on the training devices (e.g.
        NAS-Bench-201 on HELP's 27 devices): the basis is the rank-r SVD of the standardised log latency
        table [N, D] and the single-device experts use the *measured* latencies. Features are row ids
        (``row_name``, e.g. the NAS-Bench-201 index). ``arch_features [N, F]`` (e.g. op counts) enable
        the ``additive`` expert and the ``opcost`` member; ``additive_features [N, F]`` (e.g. one-hot ops)
        the ``msadd`` member."""
        cfg = config or FewShotConfig()
        lat = _check_latency(latency_ms, "latency_ms", allow_nan=False)
        require(lat.ndim == 2 and lat.shape[1] >= 2, "latency_ms", lat.shape, "[N architectures, D >= 2 devices], no NaN")
        require("additive" not in cfg.experts or arch_features is not None, "config.experts", cfg.experts,
                "no 'additive' in table mode without arch_features")
        devices = [str(d) for d in devices]
        require(len(devices) == lat.shape[1] and len(set(devices)) == len(devices), "devices", devices,
                f"{lat.shape[1]} distinct names")
        y = np.log(lat)
        n = len(y)
        mu, sd = y.mean(0), y.std(0) + 1e-6
        u, sv, vt = _thin_svd((y - mu) / sd)
        r = min(cfg.rank, len(sv))
        g = np.concatenate([np.ones((n, 1)), u[:, :r] * sv[:r] / math.sqrt(n), np.zeros((n, cfg.rank - r))], 1)
        heads = np.zeros((len(devices), cfg.rank + 1))
        heads[:, 1:r + 1] = vt[:r].T * math.sqrt(n)
        coef_log = heads * sd[:, None]
        coef_log[:, 0] += mu
        spec = {"name": row_name, "length": 1, "rows": n}
        arrays = {"table_g": g, "table_y": y}
        xf = None
        if arch_features is not None:
            xf = np.asarray(arch_features, np.float64)
            require(xf.ndim == 2 and len(xf) == n and np.all(np.isfinite(xf)), "arch_features", xf.shape,
                    f"finite [{n}, F]")
            arrays["table_x"] = xf
        if additive_features is not None:
            xd = np.asarray(additive_features, np.float64)
            require(xd.ndim == 2 and len(xd) == n and np.all(np.isfinite(xd)), "additive_features", xd.shape,
                    f"finite [{n}, F]")
            arrays["table_xadd"] = xd
            xd = np.concatenate([np.ones((n, 1)), xd], 1)
            scaled = lat / lat.mean(0)
            b = np.linalg.lstsq(xd, scaled, rcond=None)[0].T  # [D, 1 + F]
            arrays["msadd_m"] = b.mean(0)
            arrays["msadd_S"] = np.cov(b.T) + cfg.msadd_jitter * np.eye(xd.shape[1])
            # floor: exactly additive training devices must not give zero noise
            arrays["msadd_s2"] = np.array([max(float(np.median(np.mean((scaled - xd @ b.T) ** 2, 0))), 1e-8)])
            arrays["msadd_mean"] = lat.mean(0)
        model = cls._assemble(None, arrays, y, g, coef_log, y, xf, devices, spec, cfg, {"mode": "table"})
        if calibrate and len(devices) > 2:
            model.meta_calibrate(np.arange(n)[:, None], lat, cfg)
        return model

    @classmethod
    def _assemble(cls, net, arrays, y, g, coef_log, yhat, x, devices, feature_spec, cfg, meta_extra):
        """Expert priors and noise levels from the training fit (shared by both modes)."""
        arrays = dict(arrays)
        arrays.update({"coef_log": coef_log, "ybar": np.nanmean(yhat, 0)})
        arrays["lr_m"] = coef_log.mean(0)
        arrays["lr_S"] = np.cov(coef_log.T) + 1e-4 * np.eye(cfg.rank + 1) if len(devices) > 1 else np.eye(cfg.rank + 1)
        res_lr = np.nanmean((y - g @ coef_log.T) ** 2, 0)
        res_add = [np.nan]
        if x is not None and ("additive" in cfg.experts or "additive" in cfg.blend):
            xa = np.concatenate([np.ones((len(x), 1)), x.astype(np.float64)], 1)
            betas, res_add = [], []
            for j in range(len(devices)):
                ok = np.isfinite(y[:, j])
                reg = cfg.ridge * np.eye(xa.shape[1])
                reg[0, 0] = 0.0
                b = np.linalg.solve(xa[ok].T @ xa[ok] + reg, xa[ok].T @ y[ok, j])
                betas.append(b)
                res_add.append(np.mean((y[ok, j] - xa[ok] @ b) ** 2))
            betas = np.array(betas)
            arrays["add_m"] = betas.mean(0)
            arrays["add_S"] = (np.cov(betas.T) if len(devices) > 1 else 0.0) + 0.01 * np.eye(xa.shape[1])
        # single-device experts: residual variance of the best affine map from another device
        # (mean squared residual of least squares y_t ~ a + b yhat_d = var y_t - cov^2 / var yhat_d)
        res_single = []
        for t in range(len(devices)):
            ok = np.isfinite(y[:, t])
            yc = y[ok, t] - y[ok, t].mean()
            hc = yhat[ok] - yhat[ok].mean(0)
            var_h = np.maximum((hc ** 2).mean(0), 1e-18)
            res = (yc ** 2).mean() - (hc.T @ yc / ok.sum()) ** 2 / var_h
            res[t] = math.inf
            res_single.append(float(max(res.min(), 0.0)) if len(devices) > 1 else math.inf)
        arrays["s2"] = np.maximum(np.array([np.median(res_lr), np.median(res_add),
                                            np.median(res_single) if len(devices) > 1 else np.median(res_lr)]),
                                  1e-6)  # floor: an exact fit (few devices, full rank) must not give zero noise
        mu_dev = coef_log[:, 0]
        arrays["single_prior"] = np.array([mu_dev.mean(), mu_dev.var() + 1e-3, 0.25])
        meta = {"devices": list(devices), "feature_spec": dict(feature_spec), "config": _cfg_json(cfg),
                "unit": "ms", "tau": 1.0,
                "math": "log L_d(x) = c'_d . [1, phi(x)]; new device: Bayesian model averaging of linear experts"}
        meta.update(meta_extra)
        return cls(net, arrays, meta)

    # ---- meta-calibration ------------------------------------------------------------------------
    def meta_calibrate(self, x, lat, cfg: FewShotConfig) -> float:
        """Choose the noise scale tau over ``cfg.tau_grid`` and ``"auto"`` (per-target empirical Bayes: the
        grid value of highest evidence of the target's own references), the experts over
        ``cfg.expert_sets`` and the blend rule over ``cfg.blend_rules`` jointly, by meta-validation on the
        *training* devices only: one episode per held-out training device (``meta_devices`` at most,
        seeded choice), with the references ``cfg.meta_refs`` (the fixed reference design, when given),
        ``meta_k`` rows designed by the episode's model (``cfg.ref_designs``) or ``meta_k`` random rows. With
        several ``cfg.ref_designs``, the design is chosen too (stage 2, at the stage-1 choice; stored in
        ``meta["ref_design"]`` with ``meta["design_scores"]``). In table mode each episode uses a model
        rebuilt without the held-out device
        (basis, priors and experts: exactly the test-time procedure); in net mode the basis net is shared
        and the held-out device is only excluded from the device experts. Score: Spearman on the episode's
        other rows; the combination of highest ``cfg.meta_objective`` over the episodes wins (see
        :func:`meta_objective_fn`). Stores ``meta["tau"]``, ``meta["blend_rule"]``, ``meta["config"]["experts"]``,
        every score (``meta["meta_scores"]``) and its per-episode Spearman values (``meta["meta_episode_scores"]``,
        in the order of ``meta["meta_episode_devices"]``); returns tau."""
        rng = np.random.default_rng(cfg.seed + 1)
        objective = meta_objective_fn(cfg.meta_objective)
        require(isinstance(cfg.meta_top, (int, np.integer)) and cfg.meta_top >= 1, "config.meta_top", cfg.meta_top,
                "a positive integer (how many best candidates to average)")
        rules = tuple(cfg.blend_rules) or ("",)
        for r in rules:
            _parse_rule(r)
        sets = [tuple(e) for e in cfg.expert_sets] or [tuple(self.meta["config"]["experts"])]
        for ex in sets:
            require(bool(ex) and set(ex) <= {"lowrank", "single", "pair", "additive"}, "config.expert_sets", ex,
                    "tuples of lowrank/single/pair/additive")
        table = self.meta.get("mode") == "table"
        feats = None if table else self.features_cache(x)
        held = np.arange(len(self.devices))
        if len(held) > cfg.meta_devices:
            held = np.sort(rng.choice(held, size=cfg.meta_devices, replace=False))
        fixed = np.asarray(cfg.meta_refs, dtype=np.int64)
        designs = tuple(cfg.ref_designs) or ("fixed",)
        for d in designs:
            require(_parse_design(d)[0] != "fixed" or fixed.size or len(designs) == 1, "config.meta_refs",
                    cfg.meta_refs, "fixed reference rows for the 'fixed' design")
        subs = []
        for t in held:
            ok = np.flatnonzero(np.isfinite(lat[:, t]))
            if table:
                keep = [j for j in range(len(self.devices)) if j != t]
                sub = FewShotLatencyModel.train_table(lat[:, keep], [self.devices[j] for j in keep], cfg,
                                                      row_name=self.meta["feature_spec"]["name"], calibrate=False,
                                                      arch_features=self.a.get("table_x"),
                                                      additive_features=self.a.get("table_xadd"))
                subs.append((sub, [], t, ok))
            else:
                subs.append((self, [self.devices[t]], t, ok))

        def episodes_for(design):
            designed = _parse_design(design)[0] != "fixed"
            eps = []
            for sub, excl, t, ok in subs:
                for _ in range(cfg.meta_episodes if not (fixed.size or designed) else 1):
                    if designed:
                        refs = ok[sub.select_refs(ok if table else x[ok], min(cfg.meta_k, len(ok) - 1), design)]
                    else:
                        refs = fixed if fixed.size else rng.choice(ok, size=min(cfg.meta_k, len(ok) - 1), replace=False)
                    rest = np.setdiff1d(ok, refs)
                    ff = ((sub.features_cache(refs), sub.features_cache(rest)) if table
                          else (_take(feats, refs), _take(feats, rest)))
                    eps.append((sub, excl, t, refs, rest, ff))
            return eps

        def run(episodes, ex, tau, rules):  # each rule's Spearman per episode
            s = {r: [] for r in rules}
            for sub, excl, t, refs, rest, (f_ref, f_rest) in episodes:
                ad = sub.adapt(refs, lat[refs, t], exclude=excl, _feats=f_ref, _choices=[(tuple(ex), tau, "")])
                logs = sub._member_logs(ad, f_rest)
                for r in rules:
                    pred = blend_logs(logs, blend_weights(ad.loo, r) if ad.loo else None)
                    s[r].append(spearman(pred, lat[rest, t]))
            return s

        # stage 1: experts, tau and blend rule on the first design; stage 2: that choice on every other
        # candidate design (same held-out devices, same rebuilt models), the design of highest objective wins
        episodes = episodes_for(designs[0])
        scores, per_episode = {}, {}
        for ex, tau in [(ex, tau) for ex in sets for tau in (*cfg.tau_grid, "auto")]:
            for r, v in run(episodes, ex, tau, rules).items():
                scores[(",".join(ex), tau, r)] = objective(v)
                per_episode[(",".join(ex), tau, r)] = v
        best = max(scores, key=lambda key: scores[key])
        d_scores = {designs[0]: scores[best]}
        for d in designs[1:]:
            d_scores[d] = objective(run(episodes_for(d), best[0].split(","), best[1], (best[2],))[best[2]])
        ex, self.meta["tau"], self.meta["blend_rule"] = best
        self.meta["config"]["experts"] = ex.split(",")
        top = sorted(scores, key=lambda key: -scores[key])[:cfg.meta_top]
        self.meta["ensemble"] = [[key[0].split(","), key[1], key[2]] for key in top] if cfg.meta_top > 1 else []
        self.meta["meta_scores"] = {"|".join(map(str, key)): v for key, v in scores.items()}
        self.meta["meta_episode_devices"] = [self.devices[t] for _, _, t, *_ in episodes]
        self.meta["meta_episode_scores"] = {"|".join(map(str, key)): [round(float(x), 5) for x in v]
                                            for key, v in per_episode.items()}
        self.meta["ref_design"] = max(designs, key=lambda d: d_scores[d])
        self.meta["design_scores"] = d_scores
        return best[1]

    # ---- properties ------------------------------------------------------------------------------
    @property
    def devices(self) -> list[str]:
        return list(self.meta["devices"])

    @property
    def n_features(self) -> int:
        return int(self.meta["feature_spec"]["length"])

    # ---- features of query archs -----------------------------------------------------------------
    def features_cache(self, x) -> dict:
        """Everything the experts need at architectures ``x``: basis g(x), [1, x], per-device log preds."""
        if self.meta.get("mode") == "table":
            rows = np.asarray(x)
            rows = rows.reshape(-1) if rows.ndim == 2 and rows.shape[1] == 1 else rows
            n = int(self.meta["feature_spec"]["rows"])
            if rows.ndim != 1 or rows.dtype.kind not in "iu" or (rows.size and (rows.min() < 0 or rows.max() >= n)):
                raise NasjaxInputError(f"features: got shape {rows.shape} dtype {rows.dtype}, expected integer "
                                       f"{self.meta['feature_spec']['name']} ids in [0, {n})")
            xa = np.ones((len(rows), 1))
            if "table_x" in self.a:
                xa = np.concatenate([xa, self.a["table_x"][rows]], 1)
            f = {"g": self.a["table_g"][rows], "xa": xa, "yhat": self.a["table_y"][rows]}
            if "table_xadd" in self.a:
                f["xadd"] = np.concatenate([np.ones((len(rows), 1)), self.a["table_xadd"][rows]], 1)
            return f
        x = _check_features(x, self.n_features)
        x = ((x - self.a["x_mean"]) / self.a["x_sd"]).astype(np.float32)
        g = np.asarray(self._basis(x), np.float64)
        return {"g": g, "xa": np.concatenate([np.ones((len(x), 1)), x.astype(np.float64)], 1),
                "yhat": g @ self.a["coef_log"].T}

    def _basis(self, x):
        """g(x) = [1, phi(x)] from the basis net (one jitted function per model)."""
        if self._basis_fn is None:
            import jax
            from flax import nnx

            graphdef, state = nnx.split(self.net)
            fn = jax.jit(lambda s, xb: nnx.merge(graphdef, s).basis(xb))
            self._basis_fn = lambda xb: fn(state, xb)
        return self._basis_fn(x)

    # ---- adaptation and prediction ---------------------------------------------------------------
    def choices(self) -> list[tuple]:
        """The meta-validated candidates this model predicts with, best first: (experts, tau, blend rule)
        each; several when ``meta_top`` > 1 (their log predictions are averaged)."""
        ens = self.meta.get("ensemble")
        if ens:
            return [(tuple(e), t, r) for e, t, r in ens]
        return [(tuple(self.meta["config"].get("experts", ("lowrank", "single"))), self.meta.get("tau", 1.0),
                 self.meta.get("blend_rule", ""))]

    def adapt(self, ref_features=None, ref_latency_ms=None, exclude=(), _feats=None, _choices=None) -> Adapted:
        """Device embedding from k reference measurements (k = 0: pass nothing). ``exclude`` removes
        training devices from the single-device experts (e.g. a twin of the target). One adaptation per
        candidate of :meth:`choices` (``_choices``: other candidates); the first is returned, the others in
        its ``ensemble``."""
        if ref_features is None or ref_latency_ms is None or len(np.atleast_1d(ref_latency_ms)) == 0:
            yr = np.zeros(0)
            f = {"g": np.zeros((0, self.a["coef_log"].shape[1])), "xa": np.zeros((0, self.n_features + 1)),
                 "yhat": np.zeros((0, len(self.devices)))}
            if "table_xadd" in self.a:
                f["xadd"] = np.zeros((0, self.a["table_xadd"].shape[1] + 1))
        else:
            yr = np.log(_check_latency(np.atleast_1d(ref_latency_ms), "ref_latency_ms", allow_nan=False))
            f = _feats if _feats is not None else self.features_cache(ref_features)
            require(len(f["g"]) == len(yr), "ref_features", len(f["g"]), f"{len(yr)} rows like ref_latency_ms")
        for e in exclude:
            require(e in self.devices, "exclude", e, f"one of {self.devices}")
        ads = [self._adapt_choice(f, yr, exclude, c) for c in (_choices or self.choices())]
        ads[0].ensemble = ads[1:]
        return ads[0]

    def _adapt_choice(self, f, yr, exclude, choice) -> Adapted:
        experts, tau, rule = choice
        ad = self._adapt_device(f, yr, exclude, experts, tau)
        k = len(yr)
        if k >= 5:
            # blend the members in log space with weights 1/e_m^2, e_m = leave-one-out mean squared
            # log error of member m on the k references themselves
            lam = float(self.meta["config"].get("opcost_ridge", 0.0))
            if lam > 0 and "table_x" in self.a:
                ad.opcost = self._opcost_fit(f["xa"], np.exp(yr), lam)
            names = list(self._member_logs_one(ad, _take(f, [0])))
            errs = {n: [] for n in names}
            for i in range(k):
                keep = np.delete(np.arange(k), i)
                sub = _take(f, keep)
                inner = self._adapt_device(sub, yr[keep], exclude, experts, tau)
                if ad.opcost is not None:
                    inner.opcost = self._opcost_fit(sub["xa"], np.exp(yr[keep]), lam)
                logs = self._member_logs_one(inner, _take(f, [i]))
                for n in names:
                    errs[n].append(float((logs[n][0] - yr[i]) ** 2) if n in logs else np.inf)
            ad.loo = {n: float(np.mean(v)) for n, v in errs.items()}
            ad.blend = blend_weights(ad.loo, rule)
        return ad

    @staticmethod
    def _opcost_fit(xa, y_ms, lam):
        """Ridge regression of latency (ms) on [1, op counts]: w = (H^T H + lam I)^-1 H^T y."""
        return np.linalg.solve(xa.T @ xa + lam * np.eye(xa.shape[1]), xa.T @ y_ms)

    def _adapt_device(self, f, yr, exclude, experts, tau) -> Adapted:
        require(tau == "auto" or (isinstance(tau, (int, float)) and tau > 0), "tau", tau, "'auto' or a positive float")
        if tau == "auto":  # empirical Bayes per target: the tau of highest total evidence of its k refs
            best = None
            for t in self.meta["config"]["tau_grid"]:
                cand = self._mixture(f, yr, float(t), exclude, experts)
                if best is None or cand[2] > best[2]:
                    best = cand
            names, coefs, _, pw = best
        else:
            names, coefs, _, pw = self._mixture(f, yr, float(tau), exclude, experts)
        nn = None
        if len(yr) >= 2 and "nnls" in self.meta["config"].get("blend", ()):
            from scipy.optimize import nnls

            keep = [j for j, d in enumerate(self.devices) if d not in set(exclude)]
            hm = np.concatenate([np.ones((len(yr), 1)), np.exp(f["yhat"][:, keep])], 1)
            w, _ = nnls(hm, np.exp(yr))
            nn = np.zeros(len(self.devices) + 1)
            nn[0] = w[0]
            nn[1 + np.array(keep, dtype=np.int64)] = w[1:]
        add = None
        t_fix = float(tau) if tau != "auto" else 1.0
        if len(yr) >= 2 and "additive" in self.meta["config"].get("blend", ()) and "add_m" in self.a:
            add, _ = _blr(f["xa"], yr, self.a["add_m"], self.a["add_S"], float(self.a["s2"][1]) * t_fix)
        msa = None
        if len(yr) >= 2 and "msadd" in self.meta["config"].get("blend", ()) and "msadd_m" in self.a:
            keep = np.array([j for j, d in enumerate(self.devices) if d not in set(exclude)], dtype=np.int64)
            ratio = float(np.mean(np.exp(f["yhat"][:, keep]).mean(0) / self.a["msadd_mean"][keep]))
            scale = float(np.mean(np.exp(yr))) / ratio
            w, _ = _blr(f["xadd"], np.exp(yr) / scale, self.a["msadd_m"], self.a["msadd_S"],
                        float(self.a["msadd_s2"][0]) * t_fix)
            msa = (w, scale)
        st = None
        if len(yr) >= 2 and "stack" in self.meta["config"].get("blend", ()):
            keep = np.array([j for j, d in enumerate(self.devices) if d not in set(exclude)], dtype=np.int64)
            h = np.concatenate([np.ones((len(yr), 1)), f["yhat"][:, keep] - self.a["ybar"][keep]], 1)
            m0, v0, _ = self.a["single_prior"]
            nd = len(keep)
            prior_m = np.concatenate([[m0], np.full(nd, 1.0 / nd)])
            prior_s = np.diag(np.concatenate([[v0], np.full(nd, float(self.meta["config"].get("stack_prior", 1.0)) / nd)]))
            w, _ = _blr(h, yr, prior_m, prior_s, float(self.a["s2"][2]) * t_fix)
            st = np.zeros(len(self.devices) + 1)
            st[0] = w[0]
            st[1 + keep] = w[1:]
        return Adapted(k=len(yr), weights=dict(zip(names, pw.tolist())), coefs=coefs, nnls=nn, additive=add, stack=st,
                       msadd=msa)

    def _mixture(self, f, yr, tau, exclude, experts):
        """Posterior means, log marginal likelihood of the mixture and the model-averaging weights."""
        s2_lr, s2_add, s2_single = (float(v) * tau for v in self.a["s2"])
        coefs, logw = {}, {}
        devs = self.meta["devices"]
        experts = tuple(experts)
        share = 1.0 / len(experts)
        if "lowrank" in experts:
            w, ev = _blr(f["g"], yr, self.a["lr_m"], self.a["lr_S"], s2_lr)
            coefs["lowrank"], logw["lowrank"] = w, ev + math.log(share)
        if "additive" in experts:
            w, ev = _blr(f["xa"], yr, self.a["add_m"], self.a["add_S"], s2_add)
            coefs["additive"], logw["additive"] = w, ev + math.log(share)
        singles = [j for j, d in enumerate(devs) if d not in set(exclude)] if "single" in experts else []
        m0, v0, vb = self.a["single_prior"]
        if "pair" in experts:  # y = a + b1 u_d1 + b2 u_d2 for every pair of training devices, batched
            keep = [j for j, d in enumerate(devs) if d not in set(exclude)]
            pairs = [(keep[i1], keep[i2]) for i1 in range(len(keep)) for i2 in range(i1 + 1, len(keep))]
            if pairs:
                u = f["yhat"] - self.a["ybar"]
                ia, ib = np.array(pairs).T
                h = np.stack([np.ones((len(yr), len(pairs))), u[:, ia], u[:, ib]], 2).transpose(1, 0, 2)
                vd = float(self.meta["config"].get("pair_diff_var", 1.0))
                s_pair = np.zeros((3, 3))
                s_pair[0, 0] = v0
                s_pair[1:, 1:] = np.array([[vb + vd, vb - vd], [vb - vd, vb + vd]]) / 4.0
                w, ev = _blr_batch(h, yr, np.array([m0, 0.5, 0.5]), s_pair, s2_single)
                lp = math.log(share / len(pairs))
                for i, (a, b) in enumerate(pairs):
                    name = f"pair:{devs[a]}|{devs[b]}"
                    coefs[name], logw[name] = w[i], float(ev[i]) + lp
        if singles:  # y = a + b u_d for every training device d, batched
            u = f["yhat"][:, singles] - self.a["ybar"][singles]
            h = np.stack([np.ones_like(u), u], 2).transpose(1, 0, 2)
            w, ev = _blr_batch(h, yr, np.array([m0, 1.0]), np.diag([v0, vb]), s2_single)
            lp = math.log(share / len(singles))
            for i, j in enumerate(singles):
                coefs[f"single:{devs[j]}"], logw[f"single:{devs[j]}"] = w[i], float(ev[i]) + lp
        names = list(logw)
        lw = np.array([logw[n] for n in names])
        top = lw.max()
        pw = np.exp(lw - top)
        total = top + math.log(pw.sum())
        pw /= pw.sum()
        return names, coefs, total, pw

    def _member_logs(self, ad: Adapted, f: dict) -> dict:
        """Each member's log-ms prediction, averaged over the adapted candidates (:meth:`choices`)."""
        if not ad.ensemble:
            return self._member_logs_one(ad, f)
        each = [self._member_logs_one(a, f) for a in (ad, *ad.ensemble)]
        return {n: np.mean([e[n] for e in each if n in e], 0) for n in each[0]}

    def _member_logs_one(self, ad: Adapted, f: dict) -> dict:
        """Log-ms prediction of each member: ``bma`` (expert average), ``nnls``, ``opcost``, ``additive``,
        ``stack``. The expert average is linear in the device columns, so it is accumulated as one
        coefficient vector per basis (constant, g, [1, x], centred device columns) and applied once."""
        pos = {d: j for j, d in enumerate(self.devices)}
        const, beta = 0.0, np.zeros(len(pos))
        w_g = np.zeros(f["g"].shape[1])
        w_x = None
        for name, pw in ad.weights.items():
            if pw < 1e-12:
                continue
            w = ad.coefs[name]
            if name == "lowrank":
                w_g += pw * w
            elif name == "additive":
                w_x = pw * w if w_x is None else w_x + pw * w
            elif name.startswith("pair:"):
                a, b = (pos[n] for n in name.split(":", 1)[1].split("|"))
                const += pw * w[0]
                beta[a] += pw * w[1]
                beta[b] += pw * w[2]
            else:
                j = pos[name.split(":", 1)[1]]
                const += pw * w[0]
                beta[j] += pw * w[1]
        out = const + f["g"] @ w_g
        if beta.any():
            out = out + (f["yhat"] - self.a["ybar"]) @ beta
        if w_x is not None:
            out = out + f["xa"] @ w_x
        logs = {"bma": out}
        if ad.nnls is not None and ad.nnls[1:].any():
            logs["nnls"] = np.log(np.maximum(ad.nnls[0] + np.exp(f["yhat"]) @ ad.nnls[1:], 1e-6))
        if ad.additive is not None:
            logs["additive"] = f["xa"] @ ad.additive
        if ad.stack is not None:
            logs["stack"] = ad.stack[0] + (f["yhat"] - self.a["ybar"]) @ ad.stack[1:]
        if ad.opcost is not None:
            logs["opcost"] = np.log(np.maximum(f["xa"] @ ad.opcost, 1e-6))
        if ad.msadd is not None:
            logs["msadd"] = np.log(np.maximum(ad.msadd[1] * (f["xadd"] @ ad.msadd[0]), 1e-6))
        return logs

    def _predict_log(self, ad: Adapted, f: dict) -> np.ndarray:
        """Log-ms prediction: each candidate's blend of its members, averaged over the candidates."""
        out = [blend_logs(self._member_logs_one(a, f), a.blend) for a in (ad, *ad.ensemble)]
        return out[0] if len(out) == 1 else np.mean(out, 0)

    def predict(self, features, adapted: Adapted) -> np.ndarray:
        """Predicted latency (ms) of architectures ``features [N, F]`` on the adapted device."""
        return np.exp(self._predict_log(adapted, self.features_cache(features)))

    def predict_k(self, features, ref_features=None, ref_latency_ms=None, exclude=()) -> np.ndarray:
        return self.predict(features, self.adapt(ref_features, ref_latency_ms, exclude=exclude))

    def predict_training_device(self, features, device: str) -> np.ndarray:
        """The basis net's fit of a training device (ms)."""
        require(device in self.devices, "device", device, f"one of {self.devices}")
        return np.exp(self.features_cache(features)["yhat"][:, self.devices.index(device)])

    def select_refs(self, candidate_features, k: int, design: str = "lowrank") -> np.ndarray:
        """Greedy Bayesian D-optimal choice of k reference rows among candidates (no target measurement
        used): each step adds the candidate of largest prior predictive variance under the current posterior,
        which maximises log det(S^-1 + H^T H / s2) one row at a time. ``design`` names the linear model whose
        prior is used: ``"lowrank"`` (the low-rank expert: basis g(x), prior lr_S, its noise) or ``"msadd"``
        (the additive-in-ms member: [1, one-hot ops], the training devices' prior msadd_S, its noise; needs
        ``additive_features``). ``"msadd*10"``: the same with the noise variance times 10 (a design that
        spends fewer rows on directions already measured). The order is the greedy order, so the first k'
        rows are the design for k'."""
        require(isinstance(k, (int, np.integer)) and k >= 0, "k", k, "a non-negative integer")
        kind, mult = _parse_design(design)
        require(kind != "fixed", "design", design, "'lowrank' or 'msadd' (a fixed design has no choice to make)")
        f = self.features_cache(candidate_features)
        require(k <= len(f["g"]), "k", k, f"<= {len(f['g'])} candidate architectures")
        if kind == "msadd":
            require("msadd_S" in self.a, "design", design, "a model trained with additive_features")
            return greedy_design(f["xadd"], self.a["msadd_S"], float(self.a["msadd_s2"][0]) * mult, k)
        return greedy_design(f["g"], self.a["lr_S"], float(self.a["s2"][0]) * mult, k)

    # ---- I/O -------------------------------------------------------------------------------------
    def save(self, path) -> dict:
        from nasjax.hardware import model_io

        header = {k: v for k, v in self.meta.items()}
        if self.net is None:
            return model_io.save_arrays(path, {f"fs/{k}": v for k, v in self.a.items()}, kind=KIND,
                                        version=VERSION, header=header)
        return model_io.save_nnx(path, self.net, kind=KIND, version=VERSION, header=header,
                                 extra_arrays={f"fs/{k}": v for k, v in self.a.items()})

    @classmethod
    def load(cls, path) -> FewShotLatencyModel:
        from nasjax.hardware import model_io

        def build(h):
            for key in ("devices", "feature_spec", "config"):
                require(key in h, f"model header {key}", None, "present (file written by FewShotLatencyModel.save)")
            cfg = _cfg_from_json(h["config"])
            return _build_net(int(h["feature_spec"]["length"]), len(h["devices"]), cfg, 0)

        arrays, header = model_io.load_arrays(path, kind=KIND)
        if header.get("mode") == "table":
            net, extra = None, arrays
        else:
            net, header, extra = model_io.load_nnx(path, build, kind=KIND)
        arrays = {k[3:]: np.asarray(v) for k, v in extra.items() if k.startswith("fs/")}
        meta = {k: v for k, v in header.items() if k not in ("format", "kind", "version", "arrays", "sha256")}
        return cls(net, arrays, meta)


def _parse_design(design: str) -> tuple[str, float]:
    """``"msadd*10"`` -> ("msadd", 10.0); ``""``/``"fixed"`` -> ("fixed", 1.0)."""
    name, _, mult = str(design).partition("*")
    try:
        m = float(mult) if mult else 1.0
    except ValueError:
        m = -1.0
    require(name in ("", "fixed", "lowrank", "msadd") and m > 0, "reference design", design,
            "'fixed', 'lowrank' or 'msadd', optionally '*<positive noise multiplier>'")
    return ("fixed" if name in ("", "fixed") else name), m


def greedy_design(h, prior_cov, s2: float, k: int) -> np.ndarray:
    """Greedy Bayesian D-optimal design for y = w . h(x) + eps, w ~ N(m, prior_cov), eps ~ N(0, s2): pick
    the row of largest posterior predictive variance, condition on it, repeat (by the determinant lemma each
    step maximises the gain in log det of the posterior precision). Rank-one updates keep every step at
    O(N q) for N candidates of q features. Returns k distinct row indices in the order chosen."""
    h = np.asarray(h, np.float64)
    require(h.ndim == 2 and k <= len(h), "candidates", h.shape, f"[N >= {k}, q]")
    require(s2 > 0, "s2", s2, "a positive noise variance")
    cov = np.asarray(prior_cov, np.float64)
    hc = h @ cov  # [N, q]: rows of H S
    var = np.einsum("ij,ij->i", hc, h)
    chosen: list[int] = []
    for _ in range(k):
        v = var.copy()
        v[chosen] = -np.inf
        i = int(np.argmax(v))
        chosen.append(i)
        c_i = hc[i].copy()  # S h_i (S symmetric)
        denom = s2 + var[i]
        proj = h @ c_i  # h_j^T S h_i for every j
        var = var - proj ** 2 / denom
        hc = hc - np.outer(proj, c_i) / denom
    return np.array(chosen, dtype=np.int64)


def meta_objective_fn(objective: str):
    """The meta-validation objective named by ``objective`` (see ``FewShotConfig.meta_objective``), as a
    function of the held-out training devices' Spearman values."""
    name = str(objective)
    q = None
    if name.startswith(("cvar:", "mean+cvar:")):
        try:
            q = float(name.rpartition(":")[2])
        except ValueError:
            q = -1.0
    require(name == "mean" or (q is not None and 0 < q <= 1), "meta_objective", objective,
            "'mean', 'cvar:q' or 'mean+cvar:q' with 0 < q <= 1")

    def cvar(v):
        v = np.sort(np.asarray(v, np.float64))
        return float(v[:max(1, int(math.ceil(q * len(v))))].mean())

    if name == "mean":
        return lambda v: float(np.mean(v))
    if name.startswith("cvar:"):
        return cvar
    return lambda v: 0.5 * (float(np.mean(v)) + cvar(v))


def _parse_rule(rule: str) -> tuple[float, tuple]:
    """``"power:m1,m2"`` -> (power, members); ``""`` -> (2, all members)."""
    if not rule:
        return 2.0, ()
    p, _, names = str(rule).partition(":")
    try:
        power = float(p)
    except ValueError:
        raise NasjaxInputError(f"blend rule: got {rule!r}, expected 'power:member,...' e.g. '2:bma,nnls'") from None
    require(power >= 0, "blend rule power", power, ">= 0")
    return power, tuple(n for n in names.split(",") if n)


def blend_logs(logs: dict, weights: dict | None) -> np.ndarray:
    """The members' log predictions blended with ``weights`` (None or empty: the expert average alone)."""
    if not weights:
        return logs["bma"]
    return sum(w * logs[n] for n, w in weights.items() if w > 0)


def blend_weights(loo: dict, rule: str = "") -> dict:
    """Blend weights of members from their leave-one-out errors e_m on the refs: w_m ~ 1 / e_m^power over the
    rule's members (all members when it lists none; members absent from ``loo`` are skipped)."""
    power, names = _parse_rule(rule)
    use = {n: e for n, e in loo.items() if (not names or n in names) and np.isfinite(e)}
    require(bool(use), "blend rule", rule, f"members among {sorted(loo)}")
    inv = {n: 1.0 / max(e, 1e-12) ** power for n, e in use.items()}
    tot = sum(inv.values())
    return {n: v / tot for n, v in inv.items()}


def onehot_features(archs, n_choices: int | None = None) -> np.ndarray:
    """One-hot encoding [N, P * C] of integer architectures ``archs [N, P]`` (choice ids in [0, C)), e.g.
    HELP FBNet's 22 blocks x 9 ops, the features of the ``additive`` expert / blend member."""
    a = np.asarray(archs)
    require(a.ndim == 2 and a.dtype.kind in "iu" and a.size and a.min() >= 0, "archs", a.shape,
            "[N, P] non-negative integer choice ids")
    c = int(a.max()) + 1 if n_choices is None else int(n_choices)
    require(a.max() < c, "n_choices", n_choices, f"> the largest choice id {int(a.max())}")
    return np.eye(c)[a].reshape(len(a), -1)


def _take(f: dict, rows) -> dict:
    return {k: v[rows] for k, v in f.items()}


def _cfg_json(cfg: FewShotConfig) -> dict:
    d = asdict(cfg)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def _cfg_from_json(d: dict) -> FewShotConfig:
    known = FewShotConfig.__dataclass_fields__
    kw = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if k in known}
    return FewShotConfig(**kw)


# --------------------------------------------------------------------------------------------------
# baselines (need the training devices measured on the target's architectures)


def hindsight_best_device(train_lat_ms: np.ndarray, target_ms: np.ndarray, rows=None) -> tuple[int, float]:
    """The training column with the highest Spearman to the target on ``rows`` (oracle: uses the answer)."""
    rows = np.arange(len(target_ms)) if rows is None else rows
    sc = [spearman(train_lat_ms[rows, j], target_ms[rows]) if np.all(np.isfinite(train_lat_ms[rows, j])) else -1.0
          for j in range(train_lat_ms.shape[1])]
    j = int(np.argmax(sc))
    return j, float(sc[j])


def ref_chosen_proxy(train_lat_ms: np.ndarray, ref_rows, ref_ms) -> int:
    """The training column whose log latency on the k references best fits the target's affinely
    (smallest residual; k < 3 falls back to the first column with the closest mean)."""
    y = np.log(np.asarray(ref_ms, float))
    best, best_j = math.inf, 0
    for j in range(train_lat_ms.shape[1]):
        xj = np.log(train_lat_ms[ref_rows, j])
        if len(y) >= 3:
            h = np.stack([np.ones(len(y)), xj], 1)
            r = y - h @ np.linalg.lstsq(h, y, rcond=None)[0]
            err = float(r @ r)
        else:
            err = float(abs(np.mean(y) - np.mean(xj))) if len(y) else 0.0
        if err < best:
            best, best_j = err, j
    return best_j


def lowrank_transfer(train_lat_ms: np.ndarray, ref_rows, ref_ms, rank: int = 4, ridge: float = 1e-3) -> np.ndarray:
    """Low-rank transfer: SVD of the training devices' log latency [N, D] -> rank-r basis U; fit
    [1, U] to the target's log latency on the k references by ridge least squares; predict all N rows (ms).
    k = 0 predicts the mean device."""
    y = np.log(train_lat_ms)
    mu = y.mean(1, keepdims=True)
    u, s, _ = np.linalg.svd(y - y.mean(0), full_matrices=False)
    basis = np.concatenate([np.ones((len(y), 1)), u[:, :rank] * s[:rank] / math.sqrt(len(y))], 1)
    k = len(ref_rows)
    if k == 0:
        return np.exp(mu[:, 0])
    r = min(rank + 1, k)
    h = basis[ref_rows, :r]
    yr = np.log(np.asarray(ref_ms, float))
    w = np.linalg.solve(h.T @ h + ridge * np.eye(r), h.T @ yr)
    return np.exp(basis[:, :r] @ w)


# --------------------------------------------------------------------------------------------------
# evaluation protocols


def lodo_split(devices, target: str, twins: dict | None = None) -> list[str]:
    """Training devices for held-out ``target``: every device except the target and its listed twins
    (``twins``: device -> list of devices holding the same measurements)."""
    devices = list(devices)
    require(target in devices, "target device", target, f"one of {devices}")
    drop = {target, *((twins or {}).get(target, ()))}
    return [d for d in devices if d not in drop]


def _score_k(model, f_eval, true_eval, ref_rows, ref_ms, ks, exclude=()):
    """Adapt with the first k refs for each k and score on the evaluation rows (``f_eval``: their
    :meth:`FewShotLatencyModel.features_cache`); each entry keeps its ``adapted`` device."""
    out = {}
    for k in ks:
        require(k <= len(ref_rows), "k", k, f"<= {len(ref_rows)} reference architectures")
        ad = model.adapt(ref_rows[:k] if k else None, ref_ms[:k] if k else None, exclude=exclude)
        pred = np.exp(model._predict_log(ad, f_eval))
        out[k] = {"spearman": spearman(pred, true_eval), "MAPE": mape(pred, true_eval), "pred": pred, "adapted": ad}
    return out


def _baselines(train_tab, rows_eval, true_eval, ref_rows, ref_ms, rank):
    j_h, s_h = hindsight_best_device(train_tab[rows_eval], true_eval)
    j_p = ref_chosen_proxy(train_tab, ref_rows, ref_ms)
    lr = lowrank_transfer(train_tab, ref_rows, ref_ms, rank=rank)[rows_eval]
    return {"hindsight_best_device": s_h, "hindsight_device_index": j_h,
            "ref_chosen_proxy": spearman(train_tab[rows_eval, j_p], true_eval), "ref_proxy_index": j_p,
            "lowrank_transfer": spearman(lr, true_eval), "lowrank_transfer_MAPE": mape(lr, true_eval)}


def evaluate_lodo(latency_ms, devices, refs, ks=(0, 1, 5, 10), targets=None, config: FewShotConfig | None = None,
                  twins: dict | None = None, train_devices=None, keep_predictions: bool = False, progress: bool = False,
                  arch_features=None, additive_features=None):
    """Leave-one-device-out on a complete table ``latency_ms [N, D]`` (ms): for each target, a table-mode
    model trained on the other devices (``train_devices`` if given) is adapted with the first k of
    ``refs`` and scored (Spearman, MAPE %) on every row except the ``max(ks)`` references. ``refs``: an
    array of rows (a fixed design, e.g. HELP's), used unless the target's model chose a designed one
    (``config.ref_designs``, chosen by meta-validation on its training devices only); then
    the model picks its own ``max(ks)`` references (:meth:`FewShotLatencyModel.select_refs`). ``refs="design"``:
    always the model's design. With fixed rows given, ``k{max(ks)}_spearman_fixed_refs`` scores the same model
    adapted with them (the comparison when a designed set was chosen). Baselines at k = max(ks) on the same rows:
    hindsight best training device, proxy chosen from the refs, low-rank transfer. Returns one dict per
    target (``refs``: the rows used; ``k{max(ks)}_members``: each blend member's Spearman alone on the same
    rows, its leave-one-out error on the refs and its blend weight)."""
    cfg = config or FewShotConfig()
    lat = _check_latency(latency_ms, "latency_ms", allow_nan=False)
    devices = list(devices)
    kmax = max(ks)
    only_design = isinstance(refs, str)
    if only_design:
        require(refs == "design", "refs", refs, "reference rows or 'design'")
        require(all(_parse_design(d)[0] != "fixed" for d in (cfg.ref_designs or ("fixed",))),
                "config.ref_designs", cfg.ref_designs, "designed references for refs='design'")
    else:
        fixed_refs = np.asarray(refs, dtype=np.int64)
        require(kmax <= len(fixed_refs), "k", kmax, f"<= {len(fixed_refs)} reference architectures")
    targets = list(targets) if targets is not None else devices
    it = targets
    if progress:
        from tqdm import tqdm

        it = tqdm(targets, desc="leave-one-device-out", leave=False)
    out = []
    for t in it:
        tr = lodo_split(devices, t, twins) if train_devices is None else [d for d in train_devices if d != t]
        require(t not in tr, "training devices", tr, f"without the held-out target {t!r}")
        cols = [devices.index(d) for d in tr]
        model = FewShotLatencyModel.train_table(lat[:, cols], tr, cfg, row_name="row", arch_features=arch_features,
                                                additive_features=additive_features)
        y = lat[:, devices.index(t)]
        design = model.meta.get("ref_design", (cfg.ref_designs or ("fixed",))[0])
        refs = fixed_refs if _parse_design(design)[0] == "fixed" else model.select_refs(np.arange(len(lat)), kmax, design)
        rows_eval = np.setdiff1d(np.arange(len(lat)), refs[:kmax])
        f_eval = model.features_cache(rows_eval)
        sc = _score_k(model, f_eval, y[rows_eval], refs, y[refs], ks)
        ad = sc[kmax]["adapted"]
        # each blend member alone on the same rows, with its leave-one-out error on the refs and blend weight
        # (diagnostic: which member the blend trusted, and which one ranked the target best)
        logs = model._member_logs(ad, f_eval)
        mw = ad.member_weights()
        members = {n: {"spearman": spearman(v, y[rows_eval]), **mw.get(n, {"weight": 0.0, "loo": None})}
                   for n, v in logs.items()}
        row = {"device": t, "train_devices": tr, "tau": model.meta["tau"], "blend_rule": model.meta.get("blend_rule", ""),
               "refs": [int(r) for r in refs[:kmax]], "ref_design": design or "fixed",
               "experts": list(model.meta["config"]["experts"]), f"k{kmax}_members": members,
               "choices": [[list(e), t, r] for e, t, r in model.choices()]}
        for k, v in sc.items():
            row[f"k{k}_spearman"], row[f"k{k}_MAPE"] = v["spearman"], v["MAPE"]
            if keep_predictions:
                row[f"k{k}_pred"] = v["pred"]
        if not only_design:  # the same model adapted with the fixed refs instead (comparison)
            ev_f = np.setdiff1d(np.arange(len(lat)), fixed_refs[:kmax])
            row[f"k{kmax}_spearman_fixed_refs"] = spearman(
                model.predict_k(ev_f, fixed_refs[:kmax], y[fixed_refs[:kmax]]), y[ev_f])
        b = _baselines(lat[:, cols], rows_eval, y[rows_eval], refs[:kmax], y[refs[:kmax]], cfg.rank)
        b["hindsight_device"] = tr[b.pop("hindsight_device_index")]
        b["ref_proxy_device"] = tr[b.pop("ref_proxy_index")]
        row.update({f"baseline_{k}": v for k, v in b.items()})
        if keep_predictions:
            row["rows_eval"] = rows_eval
        out.append(row)
    return out


def evaluate_unseen_table(model: FewShotLatencyModel, train_tab, target_ms, target_rows, devices, ref_idx,
                          ks=(0, 1, 5, 10), exclude=(), draws: int = 1, seed: int = 0):
    """Score a table-mode ``model`` on further unseen devices measured on a subset of its rows.

    ``target_ms [M, T]`` (ms, NaN = missing) at model rows ``target_rows [M]``; ``train_tab``: the model's
    training table (for the baselines). ``ref_idx`` (indices into the M rows, first k used for each k):
    an array (fixed refs; rows a device has not measured are skipped), ``"dopt"`` (per device,
    :meth:`FewShotLatencyModel.select_refs` among its measured rows) or ``"random"`` (per device and draw,
    ``max(ks)`` random measured rows; ``draws`` draws from ``seed``, metrics averaged over draws).
    Returns one dict per device."""
    target_ms = np.asarray(target_ms, np.float64)
    target_rows = np.asarray(target_rows, np.int64)
    for d in devices:
        require(d not in model.devices, "unseen device", d, "a device absent from the model's training devices")
    rng = np.random.default_rng(seed)
    out = []
    for j, d in enumerate(devices):
        y = target_ms[:, j]
        ok = np.isfinite(y)
        cand = np.flatnonzero(ok)
        acc: dict[str, list] = {}
        members = []
        for _ in range(draws if isinstance(ref_idx, str) and ref_idx == "random" else 1):
            if isinstance(ref_idx, str) and ref_idx == "random":
                refs_d = rng.choice(cand, size=min(max(ks), len(cand)), replace=False)
            elif isinstance(ref_idx, str) and ref_idx == "dopt":
                refs_d = cand[model.select_refs(target_rows[cand], min(max(ks), len(cand)))]
            else:
                refs_d = np.array([i for i in np.asarray(ref_idx, np.int64) if ok[i]], np.int64)
            kmax = min(max(ks), len(refs_d))
            ev = np.setdiff1d(cand, refs_d[:kmax])
            f_ev = model.features_cache(target_rows[ev])
            sc = _score_k(model, f_ev, y[ev], target_rows[refs_d], y[refs_d], [k for k in ks if k <= kmax],
                          exclude=exclude)
            for k, v in sc.items():
                acc.setdefault(f"k{k}_spearman", []).append(v["spearman"])
                acc.setdefault(f"k{k}_MAPE", []).append(v["MAPE"])
            ad = (sc[kmax]["adapted"] if kmax in sc
                  else model.adapt(target_rows[refs_d[:kmax]], y[refs_d[:kmax]], exclude=exclude))
            members.append(f"{ad.member_weights().get('opcost', {'weight': 0.0})['weight']:.2f}")
            b = _baselines(train_tab, target_rows[ev], y[ev], target_rows[refs_d[:kmax]], y[refs_d[:kmax]],
                           model.a["coef_log"].shape[1] - 1)
            b["hindsight_device"] = model.devices[b.pop("hindsight_device_index")]
            b["ref_proxy_device"] = model.devices[b.pop("ref_proxy_index")]
            if "table_x" in model.a:
                xa = model.features_cache(target_rows[refs_d[:kmax]])["xa"]
                w = model._opcost_fit(xa, y[refs_d[:kmax]], float(model.meta["config"].get("opcost_ridge", 0.1)))
                b["opcost_alone"] = spearman(f_ev["xa"] @ w, y[ev])
            for k, v in b.items():
                acc.setdefault(f"baseline_{k}", []).append(v)
        row = {"device": d, "n_eval": int(len(ev)), "draws": len(members), "members": members}
        for k, v in acc.items():
            row[k] = float(np.mean(v)) if not isinstance(v[0], str) else v[0]
        out.append(row)
    return out


def ridge_columns(x, y, train_rows, alphas=(1.0, 10.0, 100.0, 1000.0)) -> tuple[np.ndarray, list[float]]:
    """Feature-based prediction of every column of ``y [N, C]`` (NaN = missing) at all N rows, fitted
    on ``train_rows`` only: ridge on standardised features, alpha per column by closed-form
    leave-one-out error  e_i = r_i / (1 - H_ii),  H = Z (Z^T Z + alpha I)^-1 Z^T  (intercept unpenalised)."""
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    out, chosen = np.zeros((len(x), y.shape[1])), []
    for c in range(y.shape[1]):
        rows = np.asarray(train_rows)[np.isfinite(y[train_rows, c])]
        require(len(rows) >= 3, "ridge_columns", f"column {c} has {len(rows)} training values", ">= 3")
        mu, sd = x[rows].mean(0), x[rows].std(0)
        sd = np.where(sd > 1e-9, sd, 1.0)
        z = (x - mu) / sd
        yc = y[rows, c] - y[rows, c].mean()
        u, sv, vt = np.linalg.svd(z[rows], full_matrices=False)
        best = None
        for al in alphas:
            shrink = sv / (sv ** 2 + al)
            w = vt.T @ (shrink * (u.T @ yc))
            hdiag = (u ** 2) @ (sv ** 2 / (sv ** 2 + al)) + 1.0 / len(rows)
            loo = np.mean(((yc - z[rows] @ w) / (1 - hdiag)) ** 2)
            if best is None or loo < best[0]:
                best = (loo, al, w)
        out[:, c] = z @ best[2] + y[rows, c].mean()
        chosen.append(float(best[1]))
    return out, chosen


DGL_KSHOT_CANDIDATES = ("table", "acal", "blend")


def _dgl_candidates(model, a_hat, ref, y_ref, rows) -> dict:
    """k-shot predictions (ms) at DGL rows ``rows`` of the candidates chosen between by meta-validation:

    * ``table``: the table-mode few-shot model adapted with the k refs (``ref`` rows, ``y_ref`` ms);
    * ``acal``: DGL's formula with the device constant and an offset fitted on the refs,
      ``L = c * A_hat + b`` (:func:`~nasjax.hardware.dgl.fit_hw_params_from_k`): the k = 0 A model
      calibrated, so its R equals the k = 0 R;
    * ``blend``: the two in log space with weights 1 / e_m^2, e_m = leave-one-out mean squared log error
      of candidate m on the k refs (the rule :meth:`FewShotLatencyModel.adapt` uses for its members).
    """
    from nasjax.hardware import dgl

    def acal(r_fit, at):
        return np.maximum(dgl.fit_hw_params_from_k(a_hat[r_fit], y_ref[np.isin(ref, r_fit)], offset=True)
                          .predict(a_hat[at]), 1e-6)

    out = {"table": model.predict_k(rows, ref, y_ref), "acal": acal(ref, rows)}
    err = {"table": [], "acal": []}
    for i in range(len(ref)):
        keep = np.delete(np.arange(len(ref)), i)
        err["table"].append(float(np.log(model.predict_k(ref[i:i + 1], ref[keep], y_ref[keep])[0] / y_ref[i]) ** 2))
        err["acal"].append(float(np.log(acal(ref[keep], ref[i:i + 1])[0] / y_ref[i]) ** 2))
    inv = {m: 1.0 / max(float(np.mean(e)), 1e-12) ** 2 for m, e in err.items()}
    tot = sum(inv.values())
    out["blend"] = np.exp(sum(inv[m] / tot * np.log(out[m]) for m in inv))
    return out


def _dgl_table(feats, log_tab, names, train_rows, a_col, seed):
    """Table-mode model over DGL training columns predicted at every row by :func:`ridge_columns`
    fitted on ``train_rows`` only, plus the A model's ``a_col`` (log A_hat)."""
    logpred, _ = ridge_columns(feats, log_tab, train_rows)
    return FewShotLatencyModel.train_table(np.exp(np.concatenate([logpred, a_col], 1)), list(names) + ["dgl_A_model"],
                                           FewShotConfig(rank=min(3, len(names)), seed=seed), row_name="dgl_row")


def dgl_kshot_eval(space: str, k: int = 10, n_splits: int = 5, seed: int = 0, *,
                   config: FewShotConfig | None = None, data_path=None, result_path=None, test_frac: float = 0.2,
                   keep_predictions: bool = False, basis: str = "ridge", select: str = "meta") -> list[dict]:
    """k-shot evaluation on DGL's unseen phones with architectures held out (same splits as
    :func:`nasjax.hardware.dgl.dgl_unseen_device_eval`: ``arch_splits(N, n_splits, test_frac, seed)``).

    For each split and target phone, k references are chosen among the *training* archs by
    :meth:`FewShotLatencyModel.select_refs` (D-optimal; no target measurement used to choose them), their
    measured latencies adapt the model, and R / RMSE / MAE (DGL's raw units, ms) are scored on the
    held-out archs next to the authors' shipped predictions on the same archs.

    No HELP data shares DGL's phones' setting closely enough to help (HELP-table models reach R 0.86-0.95
    here, below DGL's own k = 0), and HELP has no FBNetV3 28-gene data at all, so for both spaces, per split
    and target, the training devices are the *other* DGL phones plus ``a.txt`` as a pseudo-device (rows
    flagged by :func:`~nasjax.hardware.dgl.detect_corrupt_rows` left out), on the features
    :func:`~nasjax.hardware.dgl.features`, training archs only:

    * ``basis="ridge"`` (default): each training column's log value is predicted at all archs by
      :func:`ridge_columns`, plus DGL's A model of the split (:func:`~nasjax.hardware.dgl.train_a_model`
      on the training rows of ``a.txt``, the k = 0 model); a table-mode model over those *predicted*
      columns (no measurement of a held-out arch enters) is adapted with the k refs. The prediction is
      one of :data:`DGL_KSHOT_CANDIDATES` (:func:`_dgl_candidates`): ``select="meta"`` (default) picks,
      per split and target, the candidate of highest mean R in a meta-validation that uses neither the
      target phone nor any held-out arch: the training archs are split again (``test_frac``), an A model
      and the ridge columns are fitted on the inner-training archs, each *other* phone in turn is the
      pseudo-target (training columns: the remaining phones + ``a.txt``), with k D-optimal refs among the
      inner-training archs, scored on the inner-held-out archs. ``select`` may also name one candidate.
    * ``basis="net"``: a net-mode model (Flax NNX basis) trained on the training archs' measurements
      (adapted with the k refs; no candidate selection).

    The target phone is never a training device and the held-out archs are never seen.
    """
    from nasjax.hardware import dgl

    require(isinstance(k, (int, np.integer)) and k >= 1, "k", k, "an integer >= 1")
    require(basis in ("ridge", "net"), "basis", basis, "'ridge' or 'net'")
    require(select == "meta" or select in DGL_KSHOT_CANDIDATES, "select", select,
            f"'meta' or one of {DGL_KSHOT_CANDIDATES}")
    data = dgl.load_dgl(space, data_path)
    splits = dgl.arch_splits(len(data.A), n_splits, test_frac, seed)
    theirs = {d: dgl.authors_predictions(space, d, result_path) for d in data.devices}
    per: dict[str, dict[str, list]] = {d: {} for d in data.devices}
    preds: dict[str, list] = {d: [] for d in data.devices}
    chosen: dict[str, list] = {d: [] for d in data.devices}
    cfg = config or FewShotConfig(rank=3, hidden=(32, 32), steps=400, batch=256,
                                  experts=("lowrank", "single", "additive"))
    feats = dgl.features(space, data.archs).astype(np.float32)
    spec = {k2: v for k2, v in dgl.feature_spec(space).items() if k2 != "names"}
    A_col = np.where(data.corrupt, np.nan, data.A)
    log_all = np.log(np.stack([data.latency[o] for o in data.devices] + [A_col], 1))  # phones..., a.txt
    col = {name: j for j, name in enumerate(list(data.devices) + ["a.txt"])}
    for s, (tr, te) in enumerate(splits):
        s_seed = seed * 1000 + s
        if basis == "ridge":  # DGL's A model of this split (same seed as dgl_unseen_device_eval): one more column
            a_model = dgl.train_a_model(space, data.archs[tr], data.A[tr], seed=s_seed)
            a_hat = np.maximum(a_model.predict_A(data.archs), 1e-9)
            if select == "meta":  # inner split of the training archs, inner A model
                i_tr, i_te = dgl.arch_splits(len(tr), 1, test_frac, s_seed + 7919)[0]
                tr1, tr2 = tr[i_tr], tr[i_te]
                a_in = np.maximum(dgl.train_a_model(space, data.archs[tr1], data.A[tr1], seed=s_seed).predict_A(data.archs), 1e-9)
        for d in data.devices:
            others = [o for o in data.devices if o != d]
            if basis == "ridge":
                names = others + ["a.txt"]
                model = _dgl_table(feats, log_all[:, [col[n] for n in names]], names, tr, np.log(a_hat)[:, None], s_seed)
                ref = tr[model.select_refs(tr, k)]
                cands = _dgl_candidates(model, a_hat, ref, data.latency[d][ref], te)
                pick = select
                if select == "meta":
                    score = {m: [] for m in DGL_KSHOT_CANDIDATES}
                    for o in others:
                        nm = [n for n in names if n != o]
                        m_in = _dgl_table(feats, log_all[:, [col[n] for n in nm]], nm, tr1, np.log(a_in)[:, None], s_seed)
                        r_in = tr1[m_in.select_refs(tr1, k)]
                        c_in = _dgl_candidates(m_in, a_in, r_in, data.latency[o][r_in], tr2)
                        for m, p in c_in.items():
                            score[m].append(pearson(p, data.latency[o][tr2]))
                    pick = max(DGL_KSHOT_CANDIDATES, key=lambda m: float(np.mean(score[m])))
                chosen[d].append(pick)
                pred = cands[pick]
                for m, p in cands.items():  # every candidate's held-out R, for the record (not used to choose)
                    per[d].setdefault(f"candidate_{m}_heldout_R", []).append(pearson(p, data.latency[d][te]))
            else:
                model = FewShotLatencyModel.train(feats[tr], np.exp(log_all[tr][:, [col[n] for n in others + ["a.txt"]]]),
                                                  others + ["a.txt"], spec, FewShotConfig(**{**asdict(cfg), "seed": s_seed}))
                ref = tr[model.select_refs(feats[tr], k)]
                pred = model.predict_k(feats[te], feats[ref], data.latency[d][ref])
                chosen[d].append("net")
            require(d not in model.devices, "training devices", model.devices, f"without the target {d!r}")
            true = data.latency[d][te]
            for name, p in (("ours", pred), ("theirs", theirs[d][te])):
                for m, v in dgl.regression_metrics(true, p).items():
                    per[d].setdefault(f"{name}_heldout_{m}", []).append(v)
            if keep_predictions:
                preds[d].append((te, pred))
    rows = []
    for d in data.devices:
        row = {"space": space, "device": d, "k": int(k), "n_splits": n_splits, "unit": dgl.LATENCY_UNIT, "basis": basis,
               "select": select, "chosen": chosen[d]}
        row.update({m: float(np.mean(v)) for m, v in per[d].items()})
        row["ours_R_min"] = float(np.min(per[d]["ours_heldout_R"]))
        row.update({f"theirs_all_{m}": v for m, v in dgl.regression_metrics(data.latency[d], theirs[d]).items()})
        row["published_R"] = dgl.PUBLISHED_R[space].get(d)
        if keep_predictions:
            row["predictions"] = preds[d]
        rows.append(row)
    return rows
