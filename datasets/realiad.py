"""Real-IAD (Wang et al., CVPR 2024): 30 objects photographed from 5 views, used by FineGrainedAD.

Layout (``realiad_1024/``, ``realiad_raw/``, ``realiad_512/`` or ``realiad_256/``, or FineGrainedAD's
``realiad/`` with the resolution level dropped): ``<cat>/OK/S####/<cat>_####_OK_C<v>_<ts>.jpg`` and
``<cat>/NG/<CODE>/S####/<cat>_####_NG_<CODE>_C<v>_<ts>.jpg`` with the mask ``<stem>.png`` (or
``<stem>_mask.png``) beside it when the defect is visible from that view.

The FineGrainedAD protocol is followed: only the top view ``C1`` is used; the test set is every OK image plus
every NG image that has a mask (NG views without a mask are dropped, not counted as normal); the OK images
are also the training split, i.e. the pool few-shot support images are drawn from. The official
``realiad_jsons`` splits are not read.
"""
from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from zsadbench.types import Sample

from .folders import find_dir, is_image, subdirs
from .layout import LayoutAdapter

CATEGORIES = (
    "audiojack", "bottle_cap", "button_battery", "end_cap", "eraser", "fire_hood", "mint", "mounts", "pcb",
    "phone_battery", "plastic_nut", "plastic_plug", "porcelain_doll", "regulator", "rolled_strip_base",
    "sim_card_set", "switch", "tape", "terminalblock", "toothbrush", "toy", "toy_brick", "transistor1", "u_block",
    "usb", "usb_adaptor", "vcpill", "wooden_beads", "woodstick", "zipper",
)
MASK_SUFFIXES = ("", "_mask")


class RealIAD(LayoutAdapter):
    """Real-IAD, top view (C1), FineGrainedAD's test protocol."""

    name: ClassVar[str] = "realiad"
    title: ClassVar[str] = "Real-IAD"
    domain = "industrial"
    metric_levels: ClassVar[frozenset[str]] = frozenset({"image", "pixel"})
    expected_test: ClassVar[tuple[int, int] | None] = None
    view: ClassVar[str] = "C1"
    source: ClassVar[str] = ("https://huggingface.co/datasets/Real-IAD/Real-IAD "
                             "(gated; see github.com/Tencent/AnomalyDetection_Real-IAD)")
    license: ClassVar[str] = "CC BY-NC-SA 4.0"
    layout: ClassVar[str] = ("realiad_1024/<cat>/OK/S####/<cat>_####_OK_C1_<ts>.jpg and "
                             "realiad_1024/<cat>/NG/<CODE>/S####/<stem>.{jpg,png}")
    aliases: ClassVar[tuple[str, ...]] = ("realiad_1024", "Real-IAD", "realiad_raw", "realiad_512", "realiad_256")
    wrappers: ClassVar[tuple[str, ...]] = ("realiad_1024", "realiad_raw", "realiad_512", "realiad_256", "realiad")
    expected_categories: ClassVar[dict[str, tuple[int, int] | None]] = {c: None for c in CATEGORIES}

    def detect(self, folder: Path) -> str | None:
        found = any(find_dir(c, "OK", ignore_case=False) and find_dir(c, "NG", ignore_case=False)
                    for c in subdirs(folder))
        return "folders" if found else None

    def build(self, folder: Path, layout: str) -> list[Sample]:
        samples: list[Sample] = []
        for cat in subdirs(folder):
            if not (cat / "OK").is_dir():
                self.log.warn(cat, "folder ignored: it has no OK/ folder", "remove it if it is not a Real-IAD object")
                continue
            found = len(samples)
            for image in self._view_images(cat / "OK"):
                samples.append(Sample(image, cat.name, "train", 0, defect_type="OK"))
                samples.append(Sample(image, cat.name, "test", 0, defect_type="OK"))
            samples += self._anomalies(cat)
            if len(samples) == found:
                self.log.skip(cat.name, f"its folder {cat} holds no {self.view} (top view) images")
        return samples

    def _view_images(self, folder: Path) -> list[Path]:
        marker = f"_{self.view}_"
        return sorted(p for p in folder.rglob("*.jpg") if marker in p.name and is_image(p))

    def _anomalies(self, cat: Path) -> list[Sample]:
        ng = cat / "NG"
        images = {p.with_suffix(""): p for p in ng.rglob("*") if is_image(p) and p.suffix.lower() in (".jpg", ".jpeg")}
        paired: dict[Path, Path] = {}
        for mask in sorted(p for p in ng.rglob("*.png") if is_image(p)):
            stem = mask.with_suffix("")
            bare = stem.with_name(stem.name[: -len("_mask")]) if stem.name.endswith("_mask") else stem
            image = images.get(stem) or images.get(bare)
            if image is None:
                self.log.error(mask, "mask has no image of the same name beside it", "remove it or restore its image")
            elif image in paired:
                self.log.error(mask, f"second mask for {image.name} (first: {paired[image].name})", "delete one")
            else:
                paired[image] = mask
        marker = f"_{self.view}_"
        return [Sample(image, cat.name, "test", 1, mask, mask.relative_to(ng).parts[0])
                for image, mask in paired.items() if marker in image.name]
