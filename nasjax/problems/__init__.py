"""Problems: a space on a device with its tables, ready for the searchers.

* :mod:`~nasjax.problems.mathnas`: the MathNAS ``Problem`` of the nas / predict / pareto experiments, and
  the MobileNetV3 and NAS-Bench-201 problems of MathNAS's published tables;
* :mod:`~nasjax.problems.supervit`, :mod:`~nasjax.problems.supertransformer`: the branched SuperViT and
  SuperTransformer problems (one additive branch per resolution / decoder depth);
* :mod:`~nasjax.problems.nasbench201`: NAS-Bench-201's measured cells as a tabular search problem.

Import the submodule you need.
"""
