"""The experts of the few-shot latency model and their Bayesian model average (log-milliseconds, y = log L).

Each expert is a Gaussian linear model ``y = w . h_m(x) + eps``, ``w ~ N(m_m, S_m)``, ``eps ~ N(0, tau s2_m)``
fitted in closed form on the k references (:func:`~nasjax.hardware.fewshot.bayes.blr`):

* :class:`LowRankExpert` (``low_rank``): ``h = g(x) = [1, phi(x)]`` (the multi-device basis); ``m, S`` =
  mean and covariance of the training devices' embeddings ``c'_d`` (+ 1e-4 I).
* :class:`SingleDeviceExperts` (``single_device:<d>``, one per training device d): ``h = [1, u_d(x)]``,
  ``u_d = y^_d(x) - ybar_d`` (per-device affine calibration in log space); ``m = [mean_d c'_d0, 1]``,
  ``S = diag(var c'_d0 + 1e-3, 0.25)``.
* :class:`DevicePairExperts` (``device_pair:<d1>|<d2>``, one per pair of training devices): ``h = [1, u_d1,
  u_d2]``, ``m = [mean_d c'_d0, 1/2, 1/2]``, ``S = [[var c'_d0 + 1e-3, 0, 0], [0, C]]``,
  ``C = [[vb+vd, vb-vd], [vb-vd, vb+vd]] / 4``: ``b1 + b2`` has variance ``vb = 0.25`` like a single
  expert's slope, ``b1 - b2`` variance ``vd`` = :data:`PAIR_DIFFERENCE_VARIANCE`; solved for all pairs at
  once (:func:`~nasjax.hardware.fewshot.bayes.blr_batch`).
* :class:`AdditiveLogExpert` (``additive_log``): ``h = [1, x]``; ``m, S`` from the training devices' ridge fits.

:func:`expert_average` weighs them by evidence, ``pi_m ~ prior_m p(y | m)``: the prior splits equally over
the expert kinds, a kind's share over its members. With k = 0 it is the prior mean (the average device).
The experts are always evaluated in the fixed order low-rank, additive, pairs, singles.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from nasjax.errors import require
from nasjax.hardware.fewshot.bayes import blr, blr_batch

#: prior variance of ``b1 - b2`` of a device-pair expert
PAIR_DIFFERENCE_VARIANCE = 1.0


@dataclass(frozen=True)
class Component:
    """One fitted linear expert: its name, posterior mean ``coef`` and the training devices it maps from."""

    name: str
    kind: str
    coef: np.ndarray = field(compare=False)
    devices: tuple[int, ...] = ()


@dataclass(frozen=True)
class LowRankExpert:
    """``log L(x) = w . [1, phi(x)]`` with the training devices' embeddings as prior."""

    name: ClassVar[str] = "low_rank"
    order: ClassVar[int] = 0

    def components(self, arrays, f, yr, tau, keep, share, devices):
        """The low-rank expert fitted on the references (Bayesian linear regression on ``g``).

        Args:
          arrays: the model's arrays (priors ``lr_m``, ``lr_S``, noise variances ``s2_low_rank``).
          f: the features of the k references: ``g [k, r + 1]`` (basis), ``xa [k, F + 1]`` (``[1, x]``) and
            ``yhat [k, D]`` (the training devices' predicted log latency).
          yr: ``[k]`` the references' measured log latency (log ms).
          tau: the multiplier of the noise variance.
          keep: indices of the training devices the device experts may use.
          share: the prior probability of this expert kind.
          devices: the training devices' names.

        Returns:
          A one-element list ``[(Component, log evidence + log share)]``.
        """
        w, ev = blr(f["g"], yr, arrays["lr_m"], arrays["lr_S"], float(arrays["s2_low_rank"][0]) * tau)
        return [(Component(self.name, self.name, w), ev + math.log(share))]


