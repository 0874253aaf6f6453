"""SDD = KolektorSDD v1 (Tabernik et al., 2020), cut into strips as in the ZSAD protocol.

Two layouts are recognised:

* the official archive, ``kosNN/PartN.jpg`` with ``kosNN/PartN_label.bmp``: every image is cut into three
  horizontal strips, rows ``[0, H//3)``, ``[H//3, 2H//3)``, ``[2H//3, H)`` (exposed as :attr:`Sample.crop`, no
  file is written). A strip is anomalous when its label strip has a non-zero pixel. Normal strips are split
  75/25 into train/test with scikit-learn's ``train_test_split(test_size=0.25, random_state=42)``, as AdaCLIP's
  ``sdd-pre.py`` does. That script lists files in ``os.listdir`` order, which depends on the file system; here
  the strips are sorted by name (``kos01_Part0_0``, ...) first, so the split is the same on every machine.
* the strip PNGs that script writes (AdaCLIP ``SDD_anomaly_detection/SDD/``; AnomalyCLIP's copy under
  ``electrical commutators/`` or ``electrical_commutators/``): ``<cls>/{train/good,test/good,test/defect}/``
  and ``<cls>/ground_truth/defect/<name>_mask.png``.

Whatever the folder name, the single category is called ``electrical_commutators``.
"""
from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np
from PIL import Image

from zsadbench.errors import DataError
from zsadbench.types import Sample

from .folders import list_images, looks_mvtec_like, subdirs, walk_mvtec
from .io import read_mask
from .layout import LayoutAdapter

CATEGORY = "electrical_commutators"
TEST_SIZE = 0.25
SPLIT_SEED = 42


def strip_bounds(height: int) -> list[tuple[int, int]]:
    """(top, height) of the three horizontal strips of an image ``height`` rows tall."""
    cuts = [0, height // 3, 2 * height // 3, height]
    return [(cuts[i], cuts[i + 1] - cuts[i]) for i in range(3)]


def split_normals(names: list[str]) -> set[str]:
    """The names (of ``names``, sorted) that go to the test split: 25 % drawn with seed 42."""
    from sklearn.model_selection import train_test_split

    ordered = sorted(names)
    if len(ordered) < 2:
        return set(ordered)
    _, test = train_test_split(ordered, test_size=TEST_SIZE, random_state=SPLIT_SEED)
    return set(test)


class SDD(LayoutAdapter):
    """KolektorSDD (v1) as raw parts cut into strips, or as pre-cut strip PNGs."""

    name: ClassVar[str] = "sdd"
    title: ClassVar[str] = "SDD"
    domain = "industrial"
    metric_levels: ClassVar[frozenset[str]] = frozenset({"image", "pixel"})
    expected_test: ClassVar[tuple[int, int] | None] = (181, 74)
    source: ClassVar[str] = "https://www.vicos.si/resources/kolektorsdd/ (KolektorSDD.zip)"
    license: ClassVar[str] = "CC BY-NC-SA 4.0"
    layout: ClassVar[str] = ("kosNN/PartN.jpg with kosNN/PartN_label.bmp (official), or pre-cut strips "
                             "<cls>/{train/good,test/good,test/defect}/kosNN_PartN_i.png + "
                             "ground_truth/defect/*_mask.png")
    aliases: ClassVar[tuple[str, ...]] = ("KolektorSDD", "SDD", "SDD_anomaly_detection", "kolektorsdd")
    wrappers: ClassVar[tuple[str, ...]] = ("KolektorSDD", "SDD_anomaly_detection", "SDD")
    expected_categories: ClassVar[dict[str, tuple[int, int] | None]] = {CATEGORY: (181, 74)}
    count_note: ClassVar[str] = ("the split of the official parts into strips gives other counts than the MPAMA "
                                 "paper's table (181, 74), whose preparation is not published")

    def detect(self, folder: Path) -> str | None:
        if any(_parts(d) for d in subdirs(folder) if d.name.lower().startswith("kos")):
            return "kolektorsdd"
        return "strips" if looks_mvtec_like(folder) else None

    def build(self, folder: Path, layout: str) -> list[Sample]:
        if layout == "strips":
            return walk_mvtec(folder, self.log, normal=("good",), mask_suffixes=("_mask",), category=CATEGORY)
        normal: dict[str, Sample] = {}
        anomalous: list[Sample] = []
        for item in (d for d in subdirs(folder) if d.name.lower().startswith("kos")):
            labels = {p.stem: p for p in list_images(item) if p.stem.endswith("_label")}
            for image in _parts(item):
                label = labels.pop(image.stem + "_label", None)
                if label is None:
                    self.log.error(image, "no label image beside this part",
                                   f"restore {item / (image.stem + '_label.bmp')} from KolektorSDD.zip")
                    continue
                for i, strip in enumerate(self._strips(image, label)):
                    if strip.gt_label:
                        anomalous.append(strip)
                    else:
                        normal[f"{item.name}_{image.stem}_{i}"] = strip
            for label in labels.values():
                self.log.error(label, "label image has no part image of the same name", "remove it or restore the part")
        test_names = split_normals(list(normal))
        samples = [Sample(s.image_path, CATEGORY, "test" if n in test_names else "train", 0, None, "good", s.crop)
                   for n, s in normal.items()]
        return samples + anomalous

    def _strips(self, image: Path, label: Path) -> list[Sample]:
        try:
            with Image.open(image) as handle:
                width, height = handle.size
            truth = read_mask(label)
        except (OSError, DataError) as exc:
            self.log.error(image, f"cannot read this part or its label ({exc})", "replace the file from the archive")
            return []
        if truth.shape != (height, width):
            self.log.error(label, f"label is {truth.shape[1]}x{truth.shape[0]} but its part is {width}x{height}",
                           "restore both files from the archive")
            return []
        strips = []
        for top, rows in strip_bounds(height):
            crop = (top, 0, rows, width)
            if np.any(truth[top : top + rows]):
                strips.append(Sample(image, CATEGORY, "test", 1, label, "defect", crop))
            else:
                strips.append(Sample(image, CATEGORY, "test", 0, None, "good", crop))
        return strips


def _parts(folder: Path) -> list[Path]:
    return [p for p in list_images(folder) if p.stem.lower().startswith("part") and not p.stem.endswith("_label")]
