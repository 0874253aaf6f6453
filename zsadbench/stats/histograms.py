"""Per-image score histograms, merged into one table that evaluates any resample of the images exactly.

A resample draws each image a whole number of times, so the negative and positive counts at every score
are weighted sums of the images' own counts. :class:`RankTable` holds, for every distinct score of the
cell (highest first), which images have pixels at that score and how many of each class; a resample's
AUROC, AP and F1-max are one scan of that table with the images' multiplicities as weights
(:func:`~zsadbench.stats._kernels.rank_scan`), without touching a pixel again.

Image scores are one entry per image. Maps are stored as 16-bit levels per image, so an image holds at
most 65,536 distinct scores: its entries are its levels present, each dequantised exactly as the metrics
see it (:func:`~zsadbench.store.artifacts.dequantize`), so levels that land on one float merge. Runs of
scores without any positive pixel inside one bucket are merged into one step (they only move the false
positive count), which keeps the table small where the maps are smooth.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..store.artifacts import dequantize
from . import _kernels as K

#: entries times blocks of resamples from which a scan runs on every core
PARALLEL_WORK = 1 << 20
#: bits below the bucket of a float32 / float64 key, as in the metric kernels
_SHIFT = {np.dtype(np.float32): 16, np.dtype(np.float64): 48}


def ordered_keys(values: np.ndarray) -> np.ndarray:
    """The metric kernels' ordered integer key of each float (as ``uint64``): negatives flipped, -0.0 as +0.0."""
    values = np.ascontiguousarray(values)
    width = np.uint32 if values.dtype == np.float32 else np.uint64
    bits = values.view(width)
    sign = width(1 << (8 * values.dtype.itemsize - 1))
    keys = np.where(bits & sign, ~bits, bits | sign)
    keys[bits == sign] = sign  # -0.0 ranks with +0.0
    return keys.astype(np.uint64, copy=False)


@dataclass(frozen=True)
class RankTable:
    """Distinct scores (merged into steps) with each image's negative and positive counts."""

    group_start: np.ndarray  # int64 [G + 1]: entries of step g
    group_bucket: np.ndarray  # int64 [G]: the bucket of step g (non-increasing)
    units: np.ndarray  # int32 [E]: the image of each entry
    neg: np.ndarray  # int32 [E]
    pos: np.ndarray  # int32 [E]
    unit_neg: np.ndarray  # int64 [N]: negatives of each image
    unit_pos: np.ndarray  # int64 [N]
    width: int  # distinct buckets (the most AP parts a scan can produce)

    @property
    def entries(self) -> int:
        return int(self.units.size)

    def ranking(self, weights: np.ndarray) -> dict[str, np.ndarray]:
        """AUROC, AP and F1-max (keys ``auroc``, ``ap``, ``f1_max``) of each row of ``weights`` (``[B, N]``
        multiplicities); NaN where a resample has one class only."""
        weights = np.asarray(weights, dtype=np.int64)
        rows = len(weights)
        n_neg = weights @ self.unit_neg
        n_pos = weights @ self.unit_pos
        defined = (n_neg > 0) & (n_pos > 0)
        auroc = np.full(rows, np.nan)
        ap = np.full(rows, np.nan)
        f1 = np.full(rows, np.nan)
        if self.group_bucket.size == 0 or not defined.any():
            return {"auroc": auroc, "ap": ap, "f1_max": f1}
        nblocks = -(-rows // K.ROWS)
        padded = np.zeros((nblocks * K.ROWS, weights.shape[1]), np.int32)
        padded[:rows] = weights
        blocks = np.ascontiguousarray(padded.reshape(nblocks, K.ROWS, -1).transpose(0, 2, 1))
        pad = np.zeros(nblocks * K.ROWS - rows, np.int64)
        scan = K.rank_scan if self.entries * nblocks >= PARALLEL_WORK else K.rank_scan_serial
        u2, best, parts, count = scan(self.group_start, self.group_bucket, self.units, self.neg, self.pos, blocks,
                                      np.concatenate([n_neg, pad]), np.concatenate([n_pos, pad]), self.width)
        for b in np.flatnonzero(defined):
            neg_b, pos_b = int(n_neg[b]), int(n_pos[b])
            auroc[b] = int(u2[b]) / (2 * pos_b * neg_b)
            # the metric kernels sum the per-bucket parts lowest bucket first, with NumPy's pairwise sum
            ap[b] = float(np.ascontiguousarray(parts[b, : count[b]][::-1]).sum()) / pos_b
            f1[b] = best[b]
        return {"auroc": auroc, "ap": ap, "f1_max": f1}


def image_table(scores: np.ndarray, labels: np.ndarray) -> RankTable:
    """The table of image scores ``[N]`` (as float64, as the image metrics read them) and 0/1 labels."""
    values = np.ascontiguousarray(scores, dtype=np.float64)
    labels = np.asarray(labels).astype(bool)
    units = np.arange(values.size, dtype=np.int64)
    return _build(ordered_keys(values), _SHIFT[values.dtype], units, (~labels).astype(np.int64),
                  labels.astype(np.int64), values.size)


def pixel_table(levels: np.ndarray, low: np.ndarray, high: np.ndarray, masks: np.ndarray) -> RankTable:
    """The table of stored maps (uint16 ``levels`` ``[N,H,W]`` with per-image ``low``/``high``) and masks."""
    n = len(levels)
    flat = np.ascontiguousarray(levels.reshape(n, -1))
    image, level, neg, pos = K.level_counts(flat, np.ascontiguousarray(masks.reshape(n, -1), dtype=bool))
    values = dequantize(level.astype(np.uint16).reshape(-1, 1), np.asarray(low)[image], np.asarray(high)[image])
    values = values.reshape(-1)
    return _build(ordered_keys(values), _SHIFT[values.dtype], image, neg, pos, n)


def _build(keys: np.ndarray, shift: int, units: np.ndarray, neg: np.ndarray, pos: np.ndarray, n: int) -> RankTable:
    unit_neg = np.bincount(units, weights=neg, minlength=n).astype(np.int64)
    unit_pos = np.bincount(units, weights=pos, minlength=n).astype(np.int64)
    if keys.size == 0:
        empty = np.zeros(0, np.int32)
        return RankTable(np.zeros(1, np.int64), np.zeros(0, np.int64), empty, empty, empty, unit_neg, unit_pos, 0)
    order = np.argsort(keys, kind="stable")  # each image's keys come sorted: the sort merges runs
    start, bucket, merged, agg_neg, agg_pos, width = K.build_steps(keys, order, units, neg, pos, np.uint64(shift), n)
    return RankTable(start, bucket, merged, agg_neg, agg_pos, unit_neg, unit_pos, int(width))
