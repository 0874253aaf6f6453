"""Defects of the synthetic generator, painted onto a clean :class:`Scene`.

A defect is a coverage map ``alpha`` (float ``[S,S]`` in ``[0,1]``) and a target appearance; the damaged
image is ``clean·(1−alpha) + target·alpha``. The ground-truth mask is decided later, from the pixels that
actually changed (see ``synthetic.render_image``), so it is exact whatever the shape's soft edges do.

Sizes come in four classes, as a radius in image-side units: ``tiny`` is a few pixels across at 128 px,
``large`` covers up to about a quarter of the image.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy import ndimage

from ._synth_common import Scene, grid, luminance, mix

Rng = np.random.Generator

SIZE_CLASSES: dict[str, tuple[float, float]] = {
    "tiny": (0.008, 0.018),
    "small": (0.025, 0.05),
    "medium": (0.06, 0.11),
    "large": (0.15, 0.28),
}


def _radius(rng: Rng, size_class: str, size: int) -> float:
    low, high = SIZE_CLASSES[size_class]
    return max(float(rng.uniform(low, high)), 1.5 / size)


def _centre(rng: Rng, scene: Scene, radius: float, edge: bool = False) -> tuple[float, float]:
    """A random point on the object (on its outline when ``edge``), kept away from the image border."""
    size = scene.size
    fg = scene.foreground
    where = (fg > 0.2) & (fg < 0.8) if edge else fg > 0.99
    if not edge and radius * size > 2:
        shrunk = ndimage.binary_erosion(where, iterations=int(min(radius * size * 0.5, size * 0.05)))
        where = shrunk if shrunk.any() else where
    margin = max(1, int(min(radius, 0.2) * size * 0.5))
    inner = np.zeros_like(where)
    inner[margin:-margin, margin:-margin] = where[margin:-margin, margin:-margin]
    where = inner if inner.any() else where
    flat = np.flatnonzero(where)
    pick = int(flat[rng.integers(len(flat))])
    return ((pick % size + 0.5) / size - 0.5, (pick // size + 0.5) / size - 0.5)


def _blob(rng: Rng, size: int, centre: tuple[float, float], radius: float, rough: float, soft: float) -> np.ndarray:
    """An irregular round region: the radius wobbles with angle; ``soft`` widens the edge (fraction of radius)."""
    x, y = grid(size)
    dx, dy = x - np.float32(centre[0]), y - np.float32(centre[1])
    rho, theta = np.hypot(dx, dy), np.arctan2(dy, dx)
    boundary = np.ones_like(rho)
    for k in range(2, 6):
        boundary += np.float32(rng.uniform(0, rough / k)) * np.cos(k * theta + np.float32(rng.uniform(0, 2 * np.pi)))
    boundary *= np.float32(radius)
    edge = max(soft * radius, 1.0 / size)
    return np.clip((boundary - rho) / np.float32(edge) + 0.5, 0, 1).astype(np.float32)


def _stroke(size: int, points: np.ndarray, width_px: float) -> np.ndarray:
    """Coverage of a polyline (``points`` ``[N,2]`` in image units) drawn ``width_px`` pixels wide."""
    pixels = (points + 0.5) * size - 0.5
    steps = np.linalg.norm(np.diff(pixels, axis=0), axis=1)
    dense = [pixels[:1]]
    for start, stop, length in zip(pixels[:-1], pixels[1:], steps):
        t = np.linspace(0, 1, max(2, int(np.ceil(length * 3))), dtype=np.float32)[1:, None]
        dense.append(start + (stop - start) * t)
    track = np.round(np.concatenate(dense)).astype(np.int64)
    track = track[(track >= 0).all(axis=1) & (track < size).all(axis=1)]
    pad = int(np.ceil(width_px)) + 2
    alpha = np.zeros((size, size), np.float32)
    if len(track) == 0:
        return alpha
    x0, y0 = np.maximum(track.min(axis=0) - pad, 0)
    x1, y1 = np.minimum(track.max(axis=0) + pad + 1, size)
    window = np.ones((y1 - y0, x1 - x0), bool)
    window[track[:, 1] - y0, track[:, 0] - x0] = False
    distance = ndimage.distance_transform_edt(window).astype(np.float32)
    alpha[y0:y1, x0:x1] = np.clip(width_px / 2 + 0.5 - distance, 0, 1)
    return alpha


def _contrast(clean: np.ndarray, alpha: np.ndarray, dark: float, light: float) -> np.ndarray:
    """A grey target that stands out from the clean pixels under ``alpha``: dark on light ground, else light."""
    weight = alpha.sum()
    mean = float((luminance(clean) * alpha).sum() / weight) if weight > 0 else 0.5
    return np.full_like(clean, dark if mean > 0.45 else light)


PARTICLE_COLOURS = np.asarray([(0.1, 0.1, 0.1), (0.35, 0.22, 0.1), (0.95, 0.95, 0.92), (0.15, 0.3, 0.85)], np.float32)
STAIN_COLOURS = np.asarray(
    [(0.75, 0.6, 0.1), (0.2, 0.55, 0.25), (0.55, 0.2, 0.6), (0.15, 0.45, 0.7), (0.8, 0.3, 0.1), (0.3, 0.25, 0.15)],
    np.float32,
)


def _distinct_colour(rng: Rng, palette: np.ndarray, clean: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """A colour of ``palette``, drawn among those that differ clearly from the mean surface under ``alpha``."""
    surface = (clean * alpha[..., None]).sum(axis=(0, 1)) / max(float(alpha.sum()), 1e-6)
    distinct = [c for c in palette if np.abs(c - surface).max() > 0.3] or list(palette)
    return np.asarray(distinct[int(rng.integers(len(distinct)))], np.float32)


def scratch(rng: Rng, scene: Scene, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """A thin smooth curve, lighter or darker than the surface."""
    size = scene.size
    cx, cy = _centre(rng, scene, radius)
    length = min(4 * radius, 0.6)
    angle = rng.uniform(0, np.pi)
    direction = np.array([np.cos(angle), np.sin(angle)]) * length / 2
    bend = np.array([-direction[1], direction[0]]) * rng.uniform(-0.4, 0.4)
    t = np.linspace(0, 1, 24)[:, None]
    start, stop, control = np.array([cx, cy]) - direction, np.array([cx, cy]) + direction, np.array([cx, cy]) + bend
    points = (1 - t) ** 2 * start + 2 * (1 - t) * t * control + t**2 * stop
    alpha = _stroke(size, points, rng.uniform(1.0, 1.6) * max(1.0, size / 200))
    return alpha * scene.foreground, _contrast(scene.image, alpha, 0.12, 0.92)


def _walk(rng: Rng, origin: np.ndarray, reach: float, steps: int = 9) -> np.ndarray:
    """A jagged random-walk polyline of ``steps`` segments and total length ``reach``, from ``origin``."""
    turns = rng.uniform(0, 2 * np.pi) + np.cumsum(rng.normal(0, 0.5, steps))
    moves = np.stack([np.cos(turns), np.sin(turns)], axis=1) * reach / steps
    return np.concatenate([origin[None], origin + np.cumsum(moves, axis=0)])


def crack(rng: Rng, scene: Scene, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """A dark jagged line with a side branch."""
    size = scene.size
    cx, cy = _centre(rng, scene, radius)
    width = rng.uniform(1.0, 1.8) * max(1.0, size / 220)
    trunk = _walk(rng, np.array([cx, cy]), radius * 2.2)
    branch = _walk(rng, trunk[4], radius * 1.0)
    alpha = np.maximum(_stroke(size, trunk, width), _stroke(size, branch, width))
    return alpha * scene.foreground, np.full_like(scene.image, 0.05)


def hole(rng: Rng, scene: Scene, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """A ragged dark hole, its walls lighter towards the rim."""
    size = scene.size
    centre = _centre(rng, scene, radius)
    alpha = _blob(rng, size, centre, radius, rough=0.5, soft=0.08) * scene.foreground
    x, y = grid(size)
    depth = np.clip(np.hypot(x - centre[0], y - centre[1]) / np.float32(radius), 0, 1)
    target = np.clip(0.04 + 0.25 * depth**3, 0, 1)[..., None] * np.ones(3, np.float32)
    return alpha, np.broadcast_to(target, scene.image.shape).astype(np.float32)


def stain(rng: Rng, scene: Scene, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """A translucent patch of an off-palette colour with a soft rim; the surface texture shows through."""
    size = scene.size
    alpha = _blob(rng, size, _centre(rng, scene, radius), radius, rough=0.6, soft=0.3)
    alpha *= np.float32(rng.uniform(0.75, 0.95)) * scene.foreground
    colour = _distinct_colour(rng, STAIN_COLOURS, scene.image, alpha)
    surface = luminance(scene.image)
    texture = surface / np.float32(max(float((surface * alpha).sum() / max(float(alpha.sum()), 1e-6)), 0.05))
    return alpha, np.clip(colour * np.clip(texture, 0.6, 1.4)[..., None], 0, 1).astype(np.float32)


def contamination(rng: Rng, scene: Scene, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Foreign matter: a cluster of small opaque particles and a fibre of one colour."""
    size = scene.size
    cx, cy = _centre(rng, scene, radius)
    alpha = np.zeros((size, size), np.float32)
    for _ in range(int(rng.integers(3, 7))):
        offset = rng.normal(0, radius * 0.45, 2)
        part = radius * rng.uniform(0.2, 0.45)
        alpha = np.maximum(alpha, _blob(rng, size, (cx + offset[0], cy + offset[1]), part, rough=0.8, soft=0.1))
    fibre = np.array([cx, cy]) + np.cumsum(rng.normal(0, radius * 0.5, (6, 2)), axis=0)
    alpha = np.maximum(alpha, _stroke(size, fibre, max(1.0, size / 256)))
    colour = _distinct_colour(rng, PARTICLE_COLOURS, scene.image, alpha)
    return alpha * scene.foreground, np.broadcast_to(colour, scene.image.shape).astype(np.float32)


