"""The dataset-adapter interface.

An adapter turns a folder in a dataset's official (or reorganised) layout into a list of
:class:`~zsadbench.types.Sample` records, and loads one sample's pixels. Indexing is pure and fails with a
:class:`~zsadbench.errors.DataError` naming the path and the layout it expected.
"""
from __future__ import annotations

from abc import ABC, abstractmethod
from functools import cached_property
from pathlib import Path
from typing import ClassVar, Literal

import numpy as np

from zsadbench.errors import DataError
from zsadbench.types import Sample, Split

Domain = Literal["industrial", "medical", "synthetic"]
Level = Literal["image", "pixel"]


class DatasetAdapter(ABC):
    """Base class of every dataset adapter, built-in or third-party.

    Class attributes describe the dataset; ``metric_levels`` says which metric levels apply
    (``image`` needs normal and anomalous test images, ``pixel`` needs masks); ``expected_test`` holds
    the (normal, anomalous) test counts a complete copy should yield (the MPAMA paper's Table 6).
    """

    zsadbench_api: ClassVar[int] = 1
    name: ClassVar[str]
    title: ClassVar[str] = ""
    domain: ClassVar[Domain] = "industrial"
    metric_levels: ClassVar[frozenset[str]] = frozenset({"image", "pixel"})
    expected_test: ClassVar[tuple[int, int] | None] = None
    source: ClassVar[str] = ""
    license: ClassVar[str] = ""
    layout: ClassVar[str] = ""
    #: gray level a mask pixel must exceed to count as anomalous; ``None`` (the default) chooses by the mask
    #: file's format: > 127 for JPEG, > 0 for lossless files (see :func:`~zsadbench.datasets.io.mask_threshold`)
    mask_threshold: ClassVar[int | None] = None

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        #: category -> why it is left out (no test images, ...), filled by :attr:`samples`; the planner shows it
        self.skipped: dict[str, str] = {}

    @classmethod
    def recognises(cls, folder: Path) -> bool:
        """True when ``folder`` itself holds this dataset (not one sub-folder per dataset); lets a data root that
        points at the dataset's own folder be used as it is. The default recognises nothing."""
        return False

    @abstractmethod
    def index(self) -> list[Sample]:
        """Every sample of the dataset (train and test splits), in a deterministic order."""

    @cached_property
    def samples(self) -> list[Sample]:
        """The index, computed once; raises :class:`DataError` if the root is missing or empty."""
        if not self.root.exists():
            raise DataError(
                f"{self.name}: data root {self.root} does not exist. Expected layout: {self.layout or 'see the README'}. "
                f"Pass --data-root DIR with the dataset in DIR/{self.name}."
            )
        found = self.index()
        self.skipped = {**train_only_categories(found), **getattr(self, "skipped", {})}
        if not any(s.split == "test" for s in found):
            raise DataError(
                f"{self.name}: found 0 test images in {self.root}. Expected layout: {self.layout or 'see the README'}"
            )
        return found

    def categories(self) -> list[str]:
        """Sorted category names that have test images."""
        return sorted({s.category for s in self.samples if s.split == "test"})

    def select(self, split: Split, category: str | None = None, label: int | None = None) -> list[Sample]:
        """Samples of one split (and optionally one category / label), in index order."""
        return [
            s
            for s in self.samples
            if s.split == split and (category is None or s.category == category) and (label is None or s.gt_label == label)
        ]

    def load_image(self, sample: Sample) -> np.ndarray:
        """The sample's pixels as ``uint8 [H,W,3]`` RGB (grayscale and 16-bit converted, crop applied)."""
        from .io import read_rgb

        return read_rgb(sample.image_path, sample.crop)

    def load_mask(self, sample: Sample) -> np.ndarray | None:
        """The sample's ground truth as ``bool [H,W]``, or ``None`` when it has no mask file (normal images,
        image-level datasets); the runner then uses an all-False mask."""
        from .io import read_mask

        return None if sample.mask_path is None else read_mask(sample.mask_path, sample.crop, self.mask_threshold)


def train_only_categories(samples: list[Sample]) -> dict[str, str]:
    """``{category: reason}`` for the categories that have training images but no test image."""
    tested = {s.category for s in samples if s.split == "test"}
    return {c: "it has training images but no test images" for c in sorted({s.category for s in samples} - tested)}
