"""Lossless compression of 16-bit anomaly maps: a planar predictor, zigzag, byte planes, then zstd.

Anomaly maps are smooth (upsampled patch scores, Gaussian-smoothed), so each level is predicted from its
left, upper and upper-left neighbours (``a + b - c``, exact on planes): the residual is the 2-D mixed
difference, taken with uint16 wrap-around, so the inverse is two cumulative sums. Residuals are small
signed numbers; zigzag maps them to small unsigned ones, and splitting the low and high bytes into two
planes leaves the high plane almost constant. zstd (level 3) then compresses each image on its own, so a
subset can be read without the rest. ``benchmarks/bench_artifacts.py`` compares this with the alternatives.
"""
from __future__ import annotations

import numpy as np
import zstandard

NAME = "planar-zigzag-bytes-zstd"
LEVEL = 3


def _residuals(levels: np.ndarray) -> np.ndarray:
    """``uint16 [..., H, W]`` → the mixed differences with zero padding, zigzag-coded, as uint16."""
    dx = levels.copy()
    dx[..., :, 1:] -= levels[..., :, :-1]
    dxy = dx.copy()
    dxy[..., 1:, :] -= dx[..., :-1, :]
    signed = dxy.view(np.int16)
    return ((signed << 1) ^ (signed >> 15)).view(np.uint16)


def _levels(zigzag: np.ndarray) -> np.ndarray:
    """Inverse of :func:`_residuals`."""
    signed = (zigzag >> 1).view(np.int16) ^ -(zigzag & 1).view(np.int16)
    dxy = signed.view(np.uint16)
    return np.cumsum(np.cumsum(dxy, axis=-2, dtype=np.uint16), axis=-1, dtype=np.uint16)


def encode_maps(levels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``uint16 [N,H,W]`` → ``(data uint8, offsets int64 [N+1])``; image ``i`` is ``data[offsets[i]:offsets[i+1]]``."""
    if levels.dtype != np.uint16 or levels.ndim != 3:
        raise ValueError(f"expected uint16 maps [N,H,W], got {levels.dtype} {levels.shape}")
    residuals = _residuals(levels)
    compressor = zstandard.ZstdCompressor(level=LEVEL)
    parts = []
    for image in residuals:
        planes = np.stack([image & 0xFF, image >> 8]).astype(np.uint8)
        parts.append(compressor.compress(planes.tobytes()))
    offsets = np.zeros(len(parts) + 1, np.int64)
    offsets[1:] = np.cumsum([len(p) for p in parts])
    return np.frombuffer(b"".join(parts), np.uint8), offsets


def decode_maps(data: np.ndarray, offsets: np.ndarray, shape: tuple[int, int],
                which: np.ndarray | None = None) -> np.ndarray:
    """The ``uint16 [n,H,W]`` maps stored by :func:`encode_maps` (those at positions ``which``, default all)."""
    positions = np.arange(len(offsets) - 1) if which is None else np.asarray(which)
    height, width = shape
    out = np.empty((len(positions), height, width), np.uint16)
    decompressor = zstandard.ZstdDecompressor()
    raw = np.asarray(data, np.uint8)
    for row, i in enumerate(positions):
        chunk = raw[int(offsets[i]) : int(offsets[i + 1])].tobytes()
        planes = np.frombuffer(decompressor.decompress(chunk, max_output_size=2 * height * width), np.uint8)
        if planes.size != 2 * height * width:
            raise ValueError(f"map {i} holds {planes.size} bytes, expected {2 * height * width}")
        planes = planes.reshape(2, height, width)
        out[row] = planes[0].astype(np.uint16) | (planes[1].astype(np.uint16) << 8)
    return _levels(out)


def compress_bytes(raw: bytes) -> bytes:
    """zstd at the maps' level, for the other arrays of an artifact (packed masks)."""
    return zstandard.ZstdCompressor(level=LEVEL).compress(raw)


def decompress_bytes(data: bytes, size: int) -> bytes:
    """Inverse of :func:`compress_bytes` for ``size`` bytes."""
    return zstandard.ZstdDecompressor().decompress(data, max_output_size=size)
