"""FineGrainedAD's learnable head for one category: MLLP prompts, Attr-MoE, the Query Former, the multi-level
alignment losses and the dynamic token-wise scores. The visual memory and the fusion are PromptAD's."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from zsadbench.backbones import ClipBackbone, PromptTextEncoder
from zsadbench.maps import upsample
from zsadbench.methods.promptad import (
    GroupFeatures,
    PromptBank,
    Scores,
    VisualFeatures,
    logit_scale,
    margin_loss,
    mean_alignment_loss,
    memory_score,
    text_score,
    v2t_loss,
)

from .config import FineGrainedADConfig
from .mfsc import MFSCCaptions
from .mllp import COMPONENT_ATTRIBUTES, level_names, mllp_texts
from .queryformer import QueryFormer, query_loss


def token_wise_scores(z: torch.Tensor, normal: torch.Tensor, abnormal: torch.Tensor, intrinsic: torch.Tensor,
                      scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Dynamic token-wise inference: each token ``z [B, N, D]`` takes the level whose intrinsic representation
    (``[L, D]``) is most similar and is scored with that level's anchors (``normal``/``abnormal`` ``[L, D]``).
    Returns the scores ``[B, N]`` and the chosen levels ``[B, N]``."""
    pick = (z @ F.normalize(intrinsic, dim=-1).T).argmax(dim=-1)
    return text_score(z, normal[pick], abnormal[pick], scale), pick


def cls_scores(cls: torch.Tensor, normal: torch.Tensor, abnormal: torch.Tensor, intrinsic: torch.Tensor | None,
               scale: float) -> torch.Tensor:
    """``S_i`` of CLS features ``[B, D]``: with ``intrinsic`` (``[L, D]``) scored with the level its Query Former output
    picks, as a token is; without, with the first (image) level's anchors."""
    if intrinsic is None:
        return text_score(cls, normal[0], abnormal[0], scale)
    return token_wise_scores(cls[:, None], normal, abnormal, intrinsic, scale)[0][:, 0]


