"""Configuration of the few-shot latency model: one typed config, made of small objects, stored as JSON.

:class:`FewShotConfig` holds the basis-network settings, the experts (:mod:`.experts`), the blend members
(:mod:`.members`) and what meta-validation chooses between: expert sets, noise scales ``tau_grid`` (plus
``"auto"``), blend rules (:class:`~nasjax.hardware.fewshot.members.InverseErrorBlend`), reference designs
(:class:`FixedRefs`, :class:`DOptimalRefs`) and the objective over the held-out training devices
(:class:`MeanScore`, :class:`CVaRScore`, :class:`MeanCVaRScore`). A :class:`Candidate` is one choice
(experts, tau, blend rule). :func:`config_to_json` / :func:`config_from_json` write and read the config
of a model file; :func:`meta_selected_config` is the configuration the benchmark uses.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass, field

import numpy as np

from nasjax.errors import NasjaxInputError, require
from nasjax.hardware.fewshot.experts import EXPERT_TYPES, DevicePairExperts, LowRankExpert, SingleDeviceExperts
from nasjax.hardware.fewshot.members import (
    MEMBER_TYPES,
    AdditiveMsMember,
    DeviceMixMember,
    ExpertAverage,
    InverseErrorBlend,
    OpCostMember,
)


@dataclass(frozen=True)
class FixedRefs:
    """References given from outside: ``FewShotConfig.meta_refs`` in meta-validation (random rows when
    none are given), the protocol's rows at test time."""

    def __str__(self) -> str:
        return "fixed"


@dataclass(frozen=True)
class DOptimalRefs:
    """References the model designs itself (greedy Bayesian D-optimal, before any target measurement) on
    the prior of ``prior`` (``"low_rank"``: the low-rank expert's basis and prior; ``"additive_ms"``: the
    additive-in-ms member's one-hot ops and prior, needs ``additive_features``), with the noise variance
    times ``noise_scale``."""

    prior: str = "low_rank"
    noise_scale: float = 1.0

    def __post_init__(self):
        require(self.prior in ("low_rank", "additive_ms"), "reference design DOptimalRefs.prior", self.prior,
                "'low_rank' or 'additive_ms'")
        require(self.noise_scale > 0, "reference design DOptimalRefs.noise_scale", self.noise_scale,
                "a positive noise multiplier")

    def __str__(self) -> str:
        return self.prior + (f"*{self.noise_scale:g}" if self.noise_scale != 1.0 else "")


@dataclass(frozen=True)
class MeanScore:
    """Meta-validation objective: the mean of the held-out training devices' Spearman values."""

    def __call__(self, values) -> float:
        return float(np.mean(values))

    def __str__(self) -> str:
        return "mean"


def _check_q(q, owner: str) -> None:
    require(isinstance(q, (int, float)) and not isinstance(q, bool) and 0 < q <= 1, f"{owner}.q", q,
            "a fraction 0 < q <= 1")


def _cvar(values, q: float) -> float:
    v = np.sort(np.asarray(values, np.float64))
    return float(v[:max(1, int(math.ceil(q * len(v))))].mean())


@dataclass(frozen=True)
class CVaRScore:
    """Meta-validation objective: the mean of the lowest fraction ``q`` of the values (expected shortfall:
    a choice judged by its worst held-out devices)."""

    q: float = 0.2

    def __post_init__(self):
        _check_q(self.q, "CVaRScore")

    def __call__(self, values) -> float:
        return _cvar(values, self.q)

    def __str__(self) -> str:
        return f"cvar {self.q:g}"


@dataclass(frozen=True)
class MeanCVaRScore:
    """Meta-validation objective: the average of the mean and :class:`CVaRScore` ``q``."""

    q: float = 0.2

    def __post_init__(self):
        _check_q(self.q, "MeanCVaRScore")

    def __call__(self, values) -> float:
        return 0.5 * (float(np.mean(values)) + _cvar(values, self.q))

    def __str__(self) -> str:
        return f"mean+cvar {self.q:g}"


