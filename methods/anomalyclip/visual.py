"""The frozen image tower's outputs that AnomalyCLIP-style methods score, served by the feature cache.

What is kept per image, before the visual projection (so a method may project it with the frozen
projection or with its own experts): the CLS token after the last block, raw (AnomalyCLIP's image feature is
``CLS @ proj`` *without* ``ln_post``), and for each tapped block the V-V-stream patches after ``ln_post``.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from zsadbench.backbones import FeatureCache, cached_taps
from zsadbench.backbones.clip import ClipBackbone
from zsadbench.errors import ConfigError
from zsadbench.training import check_layers


@dataclass
class TowerFeatures:
    """``cls``: ``[B, width]`` raw CLS; ``patches``: one ``[B, N, width]`` tensor per tapped block (``ln_post`` applied)."""

    cls: torch.Tensor
    patches: list[torch.Tensor]


def check_tower(backbone: ClipBackbone, layers: Sequence[int], vv_last: int, owner: str, field: str = "layers") -> None:
    """Raise naming ``owner.field`` or ``owner.vv_last`` when they do not fit the backbone's depth."""
    check_layers(backbone, layers, f"{owner}.{field}")
    depth = backbone.depth
    if vv_last > depth:
        raise ConfigError(
            f"{owner}.vv_last={vv_last} exceeds the {depth} visual blocks of {backbone.name}; "
            f"e.g. --set vv_last={max(1, depth * 19 // 24)}"
        )


def tower_features(
    backbone: ClipBackbone,
    images01: torch.Tensor,
    layers: Sequence[int],
    vv_last: int,
    *,
    cache: FeatureCache | None = None,
    precision: str = "fp32",
) -> TowerFeatures:
    """The frozen tower (through ``cache`` when given) on RGB images in ``[0, 1]``; float32, no gradient."""
    layers = [int(layer) for layer in layers]
    # CLS and V-V patches are all that is read: the last block's ordinary patch tokens are skipped
    taps = cached_taps(cache, backbone, backbone.normalize(images01), layers, vv_last=vv_last, precision=precision,
                       final_patches=vv_last == 0)
    position = {index: k for k, index in enumerate(taps.indices)}
    with torch.no_grad():
        patches = [backbone.post_norm(taps.patches[position[layer]].float()).float() for layer in layers]
    return TowerFeatures(cls=taps.cls.float(), patches=patches)
