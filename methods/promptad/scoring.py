"""Score rules shared by PromptAD and FineGrainedAD: text scores, the visual memory, harmonic fusion, map post-processing."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy.ndimage import gaussian_filter

from zsadbench.maps import upsample


def text_score(z: torch.Tensor, normal: torch.Tensor, abnormal: torch.Tensor, scale: float | torch.Tensor) -> torch.Tensor:
    """``softmax(scale · [z·normal, z·abnormal])[abnormal]`` for normalised ``z [..., D]``; ``normal``/``abnormal``
    are ``[D]`` or broadcast against ``z`` (``[..., D]``)."""
    logits = scale * torch.stack([(z * normal).sum(-1), (z * abnormal).sum(-1)], dim=-1)
    return logits.softmax(dim=-1)[..., 1]


def memory_score(query: list[torch.Tensor], memory: list[torch.Tensor]) -> torch.Tensor:
    """Vision-guided score ``mean_l min_r (1 − cos(f, r)) / 2`` of every token: ``query[l]`` is ``[B, N, C]``,
    ``memory[l]`` ``[M, C]`` (both L2-normalised); returns ``[B, N]`` in ``[0, 1]``."""
    scores = [(1.0 - (q @ m.T).amax(dim=-1)) / 2.0 for q, m in zip(query, memory)]
    return torch.stack(scores).mean(dim=0)


def harmonic(a: torch.Tensor, b: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """``1 / (1/a + 1/b)``: half the harmonic mean, dominated by the smaller value."""
    return 1.0 / (1.0 / a.clamp_min(eps) + 1.0 / b.clamp_min(eps))


def map_max(scores: torch.Tensor, grid: tuple[int, int], size: int) -> torch.Tensor:
    """The largest score of each image, ``[B, h·w]`` → ``[B]``: over the map bilinearly upsampled
    (``align_corners=False``, float32, not smoothed) to ``size`` px, or over the token grid when ``size`` is 0."""
    if size == 0:
        return scores.amax(dim=1)
    return upsample(scores.reshape(scores.shape[0], 1, *grid).float(), size).amax(dim=(1, 2, 3))


def grid_to_map(scores: torch.Tensor, grid: tuple[int, int], size: int, sigma: float) -> torch.Tensor:
    """Token scores ``[B, h·w]`` → maps ``[B, size, size]``: bilinear upsampling, then a Gaussian of ``sigma`` px
    (``scipy.ndimage.gaussian_filter``, mode reflect, truncate 4). float32 on the CPU."""
    maps = scores.reshape(scores.shape[0], 1, *grid).float()
    maps = F.interpolate(maps, size=(size, size), mode="bilinear", align_corners=False)[:, 0]
    array = maps.detach().cpu().numpy()
    if sigma > 0:
        array = gaussian_filter(array, sigma=(0.0, sigma, sigma))
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
