"""VisualAD's training losses: focal + Dice per layer map, BCE on the top-k image score, the token hinge.

All take the *raw* (unsmoothed) maps, upsampled to the input size; the sigmoid turns a map into the
anomaly probability of each pixel. ``*_loss`` functions return a scalar tensor (lower is better).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from zsadbench.maps import topk_mean
from zsadbench.training import dice_loss, focal_loss


def image_loss(summed_map: torch.Tensor, labels: torch.Tensor, *, topk_ratio: float = 0.01) -> torch.Tensor:
    """BCE-with-logits of the top-k mean of the summed ``[B, H, W]`` map against the image labels ``[B]``."""
    return F.binary_cross_entropy_with_logits(topk_mean(summed_map, topk_ratio), labels.to(summed_map.dtype))


def token_hinge_loss(anomaly: torch.Tensor, normal: torch.Tensor, *, margin: float = 0.5) -> torch.Tensor:
    """``mean(relu(cos(anomaly, normal) + margin))`` over ``[B, C]`` token pairs: pushes the tokens apart."""
    return F.relu(F.cosine_similarity(anomaly, normal, dim=-1, eps=1e-8) + margin).mean()


@dataclass(frozen=True)
class LossParams:
    """The loss constants of :func:`visualad_loss` (see :class:`~.config.VisualADConfig`)."""

    focal_gamma: float = 2.0
    focal_alpha: float = 1.0
    focal_smooth: float = 1e-5
    dice_smooth: float = 1.0
    hinge_margin: float = 0.5
    topk_ratio: float = 0.01


def visualad_loss(
    maps: torch.Tensor,
    masks: torch.Tensor,
    labels: torch.Tensor,
    anomaly: torch.Tensor,
    normal: torch.Tensor,
    params: LossParams = LossParams(),
) -> dict[str, torch.Tensor]:
    """The reference objective ``L_seg + L_img + L_con`` (all weights 1) and its parts.

    ``maps`` are the per-layer raw maps ``[B, L, S, S]``, ``masks`` the binary ground truth ``[B, S, S]``,
    ``labels`` ``[B]``, ``anomaly``/``normal`` the SCA-enhanced tokens of the last tapped layer ``[B, C]``.
    Returns ``{"total", "seg", "img", "con"}``.
    """
    prob = torch.sigmoid(maps)
    target = masks.to(maps.dtype)
    seg = maps.new_zeros(())
    for layer in range(maps.shape[1]):
        seg = seg + focal_loss(
            prob[:, layer], target, gamma=params.focal_gamma, alpha=params.focal_alpha, smooth=params.focal_smooth
        )
        seg = seg + dice_loss(prob[:, layer], target, smooth=params.dice_smooth)
    img = image_loss(maps.sum(dim=1), labels, topk_ratio=params.topk_ratio)
    con = token_hinge_loss(anomaly, normal, margin=params.hinge_margin)
    return {"total": seg + img + con, "seg": seg, "img": img, "con": con}