@dataclass(frozen=True)
class AdditiveLogExpert:
    """``log L(x) = w . [1, x]`` with the training devices' ridge fits as prior (needs arch features)."""

    name: ClassVar[str] = "additive_log"
    order: ClassVar[int] = 1

    def components(self, arrays, f, yr, tau, keep, share, devices):
        """The additive expert fitted on the references (Bayesian linear regression on ``[1, x]``).

        Args:
          arrays: the model's arrays (priors ``add_m``, ``add_S``, noise variances ``s2_additive``).
          f: the features of the k references: ``g [k, r + 1]`` (basis), ``xa [k, F + 1]`` (``[1, x]``) and
            ``yhat [k, D]`` (the training devices' predicted log latency).
          yr: ``[k]`` the references' measured log latency (log ms).
          tau: the multiplier of the noise variance.
          keep: indices of the training devices the device experts may use.
          share: the prior probability of this expert kind.
          devices: the training devices' names.

        Returns:
          A one-element list ``[(Component, log evidence + log share)]``.
        """
        w, ev = blr(f["xa"], yr, arrays["add_m"], arrays["add_S"], float(arrays["s2_additive"][0]) * tau)
        return [(Component(self.name, self.name, w), ev + math.log(share))]


@dataclass(frozen=True)
class DevicePairExperts:
    """``log L(x) = a + b1 u_d1(x) + b2 u_d2(x)`` for every pair of training devices, batched."""

    name: ClassVar[str] = "device_pair"
    order: ClassVar[int] = 2

    def components(self, arrays, f, yr, tau, keep, share, devices):
        """One expert per pair of kept training devices, fitted on the references in one batch.

        Args:
          arrays: the model's arrays (priors ``single_prior``, noise variances ``s2_device``, device means ``ybar``).
          f: the features of the k references: ``g [k, r + 1]`` (basis), ``xa [k, F + 1]`` (``[1, x]``) and
            ``yhat [k, D]`` (the training devices' predicted log latency).
          yr: ``[k]`` the references' measured log latency (log ms).
          tau: the multiplier of the noise variance.
          keep: indices of the training devices the device experts may use.
          share: the prior probability of this expert kind.
          devices: the training devices' names.

        Returns:
          ``[(Component, log evidence + log(share / pairs))]`` per pair, empty with fewer than 2 kept devices.
        """
        pairs = [(keep[i1], keep[i2]) for i1 in range(len(keep)) for i2 in range(i1 + 1, len(keep))]
        if not pairs:
            return []
        m0, v0, vb = arrays["single_prior"]
        u = f["yhat"] - arrays["ybar"]
        ia, ib = np.array(pairs).T
        h = np.stack([np.ones((len(yr), len(pairs))), u[:, ia], u[:, ib]], 2).transpose(1, 0, 2)
        vd = PAIR_DIFFERENCE_VARIANCE
        s_pair = np.zeros((3, 3))
        s_pair[0, 0] = v0
        s_pair[1:, 1:] = np.array([[vb + vd, vb - vd], [vb - vd, vb + vd]]) / 4.0
        w, ev = blr_batch(h, yr, np.array([m0, 0.5, 0.5]), s_pair, float(arrays["s2_device"][0]) * tau)
        lp = math.log(share / len(pairs))
        return [(Component(f"{self.name}:{devices[a]}|{devices[b]}", self.name, w[i], (a, b)), float(ev[i]) + lp)
                for i, (a, b) in enumerate(pairs)]


@dataclass(frozen=True)
class SingleDeviceExperts:
    """``log L(x) = a + b u_d(x)`` for every training device d, batched."""

    name: ClassVar[str] = "single_device"
    order: ClassVar[int] = 3

    def components(self, arrays, f, yr, tau, keep, share, devices):
        """One expert per kept training device, fitted on the references in one batch.

        Args:
          arrays: the model's arrays (priors ``single_prior``, noise variances ``s2_device``, device means ``ybar``).
          f: the features of the k references: ``g [k, r + 1]`` (basis), ``xa [k, F + 1]`` (``[1, x]``) and
            ``yhat [k, D]`` (the training devices' predicted log latency).
          yr: ``[k]`` the references' measured log latency (log ms).
          tau: the multiplier of the noise variance.
          keep: indices of the training devices the device experts may use.
          share: the prior probability of this expert kind.
          devices: the training devices' names.

        Returns:
          ``[(Component, log evidence + log(share / kept))]`` per kept device, empty when none is kept.
        """
        if not keep:
            return []
        m0, v0, vb = arrays["single_prior"]
        u = f["yhat"][:, keep] - arrays["ybar"][keep]
        h = np.stack([np.ones_like(u), u], 2).transpose(1, 0, 2)
        w, ev = blr_batch(h, yr, np.array([m0, 1.0]), np.diag([v0, vb]), float(arrays["s2_device"][0]) * tau)
        lp = math.log(share / len(keep))
        return [(Component(f"{self.name}:{devices[j]}", self.name, w[i], (j,)), float(ev[i]) + lp)
                for i, j in enumerate(keep)]


