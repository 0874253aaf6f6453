"""VisualAD's per-layer cosine-difference maps (resizing, smoothing and top-k scores: :mod:`zsadbench.maps`)."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def layer_map(patches: torch.Tensor, anomaly: torch.Tensor, normal: torch.Tensor, grid: tuple[int, int]) -> torch.Tensor:
    """``cos(p, anomaly) − cos(p, normal)`` for every patch, as ``[B, h, w]``.

    ``patches`` is ``[B, N, C]`` (row-major, ``N = h·w``), ``anomaly`` and ``normal`` are ``[B, C]``.
    Values lie in ``[−2, 2]``; positive means closer to the anomaly token.
    """
    unit = F.normalize(patches, dim=-1, eps=1e-8)
    diff = F.normalize(anomaly, dim=-1, eps=1e-8) - F.normalize(normal, dim=-1, eps=1e-8)
    scores = (unit @ diff.unsqueeze(-1)).squeeze(-1)
    return scores.reshape(patches.shape[0], *grid)
