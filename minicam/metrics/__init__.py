"""Measuring explanations: identities, where a map points, and the papers' metrics.

NumPy only. Each function is short and states the paper it follows. Metrics
take **image-sized** maps (N, H, W): upsample a method's (N, h, w) output
first (:func:`image_maps`); functions that take a ``method`` call it as
``method(model, x, class_idx)`` and do this themselves.

- :func:`identity_error`: Grad-CAM before its ReLU against CAM / (h w) on a
  GAP -> Linear network (Selvaraju et al. 2017, Sec. 3.1).
- :func:`peak_object`, :func:`pointing_rate`: which object a map's maximum
  falls on (the pointing game of Zhang et al. 2016).
- Localization (Zhou et al. 2016; Selvaraju et al. 2017): :func:`box_from_map`
  (the 15% rule, largest 8-connected blob), :func:`iou`, :func:`localization`.
- :func:`pointing_game` (with tolerance), :func:`energy_in_mask` (Score-CAM),
  :func:`class_discrimination` (two-object scenes).
- Faithfulness (Grad-CAM Sec. 5.3): :func:`rank_correlation`, :func:`faithfulness`.
- :func:`deletion_insertion` (RISE), :func:`average_drop`,
  :func:`increase_in_confidence` (Grad-CAM++).
- Sanity checks (Adebayo et al. 2018): :func:`cascading_randomization`.

Rooms: :mod:`~minicam.metrics.maps` (image-sized maps, shared checks),
:mod:`~minicam.metrics.localization`, :mod:`~minicam.metrics.faithfulness`,
:mod:`~minicam.metrics.sanity`.
"""

from .faithfulness import average_drop, deletion_insertion, faithfulness, increase_in_confidence, rank_correlation
from .localization import (
    box_from_map,
    class_discrimination,
    energy_in_mask,
    iou,
    label_components,
    localization,
    peak_object,
    pointing_game,
    pointing_rate,
)
from .maps import explain_maps, image_maps
from .sanity import IDENTITY_TOL, cascading_randomization, identity_error, randomizable_layers

__all__ = [
    "IDENTITY_TOL", "identity_error", "peak_object", "pointing_rate",
    "image_maps", "explain_maps", "label_components", "box_from_map", "iou", "localization",
    "pointing_game", "energy_in_mask", "class_discrimination", "rank_correlation", "faithfulness",
    "deletion_insertion", "average_drop", "increase_in_confidence", "randomizable_layers",
    "cascading_randomization",
]
