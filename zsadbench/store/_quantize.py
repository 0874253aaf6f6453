"""The 16-bit quantisation of :func:`zsadbench.store.artifacts.quantize` in one compiled pass per image.

It runs on one thread without the GIL: the run calls it while metrics kernels may run in parallel on another
thread, and numba's thread pools must not be entered from two threads at once. It performs the same float
operations as the NumPy statement it replaces (``float32`` difference to the
image's minimum, times a ``float64`` scale, rounded half to even, clipped), so the levels are bitwise equal.
"""
from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def quantize_images(flat, levels_max):
    """``float32 [N,P]`` → ``(uint16 levels [N,P], float32 min [N], float32 max [N])``."""
    count, pixels = flat.shape
    levels = np.empty((count, pixels), np.uint16)
    lows = np.empty(count, np.float32)
    highs = np.empty(count, np.float32)
    for i in range(count):
        row = flat[i]
        lo = row[0]
        hi = row[0]
        for j in range(1, pixels):
            v = row[j]
            if v < lo:
                lo = v
            if v > hi:
                hi = v
        span = np.float64(np.float32(hi - lo))
        scale = levels_max / span if span > 0 else 0.0
        for j in range(pixels):
            q = np.rint(np.float64(np.float32(row[j] - lo)) * scale)
            if q < 0.0:
                q = 0.0
            elif q > levels_max:
                q = levels_max
            levels[i, j] = np.uint16(q)
        lows[i] = lo
        highs[i] = hi
    return levels, lows, highs
