"""Predictors map choice vectors to a number: additive block tables (MathNAS, :mod:`.additive`), MLP
ensembles (WeakNAS, :mod:`.mlp`), and others. Import the submodule you need; this package imports nothing
heavy itself so that importing one predictor never pulls in JAX or torch for another.
"""
