"""A trained model of DGL's network parameter A plus DGL's formula (Wang & Zhang, IEEE TMC 2023), and its file.

``predict_A`` maps architectures to A in raw ``a.txt`` units, ``predict_latency`` applies DGL's formula
``latency = A * c(hw)`` (:mod:`~nasjax.hardware.dgl.formula`). Kind ``"ours"``: inputs
:func:`~nasjax.hardware.dgl.features.features` standardised with ``x_mean``/``x_std``; output ``A / 100``
or ``log A`` (``config.target``) standardised with ``y_mean``/``y_std``. Kind ``"dgl_mlp"``: DGL's inputs
(integer codes, column-centred with ``x_mean``, ``x_std = 1``) and output ``A / 100`` (``y_mean = 0``,
``y_std = 1``).

Model files are :mod:`nasjax.hardware.model_io` ``.npz`` files (kind :data:`MODEL_KIND`, version
:data:`MODEL_VERSION`): reading checks the version, the JSON header's structure, that every weight and
normaliser is finite (``x_std``, ``y_std`` > 0) and that the feature spec is this nasjax's; predictions that
overflow are an error, never a file of ``nan``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nasjax.benchmarks.dgl import A_SCALE, HW_FIELDS, LATENCY_UNIT, check_space
from nasjax.errors import NasjaxInputError
from nasjax.hardware.dgl.config import MODEL_KINDS, AModelConfig, DGLMLPConfig, config_from_json, config_to_json
from nasjax.hardware.dgl.features import dgl_codes, feature_spec, features
from nasjax.hardware.dgl.formula import dgl_latency
from nasjax.hardware.dgl.modules import build_module

MODEL_KIND = "nasjax.dgl.a_model"
MODEL_VERSION = 1
_TRAINING = {"ours": {"optimizer": "adamw", "loss": "huber + l2"},
             "dgl_mlp": {"optimizer": "sgd", "loss": "smooth_l1 on A/100"}}


@dataclass
class DGLLatencyModel:
    """A trained predictor of DGL's network parameter A (see the module docstring)."""

    space: str
    config: AModelConfig | DGLMLPConfig
    module: Any
    x_mean: np.ndarray
    x_std: np.ndarray
    y_mean: float
    y_std: float
    seed: int = 0
    info: dict = field(default_factory=dict)  # provenance: training rows, held-out rows, corrupt rows...

    @property
    def kind(self) -> str:
        """``"ours"`` or ``"dgl_mlp"``."""
        return self.config.kind

    # inputs -------------------------------------------------------------------------------------------
    def inputs(self, archs) -> np.ndarray:
        """The model's input matrix of choice-index architectures ``[N, P]``.

        Args:
          archs: nasjax choice vectors ``[P]`` or ``[N, P]`` of the model's space.

        Returns:
          float64 ``[N, F]``: :func:`~nasjax.hardware.dgl.features.features` for kind ``"ours"``, DGL's raw codes
          (:func:`~nasjax.hardware.dgl.features.dgl_codes`) for ``"dgl_mlp"``.

        Raises:
          NasjaxInputError: on invalid choice vectors.
        """
        return features(self.space, archs) if self.kind == "ours" else dgl_codes(self.space, archs)

    def check_features(self, X) -> np.ndarray:
        """An input matrix as float64, checked against the model's input width.

        Args:
          X: the input matrix ``[N, F]``.

        Returns:
          ``X`` as float64 ``[N, F]``.

        Raises:
          NasjaxInputError: when ``X`` is not 2-D with the model's ``F`` columns, or holds NaN/inf.
        """
        X = np.asarray(X, np.float64)
        want = self.x_mean.shape[0]
        if X.ndim != 2 or X.shape[1] != want:
            raise NasjaxInputError(
                f"features: shape {X.shape}, expected (N, {want}) for the {self.kind!r} model of {self.space!r}"
            )
        if not np.all(np.isfinite(X)):
            raise NasjaxInputError("features: NaN or inf entries, expected finite numbers")
        return X

    # predictions ------------------------------------------------------------------------------------------
    def predict_A_from_features(self, X) -> np.ndarray:
        """A (raw ``a.txt`` units) from the input matrix; an output that overflows is an error.

        A = exp(y) for a log target, else 100 * y, with y = module((X - x_mean) / x_std) * y_std + y_mean

        Args:
          X: the input matrix ``[N, F]`` (see :meth:`inputs`).

        Returns:
          float64 ``[N]`` predicted A.

        Raises:
          NasjaxInputError: on a bad input matrix or a prediction that is not finite.
        """
        import jax.numpy as jnp

        X = self.check_features(X)
        Z = jnp.asarray((X - self.x_mean) / self.x_std, jnp.float32)
        y = np.asarray(self.module(Z), np.float64) * self.y_std + self.y_mean
        with np.errstate(over="ignore", invalid="ignore"):
            out = np.exp(y) if self.kind == "ours" and self.config.target == "log" else y * A_SCALE
        bad = ~np.isfinite(out)
        if bad.any():
            raise NasjaxInputError(f"predicted A: {int(bad.sum())} of {bad.size} predictions overflow (first at row "
                                   f"{int(np.flatnonzero(bad)[0])}); expected inputs like the training architectures")
        return out

    def predict_A(self, archs) -> np.ndarray:
        """Predicted A (raw units, like ``a.txt``) for choice-index architectures ``[N, P]``.

        Args:
          archs: nasjax choice vectors ``[P]`` or ``[N, P]`` of the model's space.

        Returns:
          float64 ``[N]`` predicted A.

        Raises:
          NasjaxInputError: on invalid architectures or a prediction that overflows.
        """
        return self.predict_A_from_features(self.inputs(archs))

    def predict_latency(self, archs, hw, device: str = "device") -> np.ndarray:
        """DGL's formula on the predicted A: latency in raw units (:data:`LATENCY_UNIT`).

        latency = A_hat * (1/dispatch + 1/(sqrt(cache) * memory_speed)) / frequency

        Args:
          archs: nasjax choice vectors ``[P]`` or ``[N, P]`` of the model's space.
          hw: the device's 4 hardware parameters (finite, > 0).
          device: the device's name, for error messages.

        Returns:
          float64 ``[N]`` latencies.

        Raises:
          NasjaxInputError: on invalid architectures or hardware parameters, or an overflow.
        """
        return dgl_latency(self.predict_A(archs), hw, device)

    # checks -----------------------------------------------------------------------------------------------
    def check_weights(self, what: str) -> None:
        """Every weight finite, the normalisers finite and ``x_std``, ``y_std`` > 0; else an error naming ``what``.

        Args:
          what: the file, or the training run, first in error messages.

        Raises:
          NasjaxInputError: naming the first non-finite weight or bad normaliser.
        """
        from nasjax.hardware.model_io import nnx_to_arrays

        for name, a in nnx_to_arrays(self.module).items():
            if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
                raise NasjaxInputError(f"{what}: weight {name!r} has NaN/inf entries; expected finite weights")
        for name, v, positive in (("x_mean", self.x_mean, False), ("x_std", self.x_std, True),
                                  ("y_mean", self.y_mean, False), ("y_std", self.y_std, True)):
            a = np.asarray(v, np.float64)
            if not np.all(np.isfinite(a)) or (positive and not np.all(a > 0)):
                raise NasjaxInputError(f"{what}: normaliser {name} holds {a.reshape(-1)[:4].tolist()}...; expected "
                                       f"finite values{' > 0' if positive else ''}")

    # I/O ------------------------------------------------------------------------------------------------
    def header(self) -> dict:
        """The model file's JSON header.

        Returns:
          Space, kind, feature spec, target, units, formula, hardware fields, ``y_mean`` / ``y_std``, config, info.
        """
        spec = feature_spec(self.space) if self.kind == "ours" else {
            "space": self.space, "names": [f"code {i}" for i in range(self.x_mean.shape[0])],
            "length": int(self.x_mean.shape[0]), "version": 1,
        }
        log = self.kind == "ours" and self.config.target == "log"
        return {
            "space": self.space,
            "model": self.kind,
            "feature_spec": spec,
            "target": ("log A" if log else "A / 100") + (" (standardised)" if self.kind == "ours" else ""),
            "units": {"A": "raw a.txt units", "latency": LATENCY_UNIT + " (raw DGL latency-file units)",
                      "A_scale": A_SCALE},
            "formula": "latency = (A/dispatch + A/(sqrt(cache)*memory_speed)) / frequency",
            "hardware_fields": list(HW_FIELDS),
            "y_mean": float(self.y_mean),
            "y_std": float(self.y_std),
            "config": {**config_to_json(self.config), "seed": int(self.seed), **_TRAINING[self.kind]},
            "info": self.info,
        }

    def save(self, path) -> dict:
        """Write the model file atomically; returns the header written.

        Args:
          path: the ``.npz`` model file to write.

        Returns:
          The header written (see :meth:`header`).

        Raises:
          NasjaxInputError: when a weight or normaliser is not finite (or ``x_std`` / ``y_std`` is not > 0).
        """
        from nasjax.hardware.model_io import save_nnx

        self.check_weights("model to save")
        return save_nnx(path, self.module, kind=MODEL_KIND, version=MODEL_VERSION, header=self.header(),
                        extra_arrays={"x_mean": self.x_mean, "x_std": self.x_std})

    @classmethod
    def load(cls, path) -> DGLLatencyModel:
        """Read a model file (see the module docstring for what is checked).

        Args:
          path: a model file written by :meth:`save`.

        Returns:
          The :class:`DGLLatencyModel`.

        Raises:
          NasjaxInputError: when the file is missing, of another kind or version, its header is malformed, an
            array has the wrong shape, or a weight or normaliser is not finite.
        """
        from nasjax.hardware.model_io import load_nnx

        where = f"load_path {str(path)!r}"
        parsed = {}

        def build(h):
            parsed.update(_parse_header(h, where))
            return build_module(parsed["config"], parsed["n_features"], 0)

        module, h, extra = load_nnx(path, build, kind=MODEL_KIND, versions=(MODEL_VERSION,))
        n = parsed["n_features"]
        for name in ("x_mean", "x_std"):
            if name not in extra or extra[name].shape != (n,):
                got = None if name not in extra else extra[name].shape
                raise NasjaxInputError(f"{where}: array {name!r} has shape {got}, expected ({n},)")
        model = cls(parsed["space"], parsed["config"], module, np.asarray(extra["x_mean"], np.float64),
                    np.asarray(extra["x_std"], np.float64), parsed["y_mean"], parsed["y_std"], parsed["seed"],
                    h["info"])
        model.check_weights(where)
        return model


