"""BINAS's MLP accuracy predictor (Nayman et al., arXiv 2110.12399) on nasjax's MLP ensemble.

``f(a) = mu + sigma * g(x(a))``: ``g`` is the mean of the members of :class:`nasjax.predictors.mlp.MLPEnsemble`
(ReLU MLPs fitted by full-batch AdamW on the standardised targets ``(y - mu) / sigma``) on BINAS's
features ``x = [alpha, beta]`` (:func:`nasjax.spaces.binas.features`, alpha zero on inactive layers). The
model is vectorised (``predict(archs)``), relaxes to fractional ``alpha, beta`` through
:func:`~nasjax.hardware.binas_latency.masked_relaxation` with JAX gradients, and is saved as an npz with a
JSON header (:mod:`nasjax.hardware.model_io`).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from nasjax.errors import NasjaxInputError, require
from nasjax.hardware.binas_latency import masked_relaxation
from nasjax.hardware.model_io import load_arrays, save_arrays
from nasjax.predictors.bilinear import measured_pairs
from nasjax.predictors.mlp import MLPConfig, get_ensemble
from nasjax.spaces.binas import DEFAULT, BinasStructure, features

KIND = "nasjax.binas.mlp"
DEFAULT_CONFIG = MLPConfig(hidden=(256, 256), iters=3000, lr=1e-3, weight_decay=1e-4, members=1)
_BUCKET = 256  # predictions are padded to a multiple of this many rows (few compiled shapes)


def _names(tree) -> list[str]:
    return [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(tree)[0]]


class MLPPredictor:
    """A fitted MLP ensemble on BINAS's features (module docstring); build it with :meth:`fit` or :meth:`load`.

    Args:
      params: the ensemble's parameters (leading axes ``[1, E]``).
      config: the ensemble's :class:`~nasjax.predictors.mlp_config.MLPConfig`.
      mu: the target mean.
      sigma: the target standard deviation.
      structure: the space's structure.
      metric: what is predicted.
      unit: its unit.
      provenance: where the fit comes from (JSON data).
    """

    def __init__(self, params, config: MLPConfig, mu: float, sigma: float, structure: BinasStructure = DEFAULT,
                 metric: str = "accuracy", unit: str = "%", provenance: dict | None = None):
        self.structure = structure
        self.in_dim = structure.num_layers * structure.num_configs + structure.num_stages * len(structure.depths)
        self.ensemble = get_ensemble(self.in_dim, config)
        self.params, self.config = params, config
        self.mu, self.sigma = float(mu), float(sigma)
        self.metric, self.unit, self.provenance = metric, unit, dict(provenance or {})
        self._grad = jax.jit(jax.value_and_grad(self._mean_one))

    def _mean_one(self, x):
        mu, _ = self.ensemble._predict_grid(self.params, x[None, :])
        return mu[0, 0]

    @classmethod
    def fit(cls, archs, accuracy, structure: BinasStructure = DEFAULT, config: MLPConfig = DEFAULT_CONFIG,
            seed: int = 0, metric: str = "accuracy", unit: str = "%") -> MLPPredictor:
        """Fit on measured (architecture, accuracy) pairs.

        Args:
          archs: ``[N, P]`` measured architectures; accuracy: ``[N]`` their accuracy.
          structure: the space's structure; config: the ensemble's settings; seed: the initialisation seed.

        Returns:
          The fitted predictor.
        """
        a, y = measured_pairs(archs, accuracy, structure, metric)
        x = features(a, structure)
        mu, sigma = float(y.mean()), float(y.std()) or 1.0
        ens = get_ensemble(x.shape[1], config)
        keys = ens.member_keys(jax.random.PRNGKey(int(seed))[None])
        params = ens.fit(keys, x[None], ((y - mu) / sigma)[None], np.ones((1, len(y))))
        prov = {"fit": "full-batch AdamW (nasjax.predictors.mlp)", "samples": len(a), "seed": int(seed)}
        return cls(params, config, mu, sigma, structure, metric, unit, prov)

    def predict(self, archs) -> np.ndarray | float:
        """``f(a)`` of one architecture ``[P]`` or a batch ``[N, P]`` (vectorised, padded to a multiple of 256 rows).

        f(a) = mu + sigma * mean_e MLP_e([alpha, beta])

        Args:
          archs: BINAS choice vectors ``[P]`` or ``[N, P]`` (not validated).

        Returns:
          A float for one architecture, else float64 ``[N]``, in the predictor's unit.
        """
        a = np.asarray(archs, np.int64)
        x = features(np.atleast_2d(a), self.structure)
        n = len(x)
        pad = np.zeros((-n % _BUCKET, x.shape[1]))
        mu, _ = self.ensemble.predict(self.params, np.concatenate([x, pad]))
        v = self.mu + self.sigma * np.asarray(mu[0, :n], np.float64)
        return float(v[0]) if a.ndim == 1 else v

    def relax(self, alpha: np.ndarray, beta: np.ndarray):
        """Value and gradients at fractional ``alpha [L, K]``, ``beta [S, D]`` (masked relaxation, JAX gradients).

        Args:
          alpha: ``[L, K]`` fractional layer configurations, each row summing to 1.
          beta: ``[S, D]`` fractional stage depths, each row summing to 1.

        Returns:
          ``(f, df/dalpha [L, K], df/dbeta [S, D])``, ``f`` in the predictor's unit.
        """
        La = alpha.size

        def vg(at, b):
            val, g = self._grad(jnp.asarray(np.concatenate([at.reshape(-1), b.reshape(-1)]), jnp.float32))
            g = self.sigma * np.asarray(g, np.float64)
            return self.mu + self.sigma * float(val), g[:La].reshape(at.shape), g[La:].reshape(b.shape)

        return masked_relaxation(vg, alpha, beta, self.structure)

    def save(self, path) -> dict:
        """Write the predictor (npz of the weights with a JSON header: config, ``mu``, ``sigma``, structure).

        Args:
          path: the file to write.

        Returns:
          The header written.
        """
        leaves = jax.tree_util.tree_leaves(self.params)
        arrays = {f"param{i}": np.asarray(v) for i, v in enumerate(leaves)}
        header = {"metric": self.metric, "unit": self.unit, "structure": self.structure.to_dict(),
                  "config": {k: list(v) if isinstance(v, tuple) else v
                             for k, v in dataclasses.asdict(self.config).items()},
                  "mu": self.mu, "sigma": self.sigma, "param_names": _names(self.params),
                  "provenance": self.provenance, "formula": "f(a) = mu + sigma * mean_e MLP_e([alpha, beta])"}
        return save_arrays(path, arrays, kind=KIND, header=header)

    @classmethod
    def load(cls, path) -> MLPPredictor:
        """Read a predictor written by :meth:`save`.

        Args:
          path: the file.

        Returns:
          The :class:`MLPPredictor`.

        Raises:
          NasjaxInputError: when the file is not a nasjax array file of kind :data:`KIND`, or its weights' names or
            shapes do not match the MLP its header describes.
          KeyError: when its header lacks ``config``, ``structure``, ``mu``, ``sigma``, ``metric`` or ``unit``.
        """
        arrays, h = load_arrays(path, kind=KIND)
        cfg = h["config"]
        config = MLPConfig(**{**cfg, "hidden": tuple(cfg["hidden"])})
        st = BinasStructure.from_dict(h["structure"])
        in_dim = st.num_layers * st.num_configs + st.num_stages * len(st.depths)
        ens = get_ensemble(in_dim, config)
        template = jax.vmap(jax.vmap(ens.init_one))(ens.member_keys(jax.random.PRNGKey(0)[None]))
        if _names(template) != h.get("param_names") or len(arrays) != len(h["param_names"]):
            raise NasjaxInputError(f"predictor_ckpt_filename {str(path)!r}: weights do not match the MLP of its "
                                   "header; expected a file written by MLPPredictor.save")
        leaves, treedef = jax.tree_util.tree_flatten(template)
        loaded = []
        for i, t in enumerate(leaves):
            v = arrays[f"param{i}"]
            require(v.shape == t.shape, f"param{i}", v.shape, str(t.shape))
            loaded.append(jnp.asarray(v, t.dtype))
        return cls(jax.tree_util.tree_unflatten(treedef, loaded), config, h["mu"], h["sigma"], st, h["metric"],
                   h["unit"], h.get("provenance", {}))
