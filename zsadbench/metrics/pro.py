"""Area under the per-region-overlap (PRO) curve: the standard AUPRO and AnomalyCLIP's variant.

Both use the 8-connected regions of the ground-truth masks (each image labelled on its own) and the
false-positive rate over *all* normal pixels, normal images included. They differ in everything else and
must never share a column:

* :func:`aupro` (standard, as in the MVTec AD evaluation code): every distinct score is a threshold
  (predicted anomalous: ``score >= threshold``; equal scores merge into one point), the curve starts at
  (0, 0), is integrated with the trapezoid rule from FPR 0 to exactly ``fpr_limit`` (interpolating PRO
  linearly at the limit) and is divided by ``fpr_limit``.
* :func:`aupro_anomalyclip`: AnomalyCLIP's ``cal_pro_score``: ``steps`` thresholds
  ``np.arange(min, max, (max - min) / steps)`` in the maps' dtype, predicted anomalous ``score > th``,
  PRO = mean overlap over all regions of all images, only points with ``FPR < fpr_limit`` kept, their FPRs
  min-max rescaled to [0, 1], then the trapezoid rule. It is undefined (NaN) when fewer than two points
  with distinct FPRs survive, e.g. for a perfect map.

Both return NaN with an :class:`UndefinedMetricWarning` when the masks have no defect or no normal pixel.
"""
from __future__ import annotations

from ._checks import as_labels, as_scores, check_fpr_limit, check_steps
from ._pixels import PixelSet, evaluate

__all__ = ["aupro", "aupro_anomalyclip"]


def _set(scores: object, masks: object) -> PixelSet:
    s = as_scores(scores, "scores", 3)
    return PixelSet([s], [as_labels(masks, "masks", s.shape)])


def aupro(scores: object, masks: object, *, fpr_limit: float = 0.3) -> float:
    """Standard AUPRO of score maps ``[N,H,W]`` against boolean masks ``[N,H,W]``, exact.

    >>> import numpy as np
    >>> masks = np.zeros((2, 4, 4), bool); masks[0, 1:3, 1:3] = True
    >>> aupro(masks.astype(np.float32), masks)  # a perfect map
    1.0
    >>> round(aupro(np.zeros((2, 4, 4), np.float32), masks), 6)  # a constant map: fpr_limit / 2
    0.15
    """
    limit = check_fpr_limit(fpr_limit)
    return evaluate(_set(scores, masks), ("aupro",), fpr_limit=limit)["aupro"]


def aupro_anomalyclip(scores: object, masks: object, *, fpr_limit: float = 0.3, steps: int = 200) -> float:
    """AnomalyCLIP-style AUPRO (200 thresholds, rescaled FPR axis) of ``[N,H,W]`` maps and masks.

    >>> import numpy as np
    >>> maps = np.linspace(0, 1, 32, dtype=np.float32).reshape(2, 4, 4)
    >>> masks = maps > 0.9
    >>> round(aupro_anomalyclip(maps, masks), 4)
    1.0
    """
    limit = check_fpr_limit(fpr_limit)
    n = check_steps(steps)
    return evaluate(_set(scores, masks), ("aupro_anomalyclip",), fpr_limit=limit, steps=n)["aupro_anomalyclip"]
