"""The tensor arithmetic of WinCLIP: sliding windows, text and visual scores, and their aggregation.

Pure functions on tensors, independent of any backbone, so each can be checked on hand-made inputs.
Patch grids are flattened row-major: patch ``(r, c)`` of an ``H×W`` grid has index ``r*W + c``.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def window_indices(grid: tuple[int, int], size: int, stride: int = 1) -> torch.Tensor:
    """Patch indices covered by every ``size×size`` window sliding over ``grid`` with ``stride``.

    Returns a long tensor ``[n_windows, size*size]``; windows run row-major over their top-left corner and
    each row lists its patches row-major.
    """
    height, width = grid
    if size > height or size > width:
        raise ValueError(f"window size {size} does not fit in a {height}x{width} patch grid")
    ids = torch.arange(height * width).reshape(height, width)
    tiles = ids.unfold(0, size, stride).unfold(1, size, stride)  # [nh, nw, size, size]
    return tiles.reshape(-1, size * size).contiguous()


def anomaly_probability(embeddings: torch.Tensor, text: torch.Tensor, temperature: float) -> torch.Tensor:
    """``softmax(cos(e, t) / temperature)`` of the anomalous class, for embeddings ``[..., D]``.

    ``text`` is ``[2, D]``: the normal then the anomalous class embedding (need not be normalised).
    """
    cos = F.normalize(embeddings, dim=-1) @ F.normalize(text, dim=-1).T
    return (cos / temperature).softmax(dim=-1)[..., 1]


def harmonic_aggregation(window_scores: torch.Tensor, windows: torch.Tensor, num_patches: int) -> torch.Tensor:
    """Per-patch harmonic mean of the scores of the windows covering it.

    ``window_scores`` is ``[B, n_windows]``, ``windows`` the ``[n_windows, k]`` patch indices from
    :func:`window_indices`. Returns ``[B, num_patches]``. A zero score among a patch's windows makes the
    patch 0; a patch no window covers is 0.
    """
    batch = window_scores.shape[0]
    per_slot = windows.numel()
    flat = windows.reshape(1, -1).expand(batch, per_slot).to(window_scores.device)
    inverse = (1.0 / window_scores).repeat_interleave(windows.shape[1], dim=1)
    total = window_scores.new_zeros(batch, num_patches).scatter_add_(1, flat, inverse)
    count = window_scores.new_zeros(batch, num_patches).scatter_add_(1, flat, torch.ones_like(inverse))
    return (count / total).nan_to_num(nan=0.0, posinf=0.0)


def visual_association(embeddings: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """WinCLIP+'s visual association score: ``min_r (1 - cos(e, r)) / 2`` over all reference vectors.

    ``embeddings`` is ``[B, M, D]``; ``reference`` is ``[..., D]`` (flattened). Returns ``[B, M]``.
    """
    ref = F.normalize(reference.reshape(-1, reference.shape[-1]), dim=-1)
    cos = F.normalize(embeddings, dim=-1) @ ref.T
    return ((1.0 - cos.amax(dim=-1)) / 2.0).clamp_min(0.0)


def combine_zero_shot(image_scores: torch.Tensor, scale_maps: list[torch.Tensor]) -> torch.Tensor:
    """Harmonic mean over the image score (broadcast to every patch) and the per-scale maps ``[B, N]``."""
    maps = [image_scores[:, None].expand_as(scale_maps[0]), *scale_maps]
    stacked = torch.stack(maps)
    return (len(maps) / (1.0 / stacked).sum(dim=0)).nan_to_num(nan=0.0, posinf=0.0)


def combine_few_shot(patch_map: torch.Tensor, scale_maps: list[torch.Tensor]) -> torch.Tensor:
    """Arithmetic mean of the patch-level and per-scale window-level association maps ``[B, N]``."""
    return torch.stack([patch_map, *scale_maps]).mean(dim=0)
