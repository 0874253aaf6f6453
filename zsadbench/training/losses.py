"""The segmentation losses shared by the methods that train: two-class focal loss and Dice loss."""
from __future__ import annotations

import torch


def focal_loss(prob: torch.Tensor, target: torch.Tensor, *, gamma: float = 2.0, alpha: float = 1.0, smooth: float = 1e-5) -> torch.Tensor:
    """Two-class focal loss on anomaly probabilities ``prob`` with binary ``target`` (same shape), averaged over pixels.

    The class distribution is ``[1 − prob, prob]``; the one-hot target is clamped to ``[smooth, 1 − smooth]``
    and ``p_t = <one_hot, distribution> + smooth``; the loss is ``−alpha · (1 − p_t)^gamma · log p_t``.
    """
    target = target.to(prob.dtype)
    soft = target.clamp(smooth, 1.0 - smooth)
    p_t = soft * prob + (1.0 - soft) * (1.0 - prob) + smooth
    return (-alpha * (1.0 - p_t).pow(gamma) * p_t.log()).mean()


def dice_loss(prob: torch.Tensor, target: torch.Tensor, *, smooth: float = 1.0) -> torch.Tensor:
    """``1 − mean_b (2·Σ p·g + s) / (Σ p + Σ g + s)`` over the images of a ``[B, H, W]`` batch."""
    prob = prob.reshape(prob.shape[0], -1)
    target = target.reshape(target.shape[0], -1).to(prob.dtype)
    dice = (2.0 * (prob * target).sum(1) + smooth) / (prob.sum(1) + target.sum(1) + smooth)
    return 1.0 - dice.mean()
