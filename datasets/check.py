"""``zsadbench data check``: walk a dataset copy and report what is missing, unpaired, unreadable or short.

The walk indexes the tree with the dataset's adapter in lenient mode (every problem is collected instead of
stopping at the first), counts the images per category against the counts a complete copy has, and opens
every image and mask. By default only an image's header and its last bytes are read (format, size, and the
PNG ``IEND`` chunk or JPEG ``FFD9`` marker that ends a complete file): this catches empty, non-image,
header-damaged and cut-short files and masks whose size differs from their image, at a few milliseconds per
file. Masks, small and few, are always decoded: a mask with many gray levels (not binary), one marking most of
its image (likely inverted) and an empty one are reported. ``deep=True`` decodes every image as a run would,
which also catches damage inside the pixel data, but costs as much as reading the whole dataset once.
Categories the adapter skipped (a category folder without test images) are reported with the reason.
"""
from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from zsadbench import registry
from zsadbench.errors import DataError
from zsadbench.types import Sample

from .base import DatasetAdapter, train_only_categories
from .folders import is_symlink_loop
from .io import read_gray, read_mask, read_rgb
from .problems import Problem, ProblemLog


@dataclass
class CategoryCount:
    """Images found in one category, and the (normal, anomalous) test counts expected when known."""

    name: str
    train: int = 0
    test_normal: int = 0
    test_anomalous: int = 0
    masks: int = 0
    expected: tuple[int, int] | None = None

    @property
    def found(self) -> tuple[int, int]:
        return (self.test_normal, self.test_anomalous)


@dataclass
class CheckReport:
    """The result of checking one dataset copy."""

    dataset: str
    title: str
    root: Path
    exists: bool = True
    layout: str = ""
    expected: tuple[int, int] | None = None
    categories: list[CategoryCount] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    @property
    def totals(self) -> tuple[int, int]:
        return (sum(c.test_normal for c in self.categories), sum(c.test_anomalous for c in self.categories))

    @property
    def usable(self) -> bool:
        """True when a run could use the copy: it exists, has test images, and no error was found."""
        return self.exists and not self.errors and any(sum(c.found) for c in self.categories)


def check_dataset(name: str, root: str | Path, *, deep: bool = False,
                  progress: Callable[[int, int], None] | None = None) -> CheckReport:
    """Check the copy of dataset ``name`` in ``root`` (see the module docstring; ``deep`` decodes every file)."""
    cls = registry.datasets().get(name)
    adapter: DatasetAdapter = cls(root)
    report = CheckReport(name, getattr(cls, "title", "") or name, Path(root), expected=cls.expected_test)
    if not Path(root).exists():
        aliases = ", ".join(getattr(cls, "aliases", ())) or "none"
        report.exists = False
        report.problems.append(Problem(
            "error", Path(root), "dataset folder not found",
            f"put {report.title} there ({cls.layout or 'see docs/datasets.md'}; official folder names accepted "
            f"beside '{name}': {aliases}), pass --data-root DIR, or set ZSADBENCH_ROOT_{name.upper()}"))
        return report
    log = ProblemLog(name, strict=False)
    if isinstance(getattr(adapter, "log", None), ProblemLog):
        adapter.log = log
    try:
        samples = adapter.index()
    except DataError as exc:
        samples = []
        log.error(Path(root), str(exc))
    skipped = {**train_only_categories(samples), **getattr(adapter, "skipped", {})}
    for category, reason in skipped.items():
        log.warn(Path(root), f"category {category!r} skipped: {reason}",
                 "add its test images, or remove the folder; the dataset mean is taken over the other categories")
    for link in symlink_loops(Path(root)):
        log.warn(link, f"symlink loop ({link.name} -> {os.readlink(link)} leads back to a folder holding it): ignored",
                 "remove the link, or point it at a folder outside the tree")
    report.layout = getattr(adapter, "detected_layout", "")
    report.categories = _count(samples, getattr(cls, "expected_categories", {}))
    _compare_counts(report, cls, log)
    _check_files(samples, cls, log, deep, progress)
    if not samples or not any(s.split == "test" for s in samples):
        log.error(Path(root), "no test images found", f"expected layout: {cls.layout or 'see docs/datasets.md'}")
    report.problems = log.problems
    return report


def symlink_loops(root: Path) -> list[Path]:
    """The symlinks below ``root`` that loop (the walk does not follow links, so it always ends)."""
    loops = []
    for folder, dirs, files in os.walk(root):
        loops += [Path(folder, n) for n in sorted(dirs + files) if is_symlink_loop(Path(folder, n))]
    return loops


def _natural(name: str) -> tuple:
    return tuple(int(part) if part.isdigit() else part for part in re.split(r"(\d+)", name))


def _count(samples: list[Sample], expected: dict[str, tuple[int, int] | None]) -> list[CategoryCount]:
    counts: dict[str, CategoryCount] = {}
    for sample in samples:
        count = counts.get(sample.category)
        if count is None:
            count = counts[sample.category] = CategoryCount(sample.category, expected=expected.get(sample.category))
        if sample.split == "train":
            count.train += 1
        elif sample.gt_label:
            count.test_anomalous += 1
        else:
            count.test_normal += 1
        if sample.split == "test" and sample.mask_path is not None:
            count.masks += 1
    return sorted(counts.values(), key=lambda c: _natural(c.name))


