"""The VisualAD network: a frozen ViT with two learnable tokens, a trainable ``ln_post``, SCA and SAF per tap.

Forward pass (reference code, commit 8479132):

1. The anomaly and normal tokens are put before CLS, ``[anomaly, normal, CLS, (registers), patches]``, each with
   the CLS position's embedding, and the frozen backbone runs unchanged (no mask, no V-V path).
2. The patches of every tapped block and the two tokens after the last block go through one shared,
   trainable copy of the backbone's final norm (``ln_post`` for CLIP, ``norm`` for DINOv2).
3. Per tapped layer ``l``: ``SCA_l`` enhances both final tokens with that layer's normalised patches, ``SAF_l``
   recalibrates the patches, and the layer map is ``cos(SAF_l(P_l), a_l) − cos(SAF_l(P_l), n_l)`` on the grid.
"""
from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn as nn

from zsadbench.backbones import autocast
from zsadbench.errors import ConfigError
from zsadbench.training import FrozenBackboneModel, check_layers

from .maps import layer_map
from .saf import SelfAlignment
from .sca import SpatialCrossAttention


def final_norm_of(backbone: nn.Module) -> nn.Module:
    """The backbone's final norm, the module VisualAD copies and trains: CLIP ``visual.ln_post``, timm ``norm``."""
    visual = getattr(backbone, "visual", None)
    if visual is not None and isinstance(getattr(visual, "ln_post", None), nn.Module):
        return visual.ln_post
    inner = getattr(backbone, "model", None)
    if inner is not None and isinstance(getattr(inner, "norm", None), nn.Module):
        return inner.norm
    raise ConfigError(f"{type(backbone).__name__} has no final norm (CLIP visual.ln_post or timm norm) for VisualAD")


class VisualADHead(nn.Module):
    """Everything VisualAD learns: the two tokens, ``ln_post``, and one SCA and one SAF per tapped layer.

    ``final_norm`` is copied (the backbone's own stays frozen). Tokens are ``token_init_scale · width^-½ · N(0,1)``.
    """

    def __init__(
        self,
        width: int,
        num_layers: int,
        final_norm: nn.Module,
        *,
        token_init_scale: float = 0.1,
        num_anchors: int = 4,
        sca_dropout: float = 0.1,
        max_patches: int = 1536,
        res_scale_init: float = 0.01,
        sca_init_std: float = 0.02,
        saf_hidden_ratio: float = 1.0,
        saf_dropout: float = 0.1,
    ) -> None:
        super().__init__()
        scale = width**-0.5 * token_init_scale
        self.anomaly_token = nn.Parameter(torch.randn(width) * scale)
        self.normal_token = nn.Parameter(torch.randn(width) * scale)
        self.ln_post = copy.deepcopy(final_norm).float().requires_grad_(True)
        self.sca = nn.ModuleList(
            SpatialCrossAttention(width, num_anchors, sca_dropout, max_patches, res_scale_init, sca_init_std)
            for _ in range(num_layers)
        )
        self.saf = nn.ModuleList(SelfAlignment(width, saf_hidden_ratio, saf_dropout) for _ in range(num_layers))

    def tokens(self) -> torch.Tensor:
        """``[2, width]``: the anomaly token, then the normal token."""
        return torch.stack([self.anomaly_token, self.normal_token])


@dataclass
class VisualADOutput:
    """One forward pass: raw per-layer maps on the patch grid ``[B, L, h, w]`` and the SCA-enhanced tokens
    ``[B, L, C]`` of each tapped layer (``anomaly[:, -1]``/``normal[:, -1]`` feed the token hinge loss)."""

    maps: torch.Tensor
    anomaly: torch.Tensor
    normal: torch.Tensor


class VisualADModel(FrozenBackboneModel):
    """Frozen backbone + :class:`VisualADHead`. ``forward`` takes RGB images in ``[0, 1]`` at the backbone's size.

    ``backbone`` must offer ``normalize``, ``forward_intermediates(images, indices, extra_tokens=, norm=False)``
    (returning :class:`zsadbench.backbones.Intermediates`), ``width``, ``depth`` and ``grid_size``.
    ``precision`` is the run's (``--precision``): ``bf16`` runs the backbone under bf16 autocast.
    """

    def __init__(self, backbone: nn.Module, head: VisualADHead, layers: Sequence[int], precision: str = "fp32") -> None:
        depth = backbone.depth
        spread = sorted({max(1, depth * i // 4) for i in range(1, 5)})
        check_layers(backbone, layers, "VisualADConfig.layers", ",".join(map(str, spread)))
        super().__init__(backbone)
        self.head = head
        self.layers = tuple(int(layer) for layer in layers)
        self.precision = precision

    def forward(self, images01: torch.Tensor, norm: nn.Module | None = None) -> VisualADOutput:
        """``norm`` replaces the head's trained ``ln_post`` (the release's test script evaluates with the
        backbone's original one)."""
        head = self.head
        norm = head.ln_post if norm is None else norm
        images = self.backbone.normalize(images01)
        with autocast(images.device, self.precision):
            taps = self.backbone.forward_intermediates(images, list(self.layers), extra_tokens=head.tokens(), norm=False)
        final = norm(taps.extra.float())  # [B, 2, C]
        maps, anomaly, normal = [], [], []
        for index, raw in enumerate(taps.patches):
            patches = norm(raw.float())
            enhanced = head.sca[index](final, patches)
            maps.append(layer_map(head.saf[index](patches), enhanced[:, 0], enhanced[:, 1], self.grid))
            anomaly.append(enhanced[:, 0])
            normal.append(enhanced[:, 1])
        return VisualADOutput(torch.stack(maps, 1), torch.stack(anomaly, 1), torch.stack(normal, 1))
