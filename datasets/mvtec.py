"""MVTec AD (Bergmann et al., CVPR 2019): 15 categories, the auxiliary training set of the ZSAD protocol.

Layout (the archive extracts the category folders directly): ``<cls>/train/good/NNN.png``,
``<cls>/test/{good,<defect>}/NNN.png``, ``<cls>/ground_truth/<defect>/NNN_mask.png``. AnomalyCLIP and AdaCLIP use
this layout unchanged. grid, screw and zipper are 8-bit grayscale (converted to RGB on load).
"""
from __future__ import annotations

from typing import ClassVar

from .layout import MVTecLikeAdapter


class MVTecAD(MVTecLikeAdapter):
    """MVTec AD in its official layout."""

    name: ClassVar[str] = "mvtec"
    title: ClassVar[str] = "MVTec AD"
    domain = "industrial"
    metric_levels: ClassVar[frozenset[str]] = frozenset({"image", "pixel"})
    expected_test: ClassVar[tuple[int, int] | None] = (467, 1258)
    source: ClassVar[str] = "https://www.mvtec.com/company/research/datasets/mvtec-ad"
    license: ClassVar[str] = "CC BY-NC-SA 4.0"
    layout: ClassVar[str] = ("<cls>/train/good/NNN.png, <cls>/test/{good,<defect>}/NNN.png, "
                             "<cls>/ground_truth/<defect>/NNN_mask.png")
    aliases: ClassVar[tuple[str, ...]] = ("mvtec_anomaly_detection", "mvtec_ad", "MVTec", "MVTec-AD", "MVTec_AD")
    wrappers: ClassVar[tuple[str, ...]] = ("mvtec_anomaly_detection",)
    expected_categories: ClassVar[dict[str, tuple[int, int] | None]] = {
        "bottle": (20, 63), "cable": (58, 92), "capsule": (23, 109), "carpet": (28, 89), "grid": (21, 57),
        "hazelnut": (40, 70), "leather": (32, 92), "metal_nut": (22, 93), "pill": (26, 141), "screw": (41, 119),
        "tile": (33, 84), "toothbrush": (12, 30), "transistor": (60, 40), "wood": (19, 60), "zipper": (32, 119),
    }
