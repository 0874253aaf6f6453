"""The AnomalyCLIP ``meta.json`` format: any tree described by one, and the reader the other adapters reuse.

Schema: ``{"train"|"test": {cls_name: [{"img_path", "mask_path", "cls_name", "specie_name", "anomaly"}]}}``.
Split keys match case-insensitively (the DAGM script writes ``"Train"``/``"Test"``). Paths are joined to the
folder holding ``meta.json``; absolute paths written on another machine (the polyp, Endo and brain scripts write
them) are re-rooted by finding their longest suffix that exists below that folder. An anomalous record with
``mask_path == ""`` has no mask. Training records are kept only when normal (few-shot support must be normal).
"""
from __future__ import annotations

import json
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar

from zsadbench.errors import DataError
from zsadbench.types import Sample

from .base import DatasetAdapter
from .problems import ProblemLog

_FIELDS = ("img_path", "mask_path", "cls_name", "anomaly")


class _Rerooter:
    """Turns a stored path into a path below ``root``, remembering how many leading parts to drop."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.drop: int | None = None

    def __call__(self, stored: str) -> Path:
        text = stored.replace("\\", "/")
        if len(text) > 1 and text[1] == ":":  # a Windows drive letter
            text = text[2:] or "/"
        path = PurePosixPath(text)
        if not path.is_absolute():
            return self.root / path
        if Path(path).exists():
            return Path(path)
        parts = path.parts[1:]
        order = range(len(parts))
        if self.drop is not None:
            order = [self.drop, *[i for i in order if i != self.drop]]
        for drop in order:
            candidate = self.root.joinpath(*parts[drop:])
            if candidate.exists():
                self.drop = drop
                return candidate
        return Path(path)


def read_meta(meta_path: Path, log: ProblemLog) -> list[Sample]:
    """Samples of an AnomalyCLIP ``meta.json`` (paths relative to its folder, or absolute and re-rooted)."""
    try:
        data = json.loads(meta_path.read_text(encoding="utf-8-sig"))
    except FileNotFoundError as exc:
        raise DataError(f"no meta.json at {meta_path}; write one with `zsadbench data export-meta`") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"{meta_path} is not valid JSON ({exc}); regenerate it") from exc
    splits = {str(k).lower(): v for k, v in data.items()} if isinstance(data, dict) else {}
    if "test" not in splits or not isinstance(splits["test"], dict):
        raise DataError(f"{meta_path} has no 'test' section of the form {{cls_name: [records]}}; "
                        "expected the AnomalyCLIP schema {'train': {...}, 'test': {...}}")
    reroot = _Rerooter(meta_path.parent)
    samples: list[Sample] = []
    for split in ("train", "test"):
        classes = splits.get(split) or {}
        if not isinstance(classes, dict):
            raise DataError(f"{meta_path}: '{split}' must map class names to lists of records")
        for cls_name, records in classes.items():
            for position, record in enumerate(records):
                where = f"{split}/{cls_name}[{position}]"
                sample = _record(record, split, where, meta_path, reroot, log)
                if sample is not None:
                    samples.append(sample)
    return samples


def _record(record: Any, split: str, where: str, meta_path: Path, reroot: _Rerooter, log: ProblemLog) -> Sample | None:
    missing = [f for f in _FIELDS if not isinstance(record, dict) or f not in record]
    if missing:
        log.error(meta_path, f"record {where} lacks {', '.join(missing)}", "regenerate meta.json")
        return None
    try:
        anomaly = int(record["anomaly"])
    except (TypeError, ValueError):
        anomaly = -1
    if anomaly not in (0, 1):
        log.error(meta_path, f"record {where} has anomaly={record['anomaly']!r}", "use 0 (normal) or 1 (anomalous)")
        return None
    if split == "train" and anomaly == 1:
        return None
    image = reroot(str(record["img_path"]))
    if not image.is_file():
        log.error(image, f"image of record {where} in {meta_path.name} not found",
                  f"restore the file or fix img_path (paths are looked for below {meta_path.parent})")
        return None
    mask = None
    if anomaly == 1 and record["mask_path"]:
        mask = reroot(str(record["mask_path"]))
        if not mask.is_file():
            log.error(mask, f"mask of record {where} in {meta_path.name} not found",
                      "restore the file, or set mask_path to \"\" for an image without a mask")
            mask = None
    return Sample(image, str(record["cls_name"]), split, anomaly, mask, str(record.get("specie_name", "") or ""))


class MetaJsonDataset(DatasetAdapter):
    """Any dataset described by an AnomalyCLIP/AdaCLIP ``meta.json`` in its root folder."""

    name: ClassVar[str] = "meta_json"
    title: ClassVar[str] = "meta.json"
    domain = "industrial"
    source: ClassVar[str] = "AnomalyCLIP/AdaCLIP generate_dataset_json scripts (github.com/zqhang/AnomalyCLIP)"
    license: ClassVar[str] = "that of the described dataset"
    layout: ClassVar[str] = ("<root>/meta.json: {'train'|'test': {cls_name: [{img_path, mask_path, cls_name, "
                             "specie_name, anomaly}]}} with paths relative to <root>")

    def __init__(self, root: str | Path) -> None:
        path = Path(root)
        super().__init__(path.parent if path.suffix.lower() == ".json" else path)
        self.meta_path = path if path.suffix.lower() == ".json" else path / "meta.json"
        self.log = ProblemLog(self.name)

    @classmethod
    def recognises(cls, folder: Path) -> bool:
        return (folder / "meta.json").is_file()

    def index(self) -> list[Sample]:
        return read_meta(self.meta_path, self.log)
