"""Writing the AnomalyCLIP ``meta.json`` of any adapter, so other code bases can read the same tree.

The file follows AnomalyCLIP's ``generate_dataset_json`` scripts: ``{"train": {cls: [...]}, "test": {cls:
[...]}}``, records ``{img_path, mask_path, cls_name, specie_name, anomaly}``, ``json.dumps(indent=4)`` plus a
trailing newline, paths relative to the folder of ``meta.json``, ``mask_path == ""`` for normal images and for
images without a mask. A sample that is a crop of its file (SDD strips cut from the official parts) cannot be
described by a path, so its pixels are written once to ``crops/`` beside ``meta.json`` as PNG files.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from zsadbench.types import Sample

from .base import DatasetAdapter

CROPS_DIR = "crops"


def meta_record(sample: Sample, image: Path, mask: Path | None, base: Path) -> dict[str, Any]:
    """One AnomalyCLIP record for ``sample`` whose files are ``image``/``mask``, with paths relative to ``base``."""
    return {
        "img_path": _relative(image, base),
        "mask_path": _relative(mask, base) if mask is not None and sample.gt_label == 1 else "",
        "cls_name": sample.category,
        "specie_name": sample.defect_type,
        "anomaly": sample.gt_label,
    }


def export_meta(adapter: DatasetAdapter, path: str | Path) -> Path:
    """Write the ``meta.json`` describing every sample of ``adapter`` to ``path``; returns ``path``."""
    path = Path(path)
    base = path.parent
    info: dict[str, dict[str, list[dict[str, Any]]]] = {"train": {}, "test": {}}
    for sample in adapter.samples:
        image, mask = sample.image_path, sample.mask_path
        if sample.crop is not None:
            image, mask = _write_crop(adapter, sample, base / CROPS_DIR)
        info[sample.split].setdefault(sample.category, []).append(meta_record(sample, image, mask, base))
    base.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(info, indent=4) + "\n", encoding="utf-8")
    os.replace(partial, path)
    return path


def _relative(path: Path, base: Path) -> str:
    try:
        return Path(os.path.relpath(path, base)).as_posix()
    except ValueError:  # another drive on Windows
        return path.as_posix()


def _write_crop(adapter: DatasetAdapter, sample: Sample, folder: Path) -> tuple[Path, Path | None]:
    try:
        stem = sample.image_path.relative_to(adapter.root).with_suffix("")
    except ValueError:
        stem = Path(sample.image_path.stem)
    top, left, _, _ = sample.crop or (0, 0, 0, 0)
    image_path = folder / f"{stem.as_posix().replace('/', '_')}_{top}_{left}.png"
    image_path.parent.mkdir(parents=True, exist_ok=True)
    if not image_path.is_file():
        Image.fromarray(adapter.load_image(sample)).save(image_path)
    mask = adapter.load_mask(sample) if sample.gt_label == 1 else None
    if mask is None:
        return image_path, None
    mask_path = image_path.with_name(image_path.stem + "_mask.png")
    if not mask_path.is_file():
        Image.fromarray(mask.astype(np.uint8) * 255).save(mask_path)
    return image_path, mask_path
