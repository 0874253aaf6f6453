"""The per-image arrays of a cell, as stored in ``OUT/cells/<cell_id>.npz``.

Scores are kept exactly (float32). Anomaly maps are kept at the evaluation size, each image quantised to
16 bits between its own minimum and maximum (levels plus ``map_min`` / ``map_max``); the runner computes the
pixel metrics on these dequantised maps, so ``zsadbench rescore`` reproduces them exactly. Within one image,
values closer than 1/65535 of its range share a level.

Format 2 (this version) stores the levels losslessly with :mod:`~zsadbench.store.mapcodec` (a least-squares
predictor's residuals, compressed; one stream and one set of predictor weights per image) and masks as
zstd-compressed packed bits, in an uncompressed npz. ``keep_maps`` says which
maps are kept (:data:`KEEP_MAPS`). Format 1 (``anomaly_map`` as a plain uint16 array in a zlib npz) is still
read.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np

from . import mapcodec

LEVELS = 65535
FORMAT = 2

#: What ``--keep-maps`` keeps, and what each choice leaves out.
KEEP_MAPS = {
    "all": "every image's map: rescore of every metric, galleries, scale plots",
    "gallery": "only the maps a gallery shows (the best and worst cases per category); rescore recomputes image "
               "metrics only and scale plots skip these cells",
    "none": "no maps: rescore recomputes image metrics only; no galleries or scale plots",
}


def quantize(maps: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Finite float maps ``[N,H,W]`` → ``(uint16 levels, per-image min, per-image max)``: level
    ``rint((x - min) * 65535 / (max - min))``, the difference in float32 and the product in float64."""
    flat = np.ascontiguousarray(maps.reshape(len(maps), -1), dtype=np.float32)
    if flat.size == 0:
        zeros = np.zeros(len(maps), np.float32)
        return np.zeros(maps.shape, np.uint16), zeros, zeros.copy()
    from ._quantize import quantize_images

    levels, lo, hi = quantize_images(flat, float(LEVELS))
    return levels.reshape(maps.shape), lo, hi


def dequantize(levels: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """The float32 maps the metrics are computed on: ``lo + level * (hi - lo) / 65535`` per image."""
    step = ((hi.astype(np.float32) - lo.astype(np.float32)) / np.float32(LEVELS)).astype(np.float32)
    shape = (-1,) + (1,) * (levels.ndim - 1)
    if lo.dtype != np.float32:
        return (lo.reshape(shape) + levels.astype(np.float32) * step.reshape(shape)).astype(np.float32)
    maps = levels.astype(np.float32)  # the same float32 product and sum as above, in place
    maps *= step.reshape(shape)
    maps += lo.reshape(shape)
    return maps


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
    keep: np.ndarray | None = None,
    keep_maps: str = "all",
) -> dict[str, np.ndarray]:
    """The arrays of one cell's artifact; ``record`` is the cell's row, embedded so the store can be rebuilt.
    ``keep`` lists the images whose maps are stored (default: all)."""
    keep = np.arange(len(levels)) if keep is None else np.asarray(sorted(set(int(i) for i in keep)), np.int64)
    data, offsets, weights = mapcodec.encode_maps(np.ascontiguousarray(levels[keep]))
    packed = np.packbits(gt_mask.astype(bool), axis=-1)
    arrays = {
        "format": np.array(FORMAT),
        "image_keys": np.array(image_keys),
        "pred_score": pred_score.astype(np.float32),
        "gt_label": gt_label.astype(np.int64),
        "map_codec": np.array(mapcodec.NAME),
        "map_size": np.array(levels.shape[1:], np.int64),
        "map_index": keep.astype(np.int64),
        "map_data": data,
        "map_offsets": offsets,
        "map_weights": weights,
        "map_min": map_min,
        "map_max": map_max,
        "keep_maps": np.array(keep_maps),
        "mask_data": np.frombuffer(mapcodec.compress_bytes(packed.tobytes()), np.uint8),
        "mask_shape": np.array(packed.shape, np.int64),
        "mask_width": np.array(gt_mask.shape[-1]),
        "record": np.array(json.dumps(record, sort_keys=True, default=str)),
    }
    return {**arrays, "checksum": np.array(content_checksum(arrays))}


