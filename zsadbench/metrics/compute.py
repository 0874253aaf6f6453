"""The metric table the runner and the tables read, and ``compute_metrics``, which fills it for one cell."""
from __future__ import annotations

import math
from collections.abc import Collection
from dataclasses import dataclass
from typing import Literal

import numpy as np

from ._checks import MetricError, as_labels, as_scores, check_fpr_limit, check_steps
from ._pixels import PixelSet, evaluate
from .ranking import image_values

__all__ = ["METRICS", "MetricSpec", "assemble", "compute_metrics", "resolve_names"]


@dataclass(frozen=True)
class MetricSpec:
    """One metric: its key, whether it reads image scores or pixel maps, its column label."""

    name: str
    level: Literal["image", "pixel"]
    label: str
    higher_is_better: bool = True


METRICS: dict[str, MetricSpec] = {
    s.name: s
    for s in (
        MetricSpec("image_auroc", "image", "I-AUROC"),
        MetricSpec("image_ap", "image", "I-AP"),
        MetricSpec("image_f1_max", "image", "I-F1max"),
        MetricSpec("pixel_auroc", "pixel", "P-AUROC"),
        MetricSpec("pixel_ap", "pixel", "P-AP"),
        MetricSpec("pixel_f1_max", "pixel", "P-F1max"),
        MetricSpec("aupro", "pixel", "AUPRO"),
        MetricSpec("aupro_anomalyclip", "pixel", "AUPRO-AC"),
    )
}


def resolve_names(levels: Collection[str] = ("image", "pixel"), names: Collection[str] | None = None) -> tuple[str, ...]:
    """The metric keys selected by ``levels`` (or exactly ``names``), in ``METRICS`` order."""
    if isinstance(levels, str):
        levels = (levels,)
    bad = [lv for lv in levels if lv not in ("image", "pixel")]
    if bad:
        raise MetricError(f"unknown metric level {bad[0]!r}; use 'image' and/or 'pixel'")
    if names is None:
        return tuple(n for n, s in METRICS.items() if s.level in levels)
    if isinstance(names, str):
        names = (names,)
    unknown = [n for n in names if n not in METRICS]
    if unknown:
        raise MetricError(f"unknown metric {unknown[0]!r}; known metrics: {', '.join(METRICS)}")
    return tuple(n for n in METRICS if n in names)


def compute_metrics(pred_score: np.ndarray | None, gt_label: np.ndarray | None, anomaly_map: np.ndarray | None,
                    gt_mask: np.ndarray | None, levels: Collection[str] = ("image", "pixel"),
                    names: Collection[str] | None = None, *, fpr_limit: float = 0.3,
                    steps: int = 200) -> dict[str, float]:
    """Every metric of ``levels`` (or only ``names``) for one cell, keyed by metric name.

    ``pred_score`` float ``[N]``, ``gt_label`` 0/1 ``[N]``, ``anomaly_map`` float ``[N,H,W]`` and ``gt_mask``
    bool ``[N,H,W]``. The pixel metrics share one pass over the maps. A level whose inputs are ``None``
    gives NaN for its metrics (the dataset has no such annotation) unless ``names`` asks for them, which
    is an error; a metric that is undefined on the data (one class only) is NaN with a warning.
    ``fpr_limit`` applies to both AUPROs and ``steps`` to the AnomalyCLIP one.

    >>> out = compute_metrics(np.array([0.2, 0.9]), np.array([0, 1]), None, None, levels=("image",))
    >>> out["image_auroc"], out["image_ap"]
    (1.0, 1.0)
    """
    selected = resolve_names(levels, names)
    pixels = None
    if anomaly_map is not None and gt_mask is not None and any(METRICS[n].level == "pixel" for n in selected):
        maps = as_scores(anomaly_map, "anomaly_map", 3)
        pixels = PixelSet([maps], [as_labels(gt_mask, "gt_mask", maps.shape)])
    image = None if pred_score is None or gt_label is None else (pred_score, gt_label)
    return assemble(selected, names is not None, image, pixels, fpr_limit=fpr_limit, steps=steps)


def assemble(selected: tuple[str, ...], explicit: bool, image: tuple[object, object] | None,
             pixels: PixelSet | None, *, fpr_limit: float, steps: int) -> dict[str, float]:
    """The ``selected`` metrics from image ``(scores, labels)`` and a pixel set, either of them absent."""
    limit = check_fpr_limit(fpr_limit)
    steps = check_steps(steps)
    out: dict[str, float] = {}
    for level, data, inputs in (("image", image, "pred_score and gt_label"),
                                ("pixel", pixels, "anomaly_map and gt_mask")):
        wanted = tuple(n for n in selected if METRICS[n].level == level)
        if not wanted:
            continue
        if data is None:
            if explicit:
                raise MetricError(f"metrics {', '.join(wanted)} need {inputs}, which were not given")
            out.update(dict.fromkeys(wanted, math.nan))
        elif level == "image":
            out.update(image_values(data[0], data[1], wanted, "pred_score", "gt_label"))
        else:
            out.update(evaluate(data, wanted, fpr_limit=limit, steps=steps, scores_name="anomaly_map"))
    return {n: out[n] for n in selected}