EXPERT_TYPES = (LowRankExpert, AdditiveLogExpert, DevicePairExperts, SingleDeviceExperts)


@dataclass
class ExpertAverageFit:
    """The fitted experts (in evaluation order) and their model-averaging weights."""

    components: list
    weights: np.ndarray
    log_evidence: float

    @property
    def weight_of(self) -> dict:
        """``{component name: model-averaging weight}``."""
        return {c.name: w for c, w in zip(self.components, self.weights.tolist())}


def mixture(arrays, devices, f, yr, tau: float, exclude, experts) -> ExpertAverageFit:
    """The fitted experts on the references and their Bayesian model-averaging weights.

    pi_m = prior_m p(yr | m) / sum_m' prior_m' p(yr | m'), prior split equally over the expert kinds and a
    kind's share over its members.

    Args:
      arrays: the model's arrays (the experts' priors and noise variances).
      devices: the training devices' names.
      f: the features of the k references (``g``, ``xa``, ``yhat``; see the experts' ``components``).
      yr: ``[k]`` the references' measured log latency (log ms).
      tau: the multiplier of the noise variance.
      exclude: training device names left out of the device experts.
      experts: the expert objects (evaluated in their fixed order).

    Returns:
      :class:`ExpertAverageFit`: the components, their weights ``pi`` (summing to 1) and the mixture's log
      marginal likelihood.

    Raises:
      NasjaxInputError: when ``experts`` is empty.
    """
    experts = sorted(tuple(experts), key=lambda e: e.order)
    require(bool(experts), "experts", experts, "at least one expert")
    share = 1.0 / len(experts)
    keep = [j for j, d in enumerate(devices) if d not in set(exclude)]
    scored = [c for e in experts for c in e.components(arrays, f, yr, tau, keep, share, devices)]
    lw = np.array([s for _, s in scored])
    top = lw.max()
    pw = np.exp(lw - top)
    total = top + math.log(pw.sum())
    pw /= pw.sum()
    return ExpertAverageFit([c for c, _ in scored], pw, float(total))


def expert_average_log(arrays, n_devices: int, fit: ExpertAverageFit, f: dict) -> np.ndarray:
    """The averaged experts' log-ms prediction at features ``f``.

    The average is linear in the bases, so it is accumulated as one coefficient vector per basis (constant,
    g, [1, x], centred device columns) and applied once; components of weight below 1e-12 are skipped.

    Args:
      arrays: the model's arrays (``ybar``, the training devices' mean log predictions).
      n_devices: the number of training devices.
      fit: the fitted mixture (:func:`mixture`).
      f: the feature cache of the architectures (``g``, ``xa``, ``yhat``).

    Returns:
      ``[N]`` predicted log latency (log ms).
    """
    const, beta = 0.0, np.zeros(n_devices)
    w_g = np.zeros(f["g"].shape[1])
    w_x = None
    for c, pw in zip(fit.components, fit.weights.tolist()):
        if pw < 1e-12:
            continue
        w = c.coef
        if c.kind == LowRankExpert.name:
            w_g += pw * w
        elif c.kind == AdditiveLogExpert.name:
            w_x = pw * w if w_x is None else w_x + pw * w
        else:  # device experts: intercept plus slopes on the centred device columns
            const += pw * w[0]
            for slot, j in enumerate(c.devices, start=1):
                beta[j] += pw * w[slot]
    out = const + f["g"] @ w_g
    if beta.any():
        out = out + (f["yhat"] - arrays["ybar"]) @ beta
    if w_x is not None:
        out = out + f["xa"] @ w_x
    return out
