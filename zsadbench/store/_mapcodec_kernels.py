"""Compiled passes of :mod:`zsadbench.store.mapcodec`: integer prediction, residuals, bit planes.

Predictions are exact integer arithmetic (fixed-point weights, a sum, a rounding shift), so a map decodes to
the same levels on every machine. The sums are accumulated in float64, which holds them exactly: a weight is
at most 2^22 in magnitude and a level below 2^16, so 20 products stay below 2^43 < 2^53, and no addition or
fused multiply-add ever rounds. A row's terms from the rows above are summed for the whole row at once; only
the terms from the same row's left neighbours are added pixel by pixel when decoding.
"""
from __future__ import annotations

import numpy as np
from numba import njit

SHIFT = 16
MARGIN = 4  # the neighbourhood reaches 4 rows up and 4 columns to either side


@njit(inline="always")
def _fallback(levels, y, x):
    """The prediction outside the interior: the left neighbour, else the upper one, else 0."""
    if x > 0:
        return np.int64(levels[y, x - 1])
    if y > 0:
        return np.int64(levels[y - 1, x])
    return np.int64(0)


@njit(inline="always")
def _finish(total):
    value = (np.int64(total) + (np.int64(1) << (SHIFT - 1))) >> SHIFT
    return min(max(value, np.int64(0)), np.int64(65535))


@njit(inline="always")
def _zigzag(difference):
    r = difference & 0xFFFF
    signed = r - 65536 if r >= 32768 else r
    return np.uint16(((signed << 1) ^ (signed >> 63)) & 0xFFFF)


@njit(inline="always")
def _above(levels, y, hood, weights, acc):
    """``acc[x]`` = the weighted terms of pixel ``(y, x)`` from the rows above, for every interior ``x``."""
    width = levels.shape[1]
    acc[:] = 0
    for k in range(hood.shape[0]):
        dy, dx = hood[k, 0], hood[k, 1]
        if dy == 0:
            continue
        w = np.float64(weights[k])
        source = levels[y + dy]
        for x in range(MARGIN, width - MARGIN):
            acc[x] += w * np.float64(source[x + dx])


@njit(cache=True, nogil=True)
def normal_equations(levels, hood, step):
    """``(A, b)`` of the least-squares fit of each interior pixel on its neighbours, on every ``step``-th row
    and column: ``A = X^T X`` ``[K,K]`` and ``b = X^T y`` ``[K]``, in float64."""
    height, width = levels.shape
    count = hood.shape[0]
    a = np.zeros((count, count))
    b = np.zeros(count)
    row = np.empty(count)
    for y in range(MARGIN, height, step):
        for x in range(MARGIN, width - MARGIN, step):
            for k in range(count):
                row[k] = levels[y + hood[k, 0], x + hood[k, 1]]
            target = np.float64(levels[y, x])
            for i in range(count):
                b[i] += row[i] * target
                for j in range(i, count):
                    a[i, j] += row[i] * row[j]
    for i in range(count):
        for j in range(i):
            a[i, j] = a[j, i]
    return a, b


@njit(cache=True, nogil=True)
def residuals(levels, hood, weights):
    """Zigzag-coded ``levels - prediction`` (mod 2^16) of one ``uint16 [H,W]`` map, as uint16."""
    height, width = levels.shape
    out = np.empty((height, width), np.uint16)
    acc = np.zeros(width, np.float64)
    for y in range(height):
        interior = y >= MARGIN and width > 2 * MARGIN
        if interior:
            _above(levels, y, hood, weights, acc)
            for k in range(hood.shape[0]):
                if hood[k, 0] == 0:
                    w, dx = np.float64(weights[k]), hood[k, 1]
                    row = levels[y]
                    for x in range(MARGIN, width - MARGIN):
                        acc[x] += w * np.float64(row[x + dx])
        for x in range(width):
            if interior and MARGIN <= x < width - MARGIN:
                prediction = _finish(acc[x])
            else:
                prediction = _fallback(levels, y, x)
            out[y, x] = _zigzag(np.int64(levels[y, x]) - prediction)
    return out


@njit(cache=True, nogil=True)
def restore(zigzag, hood, weights):
    """Inverse of :func:`residuals`, row by row, pixel by pixel within a row."""
    height, width = zigzag.shape
    levels = np.empty((height, width), np.uint16)
    acc = np.zeros(width, np.float64)
    same_row = [k for k in range(hood.shape[0]) if hood[k, 0] == 0]
    for y in range(height):
        interior = y >= MARGIN and width > 2 * MARGIN
        if interior:
            _above(levels, y, hood, weights, acc)
        for x in range(width):
            if interior and MARGIN <= x < width - MARGIN:
                total = acc[x]
                for k in same_row:
                    total += np.float64(weights[k]) * np.float64(levels[y, x + hood[k, 1]])
                prediction = _finish(total)
            else:
                prediction = _fallback(levels, y, x)
            v = np.int64(zigzag[y, x])
            levels[y, x] = np.uint16((prediction + ((v >> 1) ^ -(v & 1))) & 0xFFFF)
    return levels


@njit(cache=True, nogil=True)
def to_bit_planes(values):
    """``uint16 [P]`` → ``(planes, packed)``: the bit planes of the low bytes up to the highest bit set there,
    lowest first, 8 values per byte (the last byte zero-padded), then the high bytes, one per value."""
    used = 0
    for i in range(values.size):
        used |= values[i] & 0xFF
    planes = 0
    while (used >> planes) > 0:
        planes += 1
    per_plane = (values.size + 7) // 8
    packed = np.zeros(planes * per_plane + values.size, np.uint8)
    for i in range(values.size):
        packed[planes * per_plane + i] = np.uint8(values[i] >> 8)
    for b in range(planes):
        base = b * per_plane
        for byte in range(per_plane):
            bits = 0
            for t in range(min(8, values.size - 8 * byte)):
                bits |= ((values[8 * byte + t] >> b) & 1) << t
            packed[base + byte] = np.uint8(bits)
    return planes, packed


@njit(cache=True, nogil=True)
def from_bit_planes(packed, planes, count):
    """Inverse of :func:`to_bit_planes` for ``count`` values."""
    values = np.empty(count, np.uint16)
    per_plane = (count + 7) // 8
    for i in range(count):
        byte, shift = i >> 3, i & 7
        low = 0
        for b in range(planes):
            low |= ((packed[b * per_plane + byte] >> shift) & 1) << b
        values[i] = np.uint16(low | (np.int64(packed[planes * per_plane + i]) << 8))
    return values
