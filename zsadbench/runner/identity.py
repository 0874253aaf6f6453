"""The parts of a cell's identity that are not in its config: weights and data.

A local weights file is identified by its sha256 (so a changed file at the same path is never mistaken for
the old one), a tag by the tag (its file is checked against the tag's checksum when loaded), random weights
by ``none`` (they are seeded from the model name). A category's data is identified by a digest of its
index: file names relative to the dataset root, labels, masks and crops.
"""
from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from ..config import MethodConfig
from ..method import Method, is_random_weights
from ..types import Sample


@dataclass(frozen=True)
class WeightsSpec:
    """The weights of a method variant, resolved once per run: ``tag`` (a known tag, a local file or ``none``)
    and ``identity`` (see :func:`weights_identity`)."""

    tag: str
    identity: str

    @property
    def random(self) -> bool:
        """Whether the backbone runs with random weights."""
        return is_random_weights(self.tag)

    @classmethod
    def resolve(cls, method: type[Method], config: MethodConfig, pretrained: str) -> WeightsSpec:
        """The weights ``--pretrained`` gives ``method`` with ``config`` (a local file is hashed here)."""
        tag = method.resolve_weights(config, pretrained)
        return cls(tag, weights_identity(tag))


def weights_identity(tag: str) -> str:
    """``none``, ``tag:<tag>`` or ``sha256:<digest>`` of a local file."""
    if tag in ("none", ""):
        return tag or "none"
    path = Path(os.path.expanduser(tag))
    if path.is_file():
        from ..backbones.weights import sha256_file  # memoised: loading the file later reuses this digest

        return "sha256:" + sha256_file(path)
    return f"tag:{tag}"


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