def content_checksum(arrays: dict[str, np.ndarray]) -> str:
    """SHA-256 of an artifact's arrays (names, dtypes, shapes and bytes, in name order; ``checksum`` itself left
    out). An artifact holds its own, and the store's row of the cell holds it too (``artifact_checksum``)."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        if name == "checksum":
            continue
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def checksum_problem(arrays: dict[str, np.ndarray]) -> str | None:
    """Why an artifact's arrays do not match the checksum they hold (``None``: they match, or the artifact
    predates checksums)."""
    if "checksum" not in arrays:
        return None
    if str(arrays["checksum"]) != content_checksum(arrays):
        return "its arrays do not match the checksum it holds"
    return None


def artifact_format(arrays: dict[str, np.ndarray]) -> int:
    """1 for the zlib npz of earlier versions, 2 for this one."""
    return 1 if "anomaly_map" in arrays else int(arrays["format"])


def unpack_masks(arrays: dict[str, np.ndarray]) -> np.ndarray:
    """The bool masks ``[N,S,S]`` of an artifact."""
    if artifact_format(arrays) == 1:
        packed = arrays["gt_mask"]
    else:
        shape = tuple(int(v) for v in arrays["mask_shape"])
        raw = mapcodec.decompress_bytes(arrays["mask_data"].tobytes(), int(np.prod(shape)))
        packed = np.frombuffer(raw, np.uint8).reshape(shape)
    return np.unpackbits(packed, axis=-1, count=int(arrays["mask_width"])).astype(bool)


def kept_maps(arrays: dict[str, np.ndarray]) -> np.ndarray:
    """The indices of the images whose maps the artifact holds."""
    if artifact_format(arrays) == 1:
        return np.arange(len(arrays["anomaly_map"]))
    return np.asarray(arrays["map_index"], np.int64)


def stored_levels(arrays: dict[str, np.ndarray]) -> np.ndarray | None:
    """The uint16 levels ``[N,S,S]`` of every image, or ``None`` when not every map was kept."""
    if artifact_format(arrays) == 1:
        return arrays["anomaly_map"]
    if len(kept_maps(arrays)) != len(arrays["pred_score"]):
        return None
    return _levels(arrays)


def _levels(arrays: dict[str, np.ndarray]) -> np.ndarray:
    """The kept maps' uint16 levels of a format-2 artifact."""
    size = tuple(int(v) for v in arrays["map_size"])
    return mapcodec.decode_maps(arrays["map_data"], arrays["map_offsets"], arrays["map_weights"], size)  # type: ignore[arg-type]


def decode(arrays: dict[str, np.ndarray]) -> dict[str, Any]:
    """Inverse of :func:`encode`: float32 maps (NaN for images whose map was not kept), ``map_kept``, the
    per-image ``map_min``/``map_max``, bool masks, and the embedded ``record`` (a dict)."""
    count = len(arrays["pred_score"])
    kept = kept_maps(arrays)
    if artifact_format(arrays) == 1:
        levels = arrays["anomaly_map"]
    else:
        levels = _levels(arrays)
    lows, highs = arrays["map_min"], arrays["map_max"]
    if len(kept) == count:
        maps = dequantize(levels, lows, highs)
    else:
        maps = np.full((count, *levels.shape[1:]) if len(kept) else (count, 0, 0), np.nan, np.float32)
        if len(kept):
            maps[kept] = dequantize(levels, lows[kept], highs[kept])
    map_kept = np.zeros(count, bool)
    map_kept[kept] = True
    return {
        "image_keys": arrays["image_keys"],
        "pred_score": arrays["pred_score"],
        "gt_label": arrays["gt_label"],
        "anomaly_map": maps,
        "map_kept": map_kept,
        "map_min": lows,
        "map_max": highs,
        "gt_mask": unpack_masks(arrays),
        "record": json.loads(str(arrays["record"])),
    }
