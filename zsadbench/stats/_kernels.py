"""Numba kernels of the bootstrap: per-image level counts, and one ranking scan per resample.

The scan repeats the metric kernels' arithmetic (:mod:`zsadbench.metrics._kernels`) step for step: scores
are visited from the highest down, equal scores form one step, ``2U`` is summed as an integer and AP is
summed per bucket (the top bits of a score's ordered key) in the same order, so a resample's AUROC, AP and
F1-max are the same bits as those of the metric kernels run on the resampled images.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

LEVELS = 1 << 16
ROWS = 64  # resamples per pass over the table


@njit(cache=True, parallel=True, nogil=True)
def level_counts(levels, masks):
    """Per image (rows of ``levels`` uint16 ``[N,P]`` and ``masks`` bool ``[N,P]``), every level present with
    its negative and positive pixel counts: ``(image, level, negatives, positives)``, by image then level."""
    n = levels.shape[0]
    present = np.zeros(n, np.int64)
    for i in prange(n):
        seen = np.zeros(LEVELS, np.bool_)
        k = 0
        for v in levels[i]:
            if not seen[v]:
                seen[v] = True
                k += 1
        present[i] = k
    start = np.zeros(n + 1, np.int64)
    for i in range(n):
        start[i + 1] = start[i] + present[i]
    image = np.empty(start[n], np.int64)
    level = np.empty(start[n], np.int64)
    neg = np.empty(start[n], np.int64)
    pos = np.empty(start[n], np.int64)
    for i in prange(n):
        cn = np.zeros(LEVELS, np.int64)
        cp = np.zeros(LEVELS, np.int64)
        row = levels[i]
        mask = masks[i]
        for j in range(row.size):
            if mask[j]:
                cp[row[j]] += 1
            else:
                cn[row[j]] += 1
        k = start[i]
        for v in range(LEVELS):
            if cn[v] or cp[v]:
                image[k] = i
                level[k] = v
                neg[k] = cn[v]
                pos[k] = cp[v]
                k += 1
    return image, level, neg, pos


@njit(cache=True, nogil=True, inline="always")
def _scan_block(group_start, group_bucket, units, neg, pos, w, total_neg, total_pos, u2, f1, parts, count, first):
    """One block of ``ROWS`` resamples (``w`` ``[units, ROWS]``), written to rows ``first:first+ROWS``."""
    fp = np.zeros(ROWS, np.int64)
    tp = np.zeros(ROWS, np.int64)
    u = np.zeros(ROWS, np.int64)
    best = np.zeros(ROWS, np.float64)
    ap = np.zeros(ROWS, np.float64)
    used = np.zeros(ROWS, np.bool_)
    nb = np.zeros(ROWS, np.int64)
    nv = np.zeros(ROWS, np.int64)
    pv = np.zeros(ROWS, np.int64)
    current = group_bucket[0]
    for g in range(group_bucket.size):
        bucket = group_bucket[g]
        if bucket != current:
            for r in range(ROWS):
                if used[r]:
                    parts[first + r, nb[r]] = ap[r]
                    nb[r] += 1
                used[r] = False
                ap[r] = 0.0
            current = bucket
        nv[:] = 0
        pv[:] = 0
        for e in range(group_start[g], group_start[g + 1]):
            wu = w[units[e]]
            ne = np.int64(neg[e])
            pe = np.int64(pos[e])
            for r in range(ROWS):
                nv[r] += wu[r] * ne
                pv[r] += wu[r] * pe
        for r in range(ROWS):
            if nv[r] == 0 and pv[r] == 0:
                continue
            used[r] = True
            u[r] += pv[r] * (2 * total_neg[r] - 2 * fp[r] - nv[r])
            fp[r] += nv[r]
            tp[r] += pv[r]
            if pv[r] > 0:
                ap[r] += pv[r] * (tp[r] / (tp[r] + fp[r]))
                best[r] = max(best[r], 2.0 * tp[r] / (tp[r] + fp[r] + total_pos[r]))
    for r in range(ROWS):
        if total_neg[r] == 0 or total_pos[r] == 0:
            continue
        if used[r]:
            parts[first + r, nb[r]] = ap[r]
            nb[r] += 1
        u2[first + r] = u[r]
        f1[first + r] = best[r]
        count[first + r] = nb[r]


@njit(cache=True, parallel=True, nogil=True)
def rank_scan(group_start, group_bucket, units, neg, pos, blocks, n_neg, n_pos, width):
    """Twice the Mann-Whitney U, F1-max and the per-bucket AP sums of every resample, blocks in parallel.

    ``blocks`` ``[nblocks, units, ROWS]`` holds how often each unit is drawn in each resample, ``ROWS``
    resamples per block (resample ``b`` is ``blocks[b // ROWS, :, b % ROWS]``), so one pass over the table
    serves a block. Steps (scores, highest first; a run of scores without positives inside one bucket is
    merged into one step) hold entries ``group_start[g]:group_start[g+1]`` of ``(unit, negatives,
    positives)``. Returns ``u2``, ``f1`` and ``parts[b, :count[b]]`` (AP sums, highest bucket first);
    resamples with one class only are left at zero (``count`` 0).
    """
    nrows = blocks.shape[0] * ROWS
    u2 = np.zeros(nrows, np.int64)
    f1 = np.zeros(nrows, np.float64)
    parts = np.zeros((nrows, width), np.float64)
    count = np.zeros(nrows, np.int64)
    for k in prange(blocks.shape[0]):
        _scan_block(group_start, group_bucket, units, neg, pos, blocks[k], n_neg[k * ROWS:(k + 1) * ROWS],
                    n_pos[k * ROWS:(k + 1) * ROWS], u2, f1, parts, count, k * ROWS)
    return u2, f1, parts, count


@njit(cache=True, nogil=True)
def rank_scan_serial(group_start, group_bucket, units, neg, pos, blocks, n_neg, n_pos, width):
    """:func:`rank_scan` on one thread, for small tables (where starting the thread pool costs more)."""
    nrows = blocks.shape[0] * ROWS
    u2 = np.zeros(nrows, np.int64)
    f1 = np.zeros(nrows, np.float64)
    parts = np.zeros((nrows, width), np.float64)
    count = np.zeros(nrows, np.int64)
    for k in range(blocks.shape[0]):
        _scan_block(group_start, group_bucket, units, neg, pos, blocks[k], n_neg[k * ROWS:(k + 1) * ROWS],
                    n_pos[k * ROWS:(k + 1) * ROWS], u2, f1, parts, count, k * ROWS)
    return u2, f1, parts, count



@njit(cache=True, nogil=True)
def build_steps(keys, order, units, neg, pos, shift, n_units):
    """The steps of a rank table from entries ``(key, unit, negatives, positives)`` and ``order``, the
    permutation that sorts ``keys`` ascending.

    Scores are visited from the highest down; equal keys form one step, except that consecutive keys without
    any positive inside one bucket (``key >> shift``) are merged into one step. Within a step the entries of
    one unit are summed. Returns ``group_start``, ``group_bucket``, the merged ``units``, ``neg`` and ``pos``
    (int32) and the number of distinct buckets.
    """
    count = order.size
    key_of = np.empty(count, np.int64)  # per entry, in descending order
    key_bucket = np.empty(count, np.int64)
    key_pos = np.zeros(count, np.bool_)
    d = -1
    previous = keys[0]
    for s in range(count):
        e = order[count - 1 - s]
        k = keys[e]
        if d < 0 or k != previous:
            d += 1
            key_bucket[d] = np.int64(k >> shift)
            previous = k
        key_of[s] = d
        if pos[e] > 0:
            key_pos[d] = True
    distinct = d + 1
    group_of_key = np.empty(distinct, np.int64)
    group_bucket = np.empty(distinct, np.int64)
    g = -1
    width = 0
    for j in range(distinct):
        if j == 0 or key_bucket[j] != key_bucket[j - 1]:
            width += 1
        if j == 0 or key_bucket[j] != key_bucket[j - 1] or key_pos[j] or key_pos[j - 1]:
            g += 1
            group_bucket[g] = key_bucket[j]
        group_of_key[j] = g
    ngroups = g + 1
    slot = np.full(n_units, -1, np.int64)
    start = np.zeros(ngroups + 1, np.int64)
    out_units = np.empty(count, np.int32)
    out_neg = np.zeros(count, np.int32)
    out_pos = np.zeros(count, np.int32)
    k = 0
    first = 0
    current = -1
    for s in range(count):
        e = order[count - 1 - s]
        group = group_of_key[key_of[s]]
        if group != current:
            current = group
            start[group] = k
            first = k
        u = units[e]
        j = slot[u]
        if j < first:  # the unit's first entry in this step
            j = k
            slot[u] = k
            out_units[k] = u
            k += 1
        out_neg[j] += neg[e]
        out_pos[j] += pos[e]
    start[ngroups] = k
    return start, group_bucket[:ngroups].copy(), out_units[:k].copy(), out_neg[:k].copy(), out_pos[:k].copy(), width
