"""Positional-embedding resizing for ViTs run at an input size other than their native one."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def interpolate_grid_pos_embed(
    pos_embed: torch.Tensor, old_grid: tuple[int, int], new_grid: tuple[int, int], num_prefix: int = 1,
    mode: str = "bilinear",
) -> torch.Tensor:
    """Resize the grid part of a ``[num_prefix + h*w, C]`` positional embedding to ``new_grid``.

    The ``num_prefix`` leading rows (CLS, registers) are kept as they are; the ``h×w`` grid rows are
    resized with ``align_corners=False`` in float32: ``bilinear`` as AnomalyCLIP and VisualAD do at 518 px
    (24×24 → 37×37), ``bicubic`` with antialiasing as open_clip's ``resize_pos_embed`` (the loaders of the VAND
    and AdaCLIP code) does. The result has the input's dtype and device. At ``new_grid == old_grid`` it is the
    input unchanged.
    """
    if mode not in ("bilinear", "bicubic"):
        raise ValueError(f"mode must be 'bilinear' or 'bicubic', got {mode!r}")
    if pos_embed.ndim != 2:
        raise ValueError(f"pos_embed must be [tokens, channels], got {tuple(pos_embed.shape)}")
    old_h, old_w = old_grid
    if pos_embed.shape[0] != num_prefix + old_h * old_w:
        raise ValueError(
            f"pos_embed has {pos_embed.shape[0]} rows, expected {num_prefix} + {old_h}x{old_w} = "
            f"{num_prefix + old_h * old_w}"
        )
    prefix, grid = pos_embed[:num_prefix], pos_embed[num_prefix:]
    channels = grid.shape[1]
    grid = grid.float().reshape(1, old_h, old_w, channels).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=tuple(new_grid), mode=mode, align_corners=False, antialias=mode == "bicubic")
    grid = grid.permute(0, 2, 3, 1).reshape(new_grid[0] * new_grid[1], channels).to(pos_embed.dtype)
    return torch.cat([prefix, grid], dim=0)
