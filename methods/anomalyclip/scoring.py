"""AnomalyCLIP's scoring rules: two-class softmax of cosine similarities at a fixed temperature, maps on the
patch grid, upsampled as probabilities (``get_similarity_map``), summed over layers and smoothed."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from zsadbench.maps import smooth, upsample

__all__ = ["patch_probabilities", "smooth", "two_class_logits", "upsample"]


def two_class_logits(features: torch.Tensor, text: torch.Tensor, temperature: float) -> torch.Tensor:
    """``cos(features, text) / temperature``: ``[..., D]`` features against ``[2, D]`` (normal, anomaly) → ``[..., 2]``."""
    unit = F.normalize(features.float(), dim=-1)
    return unit @ F.normalize(text.float(), dim=-1).T / temperature


def patch_probabilities(patches: torch.Tensor, text: torch.Tensor, temperature: float, grid: tuple[int, int]) -> torch.Tensor:
    """``[B, N, D]`` patch features (row-major grid) → ``[B, 2, h, w]`` softmax probabilities (normal, anomaly)."""
    probs = two_class_logits(patches, text, temperature).softmax(dim=-1)
    return probs.transpose(1, 2).reshape(patches.shape[0], 2, *grid)
