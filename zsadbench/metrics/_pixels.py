"""The engine behind the pixel metrics: blocks of maps in, exact metric values out.

Everything here is exact for the float width of the maps: every distinct score is a threshold and equal
scores form one point. float32 maps use 16-bit payloads and dense counting; float64 maps (and image
scores) use 48-bit payloads and per-bucket radix sorts. One histogram and one scatter serve AUROC, AP, F1-max
and AUPRO together.
"""
from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from . import _kernels as K
from . import _regions as R
from ._checks import MetricError, check_finite_range, undefined

DENSE_MIN = 8192  # buckets of at least this many pixels are resolved by dense counting (float32 only)
MIN_CHUNK = 1 << 18  # fewest pixels per parallel chunk
FIXED_CHUNKS = 64  # most chunks of a float reduction, whatever the thread count
RANKING = ("pixel_auroc", "pixel_ap", "pixel_f1_max")
PIXEL_NAMES = RANKING + ("aupro", "aupro_anomalyclip")


@dataclass(frozen=True)
class _Width:
    """Constants of the integer keys of one float width."""

    uint: type
    shift: np.unsignedinteger
    sign: np.unsignedinteger
    low: np.unsignedinteger
    payload: type
    dense: bool
    bad_below: int  # buckets <= this hold only -inf and NaN
    bad_above: int  # buckets >= this hold only +inf and NaN
    passes: int  # payload bytes


_WIDTHS = {
    np.dtype(np.float32): _Width(np.uint32, np.uint32(16), np.uint32(1 << 31), np.uint32(0xFFFF), np.uint16,
                                 True, 0x007F, 0xFF80, 2),
    np.dtype(np.float64): _Width(np.uint64, np.uint64(48), np.uint64(1 << 63), np.uint64((1 << 48) - 1),
                                 np.uint64, False, 0x000F, 0xFFF0, 6),
}


def _groups(n: int) -> int:
    """How many parallel workers share ``n`` items of uneven size."""
    return max(1, min(n, 4 * numba.get_num_threads()))


