"""Post-processing of anomaly maps shared by the methods: resizing, Gaussian smoothing, top-k image scores."""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from scipy.ndimage import gaussian_filter


def upsample(maps: torch.Tensor, size: int) -> torch.Tensor:
    """Bilinear (``align_corners=False``) resize of ``[B, L, h, w]`` maps to ``[B, L, size, size]``."""
    return F.interpolate(maps, size=(size, size), mode="bilinear", align_corners=False)


def topk_mean(maps: torch.Tensor, ratio: float) -> torch.Tensor:
    """Mean of the ``ceil(ratio · H·W)`` largest values of each ``[B, H, W]`` map → ``[B]`` (differentiable)."""
    flat = maps.reshape(maps.shape[0], -1)
    k = max(1, math.ceil(flat.shape[1] * ratio))
    return flat.topk(k, dim=1).values.mean(dim=1)


def smooth(maps: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian smoothing of each ``[B, H, W]`` map with ``scipy.ndimage.gaussian_filter`` (mode ``reflect``,
    truncate 4), on the CPU; returns float32 on the CPU. ``sigma = 0`` returns the maps unchanged."""
    array = maps.detach().float().cpu().numpy()
    if sigma > 0:
        array = gaussian_filter(array, sigma=(0.0, sigma, sigma))
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
