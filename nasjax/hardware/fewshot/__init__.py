"""Few-shot device-generic latency model: a device is described by its latency on k reference architectures.

Follows the setting of HELP (Lee et al., NeurIPS 2021: a hardware embedding = measured latency of 10
reference architectures) with a different learner, a multi-device basis plus closed-form Bayesian
adaptation and a leave-one-out blend, so that k = 0, 1, 5, 10 are one model. The parts:

* :mod:`.model`: :class:`FewShotLatencyModel` (net and table mode, ``adapt``, ``predict``, ``select_refs``,
  ``save`` / ``load``) and :class:`Adapted`;
* :mod:`.config`: :class:`FewShotConfig`, the reference designs (:class:`FixedRefs`, :class:`DOptimalRefs`),
  the meta-validation objectives (:class:`MeanScore`, :class:`CVaRScore`, :class:`MeanCVaRScore`),
  :class:`Candidate` and :func:`meta_selected_config`;
* :mod:`.experts`: the linear experts (:class:`LowRankExpert`, :class:`SingleDeviceExperts`,
  :class:`DevicePairExperts`, :class:`AdditiveLogExpert`) and their Bayesian model average;
* :mod:`.members`: the blend members (:class:`ExpertAverage`, :class:`DeviceMixMember`,
  :class:`OpCostMember`, :class:`AdditiveLogMember`, :class:`AdditiveMsMember`), :func:`loo_error` and the
  blend rule :class:`InverseErrorBlend`;
* :mod:`.bayes`: Bayesian linear regression and greedy D-optimal design; :mod:`.basis_net`: the NNX basis;
  :mod:`.meta`: meta-validation; :mod:`.model_file`: model files; :mod:`.features`: one-hot and NAS-Bench-201
  live-edge features.

The evaluation protocols (leave-one-device-out, unseen devices, HELP's split, baselines, DGL k-shot) are in
:mod:`nasjax.protocols.fewshot_eval` and :mod:`nasjax.protocols.dgl_kshot`.
"""

from nasjax.hardware.fewshot.bayes import blr, blr_batch, greedy_design, thin_svd
from nasjax.hardware.fewshot.config import (
    Candidate,
    CVaRScore,
    DOptimalRefs,
    FewShotConfig,
    FixedRefs,
    MeanCVaRScore,
    MeanScore,
    meta_selected_config,
)
from nasjax.hardware.fewshot.experts import AdditiveLogExpert, DevicePairExperts, LowRankExpert, SingleDeviceExperts
from nasjax.hardware.fewshot.features import nb201_live_edges, nb201_live_op_counts, onehot_features
from nasjax.hardware.fewshot.members import (
    AdditiveLogMember,
    AdditiveMsMember,
    DeviceMixMember,
    ExpertAverage,
    InverseErrorBlend,
    OpCostMember,
    blend_logs,
    loo_error,
)
from nasjax.hardware.fewshot.model import Adapted, FewShotLatencyModel
from nasjax.hardware.fewshot.model_file import KIND, VERSION

__all__ = [
    "blr", "blr_batch", "greedy_design", "thin_svd", "Candidate", "CVaRScore", "DOptimalRefs", "FewShotConfig",
    "FixedRefs", "MeanCVaRScore", "MeanScore", "meta_selected_config", "AdditiveLogExpert", "DevicePairExperts",
    "LowRankExpert", "SingleDeviceExperts", "nb201_live_edges", "nb201_live_op_counts", "onehot_features",
    "AdditiveLogMember", "AdditiveMsMember", "DeviceMixMember", "ExpertAverage", "InverseErrorBlend",
    "OpCostMember", "blend_logs", "loo_error", "KIND", "VERSION", "Adapted", "FewShotLatencyModel",
]
