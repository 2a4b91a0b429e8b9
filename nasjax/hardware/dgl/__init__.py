"""DGL: a device-generic latency model (Wang & Zhang, IEEE TMC 2023), reproduced and improved in JAX.

DGL predicts the latency of architecture ``a`` on a device it never saw from four hardware parameters
``hw = (frequency, dispatch, cache, memory_speed)`` (units not stated by the authors; they read as CPU
GHz, dispatch width, last-level cache MB, DRAM GB/s) and a device-independent "network parameter"
``A(a)`` learned per architecture (interval analysis of a CPU pipeline)::

    latency(a, hw) = (A(a) / dispatch + A(a) / (sqrt(cache) * memory_speed)) / frequency = A(a) * c(hw)

With hardware parameters alone the device enters only through ``c(hw)``, so what a better model can change
is ``A_hat``; this package's model changes exactly that: richer features, a regularised fit, corrupt-row
handling. DGL's own predictor (``net.py::MLP``) is the ``"dgl_mlp"`` kind, used for the reproduction rows.

The parts:

* :mod:`nasjax.benchmarks.dgl` reads every DGL file (re-exported here: :func:`load_hardware`,
  :func:`load_latency`, :func:`read_archs`, :func:`authors_predictions`, the units and :data:`PUBLISHED_R`);
* :mod:`.data`: :func:`load_dgl` (the data with the corrupt-row mask of :func:`detect_corrupt_rows`),
  :func:`arch_splits`, :func:`a_from_devices`;
* :mod:`.features`: :func:`features`, :func:`feature_spec`, :func:`fbnetv3_costs`, :func:`dgl_codes`;
* :mod:`.formula`: :func:`device_constant`, :func:`dgl_latency`, :func:`latency_scores`,
  :func:`fit_hw_params_from_k` -> :class:`DeviceFit`;
* :mod:`.config`: one typed configuration per model kind (:class:`AModelConfig`, :class:`DGLMLPConfig`,
  :func:`default_config`); :mod:`.modules`: their Flax NNX modules; :mod:`.training`: :func:`train_a_model`;
* :mod:`.model`: :class:`DGLLatencyModel` (``predict_A``, ``predict_latency``, ``save``, ``load``).

The evaluation protocols (unseen devices at k = 0, k-shot, latency-constrained search) are in
:mod:`nasjax.protocols`.
"""

from nasjax.benchmarks.dgl import (
    A_SCALE,
    DGL_SPACES,
    HW_FIELDS,
    LATENCY_UNIT,
    PUBLISHED_R,
    DGLData,
    authors_predictions,
    check_hardware,
    default_data_path,
    has_authors_predictions,
    list_devices,
    load_hardware,
    load_latency,
    read_archs,
    target_hardware,
)
from nasjax.hardware.dgl.config import A_MODEL_DEFAULTS, AModelConfig, DGLMLPConfig, default_config
from nasjax.hardware.dgl.data import a_from_devices, arch_splits, detect_corrupt_rows, load_dgl
from nasjax.hardware.dgl.features import FBNET_COST_NAMES, dgl_codes, fbnetv3_costs, feature_spec, features
from nasjax.hardware.dgl.formula import DeviceFit, device_constant, dgl_latency, fit_hw_params_from_k, latency_scores
from nasjax.hardware.dgl.model import MODEL_KIND, MODEL_VERSION, DGLLatencyModel
from nasjax.hardware.dgl.training import train_a_model
from nasjax.spaces.fbnetv3 import FBNET_GENE_NAMES, FBNET_GENE_VALUES, arch_to_genes, fbnetv3_space, genes_to_arch

__all__ = [
    "A_SCALE", "DGL_SPACES", "HW_FIELDS", "LATENCY_UNIT", "PUBLISHED_R", "DGLData", "authors_predictions",
    "check_hardware", "default_data_path", "has_authors_predictions", "list_devices", "load_hardware",
    "load_latency", "read_archs", "target_hardware", "A_MODEL_DEFAULTS", "AModelConfig", "DGLMLPConfig",
    "default_config", "a_from_devices", "arch_splits", "detect_corrupt_rows", "load_dgl", "FBNET_COST_NAMES",
    "dgl_codes", "fbnetv3_costs", "feature_spec", "features", "DeviceFit", "device_constant", "dgl_latency",
    "fit_hw_params_from_k", "latency_scores", "MODEL_KIND", "MODEL_VERSION", "DGLLatencyModel", "train_a_model",
    "FBNET_GENE_NAMES", "FBNET_GENE_VALUES", "arch_to_genes", "fbnetv3_space", "genes_to_arch",
]
