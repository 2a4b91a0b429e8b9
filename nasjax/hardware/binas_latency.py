"""The bilinear form of BINAS (Nayman et al., arXiv 2110.12399) and BINAS's latency model built from it.

With BINAS's encoding of an architecture ``a`` (:func:`nasjax.spaces.binas.encode`: ``alpha_l`` the
one-hot configuration of layer ``l``, zero when the layer is beyond its stage's depth, ``beta_s`` the
one-hot depth of stage ``s``), a :class:`BilinearForm` is::

    f(a) = base + sum_l alpha_l . p_a[l] + sum_s beta_s . p_b[s] + sum_{l, s} alpha_l^T Q[l, :, s, :] beta_s

Because ``alpha_l`` is zero for an inactive layer, a layer's terms count only when its stage is deep
enough to contain it. BINAS's latency model is such a form,
``T(alpha, beta) = T_fixed + alpha^T p + alpha^T Q_T beta``: the cost ``t[l, c]`` of every layer
configuration counts when the stage is deep enough, which in BINAS's own variables (alpha of every layer,
active or not) is the depth x layer interaction ``Q_T[(l, c), (s, d)] = t[l, c] [l < depth_d]``
(:meth:`BilinearForm.binas_matrices`). Accuracy models use the same form (nasjax.predictors.bilinear).

Units are explicit: a form carries its unit, :meth:`BilinearForm.to_unit` converts only when asked, and a
constraint in ``ms`` on a form in ``s`` is an error (:class:`~nasjax.constraints.Constraint`). BINAS's
LUTs are in seconds per image (:mod:`nasjax.benchmarks.binas_lut`); so is their fixed part, to which
nothing is added unless :meth:`BilinearForm.calibrated` is asked for with an intercept in a unit.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace

import numpy as np

from nasjax.benchmarks.binas_lut import LUT_UNIT, lut_arrays, read_latency_lut
from nasjax.errors import NasjaxInputError, require
from nasjax.hardware.model_io import load_arrays, save_arrays
from nasjax.spaces.binas import DEFAULT, BinasStructure, active, depth_choices, layer_choices
from nasjax.tables import Table, check_unit, convert_value

KIND = "nasjax.binas.bilinear"


@dataclass(frozen=True, eq=False)
class BilinearForm:
    """``f(a) = base + alpha.p_a + beta.p_b + alpha^T Q beta`` over a BINAS space (module docstring).

    Attributes:
      base: the constant ``A_base`` / ``T_fixed``.
      p_a: ``[L, K]`` per layer configuration.
      p_b: ``[S, D]`` per stage depth.
      Q: ``[L, K, S, D]`` layer x depth interactions (``None``: zero).
      metric, unit, device: what the form predicts, in which unit, on which device.
      structure: the space's :class:`~nasjax.spaces.binas.BinasStructure`.
      provenance: where the coefficients come from (JSON data).
    """

    base: float
    p_a: np.ndarray
    p_b: np.ndarray
    Q: np.ndarray | None = None
    metric: str = "accuracy"
    unit: str = "%"
    device: str | None = None
    structure: BinasStructure = DEFAULT
    provenance: dict = field(default_factory=dict)

    def __post_init__(self):
        st = self.structure
        L, K, S, D = st.num_layers, st.num_configs, st.num_stages, len(st.depths)
        pa, pb = np.asarray(self.p_a, np.float64), np.asarray(self.p_b, np.float64)
        require(pa.shape == (L, K), f"{self.metric} p_a", pa.shape, f"({L}, {K})")
        require(pb.shape == (S, D), f"{self.metric} p_b", pb.shape, f"({S}, {D})")
        q = None if self.Q is None else np.asarray(self.Q, np.float64)
        if q is not None:
            require(q.shape == (L, K, S, D), f"{self.metric} Q", q.shape, f"({L}, {K}, {S}, {D})")
            q = None if not q.any() else q
        for name, x in (("p_a", pa), ("p_b", pb), ("Q", q), ("base", np.float64(self.base))):
            if x is not None and not np.all(np.isfinite(x)):
                raise NasjaxInputError(f"{self.metric} {name}: non-finite coefficients, expected finite numbers")
        check_unit(self.unit, f"{self.metric} unit")
        object.__setattr__(self, "p_a", pa)
        object.__setattr__(self, "p_b", pb)
        object.__setattr__(self, "Q", q)
        object.__setattr__(self, "base", float(self.base))
        object.__setattr__(self, "_bounds", None)

    # --- structure of the coupling ------------------------------------------------------------
    @property
    def stage_separable(self) -> bool:
        """True when ``Q`` couples each layer only with its own stage's depth (a sum of per-stage terms)."""
        if self.Q is None:
            return True
        own = np.arange(self.structure.num_stages)[None, :] == self.structure.layer_stage[:, None]  # [L, S]
        return not np.any(self.Q.transpose(0, 2, 1, 3)[~own])

    def within_stage(self) -> np.ndarray:
        """``[L, K, D]``: ``Q[l, :, stage(l), :]`` (zeros when ``Q`` is zero)."""
        st = self.structure
        if self.Q is None:
            return np.zeros((st.num_layers, st.num_configs, len(st.depths)))
        return self.Q[np.arange(st.num_layers), :, st.layer_stage, :]

    # --- prediction -------------------------------------------------------------------------
    def predict(self, archs) -> np.ndarray | float:
        """``f(a)`` of one architecture ``[P]`` or a batch ``[N, P]`` (vectorised).

        f(a) = base + sum_{l active} p_a[l, a_l] + sum_s p_b[s, d_s] + sum_{l active} sum_s Q[l, a_l, s, d_s]

        Args:
          archs: BINAS choice vectors ``[P]`` or ``[N, P]`` (not validated).

        Returns:
          A float for one architecture, else float64 ``[N]``, in the form's unit.
        """
        a = np.asarray(archs, np.int64)
        a2 = np.atleast_2d(a)
        st = self.structure
        lay, dep, act = layer_choices(a2, st), depth_choices(a2, st), active(a2, st)
        L = np.arange(st.num_layers)[None, :]
        v = self.base + np.where(act, self.p_a[L, lay], 0.0).sum(1)
        v = v + self.p_b[np.arange(st.num_stages)[None, :], dep].sum(1)
        if self.Q is not None:
            q = self.Q[L, lay]  # [N, L, S, D]
            q = np.take_along_axis(q, np.broadcast_to(dep[:, None, :, None], q.shape[:3] + (1,)), 3)[..., 0]
            v = v + np.where(act, q.sum(2), 0.0).sum(1)
        return float(v[0]) if a.ndim == 1 else v

    def layer_values(self, depths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The form as an additive function of the layer configurations once the depths are fixed.

        Args:
          depths: ``[M, S]`` depth choice indices.

        Returns:
          ``(const [M], u [M, L, K])`` with ``f(a) = const + sum_{l active} u[l, a_l]`` for every ``a`` with
          these depths (``u`` is zero on inactive layers).
        """
        st = self.structure
        d = np.atleast_2d(np.asarray(depths, np.int64))
        const = self.base + self.p_b[np.arange(st.num_stages)[None, :], d].sum(1)
        u = np.broadcast_to(self.p_a, (len(d),) + self.p_a.shape).copy()
        if self.Q is not None:
            u += np.take_along_axis(self.Q[None], d[:, None, None, :, None], 4)[..., 0].sum(3)
        act = st.layer_needs[np.arange(st.num_layers)[None, :], d[:, st.layer_stage]]
        return const, np.where(act[..., None], u, 0.0)

    def bounds(self) -> tuple[float, float]:
        """Smallest and largest value over the space (exact: every depth combination, the best layers)."""
        if self._bounds is None:
            st = self.structure
            depths = np.array(list(itertools.product(range(len(st.depths)), repeat=st.num_stages)), np.int64)
            lo, hi = np.inf, -np.inf
            for chunk in np.array_split(depths, max(1, len(depths) // 512)):
                const, u = self.layer_values(chunk)
                lo = min(lo, float((const + u.min(2).sum(1)).min()))
                hi = max(hi, float((const + u.max(2).sum(1)).max()))
            object.__setattr__(self, "_bounds", (lo, hi))
        return self._bounds

    # --- BINAS's variables ---------------------------------------------------------------------
    def binas_matrices(self) -> tuple[float, np.ndarray, np.ndarray, np.ndarray]:
        """The form in BINAS's variables, where every layer has an alpha whether active or not.

        Returns:
          ``(base, p [L*K], p_b [S*D], Q' [L*K, S*D])`` with ``f = base + x.p + y.p_b + x^T Q' y`` for the
          unmasked one-hot ``x`` of every layer and ``y = beta``: ``p = 0`` and
          ``Q'[(l, c), (s, d)] = (p_a[l, c] + Q[l, c, s, d]) [s = stage(l)] [l < depth_d]``. Only a
          stage-separable form has this bilinear expression (an error otherwise).
        """
        if not self.stage_separable:
            raise NasjaxInputError(f"{self.metric} form: Q couples layers with other stages' depths; BINAS's "
                                   "bilinear variables cannot express it")
        st = self.structure
        L, K, S, D = st.num_layers, st.num_configs, st.num_stages, len(st.depths)
        full = np.zeros((L, K, S, D))
        coef = (self.p_a[:, :, None] + self.within_stage()) * st.layer_needs[:, None, :]  # [L, K, D]
        full[np.arange(L), :, st.layer_stage, :] = coef
        return self.base, np.zeros(L * K), self.p_b.reshape(-1), full.reshape(L * K, S * D)

    def relax(self, alpha: np.ndarray, beta: np.ndarray) -> tuple[float, np.ndarray, np.ndarray]:
        """Value and gradients at fractional ``alpha [L, K]``, ``beta [S, D]`` (rows on the simplex).

        A stage-separable form uses BINAS's bilinear expression (linear in ``alpha`` for fixed ``beta`` and
        in ``beta`` for fixed ``alpha``); any other form uses :func:`masked_relaxation`.

        Args:
          alpha: ``[L, K]`` fractional layer configurations, each row summing to 1.
          beta: ``[S, D]`` fractional stage depths, each row summing to 1.

        Returns:
          ``(f, df/dalpha [L, K], df/dbeta [S, D])``, ``f`` in the form's unit.
        """
        if not self.stage_separable:
            return masked_relaxation(self._feature_value_and_grad, alpha, beta, self.structure)
        base, _, pb, Qf = self.binas_matrices()
        x, y = alpha.reshape(-1), beta.reshape(-1)
        qy = Qf @ y
        return float(base + y @ pb + x @ qy), qy.reshape(alpha.shape), (pb + x @ Qf).reshape(beta.shape)

    def _feature_value_and_grad(self, at: np.ndarray, beta: np.ndarray):
        qb = 0.0 if self.Q is None else np.einsum("lksd,sd->lk", self.Q, beta)
        ga = self.p_a + qb
        gb = self.p_b + (0.0 if self.Q is None else np.einsum("lk,lksd->sd", at, self.Q))
        return float(self.base + (at * self.p_a).sum() + (beta * self.p_b).sum() + (at * qb).sum()), ga, gb

    # --- units and files -------------------------------------------------------------------------
    def to_unit(self, unit: str) -> BilinearForm:
        """The same form in ``unit`` (an explicit conversion: ``s`` -> ``ms`` multiplies by 1000).

        Args:
          unit: the target unit, of the same dimension as the form's.

        Returns:
          A new :class:`BilinearForm` with every coefficient converted.

        Raises:
          NasjaxInputError: when ``unit`` is unknown or measures something else.
        """
        f = convert_value(1.0, self.unit, unit)
        return replace(self, base=self.base * f, p_a=self.p_a * f, p_b=self.p_b * f,
                       Q=None if self.Q is None else self.Q * f, unit=unit)

    def calibrated(self, slope: float = 1.0, intercept: float = 0.0, intercept_unit: str | None = None) -> BilinearForm:
        """``slope * f + intercept`` (BINAS's ``--latency_corrective_slope/intercept``).

        The intercept's unit must be the form's (a number in ``ms`` added to a form in ``s`` is refused, not
        rescaled).

        Args:
          slope: the positive factor applied to every coefficient.
          intercept: the constant added to the base, in the form's unit.
          intercept_unit: the intercept's unit, checked against the form's; ``None`` skips the check.

        Returns:
          A new :class:`BilinearForm`.

        Raises:
          NasjaxInputError: when ``slope`` is not a positive finite number or ``intercept_unit`` differs from the
            form's unit.
        """
        require(np.isfinite(slope) and slope > 0, "latency_corrective_slope", slope, "a positive number")
        if intercept_unit is not None and intercept_unit != self.unit:
            raise NasjaxInputError(f"latency_corrective_intercept: in {intercept_unit!r} but the {self.metric} model "
                                   f"is in {self.unit!r}; expected the same unit (convert the model with to_unit)")
        scaled = replace(self, base=self.base * slope, p_a=self.p_a * slope, p_b=self.p_b * slope,
                         Q=None if self.Q is None else self.Q * slope)
        return replace(scaled, base=scaled.base + float(intercept))

    def save(self, path, kind: str = KIND) -> dict:
        """Write the form (npz with a JSON header, :mod:`nasjax.hardware.model_io`).

        Args:
          path: the file to write.
          kind: the file kind recorded in the header (checked by :meth:`load`).

        Returns:
          What :func:`~nasjax.hardware.model_io.save_arrays` returns (the written header).
        """
        arrays = {"p_a": self.p_a, "p_b": self.p_b, "base": np.array([self.base])}
        if self.Q is not None:
            arrays["Q"] = self.Q
        header = {"metric": self.metric, "unit": self.unit, "device": self.device,
                  "structure": self.structure.to_dict(), "provenance": self.provenance,
                  "formula": "f(a) = base + alpha.p_a + beta.p_b + alpha^T Q beta (alpha zero on inactive layers)"}
        return save_arrays(path, arrays, kind=kind, header=header)

    @classmethod
    def from_arrays(cls, arrays: dict, header: dict) -> BilinearForm:
        """The form of arrays and a header as :meth:`save` writes them.

        Args:
          arrays: ``{"base": [1], "p_a": [L, K], "p_b": [S, D]}`` and optionally ``"Q": [L, K, S, D]``.
          header: ``metric``, ``unit``, ``structure`` (a :meth:`BinasStructure.to_dict`), optionally ``device``
            and ``provenance``.

        Returns:
          The :class:`BilinearForm`.

        Raises:
          NasjaxInputError: when a shape, unit or the structure is invalid, or a coefficient is not finite.
          KeyError: when ``arrays`` or ``header`` lacks one of the fields above.
        """
        return cls(float(arrays["base"][0]), arrays["p_a"], arrays["p_b"], arrays.get("Q"), header["metric"],
                   header["unit"], header.get("device"), BinasStructure.from_dict(header["structure"]),
                   header.get("provenance", {}))

    @classmethod
    def load(cls, path, kind: str = KIND) -> BilinearForm:
        """Read a form written by :meth:`save`.

        Args:
          path: the file.
          kind: the file kind expected in its header.

        Returns:
          The :class:`BilinearForm`.

        Raises:
          NasjaxInputError: when the file is not a nasjax array file of ``kind`` or its content is invalid.
          KeyError: when its header lacks ``metric``, ``unit`` or ``structure``.
        """
        arrays, header = load_arrays(path, kind=kind)
        return cls.from_arrays(arrays, header)


def masked_relaxation(value_and_grad, alpha: np.ndarray, beta: np.ndarray, st: BinasStructure):
    """A model of BINAS's encoding evaluated at fractional ``alpha [L, K]``, ``beta [S, D]``.

    The relaxed encoding is ``alpha~_l = alpha_l * P(l active)``, ``P(l active) = sum_{d: l < depth_d}
    beta_{stage(l), d}``; ``value_and_grad(alpha~, beta) -> (f, df/dalpha~, df/dbeta)`` is the model on it.

    Args:
      value_and_grad: the model on the relaxed encoding, ``(alpha~, beta) -> (f, df/dalpha~, df/dbeta)``.
      alpha: ``[L, K]`` fractional layer configurations, each row summing to 1.
      beta: ``[S, D]`` fractional stage depths, each row summing to 1.
      st: the space's structure.

    Returns:
      ``(f, df/dalpha, df/dbeta)`` by the chain rule:
      ``df/dalpha_l = P(l active) df/dalpha~_l`` and
      ``df/dbeta_{s,d} = df/dbeta_{s,d} + sum_{l in s, l < depth_d} alpha_l . df/dalpha~_l``.
    """
    p_act = (beta[st.layer_stage] * st.layer_needs).sum(1)  # [L]
    f, ga, gb = value_and_grad(alpha * p_act[:, None], beta)
    inner = (alpha * ga).sum(1)  # [L]
    gb = gb + np.zeros(beta.shape)
    np.add.at(gb, st.layer_stage, inner[:, None] * st.layer_needs)
    return float(f), ga * p_act[:, None], gb


# --------------------------------------------------------------------------------------------------
# latency models


def latency_model(fixed: float, layers: np.ndarray, unit: str, *, depth_costs: np.ndarray | None = None,
                  device: str | None = None, structure: BinasStructure = DEFAULT,
                  provenance: dict | None = None) -> BilinearForm:
    """``T(a) = fixed + sum_{l active} layers[l, a_l] + sum_s depth_costs[s, d_s]`` (in ``unit``).

    Args:
      fixed: the fixed modules' latency (stem, first block, head), ``T_fixed``.
      layers: ``[L, K]`` latency of each layer configuration, counted when the layer's stage is deep enough.
      unit: the unit of every number (``"s"`` for BINAS's LUTs, ``"ms"`` for nasjax's tables).
      depth_costs: optional ``[S, D]`` cost of each stage depth beyond its layers (e.g. a measured residual).
      device, structure, provenance: labels and the space.

    Returns:
      The latency :class:`BilinearForm`.
    """
    st = structure
    pb = np.zeros((st.num_stages, len(st.depths))) if depth_costs is None else depth_costs
    return BilinearForm(fixed, layers, pb, None, "latency", unit, device, st, dict(provenance or {}))


def latency_from_lut(lut, *, device: str | None = None, structure: BinasStructure = DEFAULT) -> BilinearForm:
    """The latency model of a BINAS LUT (a path to its pickle, or the dict), in seconds per image.

    T(a) = general + sum_{l active} LUT[key(l, a_l)]

    Args:
      lut: the path of a LUT pickle, or a LUT dict as read by :func:`~nasjax.benchmarks.binas_lut.read_latency_lut`.
      device: the device label of the model.
      structure: the space's structure (which layers exist and their LUT keys).

    Returns:
      The latency :class:`BilinearForm` in ``s``.

    Raises:
      NasjaxInputError: when the pickle is unreadable or invalid, or a layer configuration's key is missing.
    """
    source = str(lut) if not isinstance(lut, dict) else "lut"
    d = read_latency_lut(lut) if not isinstance(lut, dict) else lut
    general, layers = lut_arrays(d, structure, source)
    return latency_model(general, layers, LUT_UNIT, device=device, structure=structure,
                         provenance={"source": source, "format": "BINAS LUT (seconds per image)"})


def latency_from_table(table: Table, structure: BinasStructure = DEFAULT) -> BilinearForm:
    """The latency model of a nasjax latency :class:`~nasjax.tables.Table` over the BINAS space's positions.

    Its base is ``T_fixed``, a layer position's row the layer's cost (counted when active), a depth position's
    row the stage's per-depth cost; the unit and device are the table's.

    Args:
      table: a latency table over the ``S * (1 + max_depth)`` positions of the BINAS space.
      structure: the space's structure.

    Returns:
      The latency :class:`BilinearForm` (coefficients signed as the table's).

    Raises:
      NasjaxInputError: when the table is not a latency table of this space (positions or choice counts).
    """
    st = structure
    P, K, D = st.num_stages * (1 + st.max_depth), st.num_configs, len(st.depths)
    if table.metric != "latency" or table.values.shape[0] != P:
        raise NasjaxInputError(f"latency_table: {table.metric} table with {table.values.shape[0]} positions, expected "
                               f"a latency table over the {P} positions of the BINAS space")
    counts = table.mask.sum(1)
    want = np.full(P, K)
    want[st.depth_positions] = D
    if not np.array_equal(counts, want):
        raise NasjaxInputError(f"latency_table: choice counts {counts.tolist()}, expected {want.tolist()}")
    coef = table.coef
    return latency_model(table.base, coef[st.layer_positions, :K], table.unit, depth_costs=coef[st.depth_positions, :D],
                         device=table.device, structure=st, provenance={"source": "table", **table.provenance})


def synthetic_latency(structure: BinasStructure = DEFAULT, seed: int = 0) -> tuple[float, np.ndarray]:
    """A stand-in for a measured LUT, in seconds per image, for tests and benchmarks only.

    Each layer's cost grows with its multiply-accumulates (expand, depthwise, SE, project at its resolution)
    plus a per-layer overhead and +-10 % noise (one draw per LUT key); the fixed part is 25 % of the heaviest
    network::

        cost[l, c] = (1.2e-10 * MACs(l, c) + 2.5e-4 + 1.5e-4 [SE]) * U(0.9, 1.1)

    Args:
      structure: the space's structure.
      seed: the noise seed.

    Returns:
      ``(fixed, cost [L, K])`` in seconds.
    """
    rng = np.random.default_rng(seed)
    st = structure
    cost = np.zeros((st.num_layers, st.num_configs))
    noise: dict = {}  # one draw per LUT key: layers of the same shape cost the same, as in a measured LUT
    for i, layer in enumerate(st.layers()):
        h, ho = layer["resolution"], layer["resolution"] // layer["stride"]
        for c, cfg in enumerate(st.configs):
            mid = layer["in_channels"] * cfg.expansion
            macs = h * h * layer["in_channels"] * mid + ho * ho * mid * (cfg.kernel ** 2 + layer["out_channels"])
            macs += 2 * mid * mid * cfg.se
            key = (layer["in_channels"], layer["out_channels"], layer["stride"], h, layer["act"], cfg)
            scale = noise.setdefault(key, rng.uniform(0.9, 1.1))
            cost[i, c] = (1.2e-10 * macs + 2.5e-4 + 1.5e-4 * (cfg.se > 0)) * scale
    heaviest = cost.max(1).sum()
    return 0.25 * heaviest, cost
