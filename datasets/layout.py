"""Shared base of the built-in adapters: layout detection, archive wrappers, meta.json fallback, problem log.

An adapter lists the layouts it knows (the official one and the reorganised ones of the AnomalyCLIP/AdaCLIP
preparation scripts) through :meth:`LayoutAdapter.detect` and indexes the one found with
:meth:`LayoutAdapter.build`. The folder may be the dataset root itself, one of the wrapper folders an archive
adds (``wrappers``), or a single sub-folder. When no layout matches but the folder holds an AnomalyCLIP
``meta.json``, that file is used.
"""
from __future__ import annotations

from abc import abstractmethod
from pathlib import Path
from typing import ClassVar

from zsadbench.errors import DataError
from zsadbench.types import Sample

from .base import DatasetAdapter
from .folders import looks_mvtec_like, subdirs, walk_mvtec
from .meta_json import read_meta
from .problems import ProblemLog

META_LAYOUT = "meta.json"


class LayoutAdapter(DatasetAdapter):
    """A dataset adapter that recognises several on-disk layouts of one dataset.

    ``aliases`` are folder names accepted under a data root besides ``<name>`` (see :mod:`.roots`);
    ``expected_categories`` maps each category to its (normal, anomalous) test counts, ``None`` where unknown;
    ``count_note`` explains a common reason for short counts (shown by ``zsadbench data check``).
    """

    aliases: ClassVar[tuple[str, ...]] = ()
    wrappers: ClassVar[tuple[str, ...]] = ()
    expected_categories: ClassVar[dict[str, tuple[int, int] | None]] = {}
    count_note: ClassVar[str] = ""

    def __init__(self, root: str | Path) -> None:
        super().__init__(root)
        self.log = ProblemLog(self.name)
        self.detected_layout = ""

    @abstractmethod
    def detect(self, folder: Path) -> str | None:
        """The name of the layout ``folder`` is in, or ``None`` when it is in none this adapter knows."""

    @abstractmethod
    def build(self, folder: Path, layout: str) -> list[Sample]:
        """Index ``folder``, known to be in ``layout``; report problems through ``self.log``."""

    def locate(self) -> tuple[Path, str]:
        """The folder holding the dataset (the root or a wrapper inside it) and its layout."""
        candidates = [self.root, *(self.root / w for w in self.wrappers)]
        children = subdirs(self.root)
        if len(children) == 1:
            candidates.append(children[0])
        for folder in candidates:
            if folder.is_dir():
                layout = self.detect(folder)
                if layout is not None:
                    return folder, layout
        if (self.root / "meta.json").is_file():
            return self.root, META_LAYOUT
        found = ", ".join(p.name for p in children[:8]) or "nothing"
        raise DataError(
            f"{self.name}: {self.root} is in no layout this adapter knows (it contains: {found}). "
            f"Expected: {self.layout}"
        )

    @classmethod
    def recognises(cls, folder: Path) -> bool:
        """True when one of this adapter's layouts (not a bare meta.json) is found in ``folder`` and one of its
        category folders bears a name of the dataset's categories, so that one MVTec-like dataset is not taken
        for another. Single-category datasets, whose layouts look alike (``images/`` + ``masks/``), are not
        recognised this way: their folder must bear the dataset's name (see :mod:`.roots`)."""
        if len(cls.expected_categories) < 2:
            return False
        try:
            found, layout = cls(folder).locate()
        except DataError:
            return False
        if layout == META_LAYOUT:
            return False
        known = {c.lower() for c in cls.expected_categories}
        return any(child.name.lower() in known for child in subdirs(found))

    def index(self) -> list[Sample]:
        self.log.clear()
        folder, layout = self.locate()
        self.detected_layout = layout
        if layout == META_LAYOUT:
            samples = read_meta(folder / "meta.json", self.log)
        else:
            samples = sorted(self.build(folder, layout), key=_order)
        self.skipped = dict(self.log.skipped)
        return samples


def _order(sample: Sample) -> tuple:
    return (sample.split != "train", sample.category, sample.gt_label, sample.defect_type, str(sample.image_path),
            sample.crop or ())


class MVTecLikeAdapter(LayoutAdapter):
    """An adapter for ``<cls>/{train/<normal>, test/<type>, ground_truth/<type>}`` trees (MVTec AD's layout).

    Most reorganised copies (AdaCLIP's preparation scripts, anomalib's conversions) use this layout, so the
    other adapters reuse :func:`~zsadbench.datasets.folders.walk_mvtec` for them.
    """

    normal: ClassVar[tuple[str, ...]] = ("good",)
    mask_suffixes: ClassVar[tuple[str, ...]] = ("_mask",)

    def detect(self, folder: Path) -> str | None:
        return "mvtec" if looks_mvtec_like(folder) else None

    def build(self, folder: Path, layout: str) -> list[Sample]:
        return walk_mvtec(folder, self.log, normal=self.normal, mask_suffixes=self.mask_suffixes)
