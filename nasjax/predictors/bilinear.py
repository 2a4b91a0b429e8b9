"""BINAS's accuracy models (Nayman et al., arXiv 2110.12399): the contribution estimator, the bilinear and the
quadratic predictor fitted in closed form, and the files that hold them.

Every model is a function of BINAS's encoding of an architecture (:func:`nasjax.spaces.binas.encode`:
``alpha`` the one-hot layer configurations, zero on layers beyond their stage's depth, ``beta`` the one-hot
stage depths; ``x = [alpha, beta]`` flat) with a vectorised ``predict(archs)``, a ``metric`` and a
``unit``, so any of them is a search objective:

* the bilinear model ``Acc = A_base + alpha^T p_a + beta^T p_b + alpha^T Q beta``
  (:class:`~nasjax.hardware.binas_latency.BilinearForm`), either with ``Q`` coupling each layer with its
  own stage's depth (``coupling="stage"``: a sum of per-stage terms, which the exact stage-wise search
  needs) or with every stage's depth (``coupling="full"``: BINAS's ``nn.Bilinear`` of all alphas and betas),
  or ``Q = 0`` (``coupling="none"``, an additive baseline);
* the quadratic model ``Acc = b + w^T x + x^T W x`` (:class:`QuadraticPredictor`);
* the contribution estimator (:func:`contribution_estimator`): ``p_a[l, c]`` and ``p_b[s, d]`` are the
  supernet's accuracy with that one option forced (every other option sampled), minus the accuracy
  ``A_base`` with everything sampled; ``Q = 0``. Nothing is fitted.

Both fitted models are linear in a feature map ``phi(x)`` and are fitted as BINAS fits them: least squares
on centred features and targets, solved with the SVD of the centred design matrix ``Phi_c = U S V^T``
with singular values below ``min_singular_value`` dropped (BINAS: 0.1; by default nasjax chooses the cut
that best predicts a 20 % hold-out of the samples)::

    w = V S^+ U^T (y - mean(y)),     b = mean(y - Phi w)

computed here from the centred kernel ``K_c = Phi_c Phi_c^T = U S^2 U^T`` (so the 3,600 bilinear or 65,025
quadratic features are never formed): ``w = Phi_c^T U S^-2 U^T (y - mean(y))``, where the kernels are
``(A A'^T) o (B B'^T) + A A'^T + B B'^T`` (bilinear, per stage for ``coupling="stage"``) and
``M o M + M`` with ``M = X X'^T`` (quadratic), and the weights are recovered in closed form
(``Q = A^T diag(c) B``, ``W = X^T diag(c) X``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from nasjax.errors import NasjaxInputError, require
from nasjax.hardware.binas_latency import BilinearForm, masked_relaxation
from nasjax.hardware.model_io import load_arrays, save_arrays
from nasjax.io import read_json, write_json
from nasjax.spaces.binas import DEFAULT, BinasStructure, binas_space, canonical, encode, features, from_string

QUADRATIC_KIND = "nasjax.binas.quadratic"
MEASURED_FORMAT = "nasjax.binas.measured/1"
CONTRIBUTIONS_FORMAT = "nasjax.binas.contributions/1"
COUPLINGS = ("stage", "full", "none")
LAYER_FEATURES = ("configs", "factors")
# the coupling scale of the bilinear fit on the layers' attributes (docs/binas.md, "Accuracy models")
ATTRIBUTE_COUPLING_WEIGHT = 0.3


def measured_pairs(archs, y, st: BinasStructure, field_name: str = "accuracy") -> tuple[np.ndarray, np.ndarray]:
    """Measured (architecture, value) pairs of a BINAS space, checked and made canonical.

    Args:
      archs: ``[N, P]`` (or one ``[P]``) choice vectors of the space of ``st``.
      y: ``[N]`` their measured values.
      st: the space's structure.
      field_name: the name of the values, first in error messages.

    Returns:
      ``(archs [N, P] canonical int64, y [N] float64)``.

    Raises:
      NasjaxInputError: on invalid architectures, a value count other than ``N``, a non-finite value or fewer
        than 2 pairs.
    """
    a = binas_space(st).validate(np.atleast_2d(archs), "archs")
    t = np.asarray(y, np.float64).reshape(-1)
    require(t.shape == (len(a),), field_name, t.shape, f"({len(a)},), one per architecture")
    require(bool(np.isfinite(t).all()), field_name, "NaN/inf values", "finite measured values")
    require(len(a) >= 2, "archs", len(a), "at least 2 measured architectures")
    return canonical(a, st), t


def _eig_centred(K: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigenpairs of the centred kernel ``H K H`` (``H = I - 11^T / N``), largest first."""
    Kc = K - K.mean(0, keepdims=True)
    Kc = Kc - Kc.mean(1, keepdims=True)
    lam, U = np.linalg.eigh((Kc + Kc.T) / 2)
    return lam[::-1], U[:, ::-1]


