"""ISIC 2016 Task 1 test set (Gutman et al., 2016): 379 dermoscopic lesion images, all anomalous.

Official layout: ``ISBI2016_ISIC_Part1_Test_Data/ISIC_<7 digits>.jpg`` and
``ISBI2016_ISIC_Part1_Test_GroundTruth/ISIC_<7 digits>_Segmentation.png``. Also recognised: AnomalyCLIP's
``skin/test/<folder>/ISIC_*.jpg`` with ``skin/ISBI2016_ISIC_Part1_Test_GroundTruth/`` (a ``good`` folder would
hold normals) and AdaCLIP's MVTec-like ``isic/{test/<type>, ground_truth/<type>}``. No normal images, so only
pixel-level metrics apply.
"""
from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from zsadbench.types import Sample

from .folders import find_dir, list_images, looks_mvtec_like, masked_anomalies, subdirs, walk_mvtec
from .layout import LayoutAdapter

CATEGORY = "skin"
DATA_DIR = "ISBI2016_ISIC_Part1_Test_Data"
TRUTH_DIR = "ISBI2016_ISIC_Part1_Test_GroundTruth"
SUFFIXES = ("_Segmentation", "_mask", "")


class ISIC(LayoutAdapter):
    """ISIC 2016 lesion segmentation (test part)."""

    name: ClassVar[str] = "isic"
    title: ClassVar[str] = "ISIC"
    domain = "medical"
    metric_levels: ClassVar[frozenset[str]] = frozenset({"pixel"})
    expected_test: ClassVar[tuple[int, int] | None] = (0, 379)
    source: ClassVar[str] = "https://challenge.isic-archive.com/data/ (2016 Task 1 test data and ground truth)"
    license: ClassVar[str] = "CC0 (per the Papers with Code listing; check the ISIC archive terms)"
    layout: ClassVar[str] = f"{DATA_DIR}/ISIC_NNNNNNN.jpg and {TRUTH_DIR}/ISIC_NNNNNNN_Segmentation.png"
    aliases: ClassVar[tuple[str, ...]] = ("ISIC", "ISBI", "ISIC2016", "isic2016")
    wrappers: ClassVar[tuple[str, ...]] = ("ISIC", "ISBI")
    expected_categories: ClassVar[dict[str, tuple[int, int] | None]] = {CATEGORY: (0, 379)}

    def detect(self, folder: Path) -> str | None:
        if find_dir(folder, DATA_DIR) is not None:
            return "official"
        if (folder / "skin" / "test").is_dir() and find_dir(folder / "skin", TRUTH_DIR) is not None:
            return "anomalyclip"
        return "adaclip" if looks_mvtec_like(folder) else None

    def build(self, folder: Path, layout: str) -> list[Sample]:
        if layout == "adaclip":
            return walk_mvtec(folder, self.log, mask_suffixes=SUFFIXES, category=CATEGORY)
        if layout == "official":
            truth = find_dir(folder, TRUTH_DIR) or folder / TRUTH_DIR
            return masked_anomalies(list_images(find_dir(folder, DATA_DIR)), truth, CATEGORY, SUFFIXES, self.log)
        skin = folder / "skin"
        samples: list[Sample] = []
        anomalous: list[Path] = []
        for specie in subdirs(skin / "test"):
            if specie.name == "good":
                samples += [Sample(p, CATEGORY, "test", 0, defect_type="good") for p in list_images(specie)]
            else:
                anomalous += list_images(specie)
        return samples + masked_anomalies(anomalous, find_dir(skin, TRUTH_DIR), CATEGORY, SUFFIXES, self.log)