@dataclass(frozen=True)
class Candidate:
    """One meta-validated choice: the experts, the noise scale ``tau`` (or ``"auto"``) and the blend rule."""

    experts: tuple
    tau: float | str
    rule: InverseErrorBlend = InverseErrorBlend()

    @property
    def expert_average(self) -> ExpertAverage:
        """The candidate's :class:`~nasjax.hardware.fewshot.members.ExpertAverage` member (its experts and ``tau``)."""
        return ExpertAverage(self.experts, self.tau)

    def label(self) -> str:
        """``"<expert names>|<tau>|<blend rule>"``, the candidate's name in reports."""
        return "|".join([",".join(e.name for e in self.experts), str(self.tau), str(self.rule)])


OBJECTIVE_TYPES = (MeanScore, CVaRScore, MeanCVaRScore)
DESIGN_TYPES = (FixedRefs, DOptimalRefs)


@dataclass(frozen=True)
class FewShotConfig:
    """Settings of :class:`~nasjax.hardware.fewshot.model.FewShotLatencyModel` (one default each)."""

    # multi-device basis (rank r; the NNX basis net of net mode and its Adam training)
    rank: int = 8
    hidden: tuple[int, ...] = (64, 64)
    steps: int = 600
    batch: int = 512
    lr: float = 3e-3
    weight_decay: float = 1e-5
    huber: float = 1.0
    val_frac: float = 0.1
    eval_every: int = 100
    seed: int = 0
    additive_ridge: float = 1.0  # ridge of the training devices' additive log-latency fits (additive prior)
    # experts and members
    tau_grid: tuple[float, ...] = (1.0, 3.0, 10.0, 30.0)
    experts: tuple = (LowRankExpert(), SingleDeviceExperts())
    members: tuple = (DeviceMixMember(), OpCostMember())  # blended with the expert average (k >= 5)
    # meta-validation on the training devices
    meta_k: int = 10
    meta_devices: int = 32  # held-out training devices at most (seeded choice)
    meta_refs: tuple[int, ...] = ()  # fixed reference rows (table mode) of the episodes; () = meta_k random
    blend_rules: tuple = ()  # candidate blend rules; () = (InverseErrorBlend(),): power 2 over all members
    expert_sets: tuple = ()  # candidate expert tuples; () = (experts,)
    ref_designs: tuple = ()  # candidate reference designs; () = (FixedRefs(),)
    meta_objective: MeanScore | CVaRScore | MeanCVaRScore = field(default=MeanScore())
    meta_top: int = 1  # average the log predictions of this many best candidates

    def __post_init__(self):
        def ints(v, name, low):
            require(isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= low, f"config.{name}", v,
                    f"an integer >= {low}")

        for name in ("rank", "steps", "batch", "eval_every", "meta_k", "meta_devices", "meta_top"):
            ints(getattr(self, name), name, 1)
        require(isinstance(self.hidden, tuple) and all(isinstance(h, int) and h >= 1 for h in self.hidden),
                "config.hidden", self.hidden, "a tuple of layer widths >= 1")
        for name in ("lr", "huber", "additive_ridge"):
            require(getattr(self, name) > 0, f"config.{name}", getattr(self, name), "> 0")
        require(0 <= self.val_frac < 1, "config.val_frac", self.val_frac, "a fraction in [0, 1)")
        require(len(self.tau_grid) > 0 and all(float(t) > 0 for t in self.tau_grid), "config.tau_grid",
                self.tau_grid, "positive noise scales")
        for ex in (self.experts, *self.expert_sets):
            require(isinstance(ex, tuple) and bool(ex) and all(isinstance(e, EXPERT_TYPES) for e in ex),
                    "config.expert_sets" if ex is not self.experts else "config.experts", ex,
                    "a non-empty tuple of expert objects (LowRankExpert(), SingleDeviceExperts(), ...)")
        require(all(isinstance(m, MEMBER_TYPES) for m in self.members), "config.members", self.members,
                "member objects (DeviceMixMember(), OpCostMember(), ...)")
        require(len({m.name for m in self.members}) == len(self.members), "config.members", self.members,
                "each member once")
        require(all(isinstance(r, InverseErrorBlend) for r in self.blend_rules), "config.blend_rules",
                self.blend_rules, "InverseErrorBlend objects")
        require(all(isinstance(d, DESIGN_TYPES) for d in self.ref_designs), "config.ref_designs", self.ref_designs,
                "FixedRefs() / DOptimalRefs(...) objects")
        require(isinstance(self.meta_objective, OBJECTIVE_TYPES), "config.meta_objective", self.meta_objective,
                "MeanScore(), CVaRScore(q) or MeanCVaRScore(q)")
        require(all(isinstance(r, numbers.Integral) and r >= 0 for r in self.meta_refs), "config.meta_refs",
                self.meta_refs, "non-negative row indices")
        require(self.meta_refs or FixedRefs() not in self.ref_designs or len(self.ref_designs) <= 1,
                "config.meta_refs", self.meta_refs, "fixed reference rows for the FixedRefs() design")

    def candidate_expert_sets(self) -> list[tuple]:
        """The expert sets meta-validation chooses between: ``expert_sets``, or ``[experts]`` when empty."""
        return list(self.expert_sets) or [self.experts]

    def candidate_rules(self) -> tuple:
        """The blend rules meta-validation picks from: ``blend_rules``, else ``(InverseErrorBlend(),)``."""
        return tuple(self.blend_rules) or (InverseErrorBlend(),)

    def candidate_designs(self) -> tuple:
        """The reference designs meta-validation picks from: ``ref_designs``, else ``(FixedRefs(),)``."""
        return tuple(self.ref_designs) or (FixedRefs(),)

    def uses_additive_prior(self) -> bool:
        """Whether an expert set or a member needs the additive log-latency prior."""
        from nasjax.hardware.fewshot.experts import AdditiveLogExpert
        from nasjax.hardware.fewshot.members import AdditiveLogMember

        return (any(isinstance(e, AdditiveLogExpert) for ex in self.candidate_expert_sets() for e in ex)
                or any(isinstance(m, AdditiveLogMember) for m in self.members))