def _coefficients(lam, U, y, r: int) -> np.ndarray:
    c = U[:, :r] @ ((U[:, :r].T @ (y - y.mean())) / lam[:r])
    return c - c.mean()


def _validated_threshold(K: np.ndarray, y: np.ndarray) -> float:
    """The singular-value threshold whose truncation predicts a 20 % hold-out of the samples best."""
    N = len(y)
    order = np.random.default_rng(0).permutation(N)
    te, tr = order[: max(1, N // 5)], order[max(1, N // 5):]
    lam, U = _eig_centred(K[np.ix_(tr, tr)])
    full = int((lam > 1e-10 * max(lam[0], 1e-300)).sum())
    cross = K[np.ix_(te, tr)] - K[np.ix_(tr, tr)].mean(0)[None, :]
    best = (np.inf, full)
    for r in np.unique(np.geomspace(1, max(full, 1), 32).astype(int)):
        err = np.mean((y[tr].mean() + cross @ _coefficients(lam, U, y[tr], r) - y[te]) ** 2)
        best = min(best, (err, int(r)))
    r = best[1]
    # the same cut on all N samples: eigenvalues grow about with N / len(tr)
    return float(np.sqrt(lam[r - 1] * N / len(tr)) * (1 - 1e-9)) if r < full else 0.0


def _dual_least_squares(K: np.ndarray, y: np.ndarray, min_singular_value: float | None) -> tuple[np.ndarray, int,
                                                                                                     float]:
    """``c = H U S^-2 U^T (y - mean y)`` for the centred kernel ``H K H = U S^2 U^T``, singular values below
    ``min_singular_value`` dropped (``None``: the threshold is validated on a 20 % hold-out). Returns ``(c,
    rank kept, threshold)``; ``Phi^T c`` is the truncated-SVD least-squares weight vector."""
    if min_singular_value is None:
        min_singular_value = _validated_threshold(K, y) if len(y) >= 10 else 0.0
    require(np.isfinite(min_singular_value) and min_singular_value >= 0, "min_singular_value", min_singular_value,
            "a number >= 0 or None")
    lam, U = _eig_centred(K)
    r = int((lam > max(min_singular_value ** 2, 1e-12 * max(1.0, float(lam[0])))).sum())
    return _coefficients(lam, U, y, r), r, float(min_singular_value)


def fit_bilinear(archs, accuracy, structure: BinasStructure = DEFAULT, coupling: str = "stage",
                 min_singular_value: float | None = None, metric: str = "accuracy", unit: str = "%",
                 layer_features: str = "configs", coupling_weight: float = 1.0) -> BilinearForm:
    """BINAS's bilinear predictor fitted in closed form on measured (architecture, accuracy) pairs.

    ``Acc = A_base + alpha^T p_a + beta^T p_b + alpha^T Q beta`` (module docstring), least squares on the
    features ``[alpha (x) beta, alpha, beta]`` by the truncated SVD.

    Args:
      archs: ``[N, P]`` measured architectures (choice vectors; inactive layers are ignored).
      accuracy: ``[N]`` their measured accuracy.
      structure: the space's structure.
      coupling: ``"stage"`` (``Q`` couples a layer with its own stage's depth), ``"full"`` (every depth) or
        ``"none"`` (``Q = 0``: an additive model of the active layers and the depths).
      min_singular_value: singular values of the centred design below it are dropped (BINAS: 0.1, for its
        10,000 samples); ``None`` chooses it on a 20 % hold-out of the samples (the default: with a few
        hundred samples the bilinear features outnumber them and BINAS's cut interpolates the noise).
      metric, unit: what is predicted.
      layer_features: ``"configs"`` (BINAS: ``alpha``, one indicator per layer configuration) or
        ``"factors"``: ``alpha`` replaced by its attributes ``alpha @ M``
        (:meth:`~nasjax.spaces.binas.BinasStructure.config_factors`: the layer's expansion, kernel and SE
        value, 7 indicators for 12 configurations), so a configuration's coefficient is the sum of its
        attributes' (``p_a = P_f M^T``, ``Q = M Q_f``) and the fit has a third of the free terms. The result
        is the same kind of bilinear form; every searcher takes it.
      coupling_weight: the scale of the coupling features ``alpha (x) beta`` against ``alpha`` and ``beta``
        (1: BINAS's plain features). Below 1, the truncation keeps the additive directions first and admits a
        coupling only where the data clearly asks for it.

    Returns:
      The fitted :class:`~nasjax.hardware.binas_latency.BilinearForm` (provenance: samples, rank kept, the
      features).
    """
    require(coupling in COUPLINGS, "coupling", coupling, f"one of {COUPLINGS}")
    require(layer_features in LAYER_FEATURES, "layer_features", layer_features, f"one of {LAYER_FEATURES}")
    require(np.isfinite(coupling_weight) and coupling_weight > 0, "coupling_weight", coupling_weight,
            "a number > 0")
    st = structure
    a, y = measured_pairs(archs, accuracy, st, metric)
    alpha, beta = encode(a, st)
    M = st.config_factors()[0] if layer_features == "factors" else np.eye(st.num_configs)
    alpha_f = alpha @ M  # [N, L, F]: the features the layers are described by
    N, L, F, S, D = len(a), st.num_layers, M.shape[1], st.num_stages, len(st.depths)
    A, B = alpha_f.reshape(N, -1), beta.reshape(N, -1)
    AA, BB = A @ A.T, B @ B.T
    w2 = float(coupling_weight) ** 2
    if coupling == "full":
        kern = w2 * AA * BB
    elif coupling == "none":
        kern = np.zeros((N, N))
    else:
        kern = np.zeros((N, N))
        for s in range(S):
            As = alpha_f[:, st.layer_stage == s].reshape(N, -1)
            kern += w2 * (As @ As.T) * (beta[:, s] @ beta[:, s].T)
    c, rank, cut = _dual_least_squares(kern + AA + BB, y, min_singular_value)
    p_a, p_b = (A.T @ c).reshape(L, F) @ M.T, (B.T @ c).reshape(S, D)
    Q_f = np.zeros((L, F, S, D))
    if coupling == "full":
        Q_f = w2 * np.einsum("nl,nm->lm", A * c[:, None], B).reshape(L, F, S, D)
    elif coupling == "stage":
        for s in range(S):
            rows = st.layer_stage == s
            Q_f[rows, :, s, :] = w2 * np.einsum("nlk,nd->lkd", alpha_f[:, rows] * c[:, None, None], beta[:, s])
    Q = np.einsum("kf,lfsd->lksd", M, Q_f)
    pred = np.einsum("nlk,lk->n", alpha, p_a) + np.einsum("nsd,sd->n", beta, p_b)
    pred += np.einsum("nlk,lksd,nsd->n", alpha, Q, beta)
    base = float(np.mean(y - pred))
    prov = {"fit": "closed-form least squares (truncated SVD)", "coupling": coupling, "samples": N,
            "rank": rank, "min_singular_value": cut, "layer_features": layer_features,
            "coupling_weight": float(coupling_weight)}
    return BilinearForm(base, p_a, p_b, Q, metric, unit, None, st, prov)


@dataclass(frozen=True, eq=False)
class QuadraticPredictor:
    """``f(a) = base + w . x + x^T W x`` on BINAS's features ``x = [alpha, beta]`` (``W`` symmetric)."""

    base: float
    w: np.ndarray
    W: np.ndarray
    metric: str = "accuracy"
    unit: str = "%"
    structure: BinasStructure = DEFAULT
    provenance: dict = field(default_factory=dict)

    def __post_init__(self):
        st = self.structure
        F = st.num_layers * st.num_configs + st.num_stages * len(st.depths)
        w, W = np.asarray(self.w, np.float64), np.asarray(self.W, np.float64)
        require(w.shape == (F,) and W.shape == (F, F), "quadratic weights", (w.shape, W.shape), f"({F},), ({F}, {F})")
        object.__setattr__(self, "w", w)
        object.__setattr__(self, "W", (W + W.T) / 2)
        object.__setattr__(self, "base", float(self.base))

    def predict(self, archs) -> np.ndarray | float:
        """``f(a)`` of one architecture ``[P]`` or a batch ``[N, P]`` (vectorised).

        f(a) = base + w . x + x^T W x,  x = [alpha, beta] flat (:func:`~nasjax.spaces.binas.features`)

        Args:
          archs: BINAS choice vectors ``[P]`` or ``[N, P]`` (not validated).

        Returns:
          A float for one architecture, else float64 ``[N]``, in the predictor's unit.
        """
        a = np.asarray(archs, np.int64)
        x = features(np.atleast_2d(a), self.structure)
        v = self.base + x @ self.w + np.einsum("ni,ij,nj->n", x, self.W, x)
        return float(v[0]) if a.ndim == 1 else v

    def relax(self, alpha: np.ndarray, beta: np.ndarray):
        """Value and gradients at fractional ``alpha [L, K]``, ``beta [S, D]`` (:func:`masked_relaxation`).

        Args:
          alpha: ``[L, K]`` fractional layer configurations, each row summing to 1.
          beta: ``[S, D]`` fractional stage depths, each row summing to 1.

        Returns:
          ``(f, df/dalpha [L, K], df/dbeta [S, D])``, ``f`` in the predictor's unit.
        """
        La = alpha.size

        def vg(at, b):
            x = np.concatenate([at.reshape(-1), b.reshape(-1)])
            g = self.w + 2 * self.W @ x
            return self.base + x @ self.w + x @ self.W @ x, g[:La].reshape(at.shape), g[La:].reshape(b.shape)

        return masked_relaxation(vg, alpha, beta, self.structure)

    def save(self, path) -> dict:
        """Write the predictor (npz with a JSON header, :mod:`nasjax.hardware.model_io`, kind :data:`QUADRATIC_KIND`).

        Args:
          path: the file to write.

        Returns:
          The header written.
        """
        header = {"metric": self.metric, "unit": self.unit, "structure": self.structure.to_dict(),
                  "provenance": self.provenance, "formula": "f(a) = base + w.x + x^T W x, x = [alpha, beta]"}
        return save_arrays(path, {"base": np.array([self.base]), "w": self.w, "W": self.W}, kind=QUADRATIC_KIND,
                           header=header)

    @classmethod
    def load(cls, path) -> QuadraticPredictor:
        """Read a predictor written by :meth:`save`.

        Args:
          path: the file.

        Returns:
          The :class:`QuadraticPredictor`.

        Raises:
          NasjaxInputError: when the file is not a nasjax array file of kind :data:`QUADRATIC_KIND`, or its weights
            have shapes other than the structure's.
          KeyError: when its header lacks ``metric``, ``unit`` or ``structure``.
        """
        arrays, h = load_arrays(path, kind=QUADRATIC_KIND)
        return cls(float(arrays["base"][0]), arrays["w"], arrays["W"], h["metric"], h["unit"],
                   BinasStructure.from_dict(h["structure"]), h.get("provenance", {}))


def fit_quadratic(archs, accuracy, structure: BinasStructure = DEFAULT, min_singular_value: float | None = None,
                  metric: str = "accuracy", unit: str = "%") -> QuadraticPredictor:
    """BINAS's quadratic predictor ``b + w.x + x^T W x`` fitted in closed form (features ``[x (x) x, x]``).

    Args:
      archs: ``[N, P]`` measured architectures; accuracy: ``[N]`` their accuracy.
      structure, min_singular_value, metric, unit: as for :func:`fit_bilinear`.

    Returns:
      The :class:`QuadraticPredictor`.
    """
    a, y = measured_pairs(archs, accuracy, structure, metric)
    X = features(a, structure)
    M = X @ X.T
    c, rank, cut = _dual_least_squares(M * M + M, y, min_singular_value)
    w, W = X.T @ c, (X * c[:, None]).T @ X
    base = float(np.mean(y - X @ w - np.einsum("ni,ij,nj->n", X, W, X)))
    prov = {"fit": "closed-form least squares (truncated SVD)", "samples": len(a), "rank": rank,
            "min_singular_value": cut}
    return QuadraticPredictor(base, w, W, metric, unit, structure, prov)


def contribution_estimator(base: float, layer_accuracy, depth_accuracy, structure: BinasStructure = DEFAULT,
                           provenance: dict | None = None, unit: str = "%") -> BilinearForm:
    """BINAS's accuracy estimator from measured per-option accuracies (no fitting).

    ``Acc(a) = A_base + sum_{l active} (acc_l[a_l] - A_base) + sum_s (acc_s[d_s] - A_base)``

    Args:
      base: ``A_base``, the supernet's accuracy with every option sampled (multipath).
      layer_accuracy: ``[L, K]`` accuracy with layer ``l`` forced to configuration ``c`` (others sampled).
      depth_accuracy: ``[S, D]`` accuracy with stage ``s`` forced to depth choice ``d``.
      structure: the space's structure; provenance: where the measurements come from; unit: their unit.

    Returns:
      The estimator as a :class:`~nasjax.hardware.binas_latency.BilinearForm` (``Q = 0``).
    """
    la, da = np.asarray(layer_accuracy, np.float64), np.asarray(depth_accuracy, np.float64)
    prov = {"model": "contribution estimator (one option forced at a time, base subtracted)", **(provenance or {})}
    return BilinearForm(float(base), la - base, da - base, None, "accuracy", unit, None, structure, prov)


def fit_predictors(archs, accuracy, structure: BinasStructure = DEFAULT) -> dict:
    """The fitted accuracy models a BINAS search takes, by name (each with ``save`` / ``predict``).

    * ``bilinear``: the stage-coupled bilinear form on the layers' attributes (``layer_features="factors"``,
      ``coupling_weight=ATTRIBUTE_COUPLING_WEIGHT``), the best-ranking fit on the supernet's held-out
      subnets (docs/binas.md) and stage-separable, so the exact searchers take it;
    * ``bilinear_configs``: BINAS's own features (one indicator per layer configuration), stage coupling;
    * ``additive``: the additive model on the attributes (``coupling="none"``);
    * ``quadratic``: BINAS's quadratic predictor (for ``bcfw`` / ``evo``).

    Args:
      archs: ``[N, P]`` measured architectures; accuracy: ``[N]`` their accuracy (%).
      structure: the space's structure.

    Returns:
      ``{name: model}``.
    """
    return {"bilinear": fit_bilinear(archs, accuracy, structure, layer_features="factors",
                                     coupling_weight=ATTRIBUTE_COUPLING_WEIGHT),
            "bilinear_configs": fit_bilinear(archs, accuracy, structure),
            "additive": fit_bilinear(archs, accuracy, structure, coupling="none", layer_features="factors"),
            "quadratic": fit_quadratic(archs, accuracy, structure)}


def write_predictors(out, archs, accuracy, estimator: BilinearForm | None = None,
                     structure: BinasStructure = DEFAULT) -> list[str]:
    """Fit :func:`fit_predictors` and write each as ``<name>.npz`` into ``out`` (the estimator, when given, as
    ``estimator.npz``): the files ``python -m experiments.binas_search --predictor_ckpt_filename`` reads.

    Args:
      out: the directory (created).
      archs, accuracy: the measured fit subnets.
      estimator: the contribution estimator, or ``None``.
      structure: the space's structure.

    Returns:
      The names of the files written, sorted.
    """
    d = Path(out)
    d.mkdir(parents=True, exist_ok=True)
    models = dict(fit_predictors(archs, accuracy, structure))
    if estimator is not None:
        models["estimator"] = estimator
    for name, m in models.items():
        m.save(d / f"{name}.npz")
    return sorted(f"{n}.npz" for n in models)


# --------------------------------------------------------------------------------------------------
# files


def read_measured(path, structure: BinasStructure = DEFAULT) -> tuple[np.ndarray, np.ndarray]:
    """Measured subnets: ``(archs [N, P] canonical, accuracy [N] %)``.

    Reads nasjax's JSON (``{"format": "nasjax.binas.measured/1", "unit": "%", "archs": [[P ints]] or
    "binas": [strings], "accuracy": [N]}``) or BINAS's accuracy LUT pickle (``.pkl``).

    Args:
      path: the ``.json`` or ``.pkl`` file.
      structure: the space's structure.

    Returns:
      ``(archs int64 [N, P] canonical, accuracy float64 [N] %)``.

    Raises:
      NasjaxInputError: when the file is missing or malformed, has another format or unit, holds neither
        ``archs`` nor ``binas``, or its architectures or accuracies are invalid.
    """
    p = Path(path)
    if p.suffix == ".pkl":
        from nasjax.benchmarks.binas_lut import read_accuracy_lut

        d = read_accuracy_lut(p, structure)
        return d["archs"], d["accuracy"]
    d = read_json(p, "measured subnets")
    if not isinstance(d, dict) or d.get("format") != MEASURED_FORMAT:
        raise NasjaxInputError(f"measured subnets {str(p)!r}: expected a JSON object with format {MEASURED_FORMAT!r}")
    if d.get("unit", "%") != "%":
        raise NasjaxInputError(f"measured subnets {str(p)!r}: unit {d.get('unit')!r}, expected '%'")
    if "archs" in d:
        archs = binas_space(structure).validate(d["archs"], f"{p}.archs")
    elif "binas" in d:
        archs = np.stack([from_string(s, structure) for s in d["binas"]])
    else:
        raise NasjaxInputError(f"measured subnets {str(p)!r}: expected 'archs' (choice vectors) or 'binas' (strings)")
    return measured_pairs(archs, d.get("accuracy"), structure)


def write_measured(path, archs, accuracy, structure: BinasStructure = DEFAULT, **extra) -> None:
    """Write measured subnets in nasjax's JSON format (see :func:`read_measured`), atomically.

    Args:
      path: the ``.json`` file to write.
      archs: ``[N, P]`` measured architectures (stored canonical).
      accuracy: ``[N]`` their accuracy, %.
      structure: the space's structure.
      **extra: further top-level JSON entries (e.g. provenance).

    Raises:
      NasjaxInputError: on invalid architectures, a value count other than ``N``, a non-finite value or fewer
        than 2 pairs.
    """
    a, y = measured_pairs(archs, accuracy, structure)
    write_json(path, {"format": MEASURED_FORMAT, "unit": "%", "archs": a.tolist(), "accuracy": y.tolist(), **extra})


def read_contributions(path, structure: BinasStructure = DEFAULT) -> BilinearForm:
    """The contribution estimator from a JSON of measured contributions (:func:`contribution_estimator`).

    The file is ``{"format": "nasjax.binas.contributions/1", "unit": "%", "base": A_base, "layers": [L][K]
    accuracies, "depths": [S][D] accuracies}`` (optionally ``provenance``).

    Args:
      path: the ``.json`` file.
      structure: the space's structure.

    Returns:
      The estimator as a :class:`~nasjax.hardware.binas_latency.BilinearForm` (``Q = 0``).

    Raises:
      NasjaxInputError: when the file is missing or not valid JSON, has another format, lacks ``base`` /
        ``layers`` / ``depths``, or their shapes differ from the structure's.
    """
    d = read_json(path, "contributions")
    if not isinstance(d, dict) or d.get("format") != CONTRIBUTIONS_FORMAT:
        raise NasjaxInputError(f"contributions {str(path)!r}: expected format {CONTRIBUTIONS_FORMAT!r}")
    try:
        return contribution_estimator(float(d["base"]), d["layers"], d["depths"], structure,
                                      {"source": str(path), **d.get("provenance", {})}, d.get("unit", "%"))
    except (KeyError, TypeError, ValueError) as e:
        raise NasjaxInputError(f"contributions {str(path)!r}: {e!r}; expected base, layers, depths") from None

