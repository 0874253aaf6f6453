"""Endo = the EndoTect 2020 polyp segmentation test set (Hicks et al., ICPR 2020 workshops).

Layout: ``EndoTect_2020_Segmentation_Test_Dataset/{images,masks}/`` with masks paired by stem. AnomalyCLIP's
``endoTect.py`` reads every sub-folder but ``masks`` as a "species" (``good`` normal, any other anomalous), which
is accepted too, as is AdaCLIP's MVTec-like ``EndoTect/endo/``. Only pixel-level metrics apply.
"""
from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from zsadbench.types import Sample

from .folders import find_dir, list_images, looks_mvtec_like, masked_anomalies, subdirs, walk_mvtec
from .layout import LayoutAdapter

CATEGORY = "colon"
SUFFIXES = ("", "_mask")


class Endo(LayoutAdapter):
    """EndoTect 2020 segmentation test images with their masks."""

    name: ClassVar[str] = "endo"
    title: ClassVar[str] = "Endo"
    domain = "medical"
    metric_levels: ClassVar[frozenset[str]] = frozenset({"pixel"})
    expected_test: ClassVar[tuple[int, int] | None] = (0, 200)
    source: ClassVar[str] = ("EndoTect 2020 challenge; the copy linked by AnomalyCLIP: "
                             "https://drive.google.com/file/d/1LNpLkv5ZlEUzr_RPN5rdOHaqk0SkZa3m/view")
    license: ClassVar[str] = "unstated (HyperKvasir, its source, is CC BY 4.0)"
    layout: ClassVar[str] = "EndoTect_2020_Segmentation_Test_Dataset/images/<id>.<ext> and .../masks/<id>.<ext>"
    aliases: ClassVar[tuple[str, ...]] = ("EndoTect", "Endo", "EndoTect_2020_Segmentation_Test_Dataset")
    wrappers: ClassVar[tuple[str, ...]] = ("EndoTect_2020_Segmentation_Test_Dataset", "EndoTect")
    expected_categories: ClassVar[dict[str, tuple[int, int] | None]] = {CATEGORY: (0, 200)}

    def detect(self, folder: Path) -> str | None:
        masks = find_dir(folder, "masks")
        if masks is not None and any(list_images(d) for d in subdirs(folder) if d != masks):
            return "species"
        return "adaclip" if looks_mvtec_like(folder) else None

    def build(self, folder: Path, layout: str) -> list[Sample]:
        if layout == "adaclip":
            return walk_mvtec(folder, self.log, mask_suffixes=SUFFIXES, category=CATEGORY)
        masks = find_dir(folder, "masks")
        samples: list[Sample] = []
        anomalous: list[Path] = []
        for specie in subdirs(folder):
            if specie == masks:
                continue
            if specie.name == "good":
                samples += [Sample(p, CATEGORY, "test", 0, defect_type="good") for p in list_images(specie)]
            else:
                anomalous += list_images(specie)
        return samples + masked_anomalies(anomalous, masks, CATEGORY, SUFFIXES, self.log)
