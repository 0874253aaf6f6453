"""Galleries of a results folder: image, ground truth and anomaly-map overlay of the best and worst cases of
each category, as PNGs and one self-contained HTML page (images inlined)."""
from __future__ import annotations

from .cases import Case, pick_cases
from .gallery import write_galleries

__all__ = ["Case", "pick_cases", "write_galleries"]
