"""VisA (Zou et al., ECCV 2022): 12 categories, split by ``split_csv/1cls.csv``.

Official layout: ``<cls>/Data/Images/{Normal,Anomaly}/<id>.JPG``, ``<cls>/Data/Masks/Anomaly/<id>.png`` and
``split_csv/1cls.csv`` (columns ``object,split,label,image,mask``; paths relative to the root). The CSV is the
split, as in AnomalyCLIP, AdaCLIP and anomalib. Masks hold defect-class indices (0 = background, 1..K), so a
pixel is anomalous when its value is non-zero (the default threshold 0). The prepared layout of spot-diff's
``prepare_data.py`` (``VisA_pytorch/1cls/<cls>/{train/good,test/good,test/bad,ground_truth/bad/<id>.png}``,
0/255 masks with the image's stem) and anomalib's ``visa_pytorch/<cls>/...`` are recognised too.
"""
from __future__ import annotations

import csv
from pathlib import Path
from typing import ClassVar

from zsadbench.types import Sample

from .folders import find_dir, list_images, looks_mvtec_like, subdirs, walk_mvtec
from .layout import LayoutAdapter

_COLUMNS = ("object", "split", "label", "image", "mask")


class VisA(LayoutAdapter):
    """VisA in its official layout (split CSV) or a prepared MVTec-like copy."""

    name: ClassVar[str] = "visa"
    title: ClassVar[str] = "VisA"
    domain = "industrial"
    metric_levels: ClassVar[frozenset[str]] = frozenset({"image", "pixel"})
    expected_test: ClassVar[tuple[int, int] | None] = (962, 1200)
    source: ClassVar[str] = "https://github.com/amazon-science/spot-diff (VisA_20220922.tar)"
    license: ClassVar[str] = "CC BY 4.0"
    layout: ClassVar[str] = ("split_csv/1cls.csv, <cls>/Data/Images/{Normal,Anomaly}/<id>.JPG, "
                             "<cls>/Data/Masks/Anomaly/<id>.png (or VisA_pytorch/1cls/<cls>/{train,test,ground_truth})")
    aliases: ClassVar[tuple[str, ...]] = ("VisA_20220922", "VisA", "VisA_pytorch", "visa_pytorch")
    wrappers: ClassVar[tuple[str, ...]] = ("VisA_20220922", "VisA_pytorch/1cls", "visa_pytorch", "1cls")
    split_file: ClassVar[str] = "split_csv/1cls.csv"
    expected_categories: ClassVar[dict[str, tuple[int, int] | None]] = {
        "candle": (100, 100), "capsules": (60, 100), "cashew": (50, 100), "chewinggum": (50, 100),
        "fryum": (50, 100), "macaroni1": (100, 100), "macaroni2": (100, 100), "pcb1": (100, 100),
        "pcb2": (100, 100), "pcb3": (101, 100), "pcb4": (101, 100), "pipe_fryum": (50, 100),
    }

    def detect(self, folder: Path) -> str | None:
        if (folder / self.split_file).is_file() or any((c / "Data" / "Images").is_dir() for c in subdirs(folder)):
            return "split_csv"
        return "prepared" if looks_mvtec_like(folder) else None

    def build(self, folder: Path, layout: str) -> list[Sample]:
        if layout == "prepared":
            return walk_mvtec(folder, self.log, normal=("good",), mask_suffixes=("", "_mask"))
        csv_path = folder / self.split_file
        if not csv_path.is_file():
            self.log.error(csv_path, "split file missing: the official VisA split cannot be reproduced without it",
                           "re-extract VisA_20220922.tar, which ships split_csv/ next to the category folders")
            return []
        rows = self._read_rows(csv_path)
        samples = [s for s in (self._row_sample(folder, csv_path, n, row) for n, row in rows) if s is not None]
        self._report_unlisted(folder, {row["object"] for _, row in rows}, samples, csv_path)
        return samples

    def _read_rows(self, csv_path: Path) -> list[tuple[int, dict[str, str]]]:
        with csv_path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            header = [h.strip() for h in reader.fieldnames or []]
            missing = [c for c in _COLUMNS if c not in header]
            if missing:
                self.log.error(csv_path, f"columns {missing} missing (header: {header})",
                               f"use the original file, whose header is {','.join(_COLUMNS)}")
                return []
            return [(n, {k.strip(): (v or "").strip() for k, v in row.items() if k}) for n, row in
                    enumerate(reader, start=2)]

    def _row_sample(self, folder: Path, csv_path: Path, line: int, row: dict[str, str]) -> Sample | None:
        split, label = row["split"].lower(), row["label"].lower()
        if split not in ("train", "test") or label not in ("normal", "anomaly"):
            self.log.error(csv_path, f"line {line}: split={row['split']!r}, label={row['label']!r}",
                           "split must be train or test and label normal or anomaly")
            return None
        anomalous = label == "anomaly"
        if split == "train" and anomalous:
            return None
        image = folder / row["image"]
        if not image.is_file():
            self.log.error(image, f"image listed on line {line} of {csv_path.name} is missing", "restore the file")
            return None
        mask = None
        if anomalous:
            mask = folder / row["mask"] if row["mask"] else None
            if mask is None or not mask.is_file():
                self.log.error(mask or image, f"mask of {row['image']} (line {line} of {csv_path.name}) is missing",
                               "restore the mask from the archive")
                mask = None
        return Sample(image, row["object"], split, int(anomalous), mask)

    def _report_unlisted(self, folder: Path, objects: set[str], samples: list[Sample], csv_path: Path) -> None:
        listed = {s.image_path for s in samples} | {s.mask_path for s in samples if s.mask_path is not None}
        for obj in sorted(objects):
            data = folder / obj / "Data"
            for sub in ("Images/Normal", "Images/Anomaly", "Masks/Anomaly"):
                for path in list_images(data / sub):
                    if path not in listed:
                        self.log.warn(path, f"not listed in {csv_path.name}: ignored",
                                      "remove it, or use the split file that lists it")
        for cat in subdirs(folder):
            if cat.name not in objects and find_dir(cat, "Data") is not None:
                self.log.warn(cat, f"category folder not listed in {csv_path.name}: ignored", "check the split file")
