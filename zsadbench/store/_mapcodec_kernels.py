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
def _add_taps(values, y, hood, weights, acc, same_row):
    """Add to ``acc[x]`` the weighted terms of pixel ``(y, x)`` from the taps in the rows above
    (``same_row`` False) or in its own row (True), for every interior ``x``; ``values`` is the map in float64."""
    width = values.shape[1]
    for k in range(hood.shape[0]):
        dy, dx = hood[k, 0], hood[k, 1]
        if (dy == 0) != same_row:
            continue
        w = np.float64(weights[k])
        source = values[y + dy, MARGIN + dx : width - MARGIN + dx]
        target = acc[MARGIN : width - MARGIN]
        for x in range(source.size):
            target[x] += w * source[x]


@njit(cache=True, nogil=True)
def normal_equations(levels, hood, step):
    """``(A, b)`` of the least-squares fit of each interior pixel on its neighbours, on every ``step``-th row
    and column: ``A = X^T X`` ``[K,K]`` and ``b = X^T y`` ``[K]``, in float64 (exact: every product is below
    2^32 and a map has far fewer than 2^21 samples, so no sum rounds and the order of the terms is free)."""
    height, width = levels.shape
    count = hood.shape[0]
    rows = np.arange(MARGIN, height, step)
    cols = np.arange(MARGIN, width - MARGIN, step)
    samples = rows.size * cols.size
    x = np.empty((count + 1, samples))
    for k in range(count + 1):
        dy, dx = (hood[k, 0], hood[k, 1]) if k < count else (0, 0)
        n = 0
        for y in rows:
            for c in cols:
                x[k, n] = levels[y + dy, c + dx]
                n += 1
    a = np.zeros((count, count))
    b = np.zeros(count)
    for i in range(count):
        b[i] = np.dot(x[i], x[count]) if samples else 0.0
        for j in range(i, count):
            a[i, j] = a[j, i] = np.dot(x[i], x[j]) if samples else 0.0
    return a, b


@njit(cache=True, nogil=True)
def residuals(levels, hood, weights):
    """Zigzag-coded ``levels - prediction`` (mod 2^16) of one ``uint16 [H,W]`` map, as uint16."""
    height, width = levels.shape
    values = levels.astype(np.float64)
    out = np.empty((height, width), np.uint16)
    acc = np.zeros(width, np.float64)
    for y in range(height):
        interior = y >= MARGIN and width > 2 * MARGIN
        if interior:
            acc[:] = 0
            _add_taps(values, y, hood, weights, acc, False)
            _add_taps(values, y, hood, weights, acc, True)
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
    values = np.empty((height, width), np.float64)  # the restored levels in float64, for the row sums
    acc = np.zeros(width, np.float64)
    same_row = [k for k in range(hood.shape[0]) if hood[k, 0] == 0]
    for y in range(height):
        interior = y >= MARGIN and width > 2 * MARGIN
        if interior:
            acc[:] = 0
            _add_taps(values, y, hood, weights, acc, False)
        for x in range(width):
            if interior and MARGIN <= x < width - MARGIN:
                total = acc[x]
                for k in same_row:
                    total += np.float64(weights[k]) * values[y, x + hood[k, 1]]
                prediction = _finish(total)
            else:
                prediction = _fallback(levels, y, x)
            v = np.int64(zigzag[y, x])
            level = (prediction + ((v >> 1) ^ -(v & 1))) & 0xFFFF
            levels[y, x] = np.uint16(level)
            values[y, x] = np.float64(level)
    return levels


@njit(inline="always")
def _transpose8(x):
    """Transpose the 8×8 bit matrix held in ``x`` (byte ``i``, bit ``j``) ↔ (byte ``j``, bit ``i``)."""
    t = (x ^ (x >> np.uint64(7))) & np.uint64(0x00AA00AA00AA00AA)
    x = x ^ t ^ (t << np.uint64(7))
    t = (x ^ (x >> np.uint64(14))) & np.uint64(0x0000CCCC0000CCCC)
    x = x ^ t ^ (t << np.uint64(14))
    t = (x ^ (x >> np.uint64(28))) & np.uint64(0x00000000F0F0F0F0)
    return x ^ t ^ (t << np.uint64(28))


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
    for byte in range(per_plane):
        x = np.uint64(0)
        for t in range(min(8, values.size - 8 * byte)):
            x |= np.uint64(values[8 * byte + t] & 0xFF) << np.uint64(8 * t)
        x = _transpose8(x)
        for b in range(planes):
            packed[b * per_plane + byte] = np.uint8((x >> np.uint64(8 * b)) & np.uint64(0xFF))
    return planes, packed


@njit(cache=True, nogil=True)
def from_bit_planes(packed, planes, count):
    """Inverse of :func:`to_bit_planes` for ``count`` values."""
    values = np.empty(count, np.uint16)
    per_plane = (count + 7) // 8
    for byte in range(per_plane):
        x = np.uint64(0)
        for b in range(planes):
            x |= np.uint64(packed[b * per_plane + byte]) << np.uint64(8 * b)
        x = _transpose8(x)
        for t in range(min(8, count - 8 * byte)):
            i = 8 * byte + t
            low = (x >> np.uint64(8 * t)) & np.uint64(0xFF)
            values[i] = np.uint16(low | (np.uint64(packed[planes * per_plane + i]) << np.uint64(8)))
    return values
