"""The AnomalyCLIP network: a frozen CLIP (V-V attention in the top blocks) and the learnable prompts.

Image side (frozen, see :mod:`.visual`): patches of each tapped block = V-V stream → ``ln_post`` → ``proj``;
image feature = final CLS → ``proj`` (no ``ln_post``). Text side: the two object-agnostic prompts, one
pass. Per layer the patch map is the two-class softmax of ``cos / 0.07`` on the grid; the image logits are
the same on the image feature.
"""
from __future__ import annotations

import torch

from zsadbench.backbones import PromptTextEncoder
from zsadbench.backbones.clip import ClipBackbone
from zsadbench.training import FrozenBackboneModel

from .config import AnomalyCLIPConfig
from .prompts import ObjectAgnosticPrompts, check_text_depth
from .scoring import patch_probabilities, two_class_logits
from .visual import TowerFeatures, check_tower


class AnomalyCLIPModel(FrozenBackboneModel):
    """Frozen ``backbone`` plus :class:`ObjectAgnosticPrompts`; only ``prompts`` has parameters to train."""

    def __init__(self, backbone: ClipBackbone, cfg: AnomalyCLIPConfig) -> None:
        check_tower(backbone, cfg.layers, cfg.vv_last, type(cfg).__name__)
        super().__init__(backbone)
        self.encoder = PromptTextEncoder(backbone)
        check_text_depth(self.encoder, cfg.deep_depth, type(cfg).__name__)
        self.prompts = ObjectAgnosticPrompts(self.encoder, cfg.n_ctx, cfg.deep_tokens, cfg.deep_depth, cfg.init_std,
                                             half_deep=cfg.deep_prompt_cast == "fp16")
        self.cfg = cfg

    def text_features(self) -> torch.Tensor:
        """``[2, embed_dim]`` normalised (normal, anomaly) text features."""
        return self.prompts(self.encoder)

    def patch_maps(self, tower: TowerFeatures, text: torch.Tensor) -> list[torch.Tensor]:
        """One ``[B, 2, h, w]`` probability map per tapped layer, on the patch grid."""
        return [
            patch_probabilities(self.backbone.project(p), text, self.cfg.temperature, self.grid) for p in tower.patches
        ]

    def image_logits(self, tower: TowerFeatures, text: torch.Tensor) -> torch.Tensor:
        """``[B, 2]``: ``cos(CLS @ proj, text) / temperature``."""
        return two_class_logits(self.backbone.project(tower.cls), text, self.cfg.temperature)
