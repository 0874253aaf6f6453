"""VisualAD's map and score rules: per-layer cosine-difference maps, their sum, smoothing, top-k image score."""
from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from scipy.ndimage import gaussian_filter


def layer_map(patches: torch.Tensor, anomaly: torch.Tensor, normal: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """``cos(p, anomaly) − cos(p, normal)`` for every patch, as ``[B, h, w]``.

    ``patches`` is ``[B, N, C]`` (row-major, ``N = h·w``), ``anomaly`` and ``normal`` are ``[B, C]``.
    Values lie in ``[−2, 2]``; positive means closer to the anomaly token.
    """
    unit = F.normalize(patches, dim=-1, eps=1e-8)
    diff = F.normalize(anomaly, dim=-1, eps=1e-8) - F.normalize(normal, dim=-1, eps=1e-8)
    scores = (unit @ diff.unsqueeze(-1)).squeeze(-1)
    return scores.reshape(patches.shape[0], *grid)


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
