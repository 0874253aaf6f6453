"""The FAPrompt network: AnomalyCLIP's frozen CLIP (V-V attention in the top blocks), the compound abnormality
prompts and the abnormality prior network.

Per image: patches of ``layer`` = V-V stream → ``ln_post`` → ``proj`` → L2 norm; image feature = final CLS →
``proj`` (no ``ln_post``) → L2 norm. Prior-free text: the normal feature and the mean of the abnormality
prompts' raw features, normalised. The prior-free map (two-class softmax of ``cos / 0.07``) picks the patch
tokens the prior network reads; its prior shifts every abnormal token, which gives the image its own
abnormality feature. The conditioned map and the global logits use that conditioned text.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from zsadbench.backbones import PromptTextEncoder
from zsadbench.backbones.clip import ClipBackbone
from zsadbench.errors import ConfigError
from zsadbench.maps import upsample
from zsadbench.methods.anomalyclip import TowerFeatures, check_text_depth, check_tower, two_class_logits
from zsadbench.training import FrozenBackboneModel

from .config import FAPromptConfig
from .prompts import AbnormalityPrior, CompoundPrompts

#: Raw prior-free text features: normal ``[1, D]`` and one per abnormality prompt ``[P, D]``.
FreeText = tuple[torch.Tensor, torch.Tensor]


@dataclass
class Outputs:
    """One batch through FAPrompt: ``free`` / ``conditioned`` probability maps ``[B, 2, h, w]`` (normal,
    anomaly) on the patch grid, the global ``logits`` ``[B, 2]``, the ``prior`` ``[B, W]`` of each image, the
    ``selected`` patch indices ``[B, k]`` it was computed from and the raw prior-free abnormality features
    ``abnormal`` ``[P, D]``."""

    free: torch.Tensor
    conditioned: torch.Tensor
    logits: torch.Tensor
    prior: torch.Tensor
    selected: torch.Tensor
    abnormal: torch.Tensor


def text_pair(normal: torch.Tensor, abnormal: torch.Tensor) -> torch.Tensor:
    """``[S, 2, D]`` normalised (normal, mean abnormality) features from raw ``[1, D]`` and ``[S, P, D]``."""
    pair = torch.stack([normal.expand(abnormal.shape[0], -1), abnormal.mean(dim=1)], dim=1)
    return F.normalize(pair, dim=-1)


class FAPromptModel(FrozenBackboneModel):
    """Frozen ``backbone`` plus the learnable ``learned`` modules: ``prompts`` (:class:`CompoundPrompts`) and
    ``prior`` (:class:`AbnormalityPrior`)."""

    def __init__(self, backbone: ClipBackbone, cfg: FAPromptConfig) -> None:
        owner = type(cfg).__name__
        check_tower(backbone, [cfg.layer], cfg.vv_last, owner, "layer")
        super().__init__(backbone)
        self.encoder = PromptTextEncoder(backbone)
        check_text_depth(self.encoder, cfg.deep_depth, owner)
        patches = self.grid[0] * self.grid[1]
        if cfg.prior_patches > patches:
            raise ConfigError(f"{owner}.prior_patches={cfg.prior_patches} exceeds the {patches} patches of "
                              f"{backbone.name} at {cfg.image_size} px; use --set prior_patches={patches} or fewer")
        if cfg.prior_patches * backbone.embed_dim < cfg.prior_reduction:
            raise ConfigError(f"{owner}.prior_reduction={cfg.prior_reduction} leaves the prior network no hidden "
                              f"unit ({cfg.prior_patches} × {backbone.embed_dim} inputs); lower it")
        self.learned = nn.ModuleDict({
            "prompts": CompoundPrompts(self.encoder, cfg.normal_ctx, cfg.abnormal_ctx, cfg.abnormal_prompts,
                                       cfg.deep_tokens, cfg.deep_depth, cfg.init_std,
                                       half_deep=cfg.deep_prompt_cast == "fp16"),
            "prior": AbnormalityPrior(cfg.prior_patches, backbone.embed_dim, self.encoder.width, cfg.prior_reduction),
        })
        self.cfg = cfg

    @property
    def prompts(self) -> CompoundPrompts:
        return self.learned["prompts"]

    @property
    def prior(self) -> AbnormalityPrior:
        return self.learned["prior"]

    def free_text(self) -> FreeText:
        """The raw prior-free features: normal ``[1, D]`` and abnormality ``[P, D]`` (one text pass)."""
        normal, abnormal = self.prompts(self.encoder, self.prompts.ctx_normal.new_zeros(1, self.encoder.width))
        return normal, abnormal[0]

    def select(self, free: torch.Tensor) -> torch.Tensor:
        """``[B, k]`` indices of the patches the prior reads, from the prior-free anomaly probabilities ``[B, N]``."""
        k = self.cfg.prior_patches
        if self.cfg.prior_selection == "top":
            return free.topk(k, dim=1).indices
        return torch.arange(k, device=free.device).expand(free.shape[0], k)

    def forward(self, tower: TowerFeatures, free_text: FreeText | None = None) -> Outputs:
        """Maps, logits and prior of a batch; ``free_text`` (from :meth:`free_text`) is computed when not given."""
        cfg, grid = self.cfg, self.grid
        normal, abnormal = self.free_text() if free_text is None else free_text
        patches = F.normalize(self.backbone.project(tower.patches[0]), dim=-1)
        image = F.normalize(self.backbone.project(tower.cls), dim=-1)
        free = two_class_logits(patches, text_pair(normal, abnormal[None])[0], cfg.temperature).softmax(dim=-1)
        selected = self.select(free[..., 1].detach())
        tokens = torch.gather(patches, 1, selected[..., None].expand(-1, -1, patches.shape[-1]))
        prior = self.prior(tokens)
        _, conditioned_abnormal = self.prompts(self.encoder, prior, with_normal=False)
        text = text_pair(normal, conditioned_abnormal)
        conditioned = torch.stack([two_class_logits(p, t, cfg.temperature) for p, t in zip(patches, text)]).softmax(-1)
        logits = torch.stack([two_class_logits(g, t, cfg.temperature) for g, t in zip(image, text)])
        return Outputs(
            free=free.transpose(1, 2).reshape(-1, 2, *grid),
            conditioned=conditioned.transpose(1, 2).reshape(-1, 2, *grid),
            logits=logits,
            prior=prior,
            selected=selected,
            abnormal=abnormal,
        )


def anomaly_map(out: Outputs, size: int) -> torch.Tensor:
    """``[B, size, size]``: the mean of the upsampled prior-free and conditioned anomaly probabilities."""
    return (upsample(out.free, size)[:, 1] + upsample(out.conditioned, size)[:, 1]) / 2


def image_score(out: Outputs, cfg: FAPromptConfig) -> torch.Tensor:
    """``[B]``: the global probability mixed with the maps' maxima (see :class:`~.config.FAPromptConfig`)."""
    free_max = out.free[:, 1].flatten(1).max(dim=1).values
    conditioned_max = out.conditioned[:, 1].flatten(1).max(dim=1).values
    maxima = cfg.score_free_max * free_max + (1 - cfg.score_free_max) * conditioned_max
    return cfg.score_global * out.logits.softmax(dim=-1)[:, 1] + (1 - cfg.score_global) * maxima