def meta_selected_config(refs=(), op_cost: bool = True, additive_ms: bool = False, ref_designs=(),
                         **overrides) -> FewShotConfig:
    """The configuration the benchmark uses: every switch is chosen per model by meta-validation over the
    *training* devices only (never the target).

    The candidates: the experts with or without the device pairs, tau (grid or ``"auto"``), and the blend
    rule (the expert average and ``device_mix`` [and ``op_cost``] with weights 1/e^2 or 1/e^4, or the
    expert average [with ``op_cost``] alone). ``op_cost`` is kept in every candidate rule, so that its
    weight stays a per-target leave-one-out decision (training devices cannot tell how unlike them a new
    device is). ``additive_ms`` also offers the additive-in-ms member (the model needs
    ``additive_features``) in two more rules. The episodes use the fixed rows ``refs`` (the test's design)
    or ``meta_k`` random rows; ``ref_designs`` are candidate designs. The model averages the log
    predictions of the **two** best candidates (``meta_top=2``): the best few are typically 1e-4 to 1e-3
    apart in mean meta-validation Spearman, so the single best is a coin flip among them.

    Args:
      refs: fixed reference rows of the meta-validation episodes.
      op_cost: offer the per-op cost member (NAS-Bench-201 op counts).
      additive_ms: offer the additive-in-ms member.
      ref_designs: candidate reference designs.
      **overrides: further :class:`FewShotConfig` fields.
    Returns:
      The config.
    """
    require(FixedRefs() not in ref_designs or len(refs) > 0, "refs", refs, "fixed reference rows for FixedRefs()")
    base = (ExpertAverage.name, DeviceMixMember.name) + ((OpCostMember.name,) if op_cost else ())
    rules = (InverseErrorBlend(2.0, base), InverseErrorBlend(4.0, base),
             InverseErrorBlend(2.0, (ExpertAverage.name, OpCostMember.name) if op_cost else (ExpertAverage.name,)))
    if additive_ms:
        rules += (InverseErrorBlend(2.0, base + (AdditiveMsMember.name,)),
                  InverseErrorBlend(4.0, base + (AdditiveMsMember.name,)))
    members = ((DeviceMixMember(),) + ((OpCostMember(0.1),) if op_cost else ())
               + ((AdditiveMsMember(),) if additive_ms else ()))
    kw = {"members": members, "meta_refs": tuple(int(r) for r in refs), "blend_rules": rules,
          "ref_designs": tuple(ref_designs), "meta_top": 2,
          "expert_sets": ((LowRankExpert(), SingleDeviceExperts()),
                          (LowRankExpert(), SingleDeviceExperts(), DevicePairExperts()))}
    kw.update(overrides)
    return FewShotConfig(**kw)


# --- JSON ------------------------------------------------------------------------------------------------

