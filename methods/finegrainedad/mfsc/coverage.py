"""Which categories need captions: the categories each built-in dataset adapter declares.

An adapter's categories come from its class attributes, never from a dataset copy on disk:
``expected_categories`` (the real layouts) or ``category_pool`` (the synthetic sets).
"""
from __future__ import annotations

from pathlib import Path

from .store import caption_path

#: the datasets whose every category has shipped captions: the zero-shot protocol, Real-IAD, the synthetic sets
CAPTIONED_DATASETS = (
    "mvtec", "visa", "mpdd", "btad", "sdd", "dagm", "dtd", "isic", "clinicdb", "colondb", "kvasir", "endo",
    "headct", "brainmri", "br35h", "realiad", "synthetic", "synthetic_aux",
)


def adapter_categories(dataset: str) -> tuple[str, ...]:
    """The category names the registered adapter of ``dataset`` produces (empty when it declares none)."""
    from zsadbench import registry

    cls = registry.datasets().get(dataset)
    declared = getattr(cls, "category_pool", None) or tuple(getattr(cls, "expected_categories", {}) or ())
    return tuple(declared)


def missing_captions(folder: Path, datasets: tuple[str, ...] = CAPTIONED_DATASETS) -> list[tuple[str, str]]:
    """The (dataset, category) pairs of ``datasets`` that have no caption file in ``folder``."""
    return [(d, c) for d in datasets for c in adapter_categories(d) if not caption_path(folder, d, c).is_file()]