def harmonic(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``1 / (1/a + 1/b)``, PromptAD's fusion (Eq. 7 and 8)."""
    return 1.0 / (1.0 / a.clamp_min(1e-12) + 1.0 / b.clamp_min(1e-12))


def eq8_scores(scores: Scores, grid: tuple[int, int], size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 7 and 8: the pixel maps ``M_pix = 1/(1/M_v + 1/M_p)`` ``[B, 1, h, w]`` on the token grid and the image
    scores ``1/(1/max M_pix + 1/S_i)`` ``[B]``, the maximum taken over ``M_pix`` bilinearly upsampled to ``size`` px
    (0: over the grid), where PromptAD takes the memory map's."""
    pixel = harmonic(scores.text, scores.visual).float().reshape(len(scores.text), 1, *grid)
    peak = pixel if size == 0 else upsample(pixel, size)
    return pixel, harmonic(peak.amax(dim=(1, 2, 3)), scores.image_text)


def image_reweighted(text: torch.Tensor, image_level: torch.Tensor) -> torch.Tensor:
    """Eq. 6: token scores ``[B, N]`` times ``N · softmax`` over the tokens of the image-level scores (mean weight 1)."""
    return text * image_level.shape[1] * image_level.softmax(dim=1)


class AttributeMixer(nn.Module):
    """Attr-MoE: ``component + Σ_a sigmoid(w_a) · mean(attribute a)``, with separate weights for normal and
    abnormal prompts (``logits [2, A]``); features are raw text features."""

    def __init__(self, attributes: int, init_std: float) -> None:
        super().__init__()
        self.logits = nn.Parameter(torch.randn(2, attributes) * init_std)

    def forward(self, component: GroupFeatures, attributes: dict[int, GroupFeatures]) -> GroupFeatures:
        gates = torch.sigmoid(self.logits)
        normal, hand, learned = component.normal, component.handcrafted, component.learned
        for a, group in attributes.items():
            normal = normal + gates[0, a] * group.normal.mean(dim=0)
            shift = gates[1, a] * group.handcrafted.mean(dim=0)
            hand, learned = hand + shift, learned + shift
        return GroupFeatures(normal, hand, learned)


def regularisation_loss(levels: dict[str, GroupFeatures], components: list[str], *, shipped: bool) -> torch.Tensor:
    """``‖(p_a,img − Σ_i p_a,c_i) − p_b‖`` of the image-level and component-level learnable abnormal features and
    the background's normal feature (each the normalised mean of its prompts; ``shipped``: the released code's
    ``mean(norm a_img) − mean(norm Σ_i a_c_i) − mean(norm n_bg)``)."""
    image, background = levels["image"].learned, levels["background"].normal
    learned = [levels[c].learned for c in components]
    if shipped:
        summed = torch.stack(learned).sum(dim=0)
        gap = (F.normalize(image, dim=-1).mean(0) - F.normalize(summed, dim=-1).mean(0)
               - F.normalize(background, dim=-1).mean(0))
    else:
        parts = torch.stack([F.normalize(x.mean(0), dim=-1) for x in learned]).sum(dim=0)
        gap = F.normalize(image.mean(0), dim=-1) - parts - F.normalize(background.mean(0), dim=-1)
    return gap.norm()


class FineGrainedADHead(nn.Module):
    """The prompts, Attr-MoE weights and Query Former of one category, with its visual memory."""

    def __init__(self, backbone: ClipBackbone, cfg: FineGrainedADConfig, captions: MFSCCaptions) -> None:
        super().__init__()
        self.cfg = cfg
        self.dataset, self.category = captions.dataset, captions.category
        text = PromptTextEncoder(backbone)
        groups = mllp_texts(captions, class_specific=cfg.class_states, attribute_prompts=cfg.attribute_prompts,
                            n_attr_abnormal=cfg.n_attr_abnormal)
        self.levels = level_names(captions)
        self.components = [name for name in self.levels if name.startswith("component:")]
        common = dict(n_ctx=cfg.n_ctx, n_pro_ab=cfg.n_pro_ab, n_ctx_ab=cfg.n_ctx_ab, init_std=cfg.ctx_init_std)
        self.seg = PromptBank(text, groups, n_pro=cfg.n_pro_seg, **common)
        all_levels = cfg.cls_level == "query_former"
        cls_groups = groups if all_levels else {"image": groups["image"]}
        self.cls = PromptBank(text, cls_groups, n_pro=cfg.n_pro_cls, **common) if cfg.epochs_cls > 0 else None
        self.mixer = self._mixer() if cfg.attribute_prompts else None
        self.query = QueryFormer(len(self.levels), backbone.embed_dim, cfg.query_heads, one_to_one=cfg.as_shipped)
        # the classification prompts of every level have their own Attr-MoE weights, as the released cls run
        self.cls_mixer = self._mixer() if cfg.attribute_prompts and all_levels and self.cls is not None else None
        self.scale = logit_scale(backbone, cfg.logit_scale)
        self.memory: list[torch.Tensor] = []
        self.weights: torch.Tensor | None = None  # [L, K, N] region loss weights, for training only
        self.frozen: tuple | None = None  # inference-time text features, set by freeze()

    def _mixer(self) -> AttributeMixer:
        return AttributeMixer(len(COMPONENT_ATTRIBUTES), self.cfg.attr_weight_init_std)

    def remember(self, shots: VisualFeatures) -> None:
        self.memory = [m.reshape(-1, m.shape[-1]).detach() for m in shots.memory]

    def trained_parameters(self) -> list[nn.Parameter]:
        """What the segmentation phase optimises: prompts, Attr-MoE and (unless as shipped) the Query Former."""
        params = list(self.seg.parameters()) + (list(self.mixer.parameters()) if self.mixer is not None else [])
        return params + ([] if self.cfg.as_shipped else list(self.query.parameters()))

    def cls_parameters(self) -> list[nn.Parameter]:
        """What the classification phase optimises: its prompts and Attr-MoE weights."""
        mixer = list(self.cls_mixer.parameters()) if self.cls_mixer is not None else []
        return list(self.cls.parameters()) + mixer

    def level_features(self, cls: bool = False) -> dict[str, GroupFeatures]:
        """Raw features of every level of the segmentation (or ``cls``: classification) prompts, in level order,
        components mixed with their attribute prompts."""
        bank, mixer = (self.cls, self.cls_mixer) if cls else (self.seg, self.mixer)
        groups = bank()
        out = {name: groups[name] for name in self.levels if name in groups}
        if mixer is not None:
            for i, name in enumerate(self.components):
                attrs = {a: groups[f"attr:{i}:{attr}"] for a, attr in enumerate(COMPONENT_ATTRIBUTES)
                         if f"attr:{i}:{attr}" in groups}
                out[name] = mixer(out[name], attrs)
        return out

    @staticmethod
    def anchors(levels: dict[str, GroupFeatures]) -> tuple[torch.Tensor, torch.Tensor]:
        """``[L, D]`` normal and abnormal anchors in the order of ``levels``."""
        return (torch.stack([g.normal_anchor for g in levels.values()]),
                torch.stack([g.abnormal_anchor for g in levels.values()]))

    # -- losses ------------------------------------------------------------------------------------
    def level_loss(self, z: torch.Tensor, group: GroupFeatures, weights: torch.Tensor | None) -> torch.Tensor:
        """CLIP + triplet + mean losses of one level on features ``z`` (patch tokens ``[K, N, D]`` or CLS ``[K, D]``);
        ``weights [K, N]`` stress the level's region."""
        cfg = self.cfg
        align = cfg.lambda_align * mean_alignment_loss(group.handcrafted, group.learned)
        if cfg.as_shipped:  # region weights scale the features of every term, as the released code applies them
            scaled = z if weights is None else z * weights[..., None]
            return (v2t_loss(scaled, group.normal_anchor, group.abnormal, self.scale)
                    + margin_loss(z, group.normal_anchor, group.abnormal_anchor, cfg.eam_margin, "token_summed",
                                  weights=weights) + align)
        return (v2t_loss(z, group.normal_anchor, group.abnormal, self.scale, weights)
                + margin_loss(z, group.normal_anchor, group.abnormal_anchor, cfg.eam_margin, cfg.margin_form,
                              weights=weights)
                + align)

    def seg_loss(self, shots: VisualFeatures) -> dict[str, torch.Tensor]:
        cfg = self.cfg
        levels = self.level_features()
        z = shots.patches
        per_level = {}
        for i, name in enumerate(self.levels):
            weights = None if name == "image" or self.weights is None else self.weights[i]
            per_level[name] = self.level_loss(z, levels[name], weights)
        losses = {"levels": torch.stack(list(per_level.values())).sum()}
        losses["reg"] = cfg.lambda_reg * regularisation_loss(levels, self.components, shipped=cfg.as_shipped)
        if not cfg.as_shipped:
            normal, abnormal = self.anchors(levels)
            losses["query"] = cfg.lambda_query * query_loss(self.query(normal, abnormal), normal, abnormal)
        losses["total"] = sum(losses.values())
        return losses

    def cls_loss(self, shots: VisualFeatures) -> dict[str, torch.Tensor]:
        """The level losses of the classification prompts on the CLS features, unweighted, summed over their levels
        (the image level only with ``cls_level="image"``)."""
        levels = self.level_features(cls=True)
        return {"total": torch.stack([self.level_loss(shots.cls, g, None) for g in levels.values()]).sum()}

    # -- inference ---------------------------------------------------------------------------------
    @torch.no_grad()
    def freeze(self) -> None:
        """Encode the trained prompts (and the Query Former's output) once for inference."""
        normal, abnormal = self.anchors(self.level_features())
        intrinsic = self.query(normal, abnormal)
        cls = (normal, abnormal) if self.cls is None else self.anchors(self.level_features(cls=True))
        cls_intrinsic = None
        if self.cfg.cls_level == "query_former":
            cls_intrinsic = intrinsic if self.cls is None else self.query(*cls)
        self.frozen = (normal, abnormal, intrinsic, (*cls, cls_intrinsic))

    @torch.no_grad()
    def scores(self, query: VisualFeatures) -> Scores:
        cfg = self.cfg
        normal, abnormal, intrinsic, cls = self.frozen
        z = query.patches
        stats: dict[str, torch.Tensor] = {}
        if cfg.token_wise:
            text, pick = token_wise_scores(z, normal, abnormal, intrinsic, self.scale)
            counts = torch.bincount(pick.flatten().cpu(), minlength=len(self.levels))
            stats = {f"tokens_{name}": counts[i] for i, name in enumerate(self.levels)}
        else:
            text = torch.stack([text_score(z, normal[i], abnormal[i], self.scale) for i in range(len(self.levels))]).mean(0)
        if cfg.image_reweight:
            text = image_reweighted(text, text_score(z, normal[0], abnormal[0], self.scale))
        return Scores(
            text=text,
            visual=memory_score(query.memory, self.memory),
            image_text=cls_scores(query.cls, *cls, self.scale),
            stats=stats,
        )
