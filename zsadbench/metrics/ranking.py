"""Exact threshold-free ranking metrics: AUROC, average precision and F1-max, per image or per pixel.

Every distinct score is a threshold and equal scores form a single point, so the values equal
scikit-learn's ``roc_auc_score`` and ``average_precision_score`` (its step-wise AP, not a trapezoid),
and F1-max is the largest ``2PR / (P + R)`` over ``precision_recall_curve``. All names end in the
quantity they measure and higher is better. A metric is undefined (NaN, with an
:class:`UndefinedMetricWarning`) when the labels hold one class only.

Pixel metrics take score maps ``[N,H,W]`` (float32, or float64 evaluated at float64 precision) and
boolean masks ``[N,H,W]``; they never sort all pixels and hold no per-pixel float64 copy.
"""
from __future__ import annotations

import numpy as np

from ._checks import MetricError, as_labels, as_scores, to_numpy, undefined
from ._pixels import PixelSet, rank_values

__all__ = ["f1_max", "image_ap", "image_auroc", "image_f1_max", "pixel_ap", "pixel_auroc", "pixel_f1_max"]

_INDEX = {"auroc": 0, "ap": 1, "f1_max": 2}


def _rank(scores: np.ndarray, labels: np.ndarray, metric: str, name: str, labels_name: str) -> float:
    ps = PixelSet([scores.reshape(1, 1, -1)], [labels.reshape(1, 1, -1)])
    values = rank_values(ps, "scores")
    if values is None:
        return undefined(name, f"only one class is present in the {labels_name}")
    return values[_INDEX[metric]]


def image_values(scores: object, labels: object, names: tuple[str, ...], scores_name: str = "scores",
                 labels_name: str = "labels") -> dict[str, float]:
    """The image metrics ``names`` (``image_auroc``/``image_ap``/``image_f1_max``) from one shared pass."""
    s = as_scores(scores, scores_name, 1).astype(np.float64, copy=False)
    y = as_labels(labels, labels_name, s.shape)
    values = rank_values(PixelSet([s.reshape(1, 1, -1)], [y.reshape(1, 1, -1)]), scores_name)
    if values is None:
        return {n: undefined(n, f"only one class is present in the {labels_name}") for n in names}
    return {n: values[_INDEX[n.removeprefix("image_")]] for n in names}


def _image(scores: object, labels: object, metric: str) -> float:
    return image_values(scores, labels, (f"image_{metric}",))[f"image_{metric}"]


def _pixel(scores: object, masks: object, metric: str) -> float:
    s = as_scores(scores, "scores", 3)
    m = as_labels(masks, "masks", s.shape)
    return _rank(s, m, metric, f"pixel_{metric}", "masks")


def image_auroc(scores: object, labels: object) -> float:
    """Area under the ROC curve of image scores ``[N]`` against labels ``[N]`` (1 = anomalous).

    >>> image_auroc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1])
    0.75
    """
    return _image(scores, labels, "auroc")


def image_ap(scores: object, labels: object) -> float:
    """Average precision (scikit-learn's step definition) of image scores ``[N]`` against labels ``[N]``.

    >>> round(image_ap([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]), 4)
    0.8333
    """
    return _image(scores, labels, "ap")


def image_f1_max(scores: object, labels: object) -> float:
    """Best F1 over all thresholds of image scores ``[N]`` against labels ``[N]``.

    >>> round(image_f1_max([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]), 4)
    0.8
    """
    return _image(scores, labels, "f1_max")


def f1_max(scores: object, labels: object) -> float:
    """Best F1 = 2PR/(P+R) over the precision-recall curve of any same-shaped scores and 0/1 labels.

    >>> f1_max([[0.9, 0.2], [0.7, 0.1]], [[1, 0], [0, 0]])
    1.0
    """
    s, y = to_numpy(scores), to_numpy(labels)
    if s.shape != y.shape:
        raise MetricError(f"labels have shape {y.shape} but the scores have shape {s.shape}; they must match")
    s = as_scores(s.reshape(-1), "scores", 1)
    y = as_labels(y.reshape(-1), "labels", s.shape)
    return _rank(s, y, "f1_max", "f1_max", "labels")


def pixel_auroc(scores: object, masks: object) -> float:
    """Area under the ROC curve of all pixels of score maps ``[N,H,W]`` against masks ``[N,H,W]``.

    >>> maps = np.array([[[0.1, 0.9], [0.8, 0.2]]], dtype=np.float32)
    >>> pixel_auroc(maps, maps > 0.5)
    1.0
    """
    return _pixel(scores, masks, "auroc")


def pixel_ap(scores: object, masks: object) -> float:
    """Average precision (scikit-learn's step definition) of all pixels of ``[N,H,W]`` maps and masks.

    >>> maps = np.array([[[0.1, 0.9], [0.8, 0.2]]], dtype=np.float32)
    >>> pixel_ap(maps, [[[False, True], [False, False]]])
    1.0
    """
    return _pixel(scores, masks, "ap")


def pixel_f1_max(scores: object, masks: object) -> float:
    """Best F1 over all thresholds of all pixels of ``[N,H,W]`` maps and masks.

    >>> maps = np.array([[[0.1, 0.9], [0.8, 0.2]]], dtype=np.float32)
    >>> round(pixel_f1_max(maps, [[[False, True], [False, True]]]), 4)
    0.8
    """
    return _pixel(scores, masks, "f1_max")
