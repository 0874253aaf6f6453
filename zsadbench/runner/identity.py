"""The parts of a cell's identity that are not in its config: weights and data.

A local weights file is identified by its sha256 (so a changed file at the same path is never mistaken for
the old one), a tag by the tag (its file is checked against the tag's checksum when loaded), random weights
by ``none`` (they are seeded from the model name). A category's data is identified by a digest of its
index: file names relative to the dataset root, labels, masks and crops.
"""
from __future__ import annotations

import hashlib
import os
from functools import lru_cache
from pathlib import Path

from ..types import Sample


def weights_identity(tag: str) -> str:
    """``none``, ``tag:<tag>`` or ``sha256:<digest>`` of a local file."""
    if tag in ("none", ""):
        return tag or "none"
    path = Path(os.path.expanduser(tag))
    if path.is_file():
        stat = path.stat()
        return "sha256:" + _file_sha256(str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    return f"tag:{tag}"


@lru_cache(maxsize=64)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:
    from ..backbones.weights import sha256_file

    return sha256_file(path)


def index_digest(samples: list[Sample], root: Path) -> str:
    """First 16 hex digits of the sha256 of the samples' relative paths, labels, masks and crops."""
    prefix = str(root).rstrip("/") + "/"

    def rel(path: Path | None) -> str:
        text = "" if path is None else str(path)
        return text[len(prefix):] if text.startswith(prefix) else text

    lines = sorted(
        f"{s.split}|{rel(s.image_path)}|{s.gt_label}|{rel(s.mask_path)}|{s.crop}|{s.defect_type}" for s in samples
    )
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]
