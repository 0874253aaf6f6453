"""The frozen CLIP as the official VAND code builds and reads it.

The official loader builds the model at the requested size from the architecture's plain config (GELU in every
MLP, whatever the weights were trained with) and resizes the positional grid bicubically with antialiasing
(``resize_pos_embed``). The towers here are zsadbench's backbones with those two choices applied
(:func:`build_tower`); what VAND reads of the image tower is the raw residual stream after the tapped blocks (no
``ln_post``) and the final CLS (:func:`read_tower`).
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from open_clip.transformer import QuickGELU

from zsadbench.backbones import FeatureCache, cached_taps, create_clip
from zsadbench.backbones.clip import ClipBackbone
from zsadbench.errors import ConfigError

from .config import VANDConfig

_ACTIVATIONS = {"gelu": nn.GELU, "quickgelu": QuickGELU}


def set_activation(backbone: ClipBackbone, activation: str) -> None:
    """Put ``activation`` (``gelu`` or ``quickgelu``) into the MLP of every block of both towers."""
    kind = _ACTIVATIONS[activation]
    for module in backbone.model.modules():
        mlp = getattr(module, "mlp", None)
        if isinstance(getattr(mlp, "gelu", None), nn.Module) and not isinstance(mlp.gelu, kind):
            mlp.gelu = kind()


def resize_positions(backbone: ClipBackbone, image_size: int, interpolation: str) -> None:
    """Run ``backbone`` at ``image_size`` px, resizing the grid part of its positional embedding with
    ``interpolation``: ``bilinear`` (the framework's resize) or ``bicubic`` with antialiasing and
    ``align_corners=False``, in float32, as the official ``resize_pos_embed`` does."""
    if interpolation == "bilinear":
        backbone.set_image_size(image_size)
        return
    patch = backbone.patch_size
    if image_size <= 0 or image_size % patch:
        raise ConfigError(
            f"VANDConfig.image_size={image_size} must be a multiple of the patch size {patch} of {backbone.name}; "
            f"e.g. --set image_size={max(1, round(image_size / patch)) * patch}"
        )
    side = image_size // patch
    if (side, side) == backbone.grid_size:
        return
    visual = backbone.visual
    old = visual.positional_embedding.data
    height, width = backbone.grid_size
    grid = old[1:].float().reshape(1, height, width, -1).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=(side, side), mode="bicubic", antialias=True, align_corners=False)
    resized = torch.cat([old[:1], grid.permute(0, 2, 3, 1).reshape(side * side, -1).to(old.dtype)])
    visual.positional_embedding = nn.Parameter(resized, requires_grad=visual.positional_embedding.requires_grad)
    visual.image_size = (image_size, image_size)
    visual.grid_size = (side, side)


def build_tower(cfg: VANDConfig, pretrained: str, device: str) -> ClipBackbone:
    """The frozen CLIP of ``cfg`` with ``pretrained`` weights, its activation and input size set.

    Its name records both choices, so the feature cache never serves taps of a differently built tower.
    """
    backbone = create_clip(cfg.backbone, pretrained, device=device)
    set_activation(backbone, cfg.activation)
    resize_positions(backbone, cfg.image_size, cfg.pos_interpolation)
    backbone.name = f"{backbone.name} ({cfg.activation}, {cfg.pos_interpolation} positions)"
    return backbone


def read_tower(
    backbone: ClipBackbone,
    images01: torch.Tensor,
    layers: Sequence[int],
    *,
    cache: FeatureCache | None = None,
    precision: str = "fp32",
) -> tuple[dict[int, torch.Tensor], torch.Tensor]:
    """``({block: [B, N, width]}, [B, width])``: the raw patch tokens after each block of ``layers`` and the raw
    final CLS of RGB images in ``[0, 1]``; float32, no gradient, through ``cache`` when given."""
    taps = cached_taps(cache, backbone, backbone.normalize(images01), sorted(set(layers)), precision=precision)
    return {index: p.float() for index, p in zip(taps.indices, taps.patches)}, taps.cls.float()
