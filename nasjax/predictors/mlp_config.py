"""Settings of the MLP-ensemble predictor (:mod:`nasjax.predictors.mlp`), importable without JAX.

The field names are the ensemble's; the flag names (``cli.option(flag=...)``) are WeakNAS's command line
(``--mlp_size --mlp_iter --mlp_lr --num_ensemble``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nasjax.cli import option
from nasjax.errors import require


@dataclass(frozen=True)
class MLPConfig:
    """Predictor hyper-parameters.

    Attributes:
      hidden: hidden layer widths (WeakNAS's ``--mlp_size``).
      iters: full-batch Adam steps per fit (WeakNAS's ``--mlp_iter``).
      lr: Adam learning rate.
      weight_decay: decoupled weight decay ``lambda`` (AdamW).
      members: ensemble size ``E``.
    """

    hidden: tuple[int, ...] = option((64, 64), flag="mlp_size",
                                     help="Hidden widths of the MLP predictor, comma separated.")
    iters: int = option(200, flag="mlp_iter", help="Full-batch AdamW steps per predictor fit.")
    lr: float = option(1e-2, flag="mlp_lr", help="Predictor learning rate.")
    weight_decay: float = option(1e-4, flag="mlp_weight_decay", help="Predictor decoupled weight decay (AdamW).")
    members: int = option(1, flag="num_ensemble", help="Ensemble members (>= 2 for --sampling_method=ei).")

    def __post_init__(self):
        require(len(self.hidden) >= 1 and all(int(h) >= 1 for h in self.hidden), "mlp_size", self.hidden,
                "one or more positive layer widths")
        require(int(self.iters) >= 1, "mlp_iter", self.iters, "a positive number of optimiser steps")
        require(np.isfinite(self.lr) and self.lr > 0, "mlp_lr", self.lr, "a positive finite learning rate")
        require(np.isfinite(self.weight_decay) and self.weight_decay >= 0, "weight_decay", self.weight_decay,
                "a finite value >= 0")
        require(int(self.members) >= 1, "ensemble", self.members, "at least one ensemble member")