def bright_spot(rng: Rng, scene: Scene, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """A glossy or bleached spot: the surface pushed towards white."""
    size = scene.size
    alpha = _blob(rng, size, _centre(rng, scene, radius), radius, rough=0.3, soft=0.35) * scene.foreground
    return alpha, scene.image + (1 - scene.image) * np.float32(rng.uniform(0.7, 0.9))


def missing(rng: Rng, scene: Scene, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """A chunk broken off the object's outline: the background shows through."""
    if scene.background is None:
        return hole(rng, scene, radius)
    size = scene.size
    alpha = _blob(rng, size, _centre(rng, scene, radius, edge=True), radius * 1.2, rough=0.6, soft=0.05)
    return alpha * scene.foreground, scene.background


DEFECTS: dict[str, Callable[[Rng, Scene, float], tuple[np.ndarray, np.ndarray]]] = {
    "scratch": scratch,
    "hole": hole,
    "stain": stain,
    "crack": crack,
    "contamination": contamination,
    "bright_spot": bright_spot,
    "missing": missing,
}


def apply_defect(rng: Rng, scene: Scene, kind: str, size_class: str) -> np.ndarray:
    """The scene's image with one defect of ``kind`` and ``size_class`` painted in (float32 ``[S,S,3]``)."""
    alpha, target = DEFECTS[kind](rng, scene, _radius(rng, size_class, scene.size))
    return np.clip(mix(scene.image, target, alpha), 0, 1).astype(np.float32)
