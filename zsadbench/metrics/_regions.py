"""Numba kernels that label the 8-connected defect regions of ground-truth masks.

Only images with at least one defect pixel are labelled (union-find over the image, in parallel per
image). The output is compact: one region id per positive pixel, in raster order over all images, which
is the order in which the metric kernels meet the positives.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange


@njit(cache=True, parallel=True, nogil=True)
def count_true(mask, bounds):
    """Number of True values of ``mask`` in each range ``bounds[c]:bounds[c+1]``."""
    out = np.zeros(bounds.size - 1, np.int64)
    for c in prange(bounds.size - 1):
        n = 0
        for i in range(bounds[c], bounds[c + 1]):
            if mask[i]:
                n += 1
        out[c] = n
    return out


@njit(inline="always")
def _find(parent, p):
    while parent[p] != p:
        parent[p] = parent[parent[p]]
        p = parent[p]
    return p


@njit(inline="always")
def _union(parent, a, b):
    # The root of a set is always its smallest (first in raster order) pixel.
    ra = _find(parent, a)
    rb = _find(parent, b)
    if ra < rb:
        parent[rb] = ra
    elif rb < ra:
        parent[ra] = rb


@njit
def _label_image(m, height, width, out, parent, label):
    # Union-find over one image's positives, then labels in raster order of each region's first pixel.
    # ``parent`` and ``label`` are scratch of height * width entries; only positive pixels are read.
    for y in range(height):
        for x in range(width):
            p = y * width + x
            if not m[p]:
                continue
            parent[p] = p
            if x > 0 and m[p - 1]:
                _union(parent, p, p - 1)
            if y > 0:
                q = p - width
                if x > 0 and m[q - 1]:
                    _union(parent, p, q - 1)
                if m[q]:
                    _union(parent, p, q)
                if x + 1 < width and m[q + 1]:
                    _union(parent, p, q + 1)
    k = 0
    t = 0
    for p in range(height * width):
        if m[p]:
            r = _find(parent, p)
            if r == p:
                label[p] = k
                k += 1
            out[t] = label[r]
            t += 1
    return k


@njit(cache=True, parallel=True, nogil=True)
def label_local(mask2, height, width, pos_offset, rids, groups):
    """Write each positive pixel's 0-based region number within its image to ``rids``; return counts.

    ``pos_offset[i]`` is where image ``i``'s positives start in ``rids``. Regions are numbered in raster
    order of their first pixel; neighbours are the 8 surrounding pixels. Images are shared round-robin
    among ``groups`` parallel workers, each with its own scratch.
    """
    n = mask2.shape[0]
    counts = np.zeros(n, np.int64)
    for g in prange(groups):
        parent = np.empty(height * width, np.int32)
        label = np.empty(height * width, np.int32)
        for i in range(g, n, groups):
            if pos_offset[i + 1] > pos_offset[i]:
                counts[i] = _label_image(mask2[i], height, width, rids[pos_offset[i]:pos_offset[i + 1]], parent,
                                         label)
    return counts


@njit(cache=True, parallel=True, nogil=True)
def globalise(rids, pos_offset, region_base, sizes):
    """Add each image's first global region id to its local ids and count the pixels of every region."""
    for i in prange(pos_offset.size - 1):
        base = region_base[i]
        for t in range(pos_offset[i], pos_offset[i + 1]):
            r = rids[t] + base
            rids[t] = r
            sizes[r] += 1
