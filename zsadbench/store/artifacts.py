"""The per-image arrays of a cell, as stored in ``OUT/cells/<cell_id>.npz``.

Scores are kept exactly (float32). Anomaly maps are kept at the evaluation size, each image quantised to
16 bits between its own minimum and maximum (``anomaly_map`` uint16 plus ``map_min`` / ``map_max``); the
runner computes the pixel metrics on these dequantised maps, so ``zsadbench rescore`` reproduces them
exactly. Within one image, values closer than 1/65535 of its range share a level. Masks are packed bits.
"""
from __future__ import annotations

import json
from typing import Any

import numpy as np

LEVELS = 65535


def quantize(maps: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """float maps ``[N,H,W]`` → ``(uint16 levels, per-image min, per-image max)``."""
    flat = maps.reshape(len(maps), -1).astype(np.float32)
    lo = flat.min(axis=1) if flat.size else np.zeros(len(maps), np.float32)
    hi = flat.max(axis=1) if flat.size else np.zeros(len(maps), np.float32)
    span = (hi - lo).astype(np.float64)
    scale = np.where(span > 0, LEVELS / np.where(span > 0, span, 1.0), 0.0)
    levels = np.rint((flat - lo[:, None]) * scale[:, None]).clip(0, LEVELS).astype(np.uint16)
    return levels.reshape(maps.shape), lo.astype(np.float32), hi.astype(np.float32)


def dequantize(levels: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """The float32 maps the metrics are computed on: ``lo + level * (hi - lo) / 65535`` per image."""
    step = ((hi.astype(np.float32) - lo.astype(np.float32)) / np.float32(LEVELS)).astype(np.float32)
    shape = (-1,) + (1,) * (levels.ndim - 1)
    return (lo.reshape(shape) + levels.astype(np.float32) * step.reshape(shape)).astype(np.float32)


def encode(
    *,
    image_keys: list[str],
    pred_score: np.ndarray,
    gt_label: np.ndarray,
    levels: np.ndarray,
    map_min: np.ndarray,
    map_max: np.ndarray,
    gt_mask: np.ndarray,
    record: dict[str, Any],
) -> dict[str, np.ndarray]:
    """The arrays of one cell's artifact; ``record`` is the cell's row, embedded so the store can be rebuilt."""
    return {
        "image_keys": np.array(image_keys),
        "pred_score": pred_score.astype(np.float32),
        "gt_label": gt_label.astype(np.int64),
        "anomaly_map": levels,
        "map_min": map_min,
        "map_max": map_max,
        "gt_mask": np.packbits(gt_mask.astype(bool), axis=-1),
        "mask_width": np.array(gt_mask.shape[-1]),
        "record": np.array(json.dumps(record, sort_keys=True, default=str)),
    }


def unpack_masks(arrays: dict[str, np.ndarray]) -> np.ndarray:
    """The bool masks ``[N,S,S]`` of an artifact."""
    return np.unpackbits(arrays["gt_mask"], axis=-1, count=int(arrays["mask_width"])).astype(bool)


def decode(arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    """Inverse of :func:`encode`: float32 maps, bool masks, and the embedded ``record`` (a dict)."""
    return {
        "image_keys": arrays["image_keys"],
        "pred_score": arrays["pred_score"],
        "gt_label": arrays["gt_label"],
        "anomaly_map": dequantize(arrays["anomaly_map"], arrays["map_min"], arrays["map_max"]),
        "gt_mask": unpack_masks(arrays),
        "record": json.loads(str(arrays["record"])),
    }
