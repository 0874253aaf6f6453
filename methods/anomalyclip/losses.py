"""AnomalyCLIP's training losses (``loss.py`` / ``train.py``): focal and two Dice terms per map, global CE.

The focal and Dice formulas are the ones the reference shares with VisualAD, so the implementations are
the framework's (:mod:`zsadbench.training`). ``*_loss`` returns a scalar tensor (lower is better).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from zsadbench.training import dice_loss, focal_loss

__all__ = ["global_loss", "local_loss"]


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
