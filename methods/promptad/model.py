"""PromptAD's prompts, losses and inference for one category, on a frozen CLIP.

Two prompt banks are trained on the k normal shots: the segmentation bank on the V-V patch tokens and the
classification bank on the CLS feature. The visual memory holds the shots' ordinary-stream tokens of the memory
layers. Inference fuses the text and memory scores harmonically (see :mod:`.scoring`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn as nn

from zsadbench.backbones import ClipBackbone, PromptTextEncoder

from .config import PromptADConfig
from .features import VisualFeatures
from .losses import MarginForm, margin_loss, mean_alignment_loss, v2t_loss
from .prompts import GroupFeatures, GroupTexts, PromptBank
from .scoring import grid_to_map, harmonic, map_max, memory_score, text_score
from .states import abnormal_states, class_name


def promptad_texts(dataset: str, category: str, class_specific: bool = True) -> GroupTexts:
    """The prompt bodies of one category: ``{class}``, each abnormal state of it, and ``{class}`` for learned ones."""
    name = class_name(category)
    states = tuple(s.format(name) for s in abnormal_states(dataset, category, class_specific=class_specific))
    return GroupTexts(normal=(name,), handcrafted=states, learned=(name,))


def logit_scale(backbone: ClipBackbone, mode: str) -> float:
    """CLIP's stored ``logit_scale`` parameter (``raw``, as the official code multiplies by it) or its exponential."""
    raw = float(backbone.model.logit_scale.detach().reshape(-1)[0])
    return math.exp(raw) if mode == "exp" else raw


def group_losses(z: torch.Tensor, group: GroupFeatures, scale: float, margin: float, lambda_align: float,
                 form: MarginForm) -> dict[str, torch.Tensor]:
    """PromptAD's three losses of normal features ``z [..., D]`` against one prompt group, the margin loss in
    ``form`` (see :func:`~.losses.margin_loss`)."""
    losses = {
        "v2t": v2t_loss(z, group.normal_anchor, group.abnormal, scale),
        "eam": margin_loss(z, group.normal_anchor, group.abnormal_anchor, margin, form),
        "align": lambda_align * mean_alignment_loss(group.handcrafted, group.learned),
    }
    losses["total"] = losses["v2t"] + losses["eam"] + losses["align"]
    return losses


@dataclass
class Scores:
    """Token-level scores of a batch: ``text [B, N]``, ``visual [B, N]`` and the image text score ``image_text [B]``;
    ``stats`` are counters for :class:`~zsadbench.types.Prediction`."""

    text: torch.Tensor
    visual: torch.Tensor
    image_text: torch.Tensor
    stats: dict[str, torch.Tensor] = field(default_factory=dict)


class PromptADHead(nn.Module):
    """The learnable prompts of one category and the visual memory of its shots."""

    def __init__(self, backbone: ClipBackbone, cfg: PromptADConfig, dataset: str, category: str) -> None:
        super().__init__()
        self.cfg = cfg
        self.dataset, self.category = dataset, category
        text = PromptTextEncoder(backbone)
        groups = {"class": promptad_texts(dataset, category, cfg.class_states)}
        common = dict(n_ctx=cfg.n_ctx, n_pro_ab=cfg.n_pro_ab, n_ctx_ab=cfg.n_ctx_ab, init_std=cfg.ctx_init_std)
        self.seg = PromptBank(text, groups, n_pro=cfg.n_pro_seg, **common)
        self.cls = PromptBank(text, groups, n_pro=cfg.n_pro_cls, **common) if cfg.epochs_cls > 0 else None
        self.scale = logit_scale(backbone, cfg.logit_scale)
        self.memory: list[torch.Tensor] = []
        self.frozen: tuple[GroupFeatures, GroupFeatures] | None = None

    def remember(self, shots: VisualFeatures) -> None:
        """Keep the shots' memory-layer tokens (``[k·N, W]`` per layer)."""
        self.memory = [m.reshape(-1, m.shape[-1]).detach() for m in shots.memory]

    def seg_loss(self, shots: VisualFeatures) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        return group_losses(shots.patches, self.seg()["class"], self.scale, cfg.eam_margin, cfg.lambda_align,
                            cfg.margin_form)

    def cls_loss(self, shots: VisualFeatures) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        return group_losses(shots.cls, self.cls()["class"], self.scale, cfg.eam_margin, cfg.lambda_align,
                            cfg.margin_form)

    @torch.no_grad()
    def freeze(self) -> None:
        """Encode the trained prompts once for inference (the text tower does not run per batch)."""
        seg = self.seg()["class"]
        self.frozen = (seg, self.cls()["class"] if self.cls is not None else seg)

    @torch.no_grad()
    def scores(self, query: VisualFeatures) -> Scores:
        seg, cls = self.frozen
        return Scores(
            text=text_score(query.patches, seg.normal_anchor, seg.abnormal_anchor, self.scale),
            visual=memory_score(query.memory, self.memory),
            image_text=text_score(query.cls, cls.normal_anchor, cls.abnormal_anchor, self.scale),
        )


def fuse(scores: Scores, grid: tuple[int, int], map_size: int, sigma: float,
         image_score_size: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """PromptAD's outputs: image scores ``harmonic(max visual, image text)`` and smoothed maps of
    ``harmonic(text, visual)``; the maximum is taken over the visual map upsampled to ``image_score_size`` px
    (0: over the token grid, see :func:`~.scoring.map_max`)."""
    pixel = harmonic(scores.text, scores.visual)
    image = harmonic(map_max(scores.visual, grid, image_score_size), scores.image_text)
    return image.float().cpu(), grid_to_map(pixel, grid, map_size, sigma)
