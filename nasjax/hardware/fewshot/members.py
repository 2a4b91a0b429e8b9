"""The blend members of the few-shot latency model and how they are blended (log-milliseconds, y = log L).

Every member has one interface: ``fit(model, f, y, exclude, tau)`` on the k references (features ``f``
from ``model.features_cache``, log latencies ``y``; ``None`` when it cannot be fitted), ``predict_log(model,
fit, f)``, and :func:`loo_error`, its leave-one-out mean squared log error on the references
``e_m = 1/k sum_i (y^_{m,-i}(x_i) - y_i)^2``. Members:

* :class:`ExpertAverage` (``expert_average``): the Bayesian model average of the experts
  (:mod:`~nasjax.hardware.fewshot.experts`) at noise scale ``tau`` (``"auto"``: per target, the value of
  ``tau_grid`` of highest evidence of its own refs);
* :class:`DeviceMixMember` (``device_mix``): ``L(x) ~= b + sum_d v_d L^_d(x)``, ``b, v >= 0`` (nonnegative
  least squares on the refs, in ms);
* :class:`OpCostMember` (``op_cost``, table mode with ``arch_features``, e.g. NAS-Bench-201 live-edge op
  counts): ``L(x) ~= [1, counts(x)] . w``, ridge ``ridge`` on the refs, in ms: the per-op cost model that
  carries over to devices unlike any training device;
* :class:`AdditiveLogMember` (``additive_log``, with arch features): the additive expert alone, ``log L(x) ~=
  w . [1, x]`` with the training devices' prior, noise ``tau s2`` (tau = 1 when tau is ``"auto"``);
* :class:`AdditiveMsMember` (``additive_ms``, table mode with ``additive_features``, e.g. one-hot edge/block
  ops): an additive model of the latency itself, ``L(x) / s ~= w . [1, x]``, ``w ~ N(m, S)`` from the
  training devices' least-squares fits of ``L_d / mean_x L_d``, noise ``tau x`` their median residual
  variance; the device's scale ``s = mean(refs) / r`` with ``r = mean_d [mean_refs L_d / mean_x L_d]``
  correcting for the refs being faster or slower than average.

:class:`InverseErrorBlend` blends members with weights ``w_m ~ 1 / e_m^power`` over the members it names
(all when it names none); with k < :data:`BLEND_MIN_REFS` the expert average is used alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from nasjax.errors import require
from nasjax.hardware.fewshot.bayes import blr
from nasjax.hardware.fewshot.experts import expert_average_log, mixture

#: the members are blended from this many references on (below, the expert average alone)
BLEND_MIN_REFS = 5


def take(f: dict, rows) -> dict:
    """The rows ``rows`` of every entry of a feature cache.

    Args:
      f: a feature cache ``{name: array [N, ...]}``.
      rows: row indices (or a bool mask).

    Returns:
      ``{name: array[rows]}``.
    """
    return {k: v[rows] for k, v in f.items()}


def _fixed_tau(tau) -> float:
    return float(tau) if tau != "auto" else 1.0


def _kept(model, exclude) -> np.ndarray:
    return np.array([j for j, d in enumerate(model.devices) if d not in set(exclude)], dtype=np.int64)


@dataclass(frozen=True)
class ExpertAverage:
    """The evidence-weighted average of ``experts`` at noise scale ``tau`` (a candidate's first member)."""

    experts: tuple
    tau: float | str = 1.0
    name: ClassVar[str] = "expert_average"

    def available(self, model) -> bool:
        """Whether the member can be used with ``model``.

        Args:
          model: the :class:`~nasjax.hardware.fewshot.model.FewShotLatencyModel` (its arrays, devices, config).

        Returns:
          Always True: the experts need only the multi-device basis.
        """
        return True

    def fit(self, model, f, yr, exclude, tau=None):
        """The experts' mixture fitted on the references (per-target best ``tau`` of the grid when ``"auto"``).

        Args:
          model: the :class:`~nasjax.hardware.fewshot.model.FewShotLatencyModel` (its arrays, devices, config).
          f: the references' feature cache (``take`` of ``model.features_cache``: ``g``, ``xa``, ``yhat``, ...).
          yr: ``[k]`` the references' measured log latency (log ms).
          exclude: training device names left out of the device experts.
          tau: the noise scale, ``"auto"`` or a positive float; ``None`` uses the member's own ``tau``.

        Returns:
          :class:`~nasjax.hardware.fewshot.experts.ExpertAverageFit`.

        Raises:
          NasjaxInputError: when ``tau`` is neither ``"auto"`` nor a positive number.
        """
        tau = self.tau if tau is None else tau
        require(tau == "auto" or (isinstance(tau, (int, float)) and tau > 0), "tau", tau, "'auto' or a positive float")
        if tau != "auto":
            return mixture(model.arrays, model.devices, f, yr, float(tau), exclude, self.experts)
        best = None  # empirical Bayes per target: the tau of highest total evidence of its k refs
        for t in model.config.tau_grid:
            cand = mixture(model.arrays, model.devices, f, yr, float(t), exclude, self.experts)
            if best is None or cand.log_evidence > best.log_evidence:
                best = cand
        return best

    def predict_log(self, model, fit, f):
        """The averaged experts' log-ms prediction.

        Args:
          model: the :class:`~nasjax.hardware.fewshot.model.FewShotLatencyModel` (its arrays, devices, config).
          fit: the result of :meth:`fit`.
          f: the feature cache of the architectures to predict.

        Returns:
          ``[N]`` predicted log latency (log ms).
        """
        return expert_average_log(model.arrays, len(model.devices), fit, f)


@dataclass(frozen=True)
class DeviceMixMember:
    """Nonnegative mixture of the training devices' latencies (ms): ``L = b + sum_d v_d L^_d``."""

    name: ClassVar[str] = "device_mix"

    def available(self, model) -> bool:
        """Whether the member can be used with ``model``.

        Args:
          model: the :class:`~nasjax.hardware.fewshot.model.FewShotLatencyModel` (its arrays, devices, config).

        Returns:
          Always True: it needs only the training devices' predictions.
        """
        return True

    def fit(self, model, f, yr, exclude, tau):
        """Nonnegative least squares of the references' latency (ms) on the kept devices' predictions.

        L(x) ~= b + sum_d v_d exp(yhat_d(x)),  b, v >= 0

        Args:
          model: the :class:`~nasjax.hardware.fewshot.model.FewShotLatencyModel` (its arrays, devices, config).
          f: the references' feature cache (``take`` of ``model.features_cache``: ``g``, ``xa``, ``yhat``, ...).
          yr: ``[k]`` the references' measured log latency (log ms).
          exclude: training device names the member may not use.
          tau: the noise scale (unused).

        Returns:
          ``[1 + D]``: the intercept ``b`` and a weight ``v_d`` per training device (0 for excluded ones); ``None``
          with fewer than 2 references or when every weight is 0.
        """
        if len(yr) < 2:
            return None
        from scipy.optimize import nnls

        keep = _kept(model, exclude)
        hm = np.concatenate([np.ones((len(yr), 1)), np.exp(f["yhat"][:, keep])], 1)
        w, _ = nnls(hm, np.exp(yr))
        nn = np.zeros(len(model.devices) + 1)
        nn[0] = w[0]
        nn[1 + keep] = w[1:]
        return nn if nn[1:].any() else None

    def predict_log(self, model, fit, f):
        """The mixture's log-ms prediction (latency floored at 1e-6 ms).

        Args:
          model: the :class:`~nasjax.hardware.fewshot.model.FewShotLatencyModel` (its arrays, devices, config).
          fit: the result of :meth:`fit`.
          f: the feature cache of the architectures to predict.

        Returns:
          ``[N]`` predicted log latency (log ms).
        """
        return np.log(np.maximum(fit[0] + np.exp(f["yhat"]) @ fit[1:], 1e-6))


@dataclass(frozen=True)
class OpCostMember:
    """Per-op cost regression (ms): ``w = (H^T H + ridge I)^-1 H^T L``, ``H = [1, arch_features]``."""

    ridge: float = 0.1
    name: ClassVar[str] = "op_cost"

    def __post_init__(self):
        require(self.ridge > 0, "OpCostMember.ridge", self.ridge, "a ridge penalty > 0")

    def available(self, model) -> bool:
        """Whether the member can be used with ``model``.

        Args:
          model: the :class:`~nasjax.hardware.fewshot.model.FewShotLatencyModel` (its arrays, devices, config).

        Returns:
          True when the model has arch features (``table_x``, table mode).
        """
        return "table_x" in model.arrays

    def fit(self, model, f, yr, exclude, tau):
        """The per-op cost ridge fit on the references' latency in ms (:meth:`fit_ms`).

        Args:
          model: the :class:`~nasjax.hardware.fewshot.model.FewShotLatencyModel` (its arrays, devices, config).
          f: the references' feature cache; its ``xa`` = ``[1, arch_features]`` is used.
          yr: ``[k]`` the references' measured log latency (log ms).
          exclude: training device names (unused).
          tau: the noise scale (unused).

        Returns:
          The coefficients ``w [F + 1]``.
        """
        return self.fit_ms(f["xa"], np.exp(yr))

    def fit_ms(self, xa, y_ms) -> np.ndarray:
        """The ridge fit on regressors ``xa = [1, arch_features]`` and latencies ``y_ms`` (ms).

        w = (xa^T xa + ridge I)^-1 xa^T y_ms

        Args:
          xa: ``[k, F + 1]`` regressors.
          y_ms: ``[k]`` latencies in ms.

        Returns:
          ``w [F + 1]``.
        """
        return np.linalg.solve(xa.T @ xa + self.ridge * np.eye(xa.shape[1]), xa.T @ y_ms)

    def predict_log(self, model, fit, f):
        """The per-op cost model's log-ms prediction (latency floored at 1e-6 ms).

        Args:
          model: the :class:`~nasjax.hardware.fewshot.model.FewShotLatencyModel` (its arrays, devices, config).
          fit: the coefficients from :meth:`fit`.
          f: the feature cache of the architectures to predict.

        Returns:
          ``[N]`` predicted log latency (log ms).
        """
        return np.log(np.maximum(f["xa"] @ fit, 1e-6))


@dataclass(frozen=True)
class AdditiveLogMember:
    """The posterior mean of the additive log-latency expert alone, ``log L = w . [1, x]``."""

    name: ClassVar[str] = "additive_log"

    def available(self, model) -> bool:
        """Whether the member can be used with ``model``.

        Args:
          model: the :class:`~nasjax.hardware.fewshot.model.FewShotLatencyModel` (its arrays, devices, config).

        Returns:
          True when the model has the additive log-latency prior (``add_m``).
        """
        return "add_m" in model.arrays

    def fit(self, model, f, yr, exclude, tau):
        """The additive log-latency expert's posterior mean on the references.

        Args:
          model: the :class:`~nasjax.hardware.fewshot.model.FewShotLatencyModel` (its arrays, devices, config).
          f: the references' feature cache (``take`` of ``model.features_cache``: ``g``, ``xa``, ``yhat``, ...).
          yr: ``[k]`` the references' measured log latency (log ms).
          exclude: training device names (unused).
          tau: the noise scale (``"auto"`` counts as 1).

        Returns:
          The posterior mean ``w [F + 1]``; ``None`` with fewer than 2 references.
        """
        if len(yr) < 2:
            return None
        a = model.arrays
        return blr(f["xa"], yr, a["add_m"], a["add_S"], float(a["s2_additive"][0]) * _fixed_tau(tau))[0]

    def predict_log(self, model, fit, f):
        """The additive model's log-ms prediction, ``w . [1, x]``.

        Args:
          model: the :class:`~nasjax.hardware.fewshot.model.FewShotLatencyModel` (its arrays, devices, config).
          fit: the posterior mean from :meth:`fit`.
          f: the feature cache of the architectures to predict.

        Returns:
          ``[N]`` predicted log latency (log ms).
        """
        return f["xa"] @ fit


@dataclass(frozen=True)
class AdditiveMsMember:
    """An additive model of the latency in ms with the training devices' prior: ``L = s * w . [1, x]``."""

    name: ClassVar[str] = "additive_ms"

    def available(self, model) -> bool:
        """Whether the member can be used with ``model``.

        Args:
          model: the :class:`~nasjax.hardware.fewshot.model.FewShotLatencyModel` (its arrays, devices, config).

        Returns:
          True when the model has the additive ms prior (``additive_ms_m``).
        """
        return "additive_ms_m" in model.arrays

    def fit(self, model, f, yr, exclude, tau):
        """The additive ms model's posterior mean on the references, with the device's scale.

        scale = mean(refs) / r,  r = mean_d [mean_refs L_d / mean_x L_d] over the kept devices

        Args:
          model: the :class:`~nasjax.hardware.fewshot.model.FewShotLatencyModel` (its arrays, devices, config).
          f: the references' feature cache (``take`` of ``model.features_cache``: ``g``, ``xa``, ``yhat``, ...).
          yr: ``[k]`` the references' measured log latency (log ms).
          exclude: training device names left out of the scale correction.
          tau: the noise scale (``"auto"`` counts as 1).

        Returns:
          ``(w [F + 1], scale)``; ``None`` with fewer than 2 references.
        """
        if len(yr) < 2:
            return None
        a = model.arrays
        keep = _kept(model, exclude)
        ratio = float(np.mean(np.exp(f["yhat"][:, keep]).mean(0) / a["additive_ms_mean"][keep]))
        scale = float(np.mean(np.exp(yr))) / ratio
        w, _ = blr(f["xadd"], np.exp(yr) / scale, a["additive_ms_m"], a["additive_ms_S"],
                   float(a["additive_ms_s2"][0]) * _fixed_tau(tau))
        return w, scale

    def predict_log(self, model, fit, f):
        """The additive ms model's log-ms prediction, ``log(scale * w . [1, x])`` (floored at 1e-6 ms).

        Args:
          model: the :class:`~nasjax.hardware.fewshot.model.FewShotLatencyModel` (its arrays, devices, config).
          fit: ``(w, scale)`` from :meth:`fit`.
          f: the feature cache of the architectures to predict.

        Returns:
          ``[N]`` predicted log latency (log ms).
        """
        w, scale = fit
        return np.log(np.maximum(scale * (f["xadd"] @ w), 1e-6))


MEMBER_TYPES = (DeviceMixMember, OpCostMember, AdditiveLogMember, AdditiveMsMember)


def loo_error(member, model, f: dict, yr: np.ndarray, exclude, tau) -> float:
    """Leave-one-out mean squared log error of ``member`` on the k refs.

    e_m = 1/k sum_i (y^_{m,-i}(x_i) - y_i)^2, each ref predicted by the member refitted on the other k - 1

    Args:
      member: a blend member (``fit`` / ``predict_log``).
      model: the :class:`~nasjax.hardware.fewshot.model.FewShotLatencyModel` (its arrays, devices, config).
      f: the references' feature cache (``take`` of ``model.features_cache``: ``g``, ``xa``, ``yhat``, ...).
      yr: ``[k]`` the references' measured log latency (log ms).
      exclude: training device names the member may not use.
      tau: the noise scale (passed to ``member.fit``).

    Returns:
      ``e_m`` (``inf`` when a refit fails for some reference).
    """
    k = len(yr)
    errs = []
    for i in range(k):
        keep = np.delete(np.arange(k), i)
        fit = member.fit(model, take(f, keep), yr[keep], exclude, tau)
        if fit is None:
            errs.append(np.inf)
            continue
        errs.append(float((member.predict_log(model, fit, take(f, [i]))[0] - yr[i]) ** 2))
    return float(np.mean(errs))


@dataclass(frozen=True)
class InverseErrorBlend:
    """Blend weights ``w_m = e_m^-power / sum_n e_n^-power`` over ``members`` (names; all when empty) from
    their leave-one-out errors ``e_m``; members without a finite error are skipped."""

    power: float = 2.0
    members: tuple[str, ...] = ()

    def __post_init__(self):
        require(self.power >= 0, "InverseErrorBlend.power", self.power, ">= 0")

    def weights(self, loo: dict) -> dict:
        """Blend weights from the members' leave-one-out errors.

        w_m = max(e_m, 1e-12)^-power / sum_n max(e_n, 1e-12)^-power

        Args:
          loo: ``{member name: e_m}`` leave-one-out mean squared log errors.

        Returns:
          ``{member name: w_m}`` over the used members (named ones with a finite error), summing to 1.

        Raises:
          NasjaxInputError: when no member is usable.
        """
        use = {n: e for n, e in loo.items() if (not self.members or n in self.members) and np.isfinite(e)}
        require(bool(use), "blend rule", str(self), f"members among {sorted(loo)}")
        inv = {n: 1.0 / max(e, 1e-12) ** self.power for n, e in use.items()}
        tot = sum(inv.values())
        return {n: v / tot for n, v in inv.items()}

    def __str__(self) -> str:
        return f"1/e^{self.power:g} over {','.join(self.members) or 'all'}"


def blend_logs(logs: dict, weights: dict | None) -> np.ndarray:
    """The members' log predictions blended with ``weights`` (None or empty: the expert average alone).

    y(x) = sum_m w_m y_m(x)

    Args:
      logs: ``{member name: [N] log-ms prediction}``, holding ``expert_average``.
      weights: ``{member name: weight}`` (:meth:`InverseErrorBlend.weights`), or ``None``.

    Returns:
      ``[N]`` blended log latency (log ms).
    """
    if not weights:
        return logs[ExpertAverage.name]
    return sum(w * logs[n] for n, w in weights.items() if w > 0)
