"""BTAD, the beanTech Anomaly Detection dataset (Mishra et al., 2021): products 01, 02, 03.

``BTech_Dataset_transformed/<cls>/{train/ok, test/ok, test/ko, ground_truth/ko}/NNNN.<ext>``: normal is ``ok``,
anomalous ``ko``. Extensions are mixed (01: bmp images and png masks; 02: png; 03: bmp images and bmp masks), so
masks pair with images by stem whatever their extension. Some ``ko`` masks are entirely empty; those images stay
anomalous with an empty mask. anomalib's png-converted copy (``good`` instead of ``ok``) is accepted too.
"""
from __future__ import annotations

from typing import ClassVar

from .layout import MVTecLikeAdapter


class BTAD(MVTecLikeAdapter):
    """BTAD in its official layout."""

    name: ClassVar[str] = "btad"
    title: ClassVar[str] = "BTAD"
    domain = "industrial"
    metric_levels: ClassVar[frozenset[str]] = frozenset({"image", "pixel"})
    expected_test: ClassVar[tuple[int, int] | None] = (451, 290)
    source: ClassVar[str] = "https://github.com/pankajmishra000/VT-ADL (BTech_Dataset_transformed)"
    license: ClassVar[str] = "CC BY-SA 4.0"
    layout: ClassVar[str] = ("BTech_Dataset_transformed/{01,02,03}/{train/ok,test/ok,test/ko}/NNNN.{bmp,png}, "
                             "<cls>/ground_truth/ko/NNNN.{png,bmp}")
    normal: ClassVar[tuple[str, ...]] = ("ok", "good")
    mask_suffixes: ClassVar[tuple[str, ...]] = ("", "_mask")
    aliases: ClassVar[tuple[str, ...]] = ("BTech_Dataset_transformed", "BTAD", "BTech")
    wrappers: ClassVar[tuple[str, ...]] = ("BTech_Dataset_transformed",)
    expected_categories: ClassVar[dict[str, tuple[int, int] | None]] = {
        "01": (21, 49), "02": (30, 200), "03": (400, 41),
    }
