"""Thin absl entry points: ``python -m experiments.<name> --flagfile=experiments/flags/<recipe>.flags``."""
