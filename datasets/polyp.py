"""Colon polyp segmentation sets: CVC-ClinicDB, CVC-ColonDB and Kvasir-SEG (every image shows a polyp).

The usual layout is ``images/<id>.<ext>`` with ``masks/<id>.<ext>`` (PraNet's test sets, Kvasir-SEG,
AnomalyCLIP's preparation); CVC-ClinicDB's original archive has ``Original/<n>.tif`` with
``Ground Truth/<n>.tif``. Masks pair with images by stem, whatever the extensions. AdaCLIP's MVTec-like copies
(``CVC-ClinicDB/ClinicDB/...``) are recognised too. No normal images, so only pixel-level metrics apply. The
single category is ``colon``, AnomalyCLIP's class name.
"""
from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from zsadbench.types import Sample

from .folders import find_dir, list_images, looks_mvtec_like, masked_anomalies, walk_mvtec
from .layout import LayoutAdapter

CATEGORY = "colon"
IMAGE_DIRS = ("images", "Original", "image", "imgs")
MASK_DIRS = ("masks", "Ground Truth", "GroundTruth", "mask", "Ground_Truth")
SUFFIXES = ("", "_mask")


class PolypAdapter(LayoutAdapter):
    """Shared behaviour of the three polyp sets: an image folder and a mask folder, paired by stem."""

    domain = "medical"
    metric_levels: ClassVar[frozenset[str]] = frozenset({"pixel"})
    layout: ClassVar[str] = "images/<id>.<ext> and masks/<id>.<ext> (same stems)"

    def detect(self, folder: Path) -> str | None:
        if find_dir(folder, *IMAGE_DIRS) is not None and find_dir(folder, *MASK_DIRS) is not None:
            return "images_masks"
        return "adaclip" if looks_mvtec_like(folder) else None

    def build(self, folder: Path, layout: str) -> list[Sample]:
        if layout == "adaclip":
            return walk_mvtec(folder, self.log, mask_suffixes=SUFFIXES, category=CATEGORY)
        images = list_images(find_dir(folder, *IMAGE_DIRS))
        return masked_anomalies(images, find_dir(folder, *MASK_DIRS), CATEGORY, SUFFIXES, self.log)


class ClinicDB(PolypAdapter):
    """CVC-ClinicDB: 612 colonoscopy frames (384x288)."""

    name: ClassVar[str] = "clinicdb"
    title: ClassVar[str] = "ClinicDB"
    expected_test: ClassVar[tuple[int, int] | None] = (0, 612)
    source: ClassVar[str] = ("https://polyp.grand-challenge.org/CVCClinicDB/ (also the Polyp_DataSet archive, "
                             "https://figshare.com/articles/figure/Polyp_DataSet_zip/21221579)")
    license: ClassVar[str] = "research use (terms of the CVC-ClinicDB release)"
    layout: ClassVar[str] = "images/<n>.png and masks/<n>.png, or Original/<n>.tif and 'Ground Truth'/<n>.tif"
    aliases: ClassVar[tuple[str, ...]] = ("CVC-ClinicDB", "ClinicDB", "cvc_clinicdb", "CVC_ClinicDB")
    wrappers: ClassVar[tuple[str, ...]] = ("CVC-ClinicDB", "PNG", "TIF", "TestDataset/CVC-ClinicDB")
    expected_categories: ClassVar[dict[str, tuple[int, int] | None]] = {CATEGORY: (0, 612)}
    count_note: ClassVar[str] = ("PraNet's TestDataset/CVC-ClinicDB holds only 62 of the 612 frames; "
                                 "use the full release")


class ColonDB(PolypAdapter):
    """CVC-ColonDB: 380 colonoscopy frames (574x500)."""

    name: ClassVar[str] = "colondb"
    title: ClassVar[str] = "ColonDB"
    expected_test: ClassVar[tuple[int, int] | None] = (0, 380)
    source: ClassVar[str] = "https://figshare.com/articles/figure/Polyp_DataSet_zip/21221579 (Polyp_DataSet archive)"
    license: ClassVar[str] = "research use (terms of the CVC-ColonDB release)"
    aliases: ClassVar[tuple[str, ...]] = ("CVC-ColonDB", "ColonDB", "cvc_colondb", "CVC_ColonDB")
    wrappers: ClassVar[tuple[str, ...]] = ("CVC-ColonDB", "TestDataset/CVC-ColonDB")
    expected_categories: ClassVar[dict[str, tuple[int, int] | None]] = {CATEGORY: (0, 380)}


class Kvasir(PolypAdapter):
    """Kvasir-SEG: 1000 polyp images. Its masks are JPEG, so a pixel is a polyp when its gray value is > 127
    (the rule for every JPEG mask; ``>0`` would count compression noise around the edges as polyp)."""

    name: ClassVar[str] = "kvasir"
    title: ClassVar[str] = "Kvasir"
    expected_test: ClassVar[tuple[int, int] | None] = (0, 1000)
    source: ClassVar[str] = "https://datasets.simula.no/kvasir-seg/"
    license: ClassVar[str] = "open access for research and education (Simula terms)"
    layout: ClassVar[str] = "Kvasir-SEG/images/<id>.jpg and Kvasir-SEG/masks/<id>.jpg"
    aliases: ClassVar[tuple[str, ...]] = ("Kvasir-SEG", "kvasir-seg", "Kvasir", "kvasir_seg")
    wrappers: ClassVar[tuple[str, ...]] = ("Kvasir-SEG", "kvasir-seg", "TestDataset/Kvasir")
    expected_categories: ClassVar[dict[str, tuple[int, int] | None]] = {CATEGORY: (0, 1000)}
