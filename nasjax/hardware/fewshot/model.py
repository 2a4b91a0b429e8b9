"""The few-shot device-generic latency model: a device is described by its latency on k reference architectures.

Follows the setting of HELP (Lee et al., NeurIPS 2021: a hardware embedding = measured latency of 10
reference architectures) with a different learner: a multi-device basis plus closed-form Bayesian
adaptation and a leave-one-out blend, so that k = 0, 1, 5, 10 are one model. All in log-milliseconds,
``y = log L``:

1. Basis ``g(x) = [1, phi(x)]`` and per-device embeddings ``c'_d`` with ``y_d(x) ~= c'_d . g(x)``:

   * net mode (:meth:`FewShotLatencyModel.train`): ``phi`` is the NNX basis net of :mod:`.basis_net`
     (per-device standardisation ``(mu_d, s_d)``; ``c'_d = [mu_d + s_d c_d0, s_d c_d1..r]``);
   * table mode (:meth:`FewShotLatencyModel.train_table`, spaces whose every architecture is measured on
     the training devices): ``phi`` = the top-r left singular vectors (times singular values / sqrt N) of
     the standardised log latency table, and ``y^_d(x)`` = the measured log latency.

2. A new device from k references: the expert average (:mod:`.experts`) and, for k >= 5, the members of
   :mod:`.members` blended by leave-one-out error. The noise levels ``s2_m`` are the median training
   residual variances (low-rank fit, additive fits, best affine map from another device).

3. Meta-validation (:mod:`.meta`) chooses the candidates (experts, tau, blend rule) and the reference
   design on the training devices only; the model predicts with the average of the ``meta_top`` best.

Model files (:mod:`.model_file`) hold the arrays, the config and the candidates as JSON; nothing is pickled.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from nasjax.errors import NasjaxInputError, require
from nasjax.hardware.fewshot.basis_net import train_net
from nasjax.hardware.fewshot.bayes import greedy_design, thin_svd
from nasjax.hardware.fewshot.config import Candidate, DOptimalRefs, FewShotConfig
from nasjax.hardware.fewshot.members import BLEND_MIN_REFS, ExpertAverage, blend_logs, loo_error
from nasjax.hardware.fewshot.meta import meta_calibrate
from nasjax.hardware.fewshot.model_file import load_model, save_model

#: ridge added to the prior covariance of the additive-in-ms member's per-op costs
ADDITIVE_MS_JITTER = 1e-4


def check_latency(lat, field_name: str, allow_nan: bool) -> np.ndarray:
    """Latencies in ms: positive, finite (NaN allowed as 'not measured' with ``allow_nan``).

    Args:
      lat: latencies in ms, any shape.
      field_name: the name of the checked input, first in error messages.
      allow_nan: whether NaN (not measured) entries are admitted.

    Returns:
      ``lat`` as float64, same shape.

    Raises:
      NasjaxInputError: on an infinite entry, a NaN entry without ``allow_nan``, or a value <= 0.
    """
    a = np.asarray(lat, dtype=np.float64)
    finite = a[np.isfinite(a)]
    if (not allow_nan and finite.size != a.size) or np.isinf(a).any():
        raise NasjaxInputError(f"{field_name}: contains NaN/inf, expected finite latencies in ms")
    if finite.size and finite.min() <= 0:
        raise NasjaxInputError(f"{field_name}: min {finite.min()!r}, expected positive latencies in ms")
    return a


def check_features(x, n_features: int, field_name: str = "features") -> np.ndarray:
    """Architecture features as float32 ``[N, F]`` (one row ``[F]`` becomes ``[1, F]``), checked.

    Args:
      x: features ``[F]`` or ``[N, F]``.
      n_features: the expected width ``F``.
      field_name: the name of the checked input, first in error messages.

    Returns:
      float32 ``[N, F]``.

    Raises:
      NasjaxInputError: on another shape or a NaN/inf entry.
    """
    a = np.asarray(x, dtype=np.float32)
    if a.ndim == 1:
        a = a[None]
    if a.ndim != 2 or a.shape[1] != n_features:
        raise NasjaxInputError(f"{field_name}: shape {a.shape}, expected [N, {n_features}] architecture features")
    if not np.all(np.isfinite(a)):
        raise NasjaxInputError(f"{field_name}: contains NaN/inf, expected finite features")
    return a


@dataclass
class Adapted:
    """A target device's embedding: each member's fit on the k refs (the expert average's: its experts and
    their averaging weights), the blend weights and leave-one-out errors (k >= 5), and the other candidates'
    adaptations (``ensemble``, ``meta_top`` > 1)."""

    k: int
    members: dict  # name -> member object
    fits: dict  # name -> fit
    blend: dict | None = None
    loo: dict | None = None
    ensemble: list = field(default_factory=list, repr=False)

    @property
    def weights(self) -> dict:
        """The expert average's weight of each expert."""
        return self.fits[ExpertAverage.name].weight_of

    @property
    def coefs(self) -> dict:
        """``{expert name: posterior mean coefficients}`` of the expert average's components."""
        return {c.name: c.coef for c in self.fits[ExpertAverage.name].components}

    def member_weights(self) -> dict:
        """Each member's blend weight and leave-one-out error, averaged over the adapted candidates
        (the expert average alone, ``loo`` None, when k < 5)."""
        cands = (self, *self.ensemble)
        alone = {ExpertAverage.name: 1.0}
        names = sorted({n for a in cands for n in (a.blend or alone)})
        out = {}
        for n in names:
            loo = [a.loo[n] for a in cands if a.loo and n in a.loo]
            out[n] = {"weight": float(np.mean([(a.blend or alone).get(n, 0.0) for a in cands])),
                      "loo": float(np.mean(loo)) if loo else None}
        return out


