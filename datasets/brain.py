"""Brain scans without masks: HeadCT, BrainMRI and Br35H (image-level metrics only).

All three have normal and abnormal test images, no training split and a single category, ``brain`` (the
class name AnomalyCLIP uses for them). Besides the Kaggle layouts below, the reorganised MVTec-like copies of
AnomalyCLIP (``brain/test/{good,<abnormal>}``) and AdaCLIP (``headct/``, ``brain_mri/``, ``br35h/`` with
``test/{good,defect}``) are recognised; any test folder other than ``good`` is abnormal.
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import ClassVar

from zsadbench.types import Sample

from .folders import find_dir, list_images, looks_mvtec_like, subdirs, walk_mvtec
from .layout import LayoutAdapter

CATEGORY = "brain"


class _BrainAdapter(LayoutAdapter):
    domain = "medical"
    metric_levels: ClassVar[frozenset[str]] = frozenset({"image"})

    def _mvtec(self, folder: Path) -> list[Sample]:
        return walk_mvtec(folder, self.log, with_masks=False, category=CATEGORY)

    def _yes_no(self, folder: Path, ignore: tuple[str, ...] = ()) -> list[Sample]:
        """``no/`` holds normal scans, ``yes/`` abnormal ones; other folders are reported and ignored."""
        samples = []
        for sub in subdirs(folder):
            kind = sub.name.lower()
            if kind in ("no", "yes"):
                label = int(kind == "yes")
                samples += [Sample(p, CATEGORY, "test", label, defect_type=sub.name) for p in list_images(sub)]
            elif kind not in ignore:
                self.log.warn(sub, "folder ignored: only yes/ and no/ are read", "remove it if it is not needed")
        return samples


def _has_yes_no(folder: Path) -> bool:
    return find_dir(folder, "yes") is not None and find_dir(folder, "no") is not None


class HeadCT(_BrainAdapter):
    """Head CT hemorrhage (Kitamura): 100 normal and 100 hemorrhage slices, labelled by ``labels.csv``."""

    name: ClassVar[str] = "headct"
    title: ClassVar[str] = "HeadCT"
    expected_test: ClassVar[tuple[int, int] | None] = (100, 100)
    source: ClassVar[str] = "https://www.kaggle.com/datasets/felipekitamura/head-ct-hemorrhage"
    license: ClassVar[str] = "CC0 (per the Kaggle page as reported by third parties; check before use)"
    layout: ClassVar[str] = "labels.csv ('id, hemorrhage') and head_ct/head_ct/NNN.png"
    aliases: ClassVar[tuple[str, ...]] = ("HeadCT", "head_ct", "HeadCT_anomaly_detection", "headct")
    wrappers: ClassVar[tuple[str, ...]] = ("head_ct", "HeadCT_anomaly_detection")
    expected_categories: ClassVar[dict[str, tuple[int, int] | None]] = {CATEGORY: (100, 100)}

    def detect(self, folder: Path) -> str | None:
        if (folder / "labels.csv").is_file():
            return "kaggle"
        return "mvtec" if looks_mvtec_like(folder) else None

    def build(self, folder: Path, layout: str) -> list[Sample]:
        if layout == "mvtec":
            return self._mvtec(folder)
        csv_path = folder / "labels.csv"
        image_dir = next((d for d in (folder / "head_ct" / "head_ct", folder / "head_ct", folder) if list_images(d)),
                         folder / "head_ct" / "head_ct")
        by_stem = {p.stem: p for p in list_images(image_dir)}
        samples = []
        with csv_path.open(newline="", encoding="utf-8-sig") as handle:
            rows = [[cell.strip() for cell in row] for row in csv.reader(handle) if row]
        for line, row in enumerate(rows[1:], start=2):
            if len(row) < 2 or not row[0].isdigit() or row[1] not in ("0", "1"):
                self.log.error(csv_path, f"line {line} is not '<id>,<0|1>': {row}", "restore the original file")
                continue
            stem = f"{int(row[0]):03d}"
            image = by_stem.pop(stem, None)
            if image is None:
                self.log.error(image_dir / f"{stem}.png", f"listed on line {line} of labels.csv but missing",
                               "restore the file")
                continue
            label = int(row[1])
            samples.append(Sample(image, CATEGORY, "test", label, defect_type="hemorrhage" if label else "good"))
        for image in by_stem.values():
            self.log.warn(image, "not listed in labels.csv: ignored", "add it to labels.csv or remove it")
        return samples


class BrainMRI(_BrainAdapter):
    """Brain MRI tumour detection (Chakrabarty): 98 normal (``no``) and 155 tumour (``yes``) scans."""

    name: ClassVar[str] = "brainmri"
    title: ClassVar[str] = "BrainMRI"
    expected_test: ClassVar[tuple[int, int] | None] = (98, 155)
    source: ClassVar[str] = "https://www.kaggle.com/datasets/navoneel/brain-mri-images-for-brain-tumor-detection"
    license: ClassVar[str] = "unstated on the Kaggle page"
    layout: ClassVar[str] = "brain_tumor_dataset/{no,yes}/<name>.{jpg,JPG,jpeg,png} (top-level duplicates ignored)"
    aliases: ClassVar[tuple[str, ...]] = ("BrainMRI", "brain_mri", "brain-mri")
    wrappers: ClassVar[tuple[str, ...]] = ("BrainMRI",)
    expected_categories: ClassVar[dict[str, tuple[int, int] | None]] = {CATEGORY: (98, 155)}

    def detect(self, folder: Path) -> str | None:
        nested = find_dir(folder, "brain_tumor_dataset")
        if nested is not None and _has_yes_no(nested):
            return "kaggle"
        if _has_yes_no(folder):
            return "yes_no"
        return "mvtec" if looks_mvtec_like(folder) else None

    def build(self, folder: Path, layout: str) -> list[Sample]:
        if layout == "mvtec":
            return self._mvtec(folder)
        if layout == "yes_no":
            return self._yes_no(folder)
        # the Kaggle archive repeats yes/ and no/ at its top level: reading both would double the counts
        return self._yes_no(find_dir(folder, "brain_tumor_dataset"))


class Br35H(_BrainAdapter):
    """Br35H brain tumour detection 2020 (Hamada): 1500 ``no`` and 1500 ``yes`` MRI slices; ``pred/`` is
    unlabelled and ignored."""

    name: ClassVar[str] = "br35h"
    title: ClassVar[str] = "Br35H"
    expected_test: ClassVar[tuple[int, int] | None] = (1500, 1500)
    source: ClassVar[str] = "https://www.kaggle.com/datasets/ahmedhamada0/brain-tumor-detection"
    license: ClassVar[str] = "unstated on the Kaggle page"
    layout: ClassVar[str] = "yes/y<n>.jpg and no/no<n>.jpg (pred/ ignored)"
    aliases: ClassVar[tuple[str, ...]] = ("Br35H", "br35", "Br35h_anomaly_detection", "Br35h")
    wrappers: ClassVar[tuple[str, ...]] = ("Br35H", "Br35h_anomaly_detection")
    expected_categories: ClassVar[dict[str, tuple[int, int] | None]] = {CATEGORY: (1500, 1500)}

    def detect(self, folder: Path) -> str | None:
        if _has_yes_no(folder):
            return "yes_no"
        return "mvtec" if looks_mvtec_like(folder) else None

    def build(self, folder: Path, layout: str) -> list[Sample]:
        if layout == "mvtec":
            return self._mvtec(folder)
        return self._yes_no(folder, ignore=("pred",))
