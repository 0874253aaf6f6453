"""The visual features PromptAD reads from a frozen CLIP, in one pass with V-V attention in every block.

- ``patches``: the V-V stream's patch tokens after the last block, ``ln_post`` and the projection;
- ``cls``: the ordinary stream's CLS token after ``ln_post`` and the projection;
- ``memory``: the ordinary stream's patch tokens after each of ``memory_layers`` (width-sized, no norm, no projection).

All are L2-normalised. With a :class:`~zsadbench.backbones.FeatureCache` the tower runs once per image.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from zsadbench.backbones import ClipBackbone, FeatureCache, cached_taps
from zsadbench.errors import ConfigError


@dataclass
class VisualFeatures:
    """``patches [B, N, D]``, ``cls [B, D]``, ``memory`` (one ``[B, N, W]`` per memory layer), all normalised."""

    patches: torch.Tensor
    cls: torch.Tensor
    memory: list[torch.Tensor]


def check_layers(backbone: ClipBackbone, layers: tuple[int, ...], field: str) -> None:
    bad = [i for i in layers if i > backbone.depth]
    if bad:
        raise ConfigError(f"{field} {list(layers)}: blocks {bad} do not exist in the {backbone.depth}-block {backbone.name}; "
                          f"use numbers from 1 to {backbone.depth}")


def extract(
    backbone: ClipBackbone,
    images: torch.Tensor,
    memory_layers: tuple[int, ...],
    *,
    cache: FeatureCache | None = None,
    precision: str = "fp32",
) -> VisualFeatures:
    """Features of RGB ``images [B, 3, S, S]`` in ``[0, 1]`` (normalised here with the backbone's mean/std), the
    tower run in the method's ``precision``."""
    normed = backbone.normalize(images.to(backbone.device))
    depth = backbone.depth
    indices = sorted(set(memory_layers) | {depth})
    taps = cached_taps(cache, backbone, normed, indices, vv_last=depth, precision=precision)
    position = {layer: i for i, layer in enumerate(taps.indices)}
    last = taps.patches[position[depth]].float()
    patches = backbone.project(backbone.post_norm(last))
    cls = backbone.project(backbone.post_norm(taps.cls.float()))
    memory = [F.normalize(taps.ordinary[position[layer]].float(), dim=-1) for layer in memory_layers]
    return VisualFeatures(F.normalize(patches, dim=-1), F.normalize(cls, dim=-1), memory)
