"""Numba kernels for exact ranking metrics and AUPRO on bucketed integer keys.

A float's bit pattern is mapped to an unsigned integer of the same width and the same order (negative
floats flipped, -0.0 merged with +0.0). The top 16 bits of that key name a *bucket*. One pass counts the
negatives and positives of every (chunk, bucket); a second pass scatters only the key's low bits (the
*payload*) into per-bucket sections, negatives and positives apart, so each bucket can then be resolved
into its distinct scores on its own (a dense count over the 16-bit payload, or a radix sort of a small
section), in parallel, with the counts of all higher buckets known in advance. No pass ever sorts all
pixels, and nothing per pixel is held in float64.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

NBUCKETS = 1 << 16
DENSE_SIZE = 1 << 16  # a 16-bit payload indexes a dense count of this length


@njit
def _radix_order(keys, passes):
    """The permutation that sorts ``keys`` ascending: a stable LSD radix sort on ``passes`` bytes."""
    n = keys.size
    order = np.arange(n)
    spare = np.empty(n, np.int64)
    count = np.empty(257, np.int64)
    for p in range(passes):
        shift = np.uint64(8 * p)
        count[:] = 0
        for i in range(n):
            count[((np.uint64(keys[order[i]]) >> shift) & np.uint64(255)) + 1] += 1
        for d in range(256):
            count[d + 1] += count[d]
        for i in range(n):
            d = (np.uint64(keys[order[i]]) >> shift) & np.uint64(255)
            spare[count[d]] = order[i]
            count[d] += 1
        order, spare = spare, order
    return order


@njit(inline="always")
def _key(bits, sign):
    if bits & sign:
        if bits == sign:  # -0.0 ranks with +0.0
            return sign
        return ~bits
    return bits | sign


@njit(cache=True, parallel=True, nogil=True)
def bucket_histogram(bits, mask, bounds, shift, sign):
    """Negative and positive counts per (chunk, bucket); chunk ``c`` is ``bits[bounds[c]:bounds[c+1]]``."""
    nchunks = bounds.size - 1
    neg = np.zeros((nchunks, NBUCKETS), np.int64)
    pos = np.zeros((nchunks, NBUCKETS), np.int64)
    for c in prange(nchunks):
        for i in range(bounds[c], bounds[c + 1]):
            b = _key(bits[i], sign) >> shift
            if mask[i]:
                pos[c, b] += 1
            else:
                neg[c, b] += 1
    return neg, pos


@njit(cache=True, parallel=True, nogil=True)
def scatter(bits, mask, bounds, shift, sign, low, min_bucket, neg_cur, pos_cur, neg_buf, pos_buf,
            rids, pos_first, rid_buf):
    """Write the payload of every pixel whose bucket is ``>= min_bucket`` to its section.

    ``neg_cur``/``pos_cur`` ``[chunks, NBUCKETS]`` are write cursors (advanced in place). When ``rids``
    (the region id of every positive pixel of this block, in raster order) is not empty, the region id
    of each scattered positive goes to ``rid_buf`` beside its payload; ``pos_first[c]`` is the index in
    ``rids`` of chunk ``c``'s first positive.
    """
    with_rid = rids.size > 0
    for c in prange(bounds.size - 1):
        ncur = neg_cur[c]
        pcur = pos_cur[c]
        k = pos_first[c]
        for i in range(bounds[c], bounds[c + 1]):
            key = _key(bits[i], sign)
            b = key >> shift
            if mask[i]:
                if b >= min_bucket:
                    j = pcur[b]
                    pcur[b] = j + 1
                    pos_buf[j] = key & low
                    if with_rid:
                        rid_buf[j] = rids[k]
                k += 1
            elif b >= min_bucket:
                j = ncur[b]
                ncur[b] = j + 1
                neg_buf[j] = key & low


@njit(inline="always")
def _rank_step(nv, pv, fp, tp, n_neg, n_pos, u2, ap, f1):
    # nv negatives and pv positives share one score; fp/tp count the pixels scored strictly higher.
    u2 += pv * (2 * n_neg - 2 * fp - nv)  # 2 x (negatives below) + 1 x (tied negatives)
    fp += nv
    tp += pv
    if pv > 0:
        ap += pv * (tp / (tp + fp))
        f1 = max(f1, 2.0 * tp / (tp + fp + n_pos))
    return fp, tp, u2, ap, f1


@njit
def _rank_bucket(ns, ps, fp, tp, n_neg, n_pos, dense, passes, cn, cp):
    # One bucket's negatives ``ns`` and positives ``ps`` (payloads), given the counts above it.
    # ``cn``/``cp`` are all-zero dense scratch, left all-zero again.
    u2 = np.int64(0)
    ap = 0.0
    f1 = 0.0
    if dense:
        for i in range(ns.size):
            cn[ns[i]] += 1
        for i in range(ps.size):
            cp[ps[i]] += 1
        for d in range(DENSE_SIZE - 1, -1, -1):
            if cn[d] or cp[d]:
                fp, tp, u2, ap, f1 = _rank_step(cn[d], cp[d], fp, tp, n_neg, n_pos, u2, ap, f1)
                cn[d] = 0
                cp[d] = 0
        return u2, ap, f1
    on = _radix_order(ns, passes)
    op = _radix_order(ps, passes)
    i = ns.size
    j = ps.size
    while i > 0 or j > 0:
        if j == 0 or (i > 0 and ns[on[i - 1]] >= ps[op[j - 1]]):
            v = ns[on[i - 1]]
        else:
            v = ps[op[j - 1]]
        nv = 0
        while i > 0 and ns[on[i - 1]] == v:
            nv += 1
            i -= 1
        pv = 0
        while j > 0 and ps[op[j - 1]] == v:
            pv += 1
            j -= 1
        fp, tp, u2, ap, f1 = _rank_step(nv, pv, fp, tp, n_neg, n_pos, u2, ap, f1)
    return u2, ap, f1


@njit(cache=True, parallel=True, nogil=True)
def rank_buckets(neg_buf, pos_buf, neg_start, pos_start, buckets, neg_above, pos_above, n_neg, n_pos,
                 dense_min, passes, groups):
    """Per bucket: twice the Mann-Whitney U (int), the AP sum and the best F1, scanning scores downwards.

    A bucket holding at least ``dense_min`` pixels (``dense_min < 0``: never) is resolved with dense
    counts over the payload, a smaller one by radix-sorting its two sections (``passes`` payload bytes).
    """
    nb = buckets.size
    u2_out = np.zeros(nb, np.int64)
    ap_out = np.zeros(nb, np.float64)
    f1_out = np.zeros(nb, np.float64)
    for g in prange(groups):  # buckets shared round-robin; one dense scratch per worker
        cn = np.zeros(DENSE_SIZE if dense_min >= 0 else 1, np.int64)
        cp = np.zeros(cn.size, np.int64)
        for t in range(g, nb, groups):
            b = buckets[t]
            a0, a1 = neg_start[b], neg_start[b + 1]
            p0, p1 = pos_start[b], pos_start[b + 1]
            dense = dense_min >= 0 and (a1 - a0) + (p1 - p0) >= dense_min
            r = _rank_bucket(neg_buf[a0:a1], pos_buf[p0:p1], neg_above[b], pos_above[b], n_neg, n_pos, dense,
                             passes, cn, cp)
            u2_out[t] = r[0]
            ap_out[t] = r[1]
            f1_out[t] = r[2]
    return u2_out, ap_out, f1_out


@njit(cache=True, parallel=True, nogil=True)
def bucket_weights(pos_start, rid_buf, weights, buckets):
    """Total region weight of the positives scattered into each listed bucket."""
    out = np.zeros(buckets.size, np.float64)
    for t in prange(buckets.size):
        b = buckets[t]
        s = 0.0
        for i in range(pos_start[b], pos_start[b + 1]):
            s += weights[rid_buf[i]]
        out[t] = s
    return out


@njit(inline="always")
def _pro_step(nv, wv, fp, y, n_neg, limit, acc):
    # One ROC-like segment: FPR grows by nv/n_neg, PRO by wv. Returns (fp, y, acc, partial, done).
    fp1 = fp + nv
    y1 = min(y + wv, 1.0)  # the weights sum to 1 up to rounding; never let PRO pass it
    if fp1 / n_neg <= limit:
        return fp1, y1, acc + nv * (y + y1), 0.0, False
    x0 = fp / n_neg
    x1 = fp1 / n_neg
    partial = 0.0
    if x0 < limit:  # the segment crosses the limit: interpolate PRO linearly at FPR = limit
        y_lim = y + (y1 - y) * (limit - x0) / (x1 - x0)
        partial = (limit - x0) * (y + y_lim) / 2.0
    return fp1, y1, acc, partial, True


@njit
def _pro_bucket(ns, ps, rids, weights, fp, y, n_neg, limit, dense, passes, cn, cw):
    # One bucket's negatives and positives (payloads; ``rids`` beside ``ps``), given FP and PRO above it.
    # ``cn``/``cw`` are all-zero dense scratch, left all-zero again.
    acc = 0.0
    partial = 0.0
    done = False
    if dense:
        for i in range(ns.size):
            cn[ns[i]] += 1
        for i in range(ps.size):
            cw[ps[i]] += weights[rids[i]]
        for d in range(DENSE_SIZE - 1, -1, -1):
            if cn[d] or cw[d] > 0.0:
                if not done:
                    fp, y, acc, partial, done = _pro_step(cn[d], cw[d], fp, y, n_neg, limit, acc)
                cn[d] = 0
                cw[d] = 0.0
        return acc, partial
    on = _radix_order(ns, passes)
    op = _radix_order(ps, passes)
    i = ns.size
    j = ps.size
    while (i > 0 or j > 0) and not done:
        if j == 0 or (i > 0 and ns[on[i - 1]] >= ps[op[j - 1]]):
            v = ns[on[i - 1]]
        else:
            v = ps[op[j - 1]]
        nv = 0
        while i > 0 and ns[on[i - 1]] == v:
            nv += 1
            i -= 1
        wv = 0.0
        while j > 0 and ps[op[j - 1]] == v:
            wv += weights[rids[op[j - 1]]]
            j -= 1
        fp, y, acc, partial, done = _pro_step(nv, wv, fp, y, n_neg, limit, acc)
    return acc, partial


@njit(cache=True, parallel=True, nogil=True)
def pro_buckets(neg_buf, pos_buf, rid_buf, weights, neg_start, pos_start, buckets, neg_above, w_above,
                n_neg, limit, dense_min, passes, groups):
    """Per bucket: the PRO-curve area up to FPR ``limit``.

    Returns ``acc`` (sum of ``n_v * (y0 + y1)`` over whole segments; the area is ``acc / (2 n_neg)``)
    and ``partial`` (the area of the one segment cut at the limit).
    """
    nb = buckets.size
    acc_out = np.zeros(nb, np.float64)
    part_out = np.zeros(nb, np.float64)
    for g in prange(groups):  # buckets shared round-robin; one dense scratch per worker
        cn = np.zeros(DENSE_SIZE if dense_min >= 0 else 1, np.int64)
        cw = np.zeros(cn.size, np.float64)
        for t in range(g, nb, groups):
            b = buckets[t]
            a0, a1 = neg_start[b], neg_start[b + 1]
            p0, p1 = pos_start[b], pos_start[b + 1]
            dense = dense_min >= 0 and (a1 - a0) + (p1 - p0) >= dense_min
            r = _pro_bucket(neg_buf[a0:a1], pos_buf[p0:p1], rid_buf[p0:p1], weights, neg_above[b],
                            min(w_above[b], 1.0), n_neg, limit, dense, passes, cn, cw)
            acc_out[t] = r[0]
            part_out[t] = r[1]
    return acc_out, part_out


@njit(cache=True, parallel=True, nogil=True)
def threshold_histogram(scores, mask, bounds, ths, lo, inv_delta, rids, pos_first, weights):
    """For thresholds ``ths`` (non-decreasing), count per chunk how many thresholds each pixel exceeds.

    Returns negatives ``[chunks, T+1]`` (counts) and positives ``[chunks, T+1]`` (summed region weights)
    indexed by ``g = #{j : ths[j] < score}``; a pixel is predicted anomalous at ``ths[j]`` iff ``j < g``.
    ``lo``/``inv_delta`` give a first guess of ``g`` that exact comparisons then correct.
    """
    nt = ths.size
    nchunks = bounds.size - 1
    neg = np.zeros((nchunks, nt + 1), np.int64)
    wpos = np.zeros((nchunks, nt + 1), np.float64)
    for c in prange(nchunks):
        k = pos_first[c]
        for i in range(bounds[c], bounds[c + 1]):
            s = scores[i]
            guess = (np.float64(s) - lo) * inv_delta
            g = 0 if guess <= 0.0 else (nt if guess >= nt else int(guess))
            while g < nt and ths[g] < s:
                g += 1
            while g > 0 and not ths[g - 1] < s:
                g -= 1
            if mask[i]:
                wpos[c, g] += weights[rids[k]]
                k += 1
            else:
                neg[c, g] += 1
    return neg, wpos
