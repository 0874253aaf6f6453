"""Galleries of a results folder: image, ground truth and anomaly-map overlay of the best and worst cases of
each category, on an HTML page that links small image files (optionally a PNG and PDF figure per category)."""
from __future__ import annotations

from .cases import Case, pick_cases
from .gallery import write_galleries

__all__ = ["Case", "pick_cases", "write_galleries"]
