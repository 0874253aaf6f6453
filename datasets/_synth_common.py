"""Building blocks of the synthetic generator: coordinate grids, smooth noise, shapes and shading.

Everything is vectorised numpy on float32 ``[S,S]`` arrays. Coordinates are in *image-side units*: pixel
centres run over ``(-0.5, 0.5)`` whatever the resolution, so a scene drawn from the same random numbers looks
the same at 128 px and at 518 px.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from PIL import Image

Array = np.ndarray


@dataclass(frozen=True)
class Scene:
    """A clean rendering before lighting and sensor noise.

    ``image`` is float32 ``[S,S,3]`` in ``[0,1]``; ``foreground`` is the object's coverage in ``[0,1]`` (all
    ones for textures), where defects are placed; ``background`` is what shows through where part of an object
    is missing (``None`` for textures).
    """

    image: Array
    foreground: Array
    background: Array | None = None

    @property
    def size(self) -> int:
        return int(self.image.shape[0])


@lru_cache(maxsize=8)
def grid(size: int) -> tuple[Array, Array]:
    """Read-only ``(x, y)`` pixel-centre coordinates in image-side units, each ``[S,S]`` float32."""
    axis = ((np.arange(size, dtype=np.float32) + 0.5) / size - 0.5).astype(np.float32)
    x, y = np.meshgrid(axis, axis)
    x.setflags(write=False)
    y.setflags(write=False)
    return x, y


def rotate(x: Array, y: Array, theta: float, cx: float = 0.0, cy: float = 0.0) -> tuple[Array, Array]:
    """Coordinates of the frame centred on ``(cx, cy)`` and turned by ``theta`` radians."""
    c, s = np.float32(np.cos(theta)), np.float32(np.sin(theta))
    dx, dy = x - np.float32(cx), y - np.float32(cy)
    return c * dx + s * dy, -s * dx + c * dy


def upsample(values: Array, size: int) -> Array:
    """Bicubic resize of a small float grid to ``[S,S]`` (PIL, float32)."""
    image = Image.fromarray(np.ascontiguousarray(values, dtype=np.float32))  # 2-D float32: mode "F"
    return np.asarray(image.resize((size, size), Image.Resampling.BICUBIC), dtype=np.float32)


def smooth_noise(rng: np.random.Generator, size: int, cells: float, aspect: float = 1.0) -> Array:
    """Zero-mean, unit-variance value noise with about ``cells`` blobs per image side.

    ``aspect > 1`` stretches the blobs along x (brushed or fibrous looks).
    """
    ny = int(np.clip(round(cells), 2, size))
    nx = int(np.clip(round(cells / aspect), 2, size))
    field = upsample(rng.standard_normal((ny, nx)).astype(np.float32), size)
    return (field - field.mean()) / np.float32(field.std() + 1e-6)


def fbm(rng: np.random.Generator, size: int, cells: float, octaves: int = 3, gain: float = 0.5) -> Array:
    """Fractal sum of :func:`smooth_noise` octaves (doubling frequency, ``gain`` amplitude), unit variance."""
    total = np.zeros((size, size), np.float32)
    for octave in range(octaves):
        total += np.float32(gain**octave) * smooth_noise(rng, size, cells * 2**octave)
    return total / np.float32(total.std() + 1e-6)


def coverage(sdf: Array, size: int) -> Array:
    """Anti-aliased inside-coverage of a signed distance field (negative inside, image-side units)."""
    return np.clip(0.5 - sdf * np.float32(size), 0.0, 1.0).astype(np.float32)


def circle_sdf(x: Array, y: Array, radius: float) -> Array:
    return np.hypot(x, y) - np.float32(radius)


def box_sdf(x: Array, y: Array, half_w: float, half_h: float, corner: float = 0.0) -> Array:
    """Signed distance to an axis-aligned box with rounded corners of radius ``corner``."""
    qx = np.abs(x) - np.float32(half_w - corner)
    qy = np.abs(y) - np.float32(half_h - corner)
    outside = np.hypot(np.maximum(qx, 0), np.maximum(qy, 0))
    return outside + np.minimum(np.maximum(qx, qy), 0) - np.float32(corner)


def polygon_sdf(x: Array, y: Array, sides: int, apothem: float) -> Array:
    """Distance-like field of a regular polygon (exact along the apothems, a bound elsewhere)."""
    sector = np.float32(2 * np.pi / sides)
    angle = np.mod(np.arctan2(y, x), sector) - sector / 2
    return np.hypot(x, y) * np.cos(angle) - np.float32(apothem)


def bevel_shading(sdf: Array, size: int, width: float, light: tuple[float, float] = (-0.6, -0.6)) -> Array:
    """Lambert shading in ``[0,1]`` of a shape whose edge rises over ``width`` (image units) from its border."""
    height = np.clip(-sdf / np.float32(width), 0.0, 1.0)
    height = height * height * (3 - 2 * height)
    gy, gx = np.gradient(height * np.float32(width * size))
    lx, ly = light
    lz = np.sqrt(max(1e-6, 1 - lx * lx - ly * ly))
    normal = np.sqrt(gx * gx + gy * gy + 1)
    return np.clip((-gx * lx - gy * ly + lz) / normal, 0.0, 1.0).astype(np.float32)


def jitter_colour(rng: np.random.Generator, rgb: tuple[float, float, float], amount: float = 0.03) -> Array:
    """``rgb`` with a random brightness change (std ``amount``) and a smaller hue drift, clipped to ``[0,1]``."""
    gain = 1 + rng.normal(0, amount)
    drift = rng.normal(0, amount / 4, 3)
    return np.clip(np.asarray(rgb, np.float32) * np.float32(gain) + drift.astype(np.float32), 0, 1)


def paint(shade: Array, rgb: Array) -> Array:
    """``[S,S,3]`` image of one colour modulated by a ``[S,S]`` shade."""
    return shade[..., None] * np.asarray(rgb, np.float32)


def mix(a: Array, b: Array, weight: Array) -> Array:
    """Per-pixel blend ``a·(1−w) + b·w`` of two ``[S,S,3]`` images by a ``[S,S]`` weight."""
    w = weight[..., None]
    return a * (1 - w) + b * w


def luminance(image: Array) -> Array:
    return image @ np.asarray([0.299, 0.587, 0.114], np.float32)
