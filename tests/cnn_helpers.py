"""Shared by the PatchCore, PaDiM and SPADE tests: smooth random images and a support fit built from them."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from zsadbench.method import FitData
from zsadbench.types import Batch


def smooth_images(count: int, seed: int, size: int = 96) -> torch.Tensor:
    """``count`` smooth random RGB images ``[count, 3, size, size]`` in [0, 1], seeded."""
    low = torch.rand(count, 3, 6, 6, generator=torch.Generator().manual_seed(seed))
    return F.interpolate(low, size=size, mode="bilinear", align_corners=False)


def support(images: torch.Tensor, seed: int = 0, category: str = "bottle") -> FitData:
    """The k-shot support fit data of ``images`` (k = their number)."""
    def batches(batch_size: int = 8, shuffle: bool = False, seed: int = 0):
        for start in range(0, len(images), batch_size):
            yield Batch(image=images[start : start + batch_size], category=category)

    return FitData("support", batches, len(images), "synthetic", category, len(images), seed)
