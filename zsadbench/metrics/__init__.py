"""Exact anomaly-detection metrics: image and pixel AUROC/AP/F1-max, standard and AnomalyCLIP-style AUPRO.

Plain functions take NumPy arrays (or CPU/GPU torch tensors) and return a float; :func:`compute_metrics`
fills a whole cell at once and :class:`MetricAccumulator` does the same batch by batch. ``METRICS`` lists
each metric's level and column label.
"""
from __future__ import annotations

from ._checks import UndefinedMetricWarning
from .accumulate import MetricAccumulator, PixelMetricAccumulator
from .compute import METRICS, MetricSpec, compute_metrics
from .pro import aupro, aupro_anomalyclip
from .ranking import f1_max, image_ap, image_auroc, image_f1_max, pixel_ap, pixel_auroc, pixel_f1_max

__all__ = [
    "METRICS",
    "MetricAccumulator",
    "MetricSpec",
    "PixelMetricAccumulator",
    "UndefinedMetricWarning",
    "aupro",
    "aupro_anomalyclip",
    "compute_metrics",
    "f1_max",
    "image_ap",
    "image_auroc",
    "image_f1_max",
    "pixel_ap",
    "pixel_auroc",
    "pixel_f1_max",
]
