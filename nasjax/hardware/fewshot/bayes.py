"""Bayesian linear regression and greedy D-optimal design: the closed forms of the few-shot latency model.

For a Gaussian linear model of k observations ``y = H w + eps``, ``w ~ N(m, S)``, ``eps ~ N(0, s2 I)``:

* posterior mean  ``w* = A^-1 (S^-1 m + H^T y / s2)``,  ``A = S^-1 + H^T H / s2``;
* log evidence    ``log p(y) = log N(y; H m, s2 I + H S H^T)``;
* greedy D-optimal design: add the candidate row ``h`` of largest predictive variance
  ``h^T S_post h`` and condition on it; by the determinant lemma each step maximises the gain in
  ``log det(S^-1 + H^T H / s2)``.

:func:`blr_batch` solves P such models sharing ``y`` at once (Woodbury and the determinant lemma: only
q x q systems); :func:`thin_svd` is the SVD of a tall matrix through its q x q Gram matrix.
"""

from __future__ import annotations

import math

import numpy as np

from nasjax.errors import require


def thin_svd(z):
    """Thin SVD of a tall matrix ``z [N, D]`` (N >> D) through the eigendecomposition of ``z^T z`` (D x D).

    z = u diag(s) vt,  z^T z = v diag(s^2) v^T,  u = z v / s (columns of zero singular value set to 0)

    Args:
      z: ``[N, D]`` matrix.

    Returns:
      ``(u [N, D], s [D], vt [D, D])`` with singular values in decreasing order.
    """
    lam, v = np.linalg.eigh(z.T @ z)
    order = np.argsort(lam)[::-1]
    lam, v = np.maximum(lam[order], 0.0), v[:, order]
    sv = np.sqrt(lam)
    u = (z @ v) / np.where(sv > 1e-12 * max(sv[0], 1e-300), sv, np.inf)
    return u, sv, v.T


def blr(h_ref, y, m, s_cov, s2):
    """Posterior mean and log evidence of ``y = w.h + eps``, ``w ~ N(m, S)``, ``eps ~ N(0, s2)``.

    Args:
      h_ref: ``[k, q]`` regressors of the k observations.
      y: ``[k]`` observations.
      m, s_cov: prior mean ``[q]`` and covariance ``[q, q]``.
      s2: noise variance.
    Returns:
      ``(w* [q], log p(y))``; with k = 0 the prior mean and 0.
    """
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


def blr_batch(h, y, m, s_cov, s2):
    """:func:`blr` for P models at once: ``h [P, k, q]`` -> posterior means ``[P, q]`` and log evidences ``[P]``.

    The evidence uses ``r = y - H m``: ``-1/2 (r^T r / s2 - (H^T r)^T A^-1 (H^T r) / s2^2
    + k log s2 + log det A + log det S + k log 2 pi)``, ``A = S^-1 + H^T H / s2``.

    Args:
      h: ``[P, k, q]`` regressors of the k observations, per model.
      y: ``[k]`` observations (shared by the models).
      m: ``[q]`` prior mean.
      s_cov: ``[q, q]`` prior covariance ``S``.
      s2: noise variance.

    Returns:
      ``(w* [P, q], log p(y) [P])``; with k = 0 the prior mean and zeros.
    """
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


def greedy_design(h, prior_cov, s2: float, k: int) -> np.ndarray:
    """Greedy Bayesian D-optimal design for ``y = w . h(x) + eps``, ``w ~ N(m, prior_cov)``, ``eps ~ N(0, s2)``.

    Pick the row of largest posterior predictive variance, condition on it, repeat. Rank-one updates keep
    every step at O(N q) for N candidates of q features.

    Args:
      h: ``[N, q]`` candidate rows.
      prior_cov: ``[q, q]`` prior covariance.
      s2: noise variance (> 0).
      k: rows to choose (<= N).
    Returns:
      ``int64 [k]`` distinct row indices in the order chosen (the first k' are the design for k').
    """
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