def _bounds(n: int) -> np.ndarray:
    chunks = _groups(n // MIN_CHUNK)
    return (np.arange(chunks + 1, dtype=np.int64) * n) // chunks


def _fixed_bounds(n: int) -> np.ndarray:
    """Chunk bounds that depend on ``n`` only: for float sums taken per chunk, so that a metric is the same
    bits whatever the number of threads (a rescore on another machine reproduces it exactly)."""
    chunks = max(1, min(n // MIN_CHUNK, FIXED_CHUNKS))
    return (np.arange(chunks + 1, dtype=np.int64) * n) // chunks


@dataclass
class PixelSet:
    """Score maps and masks as blocks ``[n_i, H, W]`` of one size and one float dtype (views, no copies)."""

    scores: list[np.ndarray]
    masks: list[np.ndarray]

    @property
    def dtype(self) -> np.dtype:
        return self.scores[0].dtype

    @property
    def hw(self) -> tuple[int, int]:
        return self.scores[0].shape[1], self.scores[0].shape[2]

    def flat(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        return self.scores[i].reshape(-1), self.masks[i].reshape(-1)

    def bits(self, i: int) -> np.ndarray:
        return self.scores[i].reshape(-1).view(_WIDTHS[self.dtype].uint)


@dataclass
class _Hist:
    neg: np.ndarray  # [all chunks, NBUCKETS]
    pos: np.ndarray
    bounds: list[np.ndarray]  # per block
    rows: list[slice]  # per block, its chunks' rows in neg/pos

    @property
    def n_neg(self) -> int:
        return int(self.neg.sum())

    @property
    def n_pos(self) -> int:
        return int(self.pos.sum())


def histogram(ps: PixelSet, name: str) -> _Hist:
    """Pass 1: counts per (chunk, bucket); also rejects NaN and infinite scores."""
    w = _WIDTHS[ps.dtype]
    negs, poss, bounds, rows, row = [], [], [], [], 0
    for i in range(len(ps.scores)):
        b = _bounds(ps.scores[i].size)
        neg, pos = K.bucket_histogram(ps.bits(i), ps.flat(i)[1], b, w.shift, w.sign)
        negs.append(neg)
        poss.append(pos)
        bounds.append(b)
        rows.append(slice(row, row + b.size - 1))
        row += b.size - 1
    h = _Hist(np.concatenate(negs), np.concatenate(poss), bounds, rows)
    bad = sum(int(a[:, : w.bad_below + 1].sum() + a[:, w.bad_above:].sum()) for a in (h.neg, h.pos))
    if bad:
        raise MetricError(f"{name} contains {bad} NaN or infinite values; replace them "
                          "(e.g. with np.nan_to_num) before computing metrics")
    return h


@dataclass
class Regions:
    """The 8-connected ground-truth regions: a global id per positive pixel and a weight per region."""

    rids: list[np.ndarray]  # per block, int32 [positives of the block] in raster order
    weights: np.ndarray  # float64 [n_regions], 1 / (n_regions * region size)


def label_regions(ps: PixelSet) -> Regions:
    """Label the defect regions of every image that has any defect pixel."""
    h, w = ps.hw
    rids, offsets, counts = [], [], []
    for i, m in enumerate(ps.masks):
        n = m.shape[0]
        per_image = R.count_true(ps.flat(i)[1], np.arange(n + 1, dtype=np.int64) * (h * w))
        off = np.zeros(n + 1, np.int64)
        np.cumsum(per_image, out=off[1:])
        r = np.empty(int(off[-1]), np.int32)
        counts.append(R.label_local(m.reshape(n, h * w), h, w, off, r, _groups(n)))
        rids.append(r)
        offsets.append(off)
    total = int(sum(int(c.sum()) for c in counts))
    sizes = np.zeros(total, np.int64)
    base = 0
    for r, off, c in zip(rids, offsets, counts):
        region_base = base + np.concatenate(([0], np.cumsum(c)[:-1])).astype(np.int64)
        R.globalise(r, off, region_base, sizes)
        base += int(c.sum())
    weights = 1.0 / (float(total) * sizes) if total else np.zeros(0)
    return Regions(rids, weights)


@dataclass
class _Sections:
    neg_buf: np.ndarray
    pos_buf: np.ndarray
    rid_buf: np.ndarray
    neg_start: np.ndarray  # [NBUCKETS + 1]
    pos_start: np.ndarray
    buckets: np.ndarray  # the non-empty scattered buckets


def _cursors(counts: np.ndarray, min_bucket: int) -> tuple[np.ndarray, np.ndarray]:
    counts = counts.copy()
    counts[:, :min_bucket] = 0
    start = np.zeros(K.NBUCKETS + 1, np.int64)
    np.cumsum(counts.sum(axis=0), out=start[1:])
    cur = np.cumsum(counts, axis=0)
    cur -= counts
    cur += start[:-1]
    return cur, start


def scatter(ps: PixelSet, hist: _Hist, min_bucket: int, regions: Regions | None) -> _Sections:
    """Pass 2: the payloads of every pixel in a bucket ``>= min_bucket``, grouped by bucket and class."""
    w = _WIDTHS[ps.dtype]
    neg_cur, neg_start = _cursors(hist.neg, min_bucket)
    pos_cur, pos_start = _cursors(hist.pos, min_bucket)
    neg_buf = np.empty(int(neg_start[-1]), w.payload)
    pos_buf = np.empty(int(pos_start[-1]), w.payload)
    rid_buf = np.empty(pos_buf.size if regions is not None else 0, np.int32)
    no_rids = np.empty(0, np.int32)
    for i in range(len(ps.scores)):
        rows = hist.rows[i]
        per_chunk = hist.pos[rows].sum(axis=1)
        pos_first = np.concatenate(([0], np.cumsum(per_chunk)[:-1])).astype(np.int64)
        rids = regions.rids[i] if regions is not None else no_rids
        K.scatter(ps.bits(i), ps.flat(i)[1], hist.bounds[i], w.shift, w.sign, w.low, w.uint(min_bucket),
                  neg_cur[rows], pos_cur[rows], neg_buf, pos_buf, rids, pos_first, rid_buf)
    sizes = np.diff(neg_start) + np.diff(pos_start)
    buckets = np.flatnonzero(sizes).astype(np.int64)
    return _Sections(neg_buf, pos_buf, rid_buf, neg_start, pos_start, buckets)


def _above(totals: np.ndarray) -> np.ndarray:
    """``out[b]`` = sum of ``totals`` over the buckets strictly above ``b``."""
    out = np.zeros_like(totals)
    out[:-1] = np.cumsum(totals[::-1])[::-1][1:]
    return out


def _dense_min(ps: PixelSet) -> int:
    return DENSE_MIN if _WIDTHS[ps.dtype].dense else -1


def ranking(ps: PixelSet, hist: _Hist, sec: _Sections) -> tuple[float, float, float]:
    """Exact (AUROC, AP, F1-max); the caller has made sure both classes are present."""
    n_neg, n_pos = hist.n_neg, hist.n_pos
    u2, ap, f1 = K.rank_buckets(sec.neg_buf, sec.pos_buf, sec.neg_start, sec.pos_start, sec.buckets,
                                _above(hist.neg.sum(axis=0)), _above(hist.pos.sum(axis=0)), n_neg, n_pos,
                                _dense_min(ps), _WIDTHS[ps.dtype].passes, _groups(sec.buckets.size))
    return int(u2.sum()) / (2 * n_pos * n_neg), float(ap.sum()) / n_pos, float(f1.max())


def crossing_bucket(neg_totals: np.ndarray, n_neg: int, limit: float) -> int:
    """The bucket whose scores take the FPR past ``limit`` (0 when it is never passed)."""
    at_or_above = np.cumsum(neg_totals[::-1])[::-1]
    past = np.flatnonzero(at_or_above / n_neg > limit)
    return int(past[-1]) if past.size else 0


def aupro(ps: PixelSet, hist: _Hist, sec: _Sections, regions: Regions, limit: float) -> float:
    """Standard AUPRO up to FPR ``limit`` over the scattered buckets (which must reach the crossing)."""
    n_neg = hist.n_neg
    lowest = crossing_bucket(hist.neg.sum(axis=0), n_neg, limit)
    buckets = sec.buckets[sec.buckets >= lowest]
    wsum = np.zeros(K.NBUCKETS)
    wsum[buckets] = K.bucket_weights(sec.pos_start, sec.rid_buf, regions.weights, buckets)
    acc, partial = K.pro_buckets(sec.neg_buf, sec.pos_buf, sec.rid_buf, regions.weights, sec.neg_start,
                                 sec.pos_start, buckets, _above(hist.neg.sum(axis=0)), _above(wsum), n_neg,
                                 limit, _dense_min(ps), _WIDTHS[ps.dtype].passes, _groups(buckets.size))
    return (float(acc.sum()) / (2 * n_neg) + float(partial.sum())) / limit


def aupro_anomalyclip(ps: PixelSet, regions: Regions, n_neg: int, limit: float, steps: int,
                      name: str) -> float:
    """AnomalyCLIP's ``cal_pro_score``, re-stated exactly but in one pass over the pixels."""
    lo = min(s.min() for s in ps.scores)
    hi = max(s.max() for s in ps.scores)
    check_finite_range(float(lo), float(hi), name)
    with np.errstate(over="ignore"):
        delta = (hi - lo) / steps  # in the maps' dtype, as the reference computes it
    if not (np.isfinite(delta) and delta > 0):
        return undefined("aupro_anomalyclip", f"the scores span [{lo}, {hi}], which gives no thresholds")
    ths = np.arange(lo, hi, delta)
    neg = np.zeros(ths.size + 1, np.int64)
    wpos = np.zeros(ths.size + 1)
    for i in range(len(ps.scores)):
        scores, mask = ps.flat(i)
        b = _fixed_bounds(scores.size)
        pos_first = np.concatenate(([0], np.cumsum(R.count_true(mask, b))[:-1])).astype(np.int64)
        n_, w_ = K.threshold_histogram(scores, mask, b, ths, float(lo), 1.0 / float(delta),
                                       regions.rids[i], pos_first, regions.weights)
        neg += n_.sum(axis=0)
        wpos += w_.sum(axis=0)
    fpr = _above(neg)[:-1] / n_neg  # threshold j marks pixels with g > j
    pro = _above(wpos)[:-1]
    keep = fpr < limit
    fpr, pro = fpr[keep], pro[keep]
    if fpr.size < 2 or fpr.max() == fpr.min():
        return undefined("aupro_anomalyclip", f"fewer than two thresholds give distinct FPRs below {limit}")
    fpr = (fpr - fpr.min()) / (fpr.max() - fpr.min())
    return float(-(np.diff(fpr) * (pro[1:] + pro[:-1]) / 2.0).sum())  # FPR falls as thresholds rise


def rank_values(ps: PixelSet, scores_name: str) -> tuple[float, float, float] | None:
    """(AUROC, AP, F1-max) of the set, or None when one class is missing."""
    hist = histogram(ps, scores_name)
    if hist.n_neg == 0 or hist.n_pos == 0:
        return None
    return ranking(ps, hist, scatter(ps, hist, 0, None))


def evaluate(ps: PixelSet, names: tuple[str, ...], *, fpr_limit: float = 0.3, steps: int = 200,
             scores_name: str = "scores") -> dict[str, float]:
    """Compute the requested pixel metrics (``PIXEL_NAMES``), sharing every pass between them."""
    out: dict[str, float] = {}
    want_rank = [n for n in names if n in RANKING]
    want_pro = "aupro" in names
    hist = histogram(ps, scores_name)
    n_neg, n_pos = hist.n_neg, hist.n_pos
    missing = "no anomalous pixels" if n_pos == 0 else ("no normal pixels" if n_neg == 0 else "")
    if missing:
        return {n: undefined(n, f"the masks have {missing}") for n in names}
    regions = label_regions(ps) if want_pro or "aupro_anomalyclip" in names else None
    if want_rank or want_pro:
        lowest = 0 if want_rank else crossing_bucket(hist.neg.sum(axis=0), n_neg, fpr_limit)
        sec = scatter(ps, hist, lowest, regions if want_pro else None)
        if want_rank:
            values = dict(zip(RANKING, ranking(ps, hist, sec)))
            out.update({n: values[n] for n in want_rank})
        if want_pro:
            out["aupro"] = aupro(ps, hist, sec, regions, fpr_limit)
        del sec
    if "aupro_anomalyclip" in names:
        out["aupro_anomalyclip"] = aupro_anomalyclip(ps, regions, n_neg, fpr_limit, steps, scores_name)
    return {n: out[n] for n in names}
