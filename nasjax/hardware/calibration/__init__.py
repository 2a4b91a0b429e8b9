"""Calibration of a latency table to another machine or runtime from k end-to-end measurements.

* :mod:`.core`: :func:`design_references`, :func:`calibrate`, :class:`CalibratedTable` and the cell view of
  a table (:class:`TableSource`);
* :mod:`.ofa_fit`: an additive layer model of OFA MobileNetV3 subnets at any resolution, fitted on
  measured subnets (HELP's OFA set), usable as a calibration source.
"""

from nasjax.hardware.calibration.core import (
    METHODS,
    CalibratedTable,
    CalibrationPriors,
    TableSource,
    calibrate,
    design_from_candidates,
    design_references,
)
from nasjax.hardware.calibration.ofa_fit import OFALayerModel, fit_ofa_layer_model

__all__ = ["METHODS", "CalibratedTable", "CalibrationPriors", "TableSource", "calibrate", "design_from_candidates",
           "design_references", "OFALayerModel", "fit_ofa_layer_model"]
