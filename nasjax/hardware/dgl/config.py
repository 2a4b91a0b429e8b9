"""Typed configurations of the models of DGL's network parameter A, one dataclass per model kind.

* :class:`AModelConfig` (kind ``"ours"``): a linear model of the standardised target on the features of
  :mod:`~nasjax.hardware.dgl.features`, plus an optional ensemble of ``members`` one-hidden-layer tanh MLPs,
  optax AdamW on the weighted Huber loss + ``l2 * ||weights||^2 / n``. :data:`A_MODEL_DEFAULTS` holds the
  recipe of each space (chosen by 3-split cross-validation of ``corr(A_hat, A)`` on held-out rows of
  ``a.txt`` alone, no device latency looked at): NB201 linear target, ``l2 = 30`` (R(A) 0.981; log
  0.978; +4-member MLP ensemble 0.981); FBNetV3 log target, ``l2 = 3`` (0.981; linear 0.973; ensemble
  0.979). The MLP ensemble stays available (``members > 0``) but did not help on 400 / 160 archs.
* :class:`DGLMLPConfig` (kind ``"dgl_mlp"``): DGL's own predictor and recipe (``net.py::MLP``, SGD, SmoothL1
  on A/100, ``--epoch`` 50000 steps).

Fields carry their command-line flag (``nasjax.cli.option``): ``steps`` is DGL's ``--epoch``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

from nasjax.cli import option
from nasjax.errors import NasjaxInputError, require


@dataclass(frozen=True)
class AModelConfig:
    """nasjax's model of A (kind ``"ours"``): ``y_hat = w.x + b + (1/M) sum_m [v_m . tanh(W_m x + b_m) + c_m]``."""

    kind: ClassVar[str] = "ours"
    target: str = option("linear", choices=("linear", "log"),
                         help="ours: regression target, 'linear' (A / 100) or 'log' (log A), standardised "
                              "(default per space: nasbench201 linear, fbnetv3 log).")
    l2: float = option(30.0, help="ours: L2 penalty on the weights, l2 * ||W||^2 / n (default per space: "
                                  "nasbench201 30, fbnetv3 3).")
    members: int = option(0, help="ours: tanh-MLP ensemble members beside the linear term (0: ridge-like).")
    hidden: int = option(32, help="ours: hidden units of each ensemble member.")
    steps: int = option(1500, flag="epoch", help="Training steps (ours: 1500 AdamW; dgl_mlp: DGL's 50000 SGD "
                                                 "epochs).")
    lr: float = option(3e-3, help="Learning rate (ours: 3e-3 AdamW; dgl_mlp: DGL's 0.1 SGD).")
    weight_decay: float = option(0.0, help="ours: AdamW's decoupled weight decay.")
    delta: float = option(1.0, help="ours: Huber loss threshold (standardised target).")
    detect_corrupt: bool = option(True, help="ours: give rows of a.txt flagged by detect_corrupt_rows weight 0.")

    def __post_init__(self):
        require(self.target in ("linear", "log"), "target", self.target, "'linear' or 'log'")
        require(isinstance(self.members, int) and self.members >= 0, "members", self.members, "an integer >= 0")
        require(isinstance(self.hidden, int) and self.hidden >= 1, "hidden", self.hidden, "an integer >= 1")
        require(self.l2 >= 0, "l2", self.l2, "a penalty >= 0")
        require(isinstance(self.steps, int) and self.steps >= 1, "steps (epoch)", self.steps, "an integer >= 1")
        require(self.lr > 0, "lr", self.lr, "a learning rate > 0")
        require(self.weight_decay >= 0, "weight_decay", self.weight_decay, ">= 0")
        require(self.delta > 0, "delta", self.delta, "a Huber threshold > 0")


@dataclass(frozen=True)
class DGLMLPConfig:
    """DGL's MLP (kind ``"dgl_mlp"``): 6/28 -> 512 -> 2048 -> 2048 -> 2048 -> 256 -> 28 -> 1, tanh, only the
    last two layers trained (SGD ``lr``, SmoothL1 on A/100, column-centred integer codes)."""

    kind: ClassVar[str] = "dgl_mlp"
    steps: int = option(50000, flag="epoch", help="Training steps (DGL's --epoch).")
    lr: float = option(0.1, help="SGD learning rate (DGL's 0.1).")

    def __post_init__(self):
        require(isinstance(self.steps, int) and self.steps >= 1, "steps (epoch)", self.steps, "an integer >= 1")
        require(self.lr > 0, "lr", self.lr, "a learning rate > 0")


MODEL_KINDS = {"ours": AModelConfig, "dgl_mlp": DGLMLPConfig}

#: the recipe of each space for kind "ours" (see the module docstring)
A_MODEL_DEFAULTS = {
    "nasbench201": AModelConfig(),
    "fbnetv3": AModelConfig(target="log", l2=3.0),
}


def default_config(space: str, kind: str = "ours") -> AModelConfig | DGLMLPConfig:
    """The default configuration of model ``kind`` (``"ours"`` or ``"dgl_mlp"``) on ``space``.

    Args:
      space: ``nasbench201`` or ``fbnetv3`` (only used for kind ``"ours"``, whose recipe is per space).
      kind: the model kind, a key of :data:`MODEL_KINDS`.

    Returns:
      :data:`A_MODEL_DEFAULTS` ``[space]`` for ``"ours"``, ``DGLMLPConfig()`` for ``"dgl_mlp"``.

    Raises:
      NasjaxInputError: on an unknown kind, or an unknown space for kind ``"ours"``.
    """
    if kind not in MODEL_KINDS:
        raise NasjaxInputError(f"model: got {kind!r}, expected one of {', '.join(MODEL_KINDS)}")
    if kind == "dgl_mlp":
        return DGLMLPConfig()
    require(space in A_MODEL_DEFAULTS, "search_space", space, f"one of {', '.join(A_MODEL_DEFAULTS)}")
    return A_MODEL_DEFAULTS[space]


def config_to_json(config) -> dict:
    """The config as a model file stores it: its fields (plain JSON).

    Args:
      config: an :class:`AModelConfig` or :class:`DGLMLPConfig`.

    Returns:
      ``dataclasses.asdict(config)``.
    """
    return dataclasses.asdict(config)


def config_from_json(kind: str, d: dict):
    """The config of model ``kind`` from a model file's ``config`` (other keys, e.g. ``seed``, ignored).

    Args:
      kind: the model kind, a key of :data:`MODEL_KINDS`.
      d: the ``config`` object of the model file's header (:func:`config_to_json`).

    Returns:
      The :class:`AModelConfig` or :class:`DGLMLPConfig`, fields validated.

    Raises:
      NasjaxInputError: on an unknown kind, a ``d`` that is not a dict, or a field value the config refuses.
    """
    if kind not in MODEL_KINDS:
        raise NasjaxInputError(f"model: got {kind!r}, expected one of {', '.join(MODEL_KINDS)}")
    require(isinstance(d, dict), "model header config", type(d).__name__, "a JSON object")
    cls = MODEL_KINDS[kind]
    names = {f.name for f in dataclasses.fields(cls)}
    try:
        return cls(**{k: v for k, v in d.items() if k in names})
    except TypeError as e:
        raise NasjaxInputError(f"model header config: {e}; expected the fields of {cls.__name__}") from None
