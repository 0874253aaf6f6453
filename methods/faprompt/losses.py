"""FAPrompt's training losses (``train.py``) beyond AnomalyCLIP's map and global terms.

``*_loss`` returns a scalar tensor (lower is better).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def score_focal_loss(scores: torch.Tensor, labels: torch.Tensor, *, gamma: float = 2.0) -> torch.Tensor:
    """Binary focal loss that takes the image scores ``[B]`` as logits: ``mean((1 − p_t)^γ · BCE)`` with
    ``BCE = binary_cross_entropy_with_logits(score, label)`` and ``p_t = exp(−BCE)``. The scores are
    probabilities, so the sigmoid sees values in [0, 1]; the official ``BinaryFocalLoss`` does the same."""
    bce = F.binary_cross_entropy_with_logits(scores, labels.to(scores.dtype), reduction="none")
    return ((1 - torch.exp(-bce)).pow(gamma) * bce).mean()


def orthogonal_loss(features: torch.Tensor) -> torch.Tensor:
    """``Σ_{k<m} |cos(f_k, f_m)|`` over the abnormality prompts' features ``[P, D]`` (0 for one prompt)."""
    unit = F.normalize(features, dim=-1)
    cosines = unit @ unit.T
    return cosines.triu(diagonal=1).abs().sum()


def prior_loss(prior: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """``Σ_{normal images} mean(prior²)``: the mean squared prior of each normal image (label 0), summed."""
    normal = (labels == 0).to(prior.dtype)
    return (prior.pow(2).mean(dim=1) * normal).sum()