def _parse_header(h: dict, where: str) -> dict:
    """The fields of a model file's JSON header, each checked for its type."""
    def need(key, types, what):
        if key not in h or not isinstance(h[key], types) or isinstance(h[key], bool):
            raise NasjaxInputError(f"{where}: header field {key!r} is {h.get(key)!r}, expected {what}")
        return h[key]

    space = need("space", str, "a search space name")
    try:
        check_space(space)
    except NasjaxInputError as e:
        raise NasjaxInputError(f"{where}: {e}") from None
    kind = need("model", str, f"one of {', '.join(MODEL_KINDS)}")
    if kind not in MODEL_KINDS:
        raise NasjaxInputError(f"{where}: header field 'model' is {kind!r}, expected one of {', '.join(MODEL_KINDS)}")
    spec = need("feature_spec", dict, "an object with the feature names and length")
    n = spec.get("length")
    if not isinstance(n, int) or isinstance(n, bool) or n < 1 or not isinstance(spec.get("names"), list):
        raise NasjaxInputError(f"{where}: header feature_spec {str(spec)[:80]}, expected names and a length >= 1")
    if kind == "ours" and spec["names"] != feature_spec(space)["names"]:
        raise NasjaxInputError(f"{where}: the file's feature spec differs from this nasjax's {space!r} features; "
                               "expected a model saved with the same feature spec version")
    cfg = need("config", dict, "an object with the model's configuration")
    need("info", dict, "an object (provenance)")
    y_mean = float(need("y_mean", (int, float), "a number"))
    y_std = float(need("y_std", (int, float), "a number"))
    seed = cfg.get("seed", 0)
    try:
        config = config_from_json(kind, cfg)
    except NasjaxInputError as e:
        raise NasjaxInputError(f"{where}: {e}") from None
    return {"space": space, "config": config, "n_features": n, "y_mean": y_mean, "y_std": y_std,
            "seed": int(seed) if isinstance(seed, int) else 0}
