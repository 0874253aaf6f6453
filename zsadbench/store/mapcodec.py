"""Lossless compression of 16-bit anomaly maps: a least-squares linear predictor, bit planes, then zstd.

Anomaly maps are smooth (patch scores upsampled and Gaussian-smoothed), so each level is predicted from 20
causal neighbours (up to 4 rows up and 4 columns either side) with per-image weights fitted by least squares
on a subsample and stored as 16.16 fixed-point integers; a prediction is an exact sum of integer products and a
rounding shift, so decoding gives the same levels on every machine. Pixels near the top and side edges are predicted by their left (else upper) neighbour.
Residuals are taken mod 2^16 and zigzag-coded (small magnitudes → small numbers); their low bytes are split
into bit planes up to the highest bit used, their high bytes (almost all zero) follow, and zstd compresses
each image's stream on its own, so a subset can be read without the rest.
``benchmarks/bench_artifacts.py`` compares this with the alternatives (zlib, zstd, blosc2 filters, PNG-16,
JPEG-LS, JPEG-XL).
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import zstandard

from ..machine import available_cpus

NAME = "ls20-zigzag-bitplanes-zstd"
LEVEL = 3
#: The causal neighbourhood, as (row, column) offsets.
HOOD = np.array([(0, -1), (0, -2), (0, -3), (0, -4), (-1, -3), (-1, -2), (-1, -1), (-1, 0), (-1, 1), (-1, 2),
                 (-1, 3), (-2, -2), (-2, -1), (-2, 0), (-2, 1), (-2, 2), (-3, -1), (-3, 0), (-3, 1), (-4, 0)],
                np.int64)
FIT_STEP = 6  # the weights are fitted on every sixth row and column (as good as all, measured)
ENCODE_THREADS = 8
MAX_WEIGHT = 64.0  # keeps every fixed-point weight below 2^22 (see _mapcodec_kernels)


def fit_weights(levels: np.ndarray) -> np.ndarray:
    """The fixed-point weights (int64 ``[20]``) of one ``uint16 [H,W]`` map's least-squares predictor."""
    from ._mapcodec_kernels import SHIFT, normal_equations

    a, b = normal_equations(levels, HOOD, FIT_STEP)
    if not np.any(a):
        return np.zeros(len(HOOD), np.int64)
    weights, *_ = np.linalg.lstsq(a, b, rcond=1e-12)
    weights = np.nan_to_num(weights).clip(-MAX_WEIGHT, MAX_WEIGHT)
    return np.rint(weights * (1 << SHIFT)).astype(np.int64)


def encode_maps(levels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``uint16 [N,H,W]`` → ``(data uint8, offsets int64 [N+1], weights int64 [N,20])``; image ``i`` is
    ``data[offsets[i]:offsets[i+1]]``: one byte with its bit-plane count, then the zstd stream. Images are
    encoded in parallel on up to :data:`ENCODE_THREADS` threads (every step releases the GIL)."""
    if levels.dtype != np.uint16 or levels.ndim != 3:
        raise ValueError(f"expected uint16 maps [N,H,W], got {levels.dtype} {levels.shape}")
    threads = min(ENCODE_THREADS, available_cpus(), max(len(levels), 1))
    if threads > 1:
        with ThreadPoolExecutor(threads, thread_name_prefix="zsadbench-encode") as pool:
            encoded = list(pool.map(_encode_one, levels))
    else:
        encoded = [_encode_one(image) for image in levels]
    weights = np.zeros((len(levels), len(HOOD)), np.int64)
    for i, (_, image_weights) in enumerate(encoded):
        weights[i] = image_weights
    offsets = np.zeros(len(encoded) + 1, np.int64)
    offsets[1:] = np.cumsum([len(part) for part, _ in encoded])
    return np.frombuffer(b"".join(part for part, _ in encoded), np.uint8), offsets, weights


def _encode_one(image: np.ndarray) -> tuple[bytes, np.ndarray]:
    from ._mapcodec_kernels import residuals, to_bit_planes

    weights = fit_weights(image)
    planes, packed = to_bit_planes(residuals(np.ascontiguousarray(image), HOOD, weights).ravel())
    return bytes([planes]) + zstandard.ZstdCompressor(level=LEVEL).compress(packed.tobytes()), weights


def decode_maps(data: np.ndarray, offsets: np.ndarray, weights: np.ndarray, shape: tuple[int, int],
                which: np.ndarray | None = None) -> np.ndarray:
    """The ``uint16 [n,H,W]`` maps stored by :func:`encode_maps` (those at positions ``which``, default all)."""
    from ._mapcodec_kernels import from_bit_planes, restore

    positions = np.arange(len(offsets) - 1) if which is None else np.asarray(which)
    height, width = shape
    count = height * width
    out = np.empty((len(positions), height, width), np.uint16)
    decompressor = zstandard.ZstdDecompressor()
    raw = np.asarray(data, np.uint8)
    for row, i in enumerate(positions):
        chunk = raw[int(offsets[i]) : int(offsets[i + 1])]
        planes = int(chunk[0])
        size = planes * ((count + 7) // 8) + count
        packed = np.frombuffer(decompressor.decompress(chunk[1:].tobytes(), max_output_size=max(size, 1)), np.uint8)
        if planes > 8 or packed.size != size:
            raise ValueError(f"map {i} holds {packed.size} bytes of {planes} bit planes, expected {size}")
        zigzag = from_bit_planes(packed, planes, count).reshape(height, width)
        out[row] = restore(zigzag, HOOD, np.asarray(weights[i], np.int64))
    return out


def compress_bytes(raw: bytes) -> bytes:
    """zstd at the maps' level, for the other arrays of an artifact (packed masks)."""
    return zstandard.ZstdCompressor(level=LEVEL).compress(raw)


def decompress_bytes(data: bytes, size: int) -> bytes:
    """Inverse of :func:`compress_bytes` for ``size`` bytes."""
    return zstandard.ZstdDecompressor().decompress(data, max_output_size=size)
