"""The MPA / MPAMA network on a frozen AnomalyCLIP-style CLIP.

Visual side: the pre-projection tokens v̄ (V-V stream of ``layer`` → ``ln_post``, see
:mod:`zsadbench.methods.anomalyclip.visual`) are projected by the frozen projection (MPA) or by the MoE
(MPAMA) and pooled per perception level: post-projection pooling AGG_p(h(v̄)) without MoE or with
``routing="post"``, pre-aggregation h(AGG_p(v̄)) with ``routing="pre"`` (the two agree for the frozen linear
projection). Level map: softmax of ``cos(v^p, ℓ^p) / τ`` over (normal, anomaly). Image feature: final CLS
@ proj (no ``ln_post``) against the global prompts.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from zsadbench.backbones import PromptTextEncoder
from zsadbench.backbones.clip import ClipBackbone
from zsadbench.methods.anomalyclip import check_text_depth, check_tower, patch_probabilities, two_class_logits
from zsadbench.training import FrozenBackboneModel

from .config import MPAConfig
from .moe import MoEProjection
from .pooling import perception_pool
from .prompts import MultiPerceptionPrompts


class MPAModel(FrozenBackboneModel):
    """Frozen ``backbone``, :class:`MultiPerceptionPrompts` and, for MPAMA's stage 2, a :class:`MoEProjection`."""

    def __init__(self, backbone: ClipBackbone, cfg: MPAConfig) -> None:
        owner = type(cfg).__name__
        check_tower(backbone, [cfg.layer], cfg.vv_last, owner, "layer")
        super().__init__(backbone)
        self.encoder = PromptTextEncoder(backbone)
        check_text_depth(self.encoder, cfg.deep_depth, owner)
        self.layout = cfg.layout()
        self.prompts = MultiPerceptionPrompts(
            self.encoder, self.layout, n_ctx=cfg.n_ctx, deep_tokens=cfg.deep_tokens, deep_depth=cfg.deep_depth,
            init_std=cfg.init_std, bridge_hidden_ratio=cfg.bridge_hidden_ratio,
        )
        self.moe: MoEProjection | None = None
        self.routing = getattr(cfg, "routing", "post")
        self.cfg = cfg

    def text_features(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(local [L, 2, D], global [2, D])`` normalised text features."""
        return self.prompts(self.encoder)

    def _pool(self, tokens: torch.Tensor, p: int) -> torch.Tensor:
        """AGG_p of projected tokens (L2-normalised first when ``pool_normalized``)."""
        if self.cfg.pool_normalized:
            tokens = F.normalize(tokens, dim=-1)
        return perception_pool(tokens, self.grid, p, self.cfg.pool_padding)

    def level_tokens(self, preprojection: torch.Tensor) -> tuple[list[torch.Tensor], torch.Tensor | None, torch.Tensor]:
        """Projected, pooled tokens ``[B, N, D]`` per level from ``[B, N, W]`` pre-projection tokens, plus the
        expert usage ``[levels, E]`` (``[1, E]`` for post-routing; ``None`` without MoE) and the balance term."""
        levels = self.layout.levels
        zero = preprojection.new_zeros(())
        if self.moe is None:
            projected = self.backbone.project(preprojection.float())
            return [self._pool(projected, p) for p in levels], None, zero
        if self.routing == "post":
            routed = self.moe(preprojection)
            return [self._pool(routed.tokens, p) for p in levels], routed.counts.unsqueeze(0), routed.balance
        outputs, counts, balance = [], [], zero
        # Without gradients the experts run once on the patch tokens and their outputs are pooled per level:
        # AGG_p is a linear average, so AGG_p(x) @ W = AGG_p(x @ W) (the same up to float rounding).
        shared = None if torch.is_grad_enabled() else self.moe.expert_outputs(preprojection)
        for p in levels:
            pooled = perception_pool(preprojection.float(), self.grid, p, self.cfg.pool_padding)
            routed = self.moe(pooled, None if shared is None else self._pool_experts(shared, p))
            outputs.append(routed.tokens)
            counts.append(routed.counts)
            balance = balance + routed.balance / len(levels)
        return outputs, torch.stack(counts), balance

    def _pool_experts(self, outputs: torch.Tensor, p: int) -> torch.Tensor:
        """AGG_p of expert outputs ``[B, N, E, D]``, every expert's channels pooled alike."""
        batch, count, experts, dim = outputs.shape
        pooled = perception_pool(outputs.reshape(batch, count, experts * dim), self.grid, p, self.cfg.pool_padding)
        return pooled.reshape(batch, count, experts, dim)

    def level_maps(self, tokens: list[torch.Tensor], local_text: torch.Tensor) -> list[torch.Tensor]:
        """One ``[B, 2, h, w]`` probability map per level (normal, anomaly) on the patch grid."""
        return [
            patch_probabilities(t, local_text[i], self.cfg.temperature, self.grid) for i, t in enumerate(tokens)
        ]

    def image_logits(self, cls: torch.Tensor, global_text: torch.Tensor) -> torch.Tensor:
        """``[B, 2]``: ``cos(CLS @ proj, global text) / τ``."""
        return two_class_logits(self.backbone.project(cls.float()), global_text, self.cfg.temperature)
