"""The AdaCLIP network: a frozen CLIP, hybrid prompts in both towers, learnable projections and HSF.

Forward pass (official ``AdaCLIP.forward``, commit e27ee32):

1. The image's frozen CLIP embedding (final CLS → ``ln_post`` → projection, no prompts) makes the dynamic
   prompts of both towers.
2. The image tower runs with the visual prompts (``deep_tokens``: put in before block 1, replaced before
   blocks 2..depth). Each tapped block's raw patch tokens (no ``ln_post``) go through their own learnable
   ``Linear(width, embed_dim)``; the final CLS (``ln_post``, projection) through a learnable
   ``Linear(embed_dim, embed_dim)``; all are L2-normalised.
3. The text tower encodes each image's class-name ensemble with that image's text prompts.
4. Per layer, the patch logits are ``logit_scale · cos(patch, [t_n, t_a])``. The image feature is the CLS
   feature, mixed with the HSF feature when HSF is on; its logits make the image probabilities.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from zsadbench.backbones import FeatureCache, PromptTextEncoder, autocast, backbone_namespace
from zsadbench.backbones.clip import ClipBackbone
from zsadbench.errors import ConfigError
from zsadbench.training import FrozenBackboneModel, check_layers

from .config import AdaCLIPConfig
from .hsf import fuse
from .prompts import ClassTexts, HybridPrompts, encode_classes


class AdaCLIPHead(nn.Module):
    """Everything AdaCLIP learns: the prompts of each prompted tower, one patch projection per tapped layer and
    the CLS projection (PyTorch's default initialisation for the linear maps)."""

    def __init__(self, cfg: AdaCLIPConfig, visual_width: int, text_width: int, embed_dim: int) -> None:
        super().__init__()
        static, dynamic = "S" in cfg.prompting_type, "D" in cfg.prompting_type
        half = cfg.prompt_cast == "fp16"
        self.visual_prompts = HybridPrompts(
            cfg.prompting_depth, cfg.prompting_length, visual_width, embed_dim, static=static, dynamic=dynamic,
            init_std=cfg.prompt_init_std, half=half,
        ) if cfg.visual_prompts else None
        self.text_prompts = HybridPrompts(
            cfg.prompting_depth - 1, cfg.prompting_length, text_width, embed_dim, static=static, dynamic=dynamic,
            init_std=cfg.prompt_init_std, half=half,
        ) if cfg.text_prompts else None
        self.patch_projections = nn.ModuleList(nn.Linear(visual_width, embed_dim) for _ in cfg.layers)
        self.cls_projection = nn.Linear(embed_dim, embed_dim)


@dataclass
class AdaCLIPOutput:
    """One forward pass: per tapped layer the patch logits ``[B, N, 2]`` (normal, anomalous; ``N`` in row-major
    grid order) and the image logits ``[B, 2]``."""

    patch_logits: list[torch.Tensor]
    image_logits: torch.Tensor


def check_towers(backbone: ClipBackbone, encoder: PromptTextEncoder, cfg: AdaCLIPConfig) -> None:
    """Raise naming ``prompting_depth`` or ``prompting_length`` when the prompts do not fit the towers."""
    towers = {"visual": backbone.depth} if cfg.visual_prompts else {}
    if "L" in cfg.prompting_branch:
        towers["text"] = encoder.depth
    for tower, depth in towers.items():
        if cfg.prompting_depth > depth:
            raise ConfigError(
                f"AdaCLIPConfig.prompting_depth={cfg.prompting_depth} prompts more blocks than the {depth} {tower} "
                f"blocks of {backbone.name}; use --set prompting_depth={min(towers.values())}"
            )
    context = int(backbone.model.positional_embedding.shape[0])
    if cfg.text_prompts and cfg.prompting_length >= context:
        raise ConfigError(
            f"AdaCLIPConfig.prompting_length={cfg.prompting_length} text prompt tokens do not fit after the start "
            f"token of the {context}-token text sequence; use --set prompting_length=5 (the default)"
        )


class AdaCLIPModel(FrozenBackboneModel):
    """Frozen ``backbone`` plus :class:`AdaCLIPHead`; only ``head`` has parameters to train. ``precision`` is the
    run's: ``bf16`` runs the image tower under bf16 autocast."""

    def __init__(self, backbone: ClipBackbone, cfg: AdaCLIPConfig, precision: str = "fp32") -> None:
        spread = ",".join(str(max(1, backbone.depth * i // 4)) for i in range(1, 5))
        check_layers(backbone, cfg.layers, "AdaCLIPConfig.layers", spread)
        super().__init__(backbone)
        self.encoder = PromptTextEncoder(backbone)
        check_towers(backbone, self.encoder, cfg)
        self.head = AdaCLIPHead(cfg, backbone.width, self.encoder.width, backbone.embed_dim)
        self.texts = ClassTexts(self.encoder)
        self.cfg = cfg
        self.precision = precision
        self._fixed_text: dict[str, torch.Tensor] = {}

    def frozen_embedding(self, images: torch.Tensor, cache: FeatureCache | None = None) -> torch.Tensor:
        """``[B, embed_dim]``: the plain tower's final CLS after ``ln_post`` and the projection, for normalised
        images; through ``cache`` when given (the tower is frozen, so each image's embedding never changes)."""
        backbone = self.backbone

        def compute(subset: torch.Tensor) -> dict[str, torch.Tensor]:
            with torch.no_grad(), autocast(subset.device, self.precision):
                taps = backbone.forward_intermediates(subset, [backbone.depth], norm=True, project=True)
            return {"embedding": taps.cls.float()}

        if cache is None:
            return compute(images)["embedding"]
        namespace = backbone_namespace(backbone, [backbone.depth], output="embedding", precision=self.precision)
        return cache.batch(images, namespace, compute)["embedding"]

    def text_features(self, categories: Sequence[str], embedding: torch.Tensor | None) -> torch.Tensor:
        """``[B, 2, embed_dim]`` normalised (normal, anomalous) text features of each image's category; without
        text prompts they depend on the category alone and are computed once per category."""
        head = self.head
        if head.text_prompts is not None:
            return encode_classes(self.encoder, self.texts, categories, head.text_prompts(embedding))
        missing = [c for c in dict.fromkeys(categories) if c not in self._fixed_text]
        if missing:
            with torch.no_grad():
                for category, pair in zip(missing, encode_classes(self.encoder, self.texts, missing)):
                    self._fixed_text[category] = pair
        return torch.stack([self._fixed_text[c] for c in categories])

    def forget_text(self) -> None:
        """Drop the text features kept per class (made under ``torch.inference_mode`` when ``predict`` ran there,
        they could not enter a training graph)."""
        self._fixed_text.clear()

    def forward(self, images01: torch.Tensor, categories: Sequence[str],
                cache: FeatureCache | None = None) -> AdaCLIPOutput:
        """The logits of RGB images in ``[0, 1]`` at the backbone's size; ``categories`` names each image's class
        (the text ensemble's object); ``cache`` serves the frozen embedding."""
        cfg, head, backbone = self.cfg, self.head, self.backbone
        images = backbone.normalize(images01)
        embedding = self.frozen_embedding(images, cache) if cfg.dynamic else None
        prompts = head.visual_prompts(embedding) if head.visual_prompts is not None else []
        with autocast(images.device, self.precision):
            taps = backbone.forward_intermediates(images, list(cfg.layers), deep_tokens=prompts)
        patches = [F.normalize(proj(raw.float()), dim=-1) for proj, raw in zip(head.patch_projections, taps.patches)]
        cls = backbone.project(backbone.post_norm(taps.cls.float()))
        image = F.normalize(head.cls_projection(cls.float()), dim=-1)
        text = self.text_features(categories, embedding)
        patch_logits = [cfg.logit_scale * p @ text.transpose(1, 2) for p in patches]
        if cfg.use_hsf:
            fused = fuse(patches, patch_logits, cfg.k_clusters, cfg.hsf_tokens_per_cluster, cfg.hsf_seed)
            image = F.normalize(cfg.hsf_alpha * fused + (1 - cfg.hsf_alpha) * image, dim=-1)
        image_logits = cfg.logit_scale * (image.unsqueeze(1) @ text.transpose(1, 2)).squeeze(1)
        return AdaCLIPOutput(patch_logits, image_logits)


def upsample_logits(logits: torch.Tensor, grid: tuple[int, int], size: int) -> torch.Tensor:
    """``[B, N, 2]`` patch logits → ``[B, 2, size, size]``, bilinear with ``align_corners=True`` as the
    official code upsamples them (before the softmax)."""
    maps = logits.transpose(1, 2).reshape(logits.shape[0], 2, *grid)
    return F.interpolate(maps, size=(size, size), mode="bilinear", align_corners=True)
