"""Object categories of the synthetic generator: one part on a plain background.

Each renderer takes ``(rng, size)`` and returns a :class:`Scene` with the object's coverage as foreground and
the bare background (shown where a part goes missing). Per-image jitter: position, rotation, scale, colour.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ._synth_common import (
    Scene,
    bevel_shading,
    box_sdf,
    circle_sdf,
    coverage,
    grid,
    jitter_colour,
    mix,
    paint,
    polygon_sdf,
    rotate,
    smooth_noise,
)

Rng = np.random.Generator


def _pose(rng: Rng, size: int, max_turn: float = np.pi) -> tuple[np.ndarray, np.ndarray, float]:
    """Object-frame coordinates (random centre offset and rotation) and a scale factor near 1."""
    x, y = grid(size)
    cx, cy = np.clip(rng.normal(0, 0.03, 2), -0.06, 0.06)
    u, v = rotate(x, y, rng.uniform(-max_turn, max_turn), cx, cy)
    return u, v, float(rng.uniform(0.94, 1.06))


def _background(rng: Rng, size: int, rgb: tuple[float, float, float], grain: float = 0.02) -> np.ndarray:
    x, y = grid(size)
    gx, gy = rng.uniform(-0.1, 0.1, 2)
    shade = 1 + gx * x + gy * y + grain * smooth_noise(rng, size, size / 4)
    return paint(shade.astype(np.float32), jitter_colour(rng, rgb, 0.02))


def _compose(background: np.ndarray, body: np.ndarray, cover: np.ndarray) -> Scene:
    image = np.clip(mix(background, body, cover), 0, 1).astype(np.float32)
    return Scene(image, cover.astype(np.float32), np.clip(background, 0, 1).astype(np.float32))


def nut(rng: Rng, size: int) -> Scene:
    """A hexagonal metal nut with a threaded hole, on a dark ground."""
    u, v, s = _pose(rng, size)
    outer = polygon_sdf(u, v, 6, 0.24 * s)
    hole = circle_sdf(u, v, 0.095 * s)
    body_sdf = np.maximum(outer, -hole)
    rho = np.hypot(u, v)
    thread = 0.85 + 0.15 * np.sin(rho * size * 0.9)
    shade = (0.35 + 0.65 * bevel_shading(body_sdf, size, 0.04)) * np.where(rho < 0.13 * s, thread, 1)
    body = paint(shade, jitter_colour(rng, (0.72, 0.72, 0.74), 0.02))
    return _compose(_background(rng, size, (0.08, 0.08, 0.09)), body, coverage(body_sdf, size))


def pill(rng: Rng, size: int) -> Scene:
    """A two-colour capsule lying on a light ground."""
    u, v, s = _pose(rng, size)
    half, radius = 0.2 * s, 0.1 * s
    sdf = np.hypot(np.maximum(np.abs(u) - half, 0), v) - radius
    across = np.clip(np.abs(v) / radius, 0, 1)
    shade = 0.55 + 0.45 * np.sqrt(1 - across**2) + 0.25 * np.exp(-(((v + 0.45 * radius) / (0.15 * radius)) ** 2))
    left, right = jitter_colour(rng, (0.93, 0.92, 0.88), 0.015), jitter_colour(rng, (0.82, 0.22, 0.18))
    body = mix(paint(shade, left), paint(shade, right), np.clip(u * size + 0.5, 0, 1))
    return _compose(_background(rng, size, (0.72, 0.74, 0.76)), body, coverage(sdf, size))


def screw(rng: Rng, size: int) -> Scene:
    """A machine screw: a threaded shaft and a slotted round head, on a white ground."""
    u, v, s = _pose(rng, size)
    shaft = box_sdf(u - 0.06 * s, v, 0.22 * s, 0.045 * s, 0.02 * s)
    head_u = u + 0.21 * s
    head = box_sdf(head_u, v, 0.05 * s, 0.1 * s, 0.03 * s)
    sdf = np.minimum(shaft, head)
    thread = 0.75 + 0.25 * np.sin(2 * np.pi * (u + 0.35 * v) * 60)
    slot = np.clip(1 - np.abs(v) * size / max(1.5, 0.012 * size), 0, 1) * (np.abs(head_u) < 0.035 * s)
    across = np.clip(np.abs(v) / (0.1 * s), 0, 1)
    shade = (0.5 + 0.5 * np.sqrt(1 - across**2)) * np.where(shaft < 0, thread, 1) * (1 - 0.6 * slot)
    body = paint(shade, jitter_colour(rng, (0.62, 0.62, 0.6), 0.02))
    return _compose(_background(rng, size, (0.9, 0.9, 0.88)), body, coverage(sdf, size))


def cap(rng: Rng, size: int) -> Scene:
    """A bottle-cap ring with a knurled outer edge, on a light ground."""
    u, v, s = _pose(rng, size)
    rho, theta = np.hypot(u, v), np.arctan2(v, u)
    sdf = np.maximum(rho - 0.28 * s, 0.18 * s - rho)
    ridges = 0.82 + 0.18 * np.cos(theta * 48) * (rho > 0.25 * s)
    shade = (0.4 + 0.6 * bevel_shading(sdf, size, 0.05)) * ridges
    body = paint(shade, jitter_colour(rng, (0.2, 0.38, 0.75)))
    return _compose(_background(rng, size, (0.85, 0.84, 0.8)), body, coverage(sdf, size))


def coin(rng: Rng, size: int) -> Scene:
    """A brass coin with a raised rim and an embossed star, on a dark blue ground."""
    u, v, s = _pose(rng, size)
    rho, theta = np.hypot(u, v), np.arctan2(v, u)
    sdf = rho - 0.27 * s
    star = rho - (0.1 + 0.04 * np.cos(5 * theta)) * s
    relief = np.minimum(np.maximum(sdf, -(rho - 0.23 * s)), np.maximum(star, -sdf))
    raised = (relief < 0) & (sdf < 0)
    shade = 0.35 + 0.4 * bevel_shading(relief, size, 0.02) + 0.1 * bevel_shading(sdf, size, 0.06) + 0.15 * raised
    body = paint(shade, jitter_colour(rng, (0.85, 0.68, 0.32)))
    return _compose(_background(rng, size, (0.16, 0.2, 0.3)), body, coverage(sdf, size))


def chip(rng: Rng, size: int) -> Scene:
    """An integrated-circuit package with silver pins on a green board."""
    u, v, s = _pose(rng, size, max_turn=0.08)
    package = box_sdf(u, v, 0.2 * s, 0.15 * s, 0.01 * s)
    pitch = 0.06 * s
    pin_u = u - np.clip(np.round(u / pitch), -3, 3) * pitch
    pins = box_sdf(pin_u, np.abs(v) - 0.19 * s, 0.015 * s, 0.045 * s)
    sdf = np.minimum(package, pins)
    dot = coverage(circle_sdf(u + 0.14 * s, v + 0.09 * s, 0.018 * s), size)
    shade = np.where(package < 0, 0.14 + 0.06 * bevel_shading(package, size, 0.02) - 0.05 * dot, 0.75)
    body = paint(shade.astype(np.float32), np.ones(3, np.float32))
    body = mix(body, paint(np.full_like(u, 0.85), jitter_colour(rng, (0.85, 0.85, 0.88), 0.02)), coverage(pins, size))
    return _compose(_background(rng, size, (0.16, 0.42, 0.22), 0.05), body, coverage(sdf, size))


def button(rng: Rng, size: int) -> Scene:
    """A four-hole sewing button with a raised rim, on a brown ground."""
    u, v, s = _pose(rng, size)
    rho = np.hypot(u, v)
    offset = 0.06 * s
    holes = np.minimum.reduce([circle_sdf(u - a * offset, v - b * offset, 0.028 * s) for a in (-1, 1) for b in (-1, 1)])
    sdf = np.maximum(rho - 0.24 * s, -holes)
    dish = np.maximum(rho - 0.24 * s, -(rho - 0.19 * s))
    shade = 0.6 + 0.3 * bevel_shading(sdf, size, 0.02) + 0.15 * bevel_shading(dish, size, 0.03)
    body = paint(shade, jitter_colour(rng, (0.9, 0.85, 0.7)))
    return _compose(_background(rng, size, (0.42, 0.3, 0.22), 0.05), body, coverage(sdf, size))


def battery(rng: Rng, size: int) -> Scene:
    """A cylindrical cell with a two-tone wrapper and a terminal cap, on a white ground."""
    u, v, s = _pose(rng, size, max_turn=0.4)
    can = box_sdf(u, v, 0.28 * s, 0.11 * s, 0.015 * s)
    terminal = box_sdf(u - 0.295 * s, v, 0.02 * s, 0.04 * s, 0.008 * s)
    sdf = np.minimum(can, terminal)
    across = np.clip(np.abs(v) / (0.11 * s), 0, 1)
    shade = 0.45 + 0.55 * np.sqrt(1 - across**2) + 0.2 * np.exp(-(((v + 0.05 * s) / (0.015 * s)) ** 2))
    black, copper = jitter_colour(rng, (0.12, 0.12, 0.12), 0.01), jitter_colour(rng, (0.8, 0.5, 0.2))
    body = mix(paint(shade, black), paint(shade, copper), np.clip((u - 0.1 * s) * size + 0.5, 0, 1))
    body = np.where((terminal < 0)[..., None], paint(shade, np.full(3, 0.75, np.float32)), body)
    return _compose(_background(rng, size, (0.9, 0.9, 0.9)), body, coverage(sdf, size))


def gear(rng: Rng, size: int) -> Scene:
    """A brass spur gear with a round bore, on a black ground."""
    u, v, s = _pose(rng, size)
    rho, theta = np.hypot(u, v), np.arctan2(v, u)
    teeth = int(rng.integers(14, 17))
    edge = (0.25 + 0.025 * np.clip(3 * np.sin(teeth * theta), -1, 1)) * s
    sdf = np.maximum(rho - edge, -(rho - 0.07 * s))
    shade = 0.4 + 0.6 * bevel_shading(sdf, size, 0.03)
    body = paint(shade, jitter_colour(rng, (0.8, 0.65, 0.35)))
    return _compose(_background(rng, size, (0.05, 0.05, 0.05)), body, coverage(sdf, size))


def hazel(rng: Rng, size: int) -> Scene:
    """A hazelnut-like shell: an egg shape with longitudinal stripes, on black velvet."""
    u, v, s = _pose(rng, size)
    a, b = 0.26 * s, 0.21 * s * (1 + 0.12 * np.clip(u / (0.26 * s), -1, 1))
    sdf = (np.hypot(u / a, v / b) - 1) * np.minimum(a, b)
    stripes = 0.88 + 0.12 * np.sin(np.arctan2(v, u + 0.3 * s) * 40)
    shade = (0.35 + 0.65 * bevel_shading(sdf, size, 0.1)) * stripes
    body = paint(shade.astype(np.float32), jitter_colour(rng, (0.62, 0.38, 0.2)))
    return _compose(_background(rng, size, (0.04, 0.04, 0.05)), body, coverage(sdf.astype(np.float32), size))


def plug(rng: Rng, size: int) -> Scene:
    """A mains plug: a rounded body with two prongs and a cable, on a grey ground."""
    u, v, s = _pose(rng, size)
    body_sdf = box_sdf(u, v, 0.12 * s, 0.1 * s, 0.04 * s)
    prongs = box_sdf(u - 0.17 * s, np.abs(v) - 0.045 * s, 0.055 * s, 0.014 * s)
    cable = box_sdf(u + 0.3 * s, v, 0.2 * s, 0.025 * s, 0.02 * s)
    sdf = np.minimum.reduce([body_sdf, prongs, cable])
    shade = 0.55 + 0.45 * bevel_shading(np.minimum(body_sdf, cable), size, 0.04)
    white = paint(shade, jitter_colour(rng, (0.92, 0.92, 0.9), 0.015))
    metal = paint(0.6 + 0.4 * bevel_shading(prongs, size, 0.01), np.asarray((0.85, 0.75, 0.45), np.float32))
    body = mix(white, metal, coverage(prongs, size) * (body_sdf > 0))
    return _compose(_background(rng, size, (0.5, 0.52, 0.55)), body, coverage(sdf, size))


def tablet(rng: Rng, size: int) -> Scene:
    """A round scored tablet, on a blue tray."""
    u, v, s = _pose(rng, size)
    sdf = np.hypot(u, v) - 0.2 * s
    score = np.clip(1 - np.abs(v) * size / max(1.5, 0.01 * size), 0, 1) * (np.abs(u) < 0.16 * s)
    shade = (0.6 + 0.4 * bevel_shading(sdf, size, 0.06)) * (1 - 0.35 * score)
    body = paint(shade, jitter_colour(rng, (0.95, 0.94, 0.9), 0.015))
    return _compose(_background(rng, size, (0.22, 0.35, 0.6)), body, coverage(sdf, size))


OBJECTS: dict[str, Callable[[Rng, int], Scene]] = {
    "nut": nut,
    "pill": pill,
    "screw": screw,
    "cap": cap,
    "coin": coin,
    "chip": chip,
    "button": button,
    "battery": battery,
    "gear": gear,
    "hazel": hazel,
    "plug": plug,
    "tablet": tablet,
}
