"""DAGM 2007 (Wieler & Hahn): 10 synthetic texture classes with weakly labelled (elliptic) defects.

Official (Kaggle) layout: ``ClassK/{Train,Test}/NNNN.PNG``, ``ClassK/{Train,Test}/Label/Labels.txt`` and
``ClassK/{Train,Test}/Label/NNNN_label.PNG`` (capitalised folders and extensions; some copies nest
``ClassK/ClassK/``). ``Labels.txt`` (optionally with a UTF-8 BOM) has the class number on line 1, then one
whitespace-separated line per image: ``index flag image ? label-image-or-0``. An image is anomalous when its
flag is 1 and its label image exists; a flag that disagrees with the label files is reported. Without a
``Labels.txt`` an image is anomalous iff ``Label/<stem>_label.PNG`` exists (AnomalyCLIP's rule). The ``Test``
folder is the test split; the normal images of ``Train`` are the training split (its defective images are
dropped, since few-shot support must be normal). AdaCLIP's ``DAGM_anomaly_detection/ClassK/{train/good,
test/good,test/defect,ground_truth/defect/NNNN_label.PNG}`` layout is recognised too.
"""
from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from zsadbench.types import Sample, Split

from .folders import find_dir, list_images, looks_mvtec_like, subdirs, walk_mvtec
from .layout import LayoutAdapter

PHASES: tuple[tuple[str, Split], ...] = (("Train", "train"), ("Test", "test"))


def read_labels(path: Path) -> dict[str, tuple[int, str]]:
    """``Labels.txt`` as ``{image file: (flag, label file or "")}``; lines with fewer than 3 fields are skipped."""
    entries: dict[str, tuple[int, str]] = {}
    for line in path.read_text(encoding="utf-8-sig", errors="replace").splitlines()[1:]:
        fields = line.split()
        if len(fields) < 3 or fields[1] not in ("0", "1"):
            continue
        label = fields[4] if len(fields) > 4 and fields[4] != "0" else ""
        entries[fields[2]] = (int(fields[1]), label)
    return entries


class DAGM(LayoutAdapter):
    """DAGM 2007 in the Kaggle layout or AdaCLIP's reorganised one."""

    name: ClassVar[str] = "dagm"
    title: ClassVar[str] = "DAGM"
    domain = "industrial"
    metric_levels: ClassVar[frozenset[str]] = frozenset({"image", "pixel"})
    expected_test: ClassVar[tuple[int, int] | None] = (6996, 1054)
    source: ClassVar[str] = ("https://www.kaggle.com/datasets/mhskjelvareid/"
                             "dagm-2007-competition-dataset-optical-inspection")
    license: ClassVar[str] = "unstated (HCI Heidelberg, 'publicly available' for research)"
    layout: ClassVar[str] = ("ClassK/{Train,Test}/NNNN.PNG, ClassK/{Train,Test}/Label/{Labels.txt,NNNN_label.PNG} "
                             "(K = 1..10)")
    aliases: ClassVar[tuple[str, ...]] = ("DAGM_KaggleUpload", "DAGM", "DAGM2007", "DAGM_anomaly_detection")
    wrappers: ClassVar[tuple[str, ...]] = ("DAGM_KaggleUpload", "DAGM2007", "DAGM_anomaly_detection")
    expected_categories: ClassVar[dict[str, tuple[int, int] | None]] = {f"Class{k}": None for k in range(1, 11)}

    def detect(self, folder: Path) -> str | None:
        if any(_class_root(c) is not None for c in subdirs(folder)):
            return "kaggle"
        return "adaclip" if looks_mvtec_like(folder) else None

    def build(self, folder: Path, layout: str) -> list[Sample]:
        if layout == "adaclip":
            return walk_mvtec(folder, self.log, normal=("good",), mask_suffixes=("_label", "_mask"))
        samples: list[Sample] = []
        for cat in subdirs(folder):
            class_root = _class_root(cat)
            if class_root is None:
                self.log.warn(cat, "folder ignored: it has no Train/ or Test/ folder with a Label/ folder",
                              "remove it if it is not a DAGM class")
                continue
            for phase, split in PHASES:
                phase_dir = find_dir(class_root, phase)
                if phase_dir is None:
                    report = self.log.error if split == "test" else self.log.warn
                    report(class_root / phase, f"{phase} folder missing", "restore it from the archive")
                    continue
                phase = self._phase(phase_dir, cat.name, split)
                if split == "test" and not phase:
                    self.log.skip(cat.name, f"its folder {phase_dir} holds no test images")
                samples += phase
        return samples

    def _phase(self, phase_dir: Path, category: str, split: Split) -> list[Sample]:
        label_dir = find_dir(phase_dir, "Label") or phase_dir / "Label"
        by_stem = {p.stem: p for p in list_images(label_dir)}
        listing = next((p for p in sorted(label_dir.glob("*")) if p.name.lower() == "labels.txt"), None)
        entries = read_labels(listing) if listing is not None else None
        if entries is None:
            self.log.warn(label_dir / "Labels.txt", "missing: anomalies inferred from the label images",
                          "restore Labels.txt from the archive")
        used: set[Path] = set()
        samples = []
        images = list_images(phase_dir)
        for image in images:
            flag, label_name = (entries or {}).get(image.name, (None, ""))
            mask = by_stem.get(Path(label_name).stem) if label_name else None
            mask = mask or by_stem.get(image.stem + "_label")
            if mask is not None:
                used.add(mask)
            if flag is None:
                if entries is not None:
                    self.log.warn(image, f"not listed in {label_dir.name}/Labels.txt: labelled by its label image")
                flag = int(mask is not None)
            elif flag == 1 and mask is None:
                self.log.error(image, "Labels.txt marks it defective but its label image is missing",
                               f"restore {label_dir / (image.stem + '_label.PNG')}")
            elif flag == 0 and mask is not None:
                self.log.warn(mask, "Labels.txt marks its image normal: this label image is ignored")
                mask = None
            if split == "test" or flag == 0:
                samples.append(Sample(image, category, split, flag, mask))
        for missing in sorted(set(entries or {}) - {p.name for p in images}):
            self.log.error(phase_dir / missing, f"listed in {label_dir.name}/Labels.txt but missing", "restore it")
        for mask in by_stem.values():
            if mask not in used:
                self.log.error(mask, "label image has no image of the same name", "remove it or restore its image")
        return samples


def _class_root(folder: Path) -> Path | None:
    """``folder`` (or a nested ``folder/<same name>``) when it holds a Train/Test folder with a Label folder."""
    for candidate in (folder, folder / folder.name):
        for phase, _ in PHASES:
            phase_dir = find_dir(candidate, phase)
            if phase_dir is not None and find_dir(phase_dir, "Label") is not None:
                return candidate
    return None
