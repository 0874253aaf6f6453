"""AnomalyCLIP's training losses (``loss.py`` / ``train.py``): focal and two Dice terms per map, global CE.

The focal and Dice formulas are the ones the reference shares with VisualAD, so the implementations are
taken from :mod:`zsadbench.training`. ``*_loss`` returns a scalar tensor (lower is better).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from zsadbench.errors import DataError, MethodError
from zsadbench.training import dice_loss, focal_loss
from zsadbench.types import Batch

__all__ = ["dice_loss", "focal_loss", "global_loss", "local_loss", "targets"]


def local_loss(
    probs: torch.Tensor, masks: torch.Tensor, *, gamma: float = 2.0, smooth: float = 1e-5, dice_smooth: float = 1.0
) -> torch.Tensor:
    """``Focal([S_n, S_a], S) + Dice(S_a, S) + Dice(S_n, 1 − S)`` for ``[B, 2, H, W]`` probabilities and
    binary ``[B, H, W]`` masks (the focal term sees the anomaly channel; with a two-class softmax
    ``S_n = 1 − S_a`` this is the reference's two-channel focal loss)."""
    target = masks.to(probs.dtype)
    focal = focal_loss(probs[:, 1], target, gamma=gamma, alpha=1.0, smooth=smooth)
    return focal + dice_loss(probs[:, 1], target, smooth=dice_smooth) + dice_loss(probs[:, 0], 1.0 - target, smooth=dice_smooth)


def global_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of ``[B, 2]`` image logits (``cos / temperature``) against labels ``[B]`` (0 normal, 1 anomalous)."""
    return F.cross_entropy(logits, labels.long())


def targets(batch: Batch, size: int, device: torch.device | str, owner: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Binary float masks ``[B, size, size]`` (gt above 0.5) and labels ``[B]`` of a training batch."""
    if batch.gt_label is None:
        raise DataError(f"{owner} training batch {batch.image_path[:1]} has no gt_label; the auxiliary set needs labels")
    labels = batch.gt_label.to(device)
    if batch.gt_mask is None:
        return torch.zeros(len(batch), size, size, device=device), labels
    if tuple(batch.gt_mask.shape[-2:]) != (size, size):
        raise MethodError(
            f"{owner} got training masks of {tuple(batch.gt_mask.shape[-2:])} px for images of {size} px; "
            "masks must come at the method's input size"
        )
    return (batch.gt_mask.to(device).float() > 0.5).float(), labels
