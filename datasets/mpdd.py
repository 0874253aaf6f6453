"""MPDD, the Metal Parts Defect Detection dataset (Jezek et al., ICUMT 2021): 6 categories, MVTec layout.

A public mirror zip wraps everything in ``MPDD/``, which is recognised. The ``tubes`` defect folder is named
``anomalous`` in the archive listing we know of; any folder name other than ``good`` is read as a defect type.
"""
from __future__ import annotations

from typing import ClassVar

from .layout import MVTecLikeAdapter


class MPDD(MVTecLikeAdapter):
    """MPDD in its official (MVTec-like) layout."""

    name: ClassVar[str] = "mpdd"
    title: ClassVar[str] = "MPDD"
    domain = "industrial"
    metric_levels: ClassVar[frozenset[str]] = frozenset({"image", "pixel"})
    expected_test: ClassVar[tuple[int, int] | None] = (176, 282)
    source: ClassVar[str] = "https://github.com/stepanje/MPDD"
    license: ClassVar[str] = "CC BY-NC-SA 4.0"
    layout: ClassVar[str] = ("<cls>/train/good/NNN.png, <cls>/test/{good,<defect>}/NNN.png, "
                             "<cls>/ground_truth/<defect>/NNN_mask.png")
    aliases: ClassVar[tuple[str, ...]] = ("MPDD",)
    wrappers: ClassVar[tuple[str, ...]] = ("MPDD",)
    expected_categories: ClassVar[dict[str, tuple[int, int] | None]] = {
        "bracket_black": (32, 47), "bracket_brown": (26, 51), "bracket_white": (30, 30), "connector": (30, 14),
        "metal_plate": (26, 71), "tubes": (32, 69),
    }
