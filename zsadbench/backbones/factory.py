"""``create_backbone``: one entry point for every vision backbone, dispatching on the model name."""
from __future__ import annotations

import torch

from .clip import ClipBackbone
from .clip_factory import create_clip
from .dinov2 import Dinov2Backbone, create_dinov2


def create_backbone(
    name: str, pretrained: str = "none", *, image_size: int | None = None, device: str | torch.device = "cpu"
) -> ClipBackbone | Dinov2Backbone:
    """A frozen, eval-mode backbone: :func:`create_dinov2` for DINOv2 names (``*dinov2*``), :func:`create_clip`
    for every other name (an open_clip architecture). ``pretrained`` and ``image_size`` are passed on."""
    if "dinov2" in name.lower():
        return create_dinov2(name, pretrained, image_size=image_size, device=device)
    return create_clip(name, pretrained, image_size=image_size, device=device)
