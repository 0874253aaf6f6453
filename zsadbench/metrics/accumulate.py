"""Accumulating forms of the metrics, fed batch by batch, equal to the one-shot functions.

Maps are copied into large preallocated blocks in the accumulator's dtype (float32 by default, the
framework's map dtype; pass ``dtype=np.float64`` to keep float64 maps exact) with one byte per mask
pixel, so nothing is ever concatenated and no float64 copy is held for float32 maps. ``compute`` runs
the same kernels as the one-shot functions over the blocks.
"""
from __future__ import annotations

from collections.abc import Collection

import numpy as np

from ._checks import MetricError, as_labels, as_scores
from ._pixels import PIXEL_NAMES, PixelSet, evaluate
from .compute import assemble, resolve_names

__all__ = ["MetricAccumulator", "PixelMetricAccumulator"]

BLOCK_PIXELS = 1 << 26  # pixels per block (memory is only committed as images are written)


class PixelMetricAccumulator:
    """Collects anomaly maps ``[B,H,W]`` and masks ``[B,H,W]``; ``compute()`` gives the pixel metrics.

    >>> acc = PixelMetricAccumulator(("pixel_auroc", "aupro"))
    >>> acc.update(np.array([[[0.1, 0.9]]], np.float32), np.array([[[False, True]]]))
    >>> acc.update(np.array([[[0.3, 0.2]]], np.float32), np.array([[[False, False]]]))
    >>> acc.compute()
    {'pixel_auroc': 1.0, 'aupro': 1.0}
    """

    def __init__(self, names: Collection[str] = PIXEL_NAMES, *, fpr_limit: float = 0.3, steps: int = 200,
                 dtype: type = np.float32) -> None:
        unknown = [n for n in names if n not in PIXEL_NAMES]
        if unknown:
            raise MetricError(f"{unknown[0]!r} is not a pixel metric; choose from {', '.join(PIXEL_NAMES)}")
        if np.dtype(dtype) not in (np.float32, np.float64):
            raise MetricError(f"dtype must be float32 or float64, got {dtype!r}")
        self.names = tuple(n for n in PIXEL_NAMES if n in names)
        self.fpr_limit = fpr_limit
        self.steps = steps
        self.dtype = np.dtype(dtype)
        self.reset()

    def reset(self) -> None:
        """Forget every batch."""
        self._scores: list[np.ndarray] = []
        self._masks: list[np.ndarray] = []
        self._filled: list[int] = []

    def __len__(self) -> int:
        return sum(self._filled)

    def update(self, maps: object, masks: object) -> None:
        """Add a batch of maps ``[B,H,W]`` and masks ``[B,H,W]`` (every batch of one size ``H,W``)."""
        s = as_scores(maps, "maps", 3)
        m = as_labels(masks, "masks", s.shape)
        if self._scores and s.shape[1:] != self._scores[0].shape[1:]:
            raise MetricError(f"maps of size {s.shape[1:]} follow maps of size {self._scores[0].shape[1:]}; "
                              "resize every map to one evaluation size")
        i = 0
        while i < s.shape[0]:
            if not self._scores or self._filled[-1] == self._scores[-1].shape[0]:
                per_image = s.shape[1] * s.shape[2]
                cap = max(s.shape[0] - i, BLOCK_PIXELS // per_image)
                self._scores.append(np.empty((cap,) + s.shape[1:], self.dtype))
                self._masks.append(np.empty((cap,) + s.shape[1:], np.bool_))
                self._filled.append(0)
            at = self._filled[-1]
            take = min(s.shape[0] - i, self._scores[-1].shape[0] - at)
            self._scores[-1][at:at + take] = s[i:i + take]
            self._masks[-1][at:at + take] = m[i:i + take]
            self._filled[-1] = at + take
            i += take

    def pixel_set(self) -> PixelSet:
        """The maps so far as a :class:`PixelSet` of views."""
        if not self._scores:
            raise MetricError("no maps were added; call update(maps, masks) before compute()")
        return PixelSet([s[:f] for s, f in zip(self._scores, self._filled)],
                        [m[:f] for m, f in zip(self._masks, self._filled)])

    def compute(self) -> dict[str, float]:
        """The selected pixel metrics over every batch so far."""
        return evaluate(self.pixel_set(), self.names, fpr_limit=self.fpr_limit, steps=self.steps,
                        scores_name="maps")


class MetricAccumulator:
    """The accumulating twin of :func:`compute_metrics`: ``update`` per batch, then ``compute``."""

    def __init__(self, levels: Collection[str] = ("image", "pixel"), names: Collection[str] | None = None, *,
                 fpr_limit: float = 0.3, steps: int = 200, dtype: type = np.float32) -> None:
        self.selected = resolve_names(levels, names)
        self.explicit = names is not None
        self.fpr_limit = fpr_limit
        self.steps = steps
        self.pixels = PixelMetricAccumulator(PIXEL_NAMES, fpr_limit=fpr_limit, steps=steps, dtype=dtype)
        self._scores: list[np.ndarray] = []
        self._labels: list[np.ndarray] = []

    def update(self, pred_score: object | None = None, gt_label: object | None = None,
               anomaly_map: object | None = None, gt_mask: object | None = None) -> None:
        """Add one batch; leave out what the dataset does not have (e.g. masks)."""
        if pred_score is not None and gt_label is not None:
            s = as_scores(pred_score, "pred_score", 1).astype(np.float64)
            self._scores.append(s)
            self._labels.append(as_labels(gt_label, "gt_label", s.shape))
        if anomaly_map is not None and gt_mask is not None:
            self.pixels.update(anomaly_map, gt_mask)

    def compute(self) -> dict[str, float]:
        """The same dictionary :func:`compute_metrics` returns for all batches at once."""
        image = (np.concatenate(self._scores), np.concatenate(self._labels)) if self._scores else None
        pixels = self.pixels.pixel_set() if len(self.pixels) else None
        return assemble(self.selected, self.explicit, image, pixels, fpr_limit=self.fpr_limit, steps=self.steps)
