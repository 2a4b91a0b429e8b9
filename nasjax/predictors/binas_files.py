"""Reading any saved BINAS accuracy model: a bilinear form (fitted or the estimator), a quadratic or an MLP."""

from __future__ import annotations

from nasjax.errors import NasjaxInputError, require
from nasjax.hardware.binas_latency import KIND as BILINEAR_KIND
from nasjax.hardware.binas_latency import BilinearForm
from nasjax.hardware.model_io import load_arrays
from nasjax.predictors.bilinear import QUADRATIC_KIND, QuadraticPredictor
from nasjax.predictors.binas_mlp import MLPPredictor


def load_predictor(path, predictor_type: str | None = None):
    """A saved accuracy model: a bilinear form (fitted or the estimator), a quadratic or an MLP predictor.

    Args:
      path: the ``.npz`` file.
      predictor_type: ``"bilinear"``, ``"quadratic"`` or ``"mlp"``: the file must hold that kind.

    Returns:
      The model (each has ``predict``, ``metric``, ``unit`` and ``structure``).
    """
    _, header = load_arrays(path)
    kinds = {"bilinear": BILINEAR_KIND, "quadratic": QUADRATIC_KIND, "mlp": "nasjax.binas.mlp"}
    kind = header.get("kind")
    if predictor_type is not None:
        require(predictor_type in kinds, "predictor_type", predictor_type, f"one of {sorted(kinds)}")
        if kind != kinds[predictor_type]:
            raise NasjaxInputError(f"predictor_ckpt_filename {str(path)!r}: holds a {kind!r} model, expected "
                                   f"{kinds[predictor_type]!r} for --predictor_type={predictor_type}")
    if kind == BILINEAR_KIND:
        return BilinearForm.load(path)
    if kind == QUADRATIC_KIND:
        return QuadraticPredictor.load(path)
    if kind == kinds["mlp"]:
        return MLPPredictor.load(path)
    raise NasjaxInputError(f"predictor_ckpt_filename {str(path)!r}: model kind {kind!r}, expected one of "
                           f"{sorted(kinds.values())}")
