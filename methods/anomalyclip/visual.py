"""The frozen image tower's outputs that AnomalyCLIP-style methods score, served by the feature cache.

What is kept per image, before the visual projection (so a method may project it with the frozen
projection or with its own experts): the CLS token after the last block, raw (AnomalyCLIP's image feature is
``CLS @ proj`` *without* ``ln_post``), and for each tapped block the V-V-stream patches after ``ln_post``.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from zsadbench.backbones import FeatureCache, autocast, backbone_namespace
from zsadbench.backbones.clip import ClipBackbone
from zsadbench.errors import ConfigError


@dataclass
class TowerFeatures:
    """``cls``: ``[B, width]`` raw CLS; ``patches``: one ``[B, N, width]`` tensor per tapped block (``ln_post`` applied)."""

    cls: torch.Tensor
    patches: list[torch.Tensor]


def check_tower(backbone: ClipBackbone, layers: Sequence[int], vv_last: int, owner: str) -> None:
    """Raise naming the config field when ``layers`` or ``vv_last`` do not fit the backbone's depth."""
    depth = backbone.depth
    bad = [layer for layer in layers if not 1 <= layer <= depth]
    if bad:
        raise ConfigError(
            f"{owner}: layer(s) {bad} outside 1..{depth}, the visual blocks of {backbone.name}; "
            f"e.g. --set layers={depth}"
        )
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
    """Run (or read from ``cache``) the frozen tower on RGB images in ``[0, 1]``; float32, no gradient."""
    layers = [int(layer) for layer in layers]

    def compute(subset: torch.Tensor) -> dict[str, torch.Tensor]:
        with torch.no_grad(), autocast(subset.device, precision):  # type: ignore[arg-type]
            out = backbone.forward_intermediates(backbone.normalize(subset), layers, vv_last=vv_last)
            found = {"cls": out.cls.float()}
            for index, patches in zip(out.indices, out.patches):
                found[f"patches.{index}"] = backbone.post_norm(patches).float()
        return found

    if cache is None:
        found = compute(images01)
    else:
        namespace = backbone_namespace(
            backbone, layers, vv_last=vv_last, precision=precision, content="raw-cls+ln_post-patches"
        )
        found = cache.batch(images01, namespace, compute)
    return TowerFeatures(cls=found["cls"], patches=[found[f"patches.{layer}"] for layer in layers])
