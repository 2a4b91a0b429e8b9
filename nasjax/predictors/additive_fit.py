"""An additive block table fitted by least squares to measured networks (MathNAS's additive form, NeurIPS 2023).

The model is a base plus one term per *active* (position, choice) and one per level of each extra
categorical input (e.g. the resolution)::

    f(a, r) = b + sum_{p active in a} V[p, a_p] + sum_j R_j[r_j]

where position ``p`` is active unless its depth gate is below its threshold (``gate_position``,
``gate_min_choice``, see :mod:`nasjax.spaces.structure`; a layer a stage skips costs nothing). The
terms minimise ``sum_n (f(a_n, r_n) - y_n)^2 + lambda ||theta||^2`` (a small ridge ``lambda`` makes the
fit unique where one-hot columns are collinear). An unseen level of an extra input takes the nearest
seen level.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nasjax.errors import require


@dataclass(frozen=True)
class FittedAdditive:
    """``f(a, r)`` of the module docstring: ``values [P, K]``, ``levels`` / ``extra_values`` per extra input."""

    values: np.ndarray
    base: float
    gate_position: np.ndarray
    gate_min_choice: np.ndarray
    levels: tuple[np.ndarray, ...]
    extra_values: tuple[np.ndarray, ...]

    def _active(self, a: np.ndarray) -> np.ndarray:
        g = self.gate_position
        return (g < 0)[None, :] | (a[:, np.where(g >= 0, g, 0)] >= self.gate_min_choice[None, :])

    def predict(self, archs, extra=None) -> np.ndarray:
        """``[N]`` predictions for ``archs [N, P]`` and ``extra [N, J]`` (one column per extra input).

        f(a, r) = b + sum_{p active in a} V[p, a_p] + sum_j R_j[nearest level of r_j]

        Args:
          archs: choice vectors ``[P]`` or ``[N, P]``.
          extra: the extra inputs ``[N, J]`` (e.g. the resolution), ``None`` when the fit has none.

        Returns:
          float64 ``[N]`` predictions, in the unit of the fitted values.
        """
        a = np.atleast_2d(np.asarray(archs, np.int64))
        P = self.values.shape[0]
        out = self.base + np.sum(self.values[np.arange(P)[None, :], a] * self._active(a), 1)
        if self.levels:
            e = np.asarray(extra, np.float64).reshape(len(a), len(self.levels))
            for j, (lev, val) in enumerate(zip(self.levels, self.extra_values)):
                out = out + val[np.abs(e[:, j, None] - lev[None, :]).argmin(1)]
        return out

    def to_arrays(self, prefix: str = "") -> dict[str, np.ndarray]:
        """The fit as named arrays (``prefix`` + ``values``, ``base``, the gates, ``levels<j>`` / ``extra<j>``),
        e.g. to store it in a model file; :meth:`from_arrays` reads them back."""
        out = {"values": self.values, "base": np.asarray(self.base, np.float64),
               "gate_position": self.gate_position, "gate_min_choice": self.gate_min_choice}
        for j, (lev, val) in enumerate(zip(self.levels, self.extra_values)):
            out[f"levels{j}"], out[f"extra{j}"] = lev, val
        return {prefix + k: np.asarray(v) for k, v in out.items()}

    @classmethod
    def from_arrays(cls, arrays, prefix: str = "") -> FittedAdditive:
        """The fit stored by :meth:`to_arrays` under ``prefix`` in ``arrays`` (a mapping of names to arrays).

        Raises:
          KeyError: when an array of the fit is missing.
        """
        J = sum(1 for k in arrays if k.startswith(prefix + "levels"))
        return cls(np.asarray(arrays[prefix + "values"], np.float64), float(arrays[prefix + "base"]),
                   np.asarray(arrays[prefix + "gate_position"], np.int64),
                   np.asarray(arrays[prefix + "gate_min_choice"], np.int64),
                   tuple(np.asarray(arrays[f"{prefix}levels{j}"], np.float64) for j in range(J)),
                   tuple(np.asarray(arrays[f"{prefix}extra{j}"], np.float64) for j in range(J)))


def fit_additive(archs, y, num_choices, *, gate_position=None, gate_min_choice=None, extra=None,
                 ridge: float = 1e-6) -> FittedAdditive:
    """Least-squares additive table of measured values (module docstring).

    Args:
      archs: ``[N, P]`` choice vectors; y: ``[N]`` measured values (finite).
      num_choices: ``[P]`` choices per position.
      gate_position, gate_min_choice: ``[P]`` depth gates (default: every position always active).
      extra: ``[N, J]`` extra categorical inputs (each distinct value is a level), or ``None``.
      ridge: ``lambda``, relative to the mean squared feature norm.

    Returns:
      The :class:`FittedAdditive`.
    """
    a = np.atleast_2d(np.asarray(archs, np.int64))
    y = np.asarray(y, np.float64).reshape(-1)
    N, P = a.shape
    require(y.shape == (N,) and bool(np.all(np.isfinite(y))), "y", y.shape, f"({N},) finite values")
    K = np.asarray(num_choices, np.int64)
    require(K.shape == (P,), "num_choices", K.shape, f"({P},)")
    gp = np.full(P, -1, np.int64) if gate_position is None else np.asarray(gate_position, np.int64)
    gm = np.zeros(P, np.int64) if gate_min_choice is None else np.asarray(gate_min_choice, np.int64)
    Kmax = int(K.max())
    shell = FittedAdditive(np.zeros((P, Kmax)), 0.0, gp, gm, (), ())
    act = shell._active(a)
    X = np.zeros((N, P * Kmax))
    rows = np.repeat(np.arange(N), P)
    cols = (np.arange(P)[None, :] * Kmax + a).reshape(-1)
    X[rows, cols] = act.reshape(-1)
    blocks, levels = [X], []
    if extra is not None:
        e = np.asarray(extra, np.float64).reshape(N, -1)
        for j in range(e.shape[1]):
            lev = np.unique(e[:, j])
            levels.append(lev)
            blocks.append((e[:, j, None] == lev[None, :]).astype(np.float64))
    X = np.concatenate(blocks + [np.ones((N, 1))], 1)
    lam = ridge * float(np.mean(np.sum(X * X, 1)))
    theta = np.linalg.solve(X.T @ X + lam * np.eye(X.shape[1]), X.T @ y)
    values = theta[:P * Kmax].reshape(P, Kmax) * (np.arange(Kmax)[None, :] < K[:, None])
    extra_values, s = [], P * Kmax
    for lev in levels:
        extra_values.append(theta[s:s + lev.size])
        s += lev.size
    return FittedAdditive(values, float(theta[-1]), gp, gm, tuple(levels), tuple(extra_values))
