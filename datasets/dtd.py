"""DTD-Synthetic (Aota et al., WACV 2023): 12 texture categories with synthetic defects, MVTec-like layout.

``<cls>/train/good/``, ``<cls>/test/{good,bad}/``, ``<cls>/ground_truth/bad/<stem>_mask.png``. Per-category
counts are not published in a form we could verify, so only the dataset totals of the MPAMA paper are checked.
"""
from __future__ import annotations

from typing import ClassVar

from .layout import MVTecLikeAdapter

_CLASSES = ("Blotchy_099", "Fibrous_183", "Marbled_078", "Matted_069", "Mesh_114", "Perforated_037",
            "Stratified_154", "Woven_001", "Woven_068", "Woven_104", "Woven_125", "Woven_127")


class DTDSynthetic(MVTecLikeAdapter):
    """DTD-Synthetic in its distributed (MVTec-like) layout."""

    name: ClassVar[str] = "dtd"
    title: ClassVar[str] = "DTD-Synthetic"
    domain = "industrial"
    metric_levels: ClassVar[frozenset[str]] = frozenset({"image", "pixel"})
    expected_test: ClassVar[tuple[int, int] | None] = (357, 947)
    source: ClassVar[str] = "https://drive.google.com/drive/folders/10OyPzvI3H6llCZBxKxFlKWt1Pw1tkMK1 (Aota et al.)"
    license: ClassVar[str] = "unstated by the authors (derived from DTD, research use)"
    layout: ClassVar[str] = ("<cls>/train/good/NNN.png, <cls>/test/{good,bad}/NNN.png, "
                             "<cls>/ground_truth/bad/NNN_mask.png")
    aliases: ClassVar[tuple[str, ...]] = ("DTD-Synthetic", "DTD_Synthetic", "dtd_synthetic", "DTD")
    wrappers: ClassVar[tuple[str, ...]] = ("DTD-Synthetic",)
    expected_categories: ClassVar[dict[str, tuple[int, int] | None]] = {c: None for c in _CLASSES}
