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

from ..metrics import METRICS, MetricAccumulator, UndefinedMetricWarning
from ..store.artifacts import dequantize


class CellScorer:
    """Accumulates one cell's images batch by batch; :meth:`metrics` gives the cell's metrics."""

    def __init__(self, declared: Iterable[str]) -> None:
        self.declared = tuple(sorted(declared))
        self._accumulator = MetricAccumulator(self.declared)
        self._labels: list[np.ndarray] = []
        self._defect = False

    def update(self, scores: np.ndarray, labels: np.ndarray, levels: np.ndarray | None, low: np.ndarray,
               high: np.ndarray, masks: np.ndarray) -> None:
        """Add a batch: exact scores ``[B]``, labels ``[B]``, stored maps (``levels`` ``[B,S,S]`` uint16 with
        per-image ``low``/``high``) and masks ``[B,S,S]``."""
        pixel = "pixel" in self.declared
        maps = dequantize(levels, low, high) if pixel else None
        self._accumulator.update(scores, labels, maps, masks if pixel else None)
        self._labels.append(np.asarray(labels))
        self._defect = self._defect or bool(np.asarray(masks).any())

    def metrics(self) -> dict[str, float]:
        """The metrics of the levels that apply to this cell (none when no level applies)."""
        labels = np.concatenate(self._labels) if self._labels else np.zeros(0, np.int64)
        levels = set()
        if "image" in self.declared and 0 < int(labels.sum()) < len(labels):
            levels.add("image")
        if "pixel" in self.declared and self._defect:
            levels.add("pixel")
        if not levels:
            return {}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UndefinedMetricWarning)  # levels that do not apply are dropped below
            computed = self._accumulator.compute()
        return {name: value for name, value in computed.items() if METRICS[name].level in levels}


#: Images fed to the scorer at a time when scoring a whole cell (bounds the dequantised copy in memory).
SCORE_CHUNK = 32


def score_arrays(declared: Iterable[str], scores: np.ndarray, labels: np.ndarray, levels: np.ndarray | None,
                 low: np.ndarray, high: np.ndarray, masks: np.ndarray) -> dict[str, float]:
    """The metrics of a whole cell from its stored form, fed to a :class:`CellScorer` in chunks (``levels``
    ``None``: image metrics only)."""
    declared = [level for level in declared if levels is not None or level != "pixel"]
    scorer = CellScorer(declared)
    for start in range(0, max(len(scores), 1), SCORE_CHUNK):
        part = slice(start, start + SCORE_CHUNK)
        scorer.update(scores[part], labels[part], None if levels is None else levels[part], low[part], high[part],
                      masks[part])
    return scorer.metrics()