_TYPES = {cls.__name__: cls for cls in (*EXPERT_TYPES, *MEMBER_TYPES, InverseErrorBlend, *DESIGN_TYPES,
                                        *OBJECTIVE_TYPES)}


def encode(value):
    """A config value as plain JSON: objects as ``{"type": <class>, <fields>}``, tuples as lists.

    Args:
      value: a config field value (an expert, member, blend rule, design or objective object, a
        :class:`Candidate`, a tuple, or a plain value).

    Returns:
      Its JSON form (the inverse of :func:`decode`).
    """
    if dataclasses.is_dataclass(value) and type(value).__name__ in _TYPES:
        fields = {f.name: encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
        return {"type": type(value).__name__, **fields}
    if isinstance(value, Candidate):
        return {"experts": encode(value.experts), "tau": value.tau, "rule": encode(value.rule)}
    if isinstance(value, (tuple, list)):
        return [encode(v) for v in value]
    return value


def decode(value, where: str = "model header config"):
    """Inverse of :func:`encode` (lists become tuples); an unknown object type names ``where``.

    Args:
      value: a JSON value as :func:`encode` writes it.
      where: what is being read, first in error messages.

    Returns:
      The config value: ``{"type": <class>, ...}`` objects rebuilt as their class, lists as tuples, other
      values unchanged.

    Raises:
      NasjaxInputError: on an unknown object type or fields the class does not take.
    """
    if isinstance(value, dict):
        name = value.get("type")
        if name not in _TYPES:
            raise NasjaxInputError(f"{where}: object type {name!r}, expected one of {sorted(_TYPES)}")
        try:
            return _TYPES[name](**{k: decode(v, where) for k, v in value.items() if k != "type"})
        except TypeError as e:
            raise NasjaxInputError(f"{where}: {name} {e}") from None
    if isinstance(value, list):
        return tuple(decode(v, where) for v in value)
    return value


def config_to_json(cfg: FewShotConfig) -> dict:
    """The :class:`FewShotConfig` as a model file stores it: every field, encoded by :func:`encode`.

    Args:
      cfg: the config.

    Returns:
      A JSON-able dict of its fields.
    """
    return {f.name: encode(getattr(cfg, f.name)) for f in dataclasses.fields(cfg)}


def config_from_json(d, where: str = "model header config") -> FewShotConfig:
    """The :class:`FewShotConfig` of a model file's header (:func:`config_to_json`), every field validated.

    Args:
      d: the JSON object of config fields (missing fields take their defaults).
      where: what is being read, first in error messages.

    Returns:
      The :class:`FewShotConfig`.

    Raises:
      NasjaxInputError: when ``d`` is not a dict, has a field :class:`FewShotConfig` lacks, holds an unknown
        object type, or a value the config refuses.
    """
    require(isinstance(d, dict), where, type(d).__name__, "a JSON object of FewShotConfig fields")
    known = {f.name for f in dataclasses.fields(FewShotConfig)}
    unknown = sorted(set(d) - known)
    require(not unknown, where, unknown, f"only FewShotConfig fields {sorted(known)}")
    return FewShotConfig(**{k: decode(v, where) for k, v in d.items()})


def candidate_from_json(d, where: str = "model header candidates") -> Candidate:
    """A :class:`Candidate` from its JSON form (:func:`encode`).

    Args:
      d: ``{"experts": [...], "tau": "auto" | number, "rule": {...}}``.
      where: what is being read, first in error messages.

    Returns:
      The :class:`Candidate`.

    Raises:
      NasjaxInputError: when a key is missing, ``experts`` is not a non-empty list of experts, ``rule`` is not an
        ``InverseErrorBlend``, or ``tau`` is neither ``"auto"`` nor a positive number.
    """
    require(isinstance(d, dict) and {"experts", "tau", "rule"} <= set(d), where, d, "{experts, tau, rule}")
    experts, rule = decode(d["experts"], where), decode(d["rule"], where)
    require(isinstance(experts, tuple) and all(isinstance(e, EXPERT_TYPES) for e in experts) and bool(experts),
            where, d["experts"], "a list of experts")
    require(isinstance(rule, InverseErrorBlend), where, d["rule"], "an InverseErrorBlend")
    tau = d["tau"]
    require(tau == "auto" or (isinstance(tau, (int, float)) and not isinstance(tau, bool) and tau > 0), where, tau,
            "'auto' or a positive noise scale")
    return Candidate(experts, tau, rule)
