"""Calibrating a latency table built on one machine or runtime to another from k end-to-end measurements.

A source model (an additive :class:`~nasjax.tables.Table`, or any model with the same cell view) predicts
an architecture ``a`` as a sum of cell contributions ``x_f(a)`` (ms): ``p(a) = sum_f x_f(a)`` (``f = 0`` the
fixed part, then one cell per (position, choice); the contribution is the cell's value where the choice is
taken, else 0). On the target, k reference architectures are timed end to end (``y_j``, ms). Every
calibration method is linear in the cells,

    L(a) = c + sum_f u_f x_f(a),

so the calibrated model of a table is again an additive table (exact solvers keep working). Methods
(all fitted on the refs; the first two in closed form, the others by the few-shot model's additive-in-ms
member :class:`~nasjax.hardware.fewshot.members.AdditiveMsMember`, with the source table in the role of
its training device):

* ``unchanged`` (k = 0): ``c = 0, u = 1``;
* ``global_scale`` (k >= 1): ``u_f = exp(b)``, ``b = mean_j (log y_j - log p(a_j))``;
* ``affine`` (k >= 2): ``L = s (w_0 + w_1 p(a) / pbar)``: a per-call overhead and a scale;
* ``kind_scales`` (k >= 2, sources whose cells have ``kinds``, e.g. the resolution-independent and the
  resolution-scaled parts of :class:`~nasjax.hardware.calibration.ofa_fit.OFALayerModel`):
  ``L = s (w_0 + sum_q w_q K_q(a) / pbar)``, ``K_q`` the sum of the cells of kind q;
* ``stage_scales`` (k >= 2): ``L = s (w_0 + sum_g w_g P_g(a) / pbar)``, ``P_g`` the sum of the cells of
  group g (the fixed part, then each stage);
* ``stage_kernel_scales`` (k >= 2; sources whose choices name a kernel size, ``k<size>...``, as the layer view
  of MobileNetV3): the same with one scale per stage and kernel size, and one per stage for its other cells
  (the depth choices). Runtimes differ most in how they run a depthwise convolution of each kernel size at
  each feature-map size, which one scale per stage cannot express. It has about three times as many weights
  and needs several times as many refs (docs/latency_calibration.md), so ``"auto"`` does not choose it: ask
  for it by name;
* ``fewshot_additive_ms`` (k >= 2): ``L = s (w_0 + sum_f w_f x_f(a) / pbar)``: every cell its own scale.

``pbar`` is the source's mean prediction over the space and ``s = mean_j y_j / (mean_j p(a_j) / pbar)``
the device's scale (the member's rule). The weights have a Gaussian prior centred on the source,
``w ~ N([0, 1, ..., 1], diag(intercept_sd^2, sd^2, ...))``, relative noise ``noise_sd`` (Bayesian linear
regression, :func:`~nasjax.hardware.fewshot.bayes.blr`), noise variance ``tau noise_sd^2`` over a grid
of ``tau``. With k >= 3 the method and its tau are chosen by the leave-one-out error on the k refs
(:func:`~nasjax.hardware.fewshot.members.loo_error`, mean squared log error); with k = 1 or 2 it is the
global scale. Reference architectures are designed, before any measurement, by the few-shot model's
greedy Bayesian D-optimal design (:func:`~nasjax.hardware.fewshot.bayes.greedy_design`) on the
stage-scale features (or, ``method="stage_kernel_scales"``, on that method's features).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import ClassVar

import numpy as np

from nasjax.errors import NasjaxInputError, require
from nasjax.hardware.fewshot.bayes import greedy_design
from nasjax.hardware.fewshot.members import AdditiveMsMember, loo_error
from nasjax.tables import Table

#: the calibration methods in order of complexity (ties of the leave-one-out error go to the earlier); ``"auto"``
#: chooses among all but :data:`NAMED_ONLY`
METHODS = ("unchanged", "global_scale", "affine", "kind_scales", "stage_scales", "stage_kernel_scales",
           "fewshot_additive_ms")
#: methods fitted with the few-shot model's additive-in-ms member (all need k >= 2)
_MS_METHODS = ("affine", "kind_scales", "stage_scales", "stage_kernel_scales", "fewshot_additive_ms")
#: methods used only when asked for by name, never by ``"auto"``
NAMED_ONLY = ("stage_kernel_scales",)
#: the method is chosen by leave-one-out from this many refs on (fewer: the global scale)
SELECT_MIN_REFS = 3


@dataclass(frozen=True)
class CalibrationPriors:
    """Prior widths of the calibration weights (relative: 0.3 = the source's value +- 30 %).

    Attributes:
      intercept_sd: of the per-call overhead ``w_0``, relative to the source's mean prediction.
      stage_sd: of each group scale (``stage_scales``, ``stage_kernel_scales``).
      cell_sd: of each cell scale (``fewshot_additive_ms``).
      affine_sd: of the single scale of ``affine``.
      noise_sd: relative measurement noise of an end-to-end timing.
      tau_grid: noise scales tried for every Bayesian method (the few-shot members' ``tau``: the noise
        variance is ``tau noise_sd^2``, so a small tau trusts the refs more than the prior); the
        leave-one-out error chooses among them.
    """

    intercept_sd: float = 0.5
    stage_sd: float = 0.3
    cell_sd: float = 0.3
    affine_sd: float = 1.0
    noise_sd: float = 0.03
    tau_grid: tuple = (1.0, 0.1, 0.01)

    def __post_init__(self):
        require(isinstance(self.tau_grid, tuple) and len(self.tau_grid) > 0
                and all(isinstance(t, (int, float)) and t > 0 for t in self.tau_grid), "priors.tau_grid",
                self.tau_grid, "a non-empty tuple of positive numbers")
        for k in ("intercept_sd", "stage_sd", "cell_sd", "affine_sd", "noise_sd"):
            v = getattr(self, k)
            require(isinstance(v, (int, float)) and not isinstance(v, bool) and np.isfinite(v) and v > 0,
                    f"priors.{k}", v, "a positive finite number")


class TableSource:
    """The cell view of an additive table: ``x_0 = base``, ``x_{1 + i K + c} = coef[i, c]`` where ``a_i = c``.

    A depth-gated layer table (``provenance.model == "depth_gated"``, the layer view's tables) counts a cell
    only where its layer is active (:func:`nasjax.hardware.lut_builder.active_layers`).

    ``kernel_groups`` is the (stage, kernel size) group of every cell (:func:`kernel_groups`), ``None`` when no
    choice of the table's space names a kernel size.

    Args:
      table: the source table (latency, a time unit).
      stage_of_position: the group (stage, 1-based) of every position; default: positions labelled
        ``stage s ...`` by the space (``mobilenetv3_layers``: layer and depth positions of stage s), else one
        group per position.
    """

    def __init__(self, table: Table, stage_of_position=None):
        require(isinstance(table, Table), "table", type(table).__name__, "a nasjax Table")
        self.table = table
        P, K = table.shape
        if stage_of_position is None:
            stage_of_position = _default_stages(table)
        st = np.asarray(stage_of_position)
        require(st.shape == (P,) and st.dtype.kind in "iu" and bool(np.all(st >= 1)), "stage_of_position",
                stage_of_position, f"{P} integers >= 1 (one group per position)")
        self.groups = np.concatenate([[0], np.repeat(st.astype(np.int64), K)])
        self.group_names = ("fixed",) + tuple(f"stage {g}" for g in range(1, int(st.max()) + 1))
        self.kernel_groups = kernel_groups(table, self.groups)
        self.metric, self.unit, self.device = table.metric, table.unit, table.device
        from nasjax.hardware.lut_builder import active_layers

        self._active = active_layers(table)
        if self._active is None:
            coef = np.where(table.mask, table.coef, np.nan)
            self.mean_value = float(table.base + np.nansum(np.nanmean(coef, 1)))
        else:  # depth-gated: the mean over uniformly drawn architectures (fixed draw)
            rng = np.random.default_rng(0)
            valid = [np.flatnonzero(table.mask[i]) for i in range(P)]
            draw = np.stack([rng.choice(v, 4096) for v in valid], axis=1)
            self.mean_value = float(self.predict(draw).mean())

    @property
    def num_cells(self) -> int:
        return 1 + self.table.values.size

    def cells(self, archs) -> np.ndarray:
        """``[N, F]`` cell contributions (ms) of architectures ``archs [N, P]`` (checked by the table)."""
        a = np.atleast_2d(np.asarray(archs))
        self.table.predict(a)  # validates shape and choice indices
        a = a.astype(np.int64)
        P, K = self.table.shape
        out = np.zeros((len(a), self.num_cells))
        out[:, 0] = self.table.base
        rows = np.arange(len(a))[:, None]
        contrib = self.table.coef[np.arange(P)[None, :], a]
        if self._active is not None:
            contrib = contrib * self._active(a)
        out[rows, 1 + np.arange(P)[None, :] * K + a] = contrib
        return out

    def predict(self, archs):
        if self._active is None:
            return self.table.predict(archs)
        single = np.asarray(archs).ndim == 1
        out = self.cells(archs).sum(1)
        return float(out[0]) if single else out


def kernel_groups(table: Table, groups: np.ndarray) -> np.ndarray | None:
    """``[1 + P K]`` group of every cell (``TableSource.cells`` order) by its stage and kernel size.

    The kernel size is read from the choice labels of the table's registered space (``k3e4``: 3). Group 0 is
    the fixed part; within a stage (``groups``, one per cell), the cells of choices without a kernel size
    (the depth choices) form one group. Groups are numbered in order of (stage, kernel size).

    Returns:
      The int64 groups, or ``None`` when the space is not registered, has another number of positions, or
      none of its choices names a kernel size.
    """
    import re

    from nasjax.spaces.base import SPACES, get_space

    if table.space not in SPACES:
        return None
    space = get_space(table.space)
    P, K = table.shape
    if space.num_positions != P:
        return None
    size = np.zeros(1 + P * K, np.int64)
    for i, labels in enumerate(space.choices):
        for c, label in enumerate(labels[:K]):
            m = re.match(r"k(\d+)", str(label))
            size[1 + i * K + c] = int(m.group(1)) if m else 0
    if not size.any():
        return None
    key = np.asarray(groups, np.int64) * 1000 + size
    key[0] = -1  # the fixed part is group 0
    return np.unique(key, return_inverse=True)[1].astype(np.int64)


def _require_kernel_groups(src, method: str) -> None:
    """Refuse ``stage_kernel_scales`` for a source without (stage, kernel size) groups."""
    if method == "stage_kernel_scales":
        require(getattr(src, "kernel_groups", None) is not None, "method", method,
                "a source whose choices name a kernel size (k<size>...; this one's do not)")


def _default_stages(table: Table) -> np.ndarray:
    P = table.shape[0]
    if table.space == "mobilenetv3_layers" and P == 25:
        return np.array([i // 4 + 1 for i in range(20)] + [s + 1 for s in range(5)], dtype=np.int64)
    return np.arange(1, P + 1, dtype=np.int64)


def _as_source(model):
    if isinstance(model, Table):
        return TableSource(model)
    for attr in ("cells", "groups", "group_names", "mean_value", "predict", "unit", "metric"):
        if not hasattr(model, attr):
            raise NasjaxInputError(f"table: a {type(model).__name__} has no {attr!r}; expected a nasjax Table or a "
                                   "source with the cell view (cells, groups, group_names, mean_value, predict)")
    return model


@dataclass(frozen=True)
class _GlobalScale:
    """``log L = log p + b`` (members' interface: ``fit(model, f, yr, exclude, tau)`` / ``predict_log``)."""

    name: ClassVar[str] = "global_scale"

    def available(self, model) -> bool:
        return True

    def fit(self, model, f, yr, exclude, tau):
        return float(np.mean(yr - f["yhat"][:, 0])) if len(yr) else None

    def predict_log(self, model, fit, f):
        return f["yhat"][:, 0] + fit


class _SourceAsDevice:
    """The source table as the single training device of :class:`AdditiveMsMember` (its prior arrays)."""

    def __init__(self, source, method: str, priors: CalibrationPriors):
        self.devices = [str(source.device or "source")]
        groups = np.asarray(source.groups)
        F = len(groups)
        if method == "affine":
            agg, sd = np.ones((1, F)), priors.affine_sd
        elif method == "kind_scales":
            kinds = np.asarray(source.kinds)
            agg, sd = (kinds[None, :] == np.arange(int(kinds.max()) + 1)[:, None]).astype(float), priors.affine_sd
        elif method == "stage_scales":
            agg, sd = (groups[None, :] == np.arange(len(source.group_names))[:, None]).astype(float), priors.stage_sd
        elif method == "stage_kernel_scales":
            kg = np.asarray(source.kernel_groups)
            agg, sd = (kg[None, :] == np.arange(int(kg.max()) + 1)[:, None]).astype(float), priors.stage_sd
        else:
            agg, sd = np.eye(F), priors.cell_sd
        self.agg = agg
        q = len(agg) + 1
        self.arrays = {"additive_ms_m": np.concatenate([[0.0], np.ones(q - 1)]),
                  "additive_ms_S": np.diag(np.concatenate([[priors.intercept_sd ** 2], np.full(q - 1, sd ** 2)])),
                  "additive_ms_s2": np.array([priors.noise_sd ** 2]),
                  "additive_ms_mean": np.array([source.mean_value])}
        self.mean = float(source.mean_value)

    def features(self, cells: np.ndarray, pred: np.ndarray) -> dict:
        return {"yhat": np.log(pred)[:, None],
                "xadd": np.concatenate([np.ones((len(cells), 1)), cells @ self.agg.T / self.mean], 1)}


def _features(source, cells, pred) -> dict:
    return {"yhat": np.log(pred)[:, None]}


@dataclass(frozen=True)
class CalibratedTable:
    """A source table adapted to a target: ``L(a) = intercept + sum_f multipliers[f] x_f(a)`` (ms).

    Same interface as a table for constraints and searches (``metric``, ``unit``, ``device``,
    ``predict``, ``bounds``); :attr:`table` is the adapted additive :class:`~nasjax.tables.Table` when the
    source is one. ``loo`` holds each method's leave-one-out mean squared log error on the refs.
    """

    source: object
    method: str
    k: int
    intercept: float
    multipliers: np.ndarray
    loo: dict = field(default_factory=dict)
    device: str | None = None
    tau: float = 1.0

    @property
    def metric(self) -> str:
        return self.source.metric

    @property
    def unit(self) -> str:
        return self.source.unit

    def predict(self, archs):
        """Calibrated prediction (ms) for one architecture or a batch ``[N, P]``."""
        single = np.asarray(archs).ndim == 1
        out = self.intercept + self.source.cells(archs) @ self.multipliers
        return float(out[0]) if single else out

    @property
    def table(self) -> Table | None:
        """The calibrated additive table (the source table itself when ``method == 'unchanged'``); ``None``
        for a source that is not a table."""
        if not isinstance(self.source, TableSource):
            return None
        t = self.source.table
        if self.method == "unchanged":
            return t
        P, K = t.shape
        coef = t.coef * self.multipliers[1:].reshape(P, K)
        prov = dict(t.provenance)
        prov["calibration"] = self.summary()
        return replace(t, values=t.sign * np.where(t.mask, coef, 0.0),
                       base=float(self.intercept + self.multipliers[0] * t.base), device=self.device or t.device,
                       provenance=prov)

    def bounds(self) -> tuple[float, float]:
        t = self.table
        require(t is not None, "bounds", type(self.source).__name__, "a calibrated Table (a table source)")
        return t.bounds()

    def summary(self) -> dict:
        """The method, k, the fitted overhead and the range of the cell scales, and the leave-one-out errors."""
        m = self.multipliers
        return {"method": self.method, "tau": self.tau, "k": self.k, "intercept_ms": float(self.intercept),
                "scale_min": float(m.min()), "scale_max": float(m.max()), "loo_msle": dict(self.loo)}


def _linear_form(method: str, fit, shim, F: int) -> tuple[float, np.ndarray]:
    """``(c, u)`` of a fitted method: ``L = c + u . x``."""
    if method == "global_scale":
        return 0.0, np.full(F, float(np.exp(fit)))
    w, scale = fit
    return float(scale * w[0]), scale / shim.mean * (w[1:] @ shim.agg)


def calibrate(table, ref_archs, measured_ms, *, method: str = "auto", priors: CalibrationPriors | None = None,
              device: str | None = None) -> CalibratedTable:
    """Adapt ``table`` to a target from end-to-end latencies of k reference architectures.

    Args:
      table: the source: a :class:`~nasjax.tables.Table` in ms (or a model with the cell view, e.g.
        :class:`~nasjax.hardware.calibration.ofa_fit.OFALayerModel`).
      ref_archs: ``[k, P]`` reference architectures (k = 0: an empty list).
      measured_ms: ``[k]`` their latency on the target, ms, finite and positive.
      method: one of :data:`METHODS`, or ``"auto"``: chosen by leave-one-out on the refs (k >= 3).
      priors: the prior widths (:class:`CalibrationPriors`).
      device: the target's name (recorded on the calibrated table).

    Returns:
      The :class:`CalibratedTable` (``L(a) = c + sum_f u_f x_f(a)``, module docstring).
    """
    src = _as_source(table)
    priors = priors or CalibrationPriors()
    require(src.unit == "ms", "table.unit", src.unit,
            "'ms' like measured_ms (convert the table explicitly, e.g. Table.to_unit('ms'))")
    require(method == "auto" or method in METHODS, "method", method, f"'auto' or one of {', '.join(METHODS)}")
    y = np.asarray(measured_ms, dtype=np.float64).reshape(-1) if np.size(measured_ms) else np.zeros(0)
    a = np.asarray(ref_archs)
    k = len(y)
    if k == 0 or a.size == 0:
        require(k == 0 and a.size == 0, "ref_archs/measured_ms", (a.shape, k), "both empty for k = 0")
        require(method in ("auto", "unchanged"), "method", method, "'auto' or 'unchanged' with no refs")
        return CalibratedTable(src, "unchanged", 0, 0.0, np.ones(len(src.groups)), {}, device)
    require(a.ndim == 2 and len(a) == k, "ref_archs", a.shape, f"[{k}, positions]: one architecture per measurement")
    bad = ~np.isfinite(y) | (y <= 0)
    if bad.any():
        j = int(np.flatnonzero(bad)[0])
        raise NasjaxInputError(f"measured_ms[{j}]: got {y[j]!r}, expected a finite positive latency in ms")
    cells = src.cells(a)
    pred = cells.sum(1)
    require(bool(np.all(pred > 0)), "table", f"prediction {pred.min():g} ms at a reference",
            "positive latency predictions at every reference")
    if method == "unchanged":
        return CalibratedTable(src, "unchanged", k, 0.0, np.ones(cells.shape[1]), {}, device)
    names = [method] if method != "auto" else (["global_scale"] if k < SELECT_MIN_REFS else
                                                [m for m in METHODS[1:] if m not in NAMED_ONLY])
    if not hasattr(src, "kinds"):
        require(method != "kind_scales", "method", method, "a source with cell kinds (this one has none)")
        names = [n for n in names if n != "kind_scales"]
    _require_kernel_groups(src, method)
    if method in _MS_METHODS:
        require(k >= 2, "ref_archs", f"{k} reference", f">= 2 references for method {method!r}")
    yr = np.log(y)
    fits, loo = {}, {}
    for name in names:
        if name == "global_scale":
            member, shim, f, taus = _GlobalScale(), None, _features(src, cells, pred), (1.0,)
        else:
            member, shim = AdditiveMsMember(), _SourceAsDevice(src, name, priors)
            f, taus = shim.features(cells, pred), priors.tau_grid
        for tau in taus:
            fit = member.fit(shim, f, yr, (), tau)
            if fit is None:
                continue
            fits[(name, tau)] = (fit, shim)
            if k >= SELECT_MIN_REFS:
                loo[(name, tau)] = loo_error(member, shim, f, yr, (), tau)
    order = list(fits)
    best = min(order, key=lambda n: (loo.get(n, 0.0), order.index(n)))
    c, u = _linear_form(best[0], fits[best][0], fits[best][1], cells.shape[1])
    loo_named = {f"{n}@tau={t:g}": float(e) for (n, t), e in loo.items()}
    return CalibratedTable(src, best[0], k, c, u, loo_named, device, float(best[1]))


#: the calibration methods a design can be made for (:func:`design_from_candidates`)
DESIGN_FOR = ("stage_scales", "stage_kernel_scales")


def _design_features(src, cells: np.ndarray, priors: CalibrationPriors,
                     method: str) -> tuple[np.ndarray, np.ndarray]:
    shim = _SourceAsDevice(src, method, priors)
    return shim.features(cells, cells.sum(1))["xadd"], shim.arrays["additive_ms_S"]


def design_from_candidates(table, candidates, k: int, priors: CalibrationPriors | None = None, *,
                           method: str = "stage_scales") -> np.ndarray:
    """Choose k references among ``candidates [N, P]`` before any target measurement: the greedy Bayesian
    D-optimal design on the features of the calibration ``method`` with its prior, ``[1, P_g(a) / pbar]``
    for the stage scales (the default) or the same per stage and kernel size for ``"stage_kernel_scales"``
    (a source whose choices name a kernel size; the design for a move between runtimes).

    Returns:
      ``int64 [k]`` row indices into ``candidates``; the first k' are the design for k'.
    """
    src = _as_source(table)
    priors = priors or CalibrationPriors()
    require(method in DESIGN_FOR, "method", method, f"one of {', '.join(DESIGN_FOR)} (the calibration designed for)")
    _require_kernel_groups(src, method)
    require(isinstance(k, (int, np.integer)) and not isinstance(k, bool) and k >= 0, "k", k, "an integer >= 0")
    cand = np.atleast_2d(np.asarray(candidates))
    require(k <= len(cand), "k", k, f"at most {len(cand)} (the number of candidates)")
    if k == 0:
        return np.zeros(0, np.int64)
    h, s_cov = _design_features(src, src.cells(cand), priors, method)
    return greedy_design(h, s_cov, priors.noise_sd ** 2, int(k))


def design_references(space, k: int, seed: int, table=None, *, pool: int = 2000,
                      priors: CalibrationPriors | None = None, method: str = "stage_scales") -> np.ndarray:
    """k reference architectures of ``space`` to time on a new target (chosen before any measurement).

    Args:
      space: the search space (:class:`~nasjax.spaces.base.SearchSpace`).
      k: how many (the first k' of the result are the design for k').
      seed: draws the candidate pool (same seed -> same refs).
      table: the source table; with it the design is D-optimal for the calibration ``method``
        (:func:`design_from_candidates`), without it for a one-hot additive model with a unit prior.
      pool: candidates drawn uniformly from the space.
      method: with a table, the calibration designed for (:data:`DESIGN_FOR`).

    Returns:
      ``int64 [k, P]`` architectures.
    """
    require(isinstance(k, (int, np.integer)) and not isinstance(k, bool) and k >= 0, "k", k, "an integer >= 0")
    require(isinstance(pool, (int, np.integer)) and pool >= max(k, 1), "pool", pool, f"an integer >= {max(k, 1)}")
    cand = np.unique(space.random(np.random.default_rng(seed), int(pool)), axis=0)
    cand = cand[np.random.default_rng(seed).permutation(len(cand))]
    require(k <= len(cand), "k", k, f"at most {len(cand)} distinct architectures of space {space.name!r}")
    if table is not None:
        src = _as_source(table)
        if isinstance(src, TableSource):
            src.table.check_space(space)
        return cand[design_from_candidates(src, cand, k, priors, method=method)]
    h = space.onehot(cand).reshape(len(cand), -1).astype(np.float64)
    h = np.concatenate([np.ones((len(h), 1)), h], 1)
    return cand[greedy_design(h, np.eye(h.shape[1]), 0.01, int(k))]
