"""The visual features PromptAD reads from a frozen CLIP, in one pass with V-V attention in every block.

- ``patches``: the V-V stream's patch tokens after the last block, ``ln_post`` and the projection;
- ``cls``: the ordinary stream's CLS token after ``ln_post`` and the projection;
- ``memory``: the ordinary stream's patch tokens of each of ``memory_layers`` (width-sized, no norm, no projection):
  with ``memory_tap="official"`` block L's output plus block L+1's attention residual (the stream inside block
  L+1 before its MLP, what the official code's view of block L's output holds once block L+1 has added to it in
  place), with ``"block"`` block L's output.

All are L2-normalised. With a :class:`~zsadbench.backbones.FeatureCache` the tower runs once per image.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from zsadbench.backbones import ClipBackbone, FeatureCache, cached_taps
from zsadbench.errors import ConfigError

MEMORY_TAPS = ("official", "block")


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


def check_memory_tap(backbone: ClipBackbone, layers: tuple[int, ...], memory_tap: str, field: str) -> None:
    """``memory_tap="official"`` reads block L+1 for memory layer L, so L cannot be the last block."""
    if memory_tap not in MEMORY_TAPS:
        raise ConfigError(f"memory_tap={memory_tap!r} must be one of {', '.join(map(repr, MEMORY_TAPS))}")
    depth = backbone.depth
    if memory_tap == "official" and depth in layers:
        raise ConfigError(
            f"{field} {list(layers)} with memory_tap='official': block {depth} is the last of the {depth}-block "
            f"{backbone.name}, so there is no next block whose attention residual the official memory adds; use memory "
            f"layers below {depth} or set memory_tap='block'"
        )


def extract(
    backbone: ClipBackbone,
    images: torch.Tensor,
    memory_layers: tuple[int, ...],
    *,
    memory_tap: str = "official",
    cache: FeatureCache | None = None,
    precision: str = "fp32",
) -> VisualFeatures:
    """Features of RGB ``images [B, 3, S, S]`` in ``[0, 1]`` (normalised here with the backbone's mean/std), the
    tower run in the method's ``precision``; ``memory_tap`` as in :class:`~.config.PromptADConfig`."""
    check_memory_tap(backbone, memory_layers, memory_tap, "memory_layers")
    normed = backbone.normalize(images.to(backbone.device))
    depth = backbone.depth
    official = memory_tap == "official"
    indices = [depth] if official else sorted(set(memory_layers) | {depth})
    attention_taps = tuple(sorted({layer + 1 for layer in memory_layers})) if official else ()
    # the official memory reads attention taps, so the last block's ordinary patches are needed by nothing else
    taps = cached_taps(cache, backbone, normed, indices, vv_last=depth, precision=precision,
                       attention_taps=attention_taps, final_patches=not official or depth in attention_taps)
    position = {layer: i for i, layer in enumerate(taps.indices)}
    last = taps.patches[position[depth]].float()
    patches = backbone.project(backbone.post_norm(last))
    cls = backbone.project(backbone.post_norm(taps.cls.float()))
    raw = [taps.attention[layer + 1] if official else taps.ordinary[position[layer]] for layer in memory_layers]
    memory = [F.normalize(m.float(), dim=-1) for m in raw]
    return VisualFeatures(F.normalize(patches, dim=-1), F.normalize(cls, dim=-1), memory)
