"""Texture categories of the synthetic generator: homogeneous surfaces that fill the whole image.

Each renderer takes ``(rng, size)`` and returns a :class:`Scene` whose foreground is the whole image. Per-image
jitter comes from ``rng``: pattern phase and orientation, colour, and the noise fields.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ._synth_common import Scene, fbm, grid, jitter_colour, mix, paint, rotate, smooth_noise

Rng = np.random.Generator


def _scene(image: np.ndarray) -> Scene:
    return Scene(np.clip(image, 0, 1).astype(np.float32), np.ones(image.shape[:2], np.float32))


def _frame(rng: Rng, size: int, max_turn: float) -> tuple[np.ndarray, np.ndarray]:
    """The pixel grid shifted by a random phase and turned by up to ``max_turn`` radians."""
    x, y = grid(size)
    return rotate(x, y, rng.uniform(-max_turn, max_turn), rng.uniform(-1, 1), rng.uniform(-1, 1))


def weave(rng: Rng, size: int) -> Scene:
    """Plain-woven fabric: threads passing alternately over and under each other."""
    u, v = _frame(rng, size, 0.06)
    freq = rng.uniform(14, 17)
    a, b = u * freq, v * freq
    fa, fb = a - np.floor(a), b - np.floor(b)
    over = (np.floor(a) + np.floor(b)) % 2 == 0
    across_h, across_v = np.sin(np.pi * fb) ** 0.5, np.sin(np.pi * fa) ** 0.5
    shade = np.where(over, across_h * (0.8 + 0.2 * np.sin(np.pi * fa)), across_v * (0.8 + 0.2 * np.sin(np.pi * fb)))
    shade = 0.45 + 0.5 * shade + 0.05 * smooth_noise(rng, size, size / 2)
    warp, weft = jitter_colour(rng, (0.78, 0.7, 0.55)), jitter_colour(rng, (0.7, 0.64, 0.52))
    return _scene(paint(shade, warp) * over[..., None] + paint(shade, weft) * ~over[..., None])


def carpet(rng: Rng, size: int) -> Scene:
    """Dense pile carpet: fine fibre noise over soft tufts."""
    fibres = smooth_noise(rng, size, size / 2.5) * 0.6 + smooth_noise(rng, size, size / 6) * 0.4
    tufts = fbm(rng, size, 10, octaves=2)
    shade = 0.75 + 0.13 * fibres + 0.07 * tufts
    base = jitter_colour(rng, (0.62, 0.26, 0.2))
    other = jitter_colour(rng, (0.55, 0.3, 0.25))
    return _scene(mix(paint(shade, base), paint(shade, other), np.clip(0.5 + 0.3 * tufts, 0, 1)))


def wire_grid(rng: Rng, size: int) -> Scene:
    """A woven metal mesh: bright rounded wires on a dark ground."""
    u, v = _frame(rng, size, 0.1)
    freq = rng.uniform(11, 13)
    du = np.abs(u * freq - np.floor(u * freq) - 0.5)
    dv = np.abs(v * freq - np.floor(v * freq) - 0.5)
    width = 0.16
    wire_u = np.clip(1 - du / width, 0, 1) ** 0.7
    wire_v = np.clip(1 - dv / width, 0, 1) ** 0.7
    shade = 0.12 + 0.55 * np.maximum(wire_u, wire_v) + 0.03 * smooth_noise(rng, size, size / 3)
    return _scene(paint(shade, jitter_colour(rng, (0.85, 0.85, 0.82), 0.02)))


def wood(rng: Rng, size: int) -> Scene:
    """Wood grain: near-vertical growth lines bent by low-frequency warping, with fine streaks."""
    u, v = _frame(rng, size, 0.08)
    bend = 0.05 * smooth_noise(rng, size, 3) + 0.015 * smooth_noise(rng, size, 9)
    rings = (u + bend) * rng.uniform(7, 9)
    grain = (rings - np.floor(rings)) ** 3
    streaks = smooth_noise(rng, size, size / 3, aspect=0.08)
    light, dark = jitter_colour(rng, (0.8, 0.62, 0.42)), jitter_colour(rng, (0.55, 0.36, 0.22))
    image = mix(paint(np.ones_like(u), light), paint(np.ones_like(u), dark), np.clip(grain * 0.8, 0, 1))
    return _scene(image * (1 + 0.05 * streaks)[..., None])


def tile(rng: Rng, size: int) -> Scene:
    """Stone tiles: Voronoi slabs with speckles, separated by grout."""
    x, y = grid(size)
    cells = int(rng.integers(5, 7))
    pad = 2
    points = rng.uniform(0.15, 0.85, (cells + 2 * pad, cells + 2 * pad, 2)).astype(np.float32)
    shades = rng.uniform(0.82, 1.0, (cells + 2 * pad, cells + 2 * pad)).astype(np.float32)
    gx, gy = (x + 0.5) * cells, (y + 0.5) * cells
    ix, iy = np.floor(gx).astype(np.int64), np.floor(gy).astype(np.int64)
    nearest = np.full(x.shape, np.inf, np.float32)
    second = np.full(x.shape, np.inf, np.float32)
    cell_shade = np.ones(x.shape, np.float32)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            cx, cy = np.clip(ix + dx, -pad, cells + pad - 1), np.clip(iy + dy, -pad, cells + pad - 1)
            px = cx + points[cy + pad, cx + pad, 0]
            py = cy + points[cy + pad, cx + pad, 1]
            dist = np.hypot(gx - px, gy - py)
            closer = dist < nearest
            second = np.where(closer, nearest, np.minimum(second, dist))
            cell_shade = np.where(closer, shades[cy + pad, cx + pad], cell_shade)
            nearest = np.where(closer, dist, nearest)
    grout = np.clip((second - nearest) / 0.08, 0, 1)
    specks = np.clip(smooth_noise(rng, size, size / 3) - 1.6, 0, 1)
    shade = cell_shade * (0.92 + 0.04 * fbm(rng, size, 8)) - 0.35 * specks
    stone = paint(shade, jitter_colour(rng, (0.76, 0.75, 0.72), 0.02))
    return _scene(mix(paint(np.full_like(x, 0.45), jitter_colour(rng, (0.6, 0.58, 0.55))), stone, grout))


def leather(rng: Rng, size: int) -> Scene:
    """Grained leather: embossed bumps with a network of fine creases."""
    bumps = fbm(rng, size, size / 10, octaves=2)
    gy, gx = np.gradient(bumps)
    relief = np.clip(0.5 - 0.8 * (gx + gy), 0, 1)
    creases = np.clip(1 - np.abs(smooth_noise(rng, size, 12)) / 0.12, 0, 1)
    shade = 0.7 + 0.35 * (relief - 0.5) - 0.2 * creases
    return _scene(paint(shade, jitter_colour(rng, (0.66, 0.45, 0.3))))


def brushed(rng: Rng, size: int) -> Scene:
    """Brushed metal sheet: long horizontal streaks and a soft reflection gradient."""
    x, y = grid(size)
    streaks = smooth_noise(rng, size, size / 2, aspect=24) * 0.7 + smooth_noise(rng, size, size / 8, aspect=12) * 0.3
    tilt = rng.uniform(-0.3, 0.3)
    shade = 0.62 + 0.06 * streaks + tilt * 0.2 * (x + 0.5 * y)
    return _scene(paint(shade, jitter_colour(rng, (0.82, 0.84, 0.88), 0.02)))


def marble(rng: Rng, size: int) -> Scene:
    """White marble with dark turbulent veins."""
    u, v = _frame(rng, size, np.pi)
    turbulence = fbm(rng, size, 3, octaves=4, gain=0.55)
    wave = np.sin(2 * np.pi * (u * rng.uniform(2.5, 3.5) + 0.35 * turbulence))
    veins = (1 - np.abs(wave)) ** 10
    clouds = 0.93 + 0.04 * fbm(rng, size, 5)
    base = paint(clouds, jitter_colour(rng, (0.9, 0.89, 0.86), 0.02))
    return _scene(mix(base, paint(clouds, jitter_colour(rng, (0.42, 0.45, 0.42))), veins * 0.85))


def herringbone(rng: Rng, size: int) -> Scene:
    """Herringbone twill: columns of diagonal ribs that alternate direction."""
    u, v = _frame(rng, size, 0.05)
    columns = u * rng.uniform(7, 8)
    sign = np.where(np.floor(columns) % 2 == 0, 1.0, -1.0).astype(np.float32)
    ribs = (v + sign * (columns - np.floor(columns)) / 8) * rng.uniform(36, 42)
    rib = np.sin(np.pi * (ribs - np.floor(ribs)))
    seam = np.clip(np.abs(columns - np.round(columns)) / 0.04, 0, 1)
    shade = (0.55 + 0.35 * rib) * (0.8 + 0.2 * seam) + 0.04 * smooth_noise(rng, size, size / 3)
    return _scene(paint(shade, jitter_colour(rng, (0.55, 0.58, 0.68))))


def perforated(rng: Rng, size: int) -> Scene:
    """A perforated plate: a hexagonal lattice of round holes in painted metal."""
    u, v = _frame(rng, size, 0.08)
    pitch = 1 / rng.uniform(9, 11)
    row = v / (pitch * 0.866)
    shift = np.where(np.floor(row) % 2 == 0, 0.0, 0.5).astype(np.float32)
    fu = u / pitch + shift
    du = (fu - np.round(fu)) * pitch
    dv = (row - np.floor(row) - 0.5) * pitch * 0.866
    hole = np.clip((0.3 * pitch - np.hypot(du, dv)) * size + 0.5, 0, 1)
    plate = 0.78 + 0.04 * smooth_noise(rng, size, 6)
    image = mix(paint(plate, jitter_colour(rng, (0.45, 0.55, 0.7))), paint(np.full_like(u, 0.12), np.ones(3, np.float32)), hole)
    return _scene(image)


def cork(rng: Rng, size: int) -> Scene:
    """Cork board: granular blotches of several browns."""
    granules = smooth_noise(rng, size, size / 5)
    blotch = fbm(rng, size, 14, octaves=2)
    dark = np.clip(granules - 0.8, 0, 1)
    shade = 0.85 + 0.08 * blotch - 0.4 * dark
    light, deep = jitter_colour(rng, (0.8, 0.6, 0.38)), jitter_colour(rng, (0.65, 0.45, 0.28))
    return _scene(mix(paint(shade, light), paint(shade, deep), np.clip(0.5 + 0.4 * blotch, 0, 1)))


TEXTURES: dict[str, Callable[[Rng, int], Scene]] = {
    "weave": weave,
    "carpet": carpet,
    "grid": wire_grid,
    "wood": wood,
    "tile": tile,
    "leather": leather,
    "brushed": brushed,
    "marble": marble,
    "herringbone": herringbone,
    "perforated": perforated,
    "cork": cork,
}
