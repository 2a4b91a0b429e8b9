"""Tabular NAS benchmarks: NAS-Bench-201 as one columnar table (``nasbench201``), the official
NAS-Bench-201 ``.pth`` file reader (``nb201_file``) and NAS-Bench-101 cells and records (``nasbench101``).

Import the submodules directly (``from nasjax.benchmarks import nasbench201``); this package imports
nothing heavy itself.
"""
