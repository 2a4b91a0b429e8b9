"""Supernet training, batched subnet evaluation (``nasjax.train.evaluate``) and checkpoints."""