class FewShotLatencyModel:
    """Multi-device basis + Bayesian k-shot adaptation (the module docstring has the math).

    Build with :meth:`train` / :meth:`train_table`; adapt with :meth:`adapt` (k reference features + their
    measured ms); predict with :meth:`predict` (ms). ``feature_spec`` (a JSON dict naming the encoding and
    its length) travels with the model file.

    Args:
      net: the trained basis net (net mode), or ``None`` (table mode).
      arrays: the model's arrays (basis, priors, noise levels, normalisers).
      meta: the devices, feature spec, unit and mode.
      config: the :class:`~nasjax.hardware.fewshot.config.FewShotConfig`.
      candidates: the meta-validated candidates, best first (default one candidate: the config's experts,
        ``tau = 1``).
      ref_design: the reference design (default the config's first candidate design).
    """

    def __init__(self, net, arrays: dict, meta: dict, config: FewShotConfig, candidates=None, ref_design=None):
        self.net = net
        self.arrays = arrays
        self.meta = meta
        self.config = config
        self.candidates = list(candidates) if candidates else [Candidate(config.experts, 1.0)]
        self.ref_design = ref_design if ref_design is not None else config.candidate_designs()[0]
        self._basis_fn = None

    # ---- construction ----------------------------------------------------------------------------
    @classmethod
    def train(cls, features, latency_ms, devices, feature_spec: dict, config: FewShotConfig | None = None,
              calibrate: bool = True) -> FewShotLatencyModel:
        """Net mode: fit on ``latency_ms [N, D]`` (ms, NaN = unmeasured) of ``devices`` at ``features [N, F]``.

        Trains the NNX basis net on the standardised log latency, derives the expert priors and noise levels, and
        (with ``calibrate`` and more than 2 devices) meta-validates the candidates (:meth:`meta_calibrate`).

        Args:
          features: architecture features ``[N, F]`` (standardised inside the model).
          latency_ms: ``[N, D]`` latencies in ms, NaN where not measured, at least 3 values per device.
          devices: the ``D`` distinct device names.
          feature_spec: a JSON dict naming the encoding, with ``length == F``; stored in the model file.
          config: the settings (default :class:`~nasjax.hardware.fewshot.config.FewShotConfig`).
          calibrate: run the meta-validation on the training devices.

        Returns:
          The trained :class:`FewShotLatencyModel`.

        Raises:
          NasjaxInputError: on non-positive or infinite latencies, shapes that disagree, repeated device names, a
            ``feature_spec`` of another length or a device with fewer than 3 measurements.
        """
        cfg = config or FewShotConfig()
        lat = check_latency(latency_ms, "latency_ms", allow_nan=True)
        require(lat.ndim == 2, "latency_ms", lat.shape, "[N architectures, D devices]")
        x = check_features(features, np.asarray(features).shape[-1])
        require(x.shape[0] == lat.shape[0], "features", x.shape, f"{lat.shape[0]} rows like latency_ms")
        devices = cls._check_devices(devices, lat)
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
        net, val_loss = train_net(x, (y - mu) / sd, cfg)
        heads = np.asarray(net.heads[...], np.float64)
        coef_log = heads * sd[:, None]
        coef_log[:, 0] += mu
        g = np.asarray(net.basis(x), np.float64)
        model = cls._assemble(net, {"x_mean": x_mean, "x_sd": x_sd}, y, g, coef_log, g @ coef_log.T, x, devices,
                              feature_spec, cfg, {"mode": "net", "val_loss": float(val_loss)})
        if calibrate and len(devices) > 2:
            model.meta_calibrate(np.asarray(features, np.float32), lat)
        return model

    @classmethod
    def train_table(cls, latency_ms, devices, config: FewShotConfig | None = None, row_name: str = "row",
                    calibrate: bool = True, arch_features=None, additive_features=None) -> FewShotLatencyModel:
        """Table mode, for spaces whose every architecture is measured on the training devices.

        E.g. NAS-Bench-201 on HELP's 27 devices: the basis is the rank-r SVD of the standardised log latency
        table ``[N, D]`` and the device experts use the *measured* latencies. Features are row ids.

        Args:
          latency_ms: ``[N, D]`` latencies in ms, ``D >= 2``, no NaN.
          devices: the ``D`` distinct device names.
          config: the settings (default :class:`~nasjax.hardware.fewshot.config.FewShotConfig`).
          row_name: the name of the row ids (e.g. the NAS-Bench-201 index), recorded in the feature spec.
          calibrate: run the meta-validation on the training devices (with more than 2 devices).
          arch_features: ``[N, F]`` finite features (e.g. op counts) enabling the additive log-latency
            expert/member and the per-op cost member.
          additive_features: ``[N, F']`` finite features (e.g. one-hot ops) enabling the additive-in-ms member.

        Returns:
          The trained :class:`FewShotLatencyModel`.

        Raises:
          NasjaxInputError: on NaN, infinite or non-positive latencies, fewer than 2 devices, repeated device names,
            feature arrays of another row count, or an additive expert/member without ``arch_features``.
        """
        cfg = config or FewShotConfig()
        lat = check_latency(latency_ms, "latency_ms", allow_nan=False)
        require(lat.ndim == 2 and lat.shape[1] >= 2, "latency_ms", lat.shape,
                "[N architectures, D >= 2 devices], no NaN")
        require(not cfg.uses_additive_prior() or arch_features is not None, "config.experts", cfg.experts,
                "no additive log-latency expert or member in table mode without arch_features")
        devices = cls._check_devices(devices, lat)
        y = np.log(lat)
        n = len(y)
        mu, sd = y.mean(0), y.std(0) + 1e-6
        u, sv, vt = thin_svd((y - mu) / sd)
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
            arrays["additive_ms_m"] = b.mean(0)
            arrays["additive_ms_S"] = np.cov(b.T) + ADDITIVE_MS_JITTER * np.eye(xd.shape[1])
            # floor: exactly additive training devices must not give zero noise
            arrays["additive_ms_s2"] = np.array([max(float(np.median(np.mean((scaled - xd @ b.T) ** 2, 0))), 1e-8)])
            arrays["additive_ms_mean"] = lat.mean(0)
        model = cls._assemble(None, arrays, y, g, coef_log, y, xf, devices, spec, cfg, {"mode": "table"})
        if calibrate and len(devices) > 2:
            model.meta_calibrate(np.arange(n)[:, None], lat)
        return model

    @staticmethod
    def _check_devices(devices, lat) -> list[str]:
        devices = [str(d) for d in devices]
        require(len(devices) == lat.shape[1] and len(set(devices)) == len(devices), "devices", devices,
                f"{lat.shape[1]} distinct names")
        return devices

    @classmethod
    def _assemble(cls, net, arrays, y, g, coef_log, yhat, x, devices, feature_spec, cfg, meta_extra):
        """Expert priors and noise levels from the training fit (shared by both modes)."""
        arrays = dict(arrays)
        arrays.update({"coef_log": coef_log, "ybar": np.nanmean(yhat, 0)})
        arrays["lr_m"] = coef_log.mean(0)
        arrays["lr_S"] = np.cov(coef_log.T) + 1e-4 * np.eye(cfg.rank + 1) if len(devices) > 1 else np.eye(cfg.rank + 1)
        res_lr = np.nanmean((y - g @ coef_log.T) ** 2, 0)
        if x is not None and cfg.uses_additive_prior():
            xa = np.concatenate([np.ones((len(x), 1)), x.astype(np.float64)], 1)
            betas, res_add = [], []
            for j in range(len(devices)):
                ok = np.isfinite(y[:, j])
                reg = cfg.additive_ridge * np.eye(xa.shape[1])
                reg[0, 0] = 0.0
                b = np.linalg.solve(xa[ok].T @ xa[ok] + reg, xa[ok].T @ y[ok, j])
                betas.append(b)
                res_add.append(np.mean((y[ok, j] - xa[ok] @ b) ** 2))
            betas = np.array(betas)
            arrays["add_m"] = betas.mean(0)
            arrays["add_S"] = (np.cov(betas.T) if len(devices) > 1 else 0.0) + 0.01 * np.eye(xa.shape[1])
            arrays["s2_additive"] = np.array([np.maximum(np.median(res_add), 1e-6)])
        # device experts: residual variance of the best affine map from another device
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
        # floor: an exact fit (few devices, full rank) must not give zero noise
        arrays["s2_low_rank"] = np.array([np.maximum(np.median(res_lr), 1e-6)])
        s2_device = np.median(res_single) if len(devices) > 1 else np.median(res_lr)
        arrays["s2_device"] = np.array([np.maximum(s2_device, 1e-6)])
        mu_dev = coef_log[:, 0]
        arrays["single_prior"] = np.array([mu_dev.mean(), mu_dev.var() + 1e-3, 0.25])
        meta = {"devices": list(devices), "feature_spec": dict(feature_spec), "unit": "ms",
                "math": "log L_d(x) = c'_d . [1, phi(x)]; new device: Bayesian model averaging of linear experts"}
        meta.update(meta_extra)
        return cls(net, arrays, meta, cfg)

    def meta_calibrate(self, x, lat) -> None:
        """Choose the candidates and the reference design by meta-validation on the training devices.

        See :func:`nasjax.hardware.fewshot.meta.meta_calibrate`; sets ``candidates`` and ``ref_design``.

        Args:
          x: the training architectures' features (net mode ``[N, F]``) or row ids (table mode ``[N, 1]``).
          lat: ``[N, D]`` their latencies on the training devices, ms.
        """
        meta_calibrate(self, x, lat)

    # ---- properties ------------------------------------------------------------------------------
    @property
    def devices(self) -> list[str]:
        """The training devices' names, in column order."""
        return list(self.meta["devices"])

    @property
    def n_features(self) -> int:
        """The input width of the model's features (``feature_spec["length"]``; 1 in table mode: the row id)."""
        return int(self.meta["feature_spec"]["length"])

    def choices(self) -> list[Candidate]:
        """The meta-validated candidates this model predicts with, best first (their log predictions are
        averaged)."""
        return list(self.candidates)

    # ---- features of query archs -----------------------------------------------------------------
    def features_cache(self, x) -> dict:
        """Everything the experts and members need at architectures ``x``.

        Args:
          x: features ``[N, F]`` (net mode) or integer row ids ``[N]`` / ``[N, 1]`` (table mode).

        Returns:
          ``{"g": [N, r + 1] basis, "xa": [N, F + 1] = [1, x], "yhat": [N, D] per-device log predictions}`` and, in
          table mode with additive features, ``"xadd": [N, F' + 1]``.

        Raises:
          NasjaxInputError: on features of another width or non-finite ones, or row ids that are not integers in
            ``[0, rows)``.
        """
        if self.meta.get("mode") == "table":
            rows = np.asarray(x)
            rows = rows.reshape(-1) if rows.ndim == 2 and rows.shape[1] == 1 else rows
            n = int(self.meta["feature_spec"]["rows"])
            if rows.ndim != 1 or rows.dtype.kind not in "iu" or (rows.size and (rows.min() < 0 or rows.max() >= n)):
                raise NasjaxInputError(f"features: got shape {rows.shape} dtype {rows.dtype}, expected integer "
                                       f"{self.meta['feature_spec']['name']} ids in [0, {n})")
            xa = np.ones((len(rows), 1))
            if "table_x" in self.arrays:
                xa = np.concatenate([xa, self.arrays["table_x"][rows]], 1)
            f = {"g": self.arrays["table_g"][rows], "xa": xa, "yhat": self.arrays["table_y"][rows]}
            if "table_xadd" in self.arrays:
                f["xadd"] = np.concatenate([np.ones((len(rows), 1)), self.arrays["table_xadd"][rows]], 1)
            return f
        x = check_features(x, self.n_features)
        x = ((x - self.arrays["x_mean"]) / self.arrays["x_sd"]).astype(np.float32)
        g = np.asarray(self._basis(x), np.float64)
        return {"g": g, "xa": np.concatenate([np.ones((len(x), 1)), x.astype(np.float64)], 1),
                "yhat": g @ self.arrays["coef_log"].T}

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
    def adapt(self, ref_features=None, ref_latency_ms=None, exclude=(), feats=None, candidates=None) -> Adapted:
        """Device embedding from k reference measurements (k = 0: pass nothing).

        One adaptation per candidate (default :meth:`choices`); the first is returned, the others in its
        ``ensemble``.

        Args:
          ref_features: the k references' features or row ids, or ``None`` for k = 0.
          ref_latency_ms: ``[k]`` their measured latencies in ms, or ``None`` for k = 0.
          exclude: training device names removed from the device experts and members (e.g. a twin of the target).
          feats: the refs' :meth:`features_cache`, when already computed.
          candidates: the candidates to adapt, default the model's meta-validated ones.

        Returns:
          The :class:`Adapted` device.

        Raises:
          NasjaxInputError: on non-positive or non-finite reference latencies, a row count unlike
            ``ref_latency_ms``, or an ``exclude`` name that is not a training device.
        """
        if ref_features is None or ref_latency_ms is None or len(np.atleast_1d(ref_latency_ms)) == 0:
            yr = np.zeros(0)
            f = {"g": np.zeros((0, self.arrays["coef_log"].shape[1])), "xa": np.zeros((0, self.n_features + 1)),
                 "yhat": np.zeros((0, len(self.devices)))}
            if "table_xadd" in self.arrays:
                f["xadd"] = np.zeros((0, self.arrays["table_xadd"].shape[1] + 1))
        else:
            yr = np.log(check_latency(np.atleast_1d(ref_latency_ms), "ref_latency_ms", allow_nan=False))
            f = feats if feats is not None else self.features_cache(ref_features)
            require(len(f["g"]) == len(yr), "ref_features", len(f["g"]), f"{len(yr)} rows like ref_latency_ms")
        for e in exclude:
            require(e in self.devices, "exclude", e, f"one of {self.devices}")
        ads = [self._adapt_candidate(f, yr, exclude, c) for c in (candidates or self.candidates)]
        ads[0].ensemble = ads[1:]
        return ads[0]

    def _adapt_candidate(self, f, yr, exclude, cand: Candidate) -> Adapted:
        avg = cand.expert_average
        members, fits = {avg.name: avg}, {avg.name: avg.fit(self, f, yr, exclude)}
        ad = Adapted(len(yr), members, fits)
        if len(yr) >= BLEND_MIN_REFS:
            for m in self.config.members:
                if m.available(self):
                    fit = m.fit(self, f, yr, exclude, cand.tau)
                    if fit is not None:
                        members[m.name], fits[m.name] = m, fit
            # leave-one-out mean squared log error of each member on the k references themselves
            ad.loo = {n: loo_error(m, self, f, yr, exclude, None if m is avg else cand.tau) for n, m in members.items()}
            ad.blend = cand.rule.weights(ad.loo)
        return ad

    def member_logs(self, ad: Adapted, f: dict) -> dict:
        """Each member's log-ms prediction at features ``f``, averaged over the adapted candidates.

        Args:
          ad: the adapted device (:meth:`adapt`).
          f: the :meth:`features_cache` of the architectures to predict.

        Returns:
          ``{member name: [N] log-ms prediction}``.
        """
        if not ad.ensemble:
            return self._member_logs_one(ad, f)
        each = [self._member_logs_one(a, f) for a in (ad, *ad.ensemble)]
        return {n: np.mean([e[n] for e in each if n in e], 0) for n in each[0]}

    def _member_logs_one(self, ad: Adapted, f: dict) -> dict:
        return {n: ad.members[n].predict_log(self, fit, f) for n, fit in ad.fits.items()}

    def predict_log(self, ad: Adapted, f: dict) -> np.ndarray:
        """Log-ms prediction at features ``f``: each candidate's blend of its members, averaged over the candidates.

        Args:
          ad: the adapted device (:meth:`adapt`).
          f: the :meth:`features_cache` of the architectures to predict.

        Returns:
          ``[N]`` predicted log latency (log ms).
        """
        out = [blend_logs(self._member_logs_one(a, f), a.blend) for a in (ad, *ad.ensemble)]
        return out[0] if len(out) == 1 else np.mean(out, 0)

    def predict(self, features, adapted: Adapted) -> np.ndarray:
        """Predicted latency (ms) of architectures ``features [N, F]`` on the adapted device.

        L(x) = exp(predict_log(x))

        Args:
          features: features ``[N, F]`` (net mode) or row ids (table mode) of the architectures.
          adapted: the adapted device (:meth:`adapt`).

        Returns:
          float64 ``[N]`` latencies in ms.

        Raises:
          NasjaxInputError: on bad features, or a prediction that overflows.
        """
        with np.errstate(over="ignore"):
            out = np.exp(self.predict_log(adapted, self.features_cache(features)))
        if not np.all(np.isfinite(out)):
            raise NasjaxInputError(f"predicted latency: {int((~np.isfinite(out)).sum())} of {out.size} predictions "
                                   "overflow; expected references and architectures like the training data")
        return out

    def predict_k(self, features, ref_features=None, ref_latency_ms=None, exclude=()) -> np.ndarray:
        """Adapt to a device from k references and predict: :meth:`predict` after :meth:`adapt`.

        Args:
          features: the architectures to predict (features or row ids).
          ref_features: the k references' features or row ids, or ``None`` for k = 0.
          ref_latency_ms: ``[k]`` their measured latencies in ms, or ``None``.
          exclude: training device names removed from the device experts and members.

        Returns:
          float64 ``[N]`` latencies in ms.

        Raises:
          NasjaxInputError: as :meth:`adapt` and :meth:`predict`.
        """
        return self.predict(features, self.adapt(ref_features, ref_latency_ms, exclude=exclude))

    def predict_training_device(self, features, device: str) -> np.ndarray:
        """The basis's fit of a training device (ms).

        L_d(x) = exp(yhat_d(x))

        Args:
          features: the architectures (features or row ids).
          device: a training device name.

        Returns:
          float64 ``[N]`` latencies in ms (in table mode the measured ones).

        Raises:
          NasjaxInputError: when ``device`` is not a training device, or on bad features.
        """
        require(device in self.devices, "device", device, f"one of {self.devices}")
        return np.exp(self.features_cache(features)["yhat"][:, self.devices.index(device)])

    def select_refs(self, candidate_features, k: int, design: DOptimalRefs = DOptimalRefs()) -> np.ndarray:
        """Greedy Bayesian D-optimal choice of k reference rows among candidates (no target measurement used).

        Uses :func:`~nasjax.hardware.fewshot.bayes.greedy_design` on the prior named by ``design`` (the low-rank
        basis ``g`` or, for ``prior="additive_ms"``, ``xadd``); the first k' rows are the design for k'.

        Args:
          candidate_features: the candidate architectures (features or row ids).
          k: the number of references, ``0..len(candidates)``.
          design: the :class:`~nasjax.hardware.fewshot.config.DOptimalRefs` design (prior and noise scale).

        Returns:
          int64 ``[k]`` indices into the candidates, in choice order.

        Raises:
          NasjaxInputError: on a negative or too large ``k``, a design that is not ``DOptimalRefs``, or an
            ``additive_ms`` prior on a model trained without additive features.
        """
        require(isinstance(k, (int, np.integer)) and k >= 0, "k", k, "a non-negative integer")
        require(isinstance(design, DOptimalRefs), "reference design", design,
                "DOptimalRefs(...) (a fixed design has no choice to make)")
        f = self.features_cache(candidate_features)
        require(k <= len(f["g"]), "k", k, f"<= {len(f['g'])} candidate architectures")
        if design.prior == "additive_ms":
            require("additive_ms_S" in self.arrays, "reference design", design,
                    "a model trained with additive_features")
            s2 = float(self.arrays["additive_ms_s2"][0]) * design.noise_scale
            return greedy_design(f["xadd"], self.arrays["additive_ms_S"], s2, k)
        return greedy_design(f["g"], self.arrays["lr_S"], float(self.arrays["s2_low_rank"][0]) * design.noise_scale, k)

    # ---- I/O -------------------------------------------------------------------------------------
    def save(self, path) -> dict:
        """Write the model file (:mod:`~nasjax.hardware.fewshot.model_file`); returns the header written.

        Args:
          path: the ``.npz`` model file to write (atomically).

        Returns:
          The header written.
        """
        return save_model(self, path)

    @classmethod
    def load(cls, path) -> FewShotLatencyModel:
        """Read a model file (:mod:`~nasjax.hardware.fewshot.model_file`: version, header and arrays checked).

        Args:
          path: a model file written by :meth:`save`.

        Returns:
          The :class:`FewShotLatencyModel`.

        Raises:
          NasjaxInputError: when the file is missing, of another kind or version, or its header or arrays are
            malformed.
        """
        return load_model(path, cls)
