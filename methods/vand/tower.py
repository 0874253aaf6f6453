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

from zsadbench.backbones import FeatureCache, cached_taps, create_clip
from zsadbench.backbones.clip import ClipBackbone

from .config import VANDConfig


def build_tower(cfg: VANDConfig, pretrained: str, device: str) -> ClipBackbone:
    """The frozen CLIP of ``cfg`` with ``pretrained`` weights, its activation and its positions resized to
    ``image_size`` as ``cfg`` says (see :func:`~zsadbench.backbones.create_clip`, whose backbone name records both
    choices, so the feature cache never serves taps of a differently built tower)."""
    return create_clip(cfg.backbone, pretrained, image_size=cfg.image_size, device=device, activation=cfg.activation,
                       pos_interpolation=cfg.pos_interpolation)


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
