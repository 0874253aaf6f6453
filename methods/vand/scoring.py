"""VAND's scoring rules: scaled cosine logits against the two state features, maps upsampled bilinearly with
aligned corners, and the few-shot distance to the support memory."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def upsample_corners(maps: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear resize of ``[B, C, h, w]`` maps to ``[B, C, size, size]`` with ``align_corners=True`` (the
    official code's)."""
    return F.interpolate(maps, size=(size, size), mode="bilinear", align_corners=True)


def state_logits(features: torch.Tensor, text: torch.Tensor, scale: float) -> torch.Tensor:
    """``scale · cos``: ``[B, ..., D]`` features against each image's ``[B, 2, D]`` unit (normal, anomaly) text
    features → ``[B, ..., 2]``."""
    unit = F.normalize(features.float(), dim=-1)
    return scale * torch.einsum("b...d,bcd->b...c", unit, text)


def anomaly_probability(logits: torch.Tensor, grid: tuple[int, int], size: int) -> torch.Tensor:
    """``[B, N, 2]`` patch logits (row-major grid) → ``[B, size, size]`` anomaly probability.

    The official code upsamples both logits, then takes the softmax over the two; since bilinear resizing is
    linear, that is the sigmoid of the upsampled logit difference, which is what is computed here.
    """
    difference = (logits[..., 1] - logits[..., 0]).reshape(logits.shape[0], 1, *grid)
    return torch.sigmoid(upsample_corners(difference, size))[:, 0]


def memory_distance(patches: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
    """``1 − max cos``: each of ``[B, N, W]`` query patches against its most similar row of the ``[M, W]``
    memory → ``[B, N]``."""
    unit_memory = F.normalize(memory.float(), dim=-1)
    nearest = torch.stack([(F.normalize(p.float(), dim=-1) @ unit_memory.T).amax(dim=-1) for p in patches])
    return 1.0 - nearest
