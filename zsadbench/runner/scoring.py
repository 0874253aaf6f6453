"""The scoring rule of a cell, shared by the run and ``rescore``.

Maps are scored in the form they are stored in (16-bit levels between each image's minimum and maximum,
see :mod:`zsadbench.store.artifacts`): the metrics are computed on the dequantised maps, so rescoring a
stored artifact reproduces the run's metrics bitwise. A metric level counts only where the adapter declares
it and the data defines it (image: normal and anomalous images; pixel: at least one defect pixel).
"""
from __future__ import annotations

import warnings
from collections.abc import Iterable

import numpy as np

from ..metrics import METRICS, UndefinedMetricWarning, compute_metrics
from ..store.artifacts import dequantize


def score_arrays(declared: Iterable[str], scores: np.ndarray, labels: np.ndarray, levels: np.ndarray | None,
                 low: np.ndarray, high: np.ndarray, masks: np.ndarray) -> dict[str, float]:
    """The metrics of a whole cell from its stored form: exact scores ``[N]``, labels ``[N]``, stored maps
    (``levels`` ``[N,S,S]`` uint16 with per-image ``low``/``high``; ``None``: image metrics only) and masks
    ``[N,S,S]``. Only the levels that apply are returned (none when no level applies)."""
    declared = {level for level in declared if levels is not None or level != "pixel"}
    labels = np.asarray(labels)
    applies = set()
    if "image" in declared and 0 < int(labels.sum()) < len(labels):
        applies.add("image")
    if "pixel" in declared and bool(np.asarray(masks).any()):
        applies.add("pixel")
    if not applies:
        return {}
    maps = dequantize(levels, low, high) if "pixel" in applies else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)  # levels that do not apply are dropped below
        computed = compute_metrics(np.asarray(scores, np.float64), labels, maps,
                                   masks if maps is not None else None, levels=tuple(sorted(applies)))
    return {name: value for name, value in computed.items() if METRICS[name].level in applies}
