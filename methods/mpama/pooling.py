"""The local aggregation AGG_p: p×p average pooling of patch tokens with stride 1, keeping the grid.

Padding: odd p pads (p−1)/2 on every side; even p pads p/2 − 1 before (top, left) and p/2 after (bottom,
right), so token i averages rows and columns i − (p/2 − 1) … i + p/2. Borders follow ``padding``:
``valid`` averages only the tokens inside the grid, ``replicate`` repeats the edge tokens, ``zero`` pads
zeros and divides by p².
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from zsadbench.errors import ConfigError

PADDINGS = ("valid", "replicate", "zero")


def pad_sizes(p: int) -> tuple[int, int]:
    """``(before, after)`` padding of a p×p window on each axis."""
    return (p - 1) // 2, p // 2


def perception_pool(tokens: torch.Tensor, grid: tuple[int, int], p: int, padding: str = "valid") -> torch.Tensor:
    """AGG_p of ``[B, N, C]`` row-major tokens on ``grid`` → ``[B, N, C]`` (``p = 1`` returns ``tokens``)."""
    if padding not in PADDINGS:
        raise ConfigError(f"pool_padding must be one of {', '.join(PADDINGS)}, got {padding!r}")
    if p < 1:
        raise ConfigError(f"perception level must be >= 1, got {p}")
    if p == 1:
        return tokens
    batch, count, channels = tokens.shape
    h, w = grid
    x = tokens.transpose(1, 2).reshape(batch, channels, h, w)
    before, after = pad_sizes(p)
    pads = (before, after, before, after)
    if padding == "replicate":
        pooled = F.avg_pool2d(F.pad(x, pads, mode="replicate"), p, stride=1)
    else:
        summed = F.avg_pool2d(F.pad(x, pads), p, stride=1) * (p * p)
        if padding == "zero":
            pooled = summed / (p * p)
        else:
            ones = F.pad(x.new_ones(1, 1, h, w), pads)
            pooled = summed / (F.avg_pool2d(ones, p, stride=1) * (p * p))
    return pooled.reshape(batch, channels, count).transpose(1, 2)