def _compare_counts(report: CheckReport, cls: type[DatasetAdapter], log: ProblemLog) -> None:
    note = getattr(cls, "count_note", "") or "complete the copy"
    known = getattr(cls, "expected_categories", {})
    found = {c.name for c in report.categories}
    missing = sorted((n for n in known if n not in found), key=_natural)
    if missing and report.categories:
        log.warn(report.root, f"{len(missing)} of {len(known)} categories missing: {', '.join(missing)}",
                 "add them; dataset scores average over every category")
    for count in report.categories:
        path = report.root / count.name
        if known and count.name not in known:
            log.warn(path, "not a category of the official dataset", "remove it unless you added it on purpose")
        elif len(known) > 1 and count.expected is not None and count.found != count.expected:
            log.warn(path, f"{count.test_normal} normal and {count.test_anomalous} anomalous test images, "
                           f"expected {count.expected[0]} and {count.expected[1]}", note)
    if report.expected is not None and report.totals != report.expected and report.categories:
        totals = report.totals
        log.warn(report.root, f"{totals[0]} normal and {totals[1]} anomalous test images in all, the MPAMA paper's "
                              f"table counts {report.expected[0]} and {report.expected[1]}", note)


def _check_files(samples: list[Sample], cls: type[DatasetAdapter], log: ProblemLog, deep: bool,
                 progress: Callable[[int, int], None] | None) -> None:
    pixel = "pixel" in cls.metric_levels
    threshold = getattr(cls, "mask_threshold", None)
    sizes: dict[Path, tuple[int, int] | None] = {}
    flagged = {p.path for p in log.errors}
    for done, sample in enumerate(samples, start=1):
        image_size = _size(sample.image_path, sizes, log, deep)
        if sample.mask_path is not None:
            mask_size = _size(sample.mask_path, sizes, log, True, mask=True)
            if image_size and mask_size and image_size != mask_size:
                log.error(sample.mask_path, f"mask is {mask_size[0]}x{mask_size[1]} but its image "
                                            f"{sample.image_path} is {image_size[0]}x{image_size[1]}",
                          "replace the mask with the one made for this image")
            elif mask_size:
                _check_mask_content(sample, threshold, log)
        elif pixel and sample.gt_label == 1 and sample.split == "test" and sample.image_path not in flagged:
            log.warn(sample.image_path, "anomalous image without a mask: pixel metrics treat it as all normal")
        if progress is not None:
            progress(done, len(samples))


#: masks whose levels go above this are 0/255-style; below, the levels may be class indices (VisA's 1..K)
_CLASS_INDEX_MAX = 31
#: share of a mask's marked pixels at levels between 0 and its top level beyond which it is not binary
_SOFT_SHARE = 0.01
#: share of its image a mask may mark before it is reported as likely inverted
_INVERTED_SHARE = 0.9
# where a complete file ends: PNG's IEND chunk; JPEG's end-of-image marker (some writers pad after it)
_END_MARKERS = {"PNG": b"IEND\xaeB`\x82", "JPEG": b"\xff\xd9", "MPO": b"\xff\xd9"}
_TAIL = 64


def _check_mask_content(sample: Sample, threshold: int | None, log: ProblemLog) -> None:
    """Report a mask that is empty, not binary, or marks most of its image (likely inverted)."""
    path = sample.mask_path
    with Image.open(path) as image:
        lossy = image.format in ("JPEG", "MPO")
    gray = read_gray(path, sample.crop)
    mask = read_mask(path, sample.crop, threshold)
    marked = int(mask.sum())
    if not marked:
        log.warn(path, "mask of an anomalous image is empty: its pixels all count as normal")
        return
    top = int(gray.max())
    if not lossy and top > _CLASS_INDEX_MAX:
        soft = int(np.count_nonzero((gray > 0) & (gray < top)))
        if soft > _SOFT_SHARE * marked:
            levels = len(np.unique(gray))
            log.warn(path, f"mask is not binary: {levels} gray levels, {soft} pixels between 0 and {top}, all "
                           "counted as anomalous", "re-export it with two levels (0 and 255)")
    if marked > _INVERTED_SHARE * mask.size:
        log.warn(path, f"mask marks {100 * marked / mask.size:.0f}% of its image {sample.image_path.name} as "
                       "anomalous: likely inverted (anomalies must be the bright pixels)",
                 "invert it (255 - mask) if the defect is the dark part")


def _cut_short(path: Path, image_format: str | None) -> bool:
    """True when a PNG or JPEG file lacks the marker a complete file ends with (read from its last bytes)."""
    marker = _END_MARKERS.get(image_format or "")
    if marker is None:
        return False
    with path.open("rb") as handle:
        handle.seek(0, 2)
        handle.seek(max(0, handle.tell() - _TAIL))
        return marker not in handle.read()


def _size(path: Path, cache: dict[Path, tuple[int, int] | None], log: ProblemLog, deep: bool,
          mask: bool = False) -> tuple[int, int] | None:
    if path in cache:
        return cache[path]
    size = None
    kind = "mask" if mask else "image"
    try:
        if deep:
            array = read_mask(path) if mask else read_rgb(path)
            size = (int(array.shape[1]), int(array.shape[0]))
        else:
            with Image.open(path) as image:
                size, image_format = image.size, image.format
            if _cut_short(path, image_format):
                log.error(path, f"{kind} file is cut short: no {image_format} end marker in its last bytes",
                          "replace it with a good copy from the archive")
                size = None
    except (OSError, ValueError, SyntaxError, DataError) as exc:
        log.error(path, f"unreadable {kind} ({type(exc).__name__}: {exc})",
                  "replace it with a good copy from the archive")
    cache[path] = size
    return size
