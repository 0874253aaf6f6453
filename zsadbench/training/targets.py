"""What a training batch of an auxiliary set asks a segmentation method to predict: binary masks and labels."""
from __future__ import annotations

import torch

from ..errors import DataError, MethodError
from ..types import Batch


def targets(batch: Batch, size: int, device: torch.device | str, owner: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Binary float masks ``[B, size, size]`` (ground truth above 0.5; zeros when the batch has no masks) and the
    labels ``[B]`` of a training batch; ``owner`` names the method in errors."""
    if batch.gt_label is None:
        raise DataError(f"{owner} training batch {batch.image_path[:1]} has no gt_label; the auxiliary set needs labels")
    labels = batch.gt_label.to(device)
    if batch.gt_mask is None:
        return torch.zeros(len(batch), size, size, device=device), labels
    if tuple(batch.gt_mask.shape[-2:]) != (size, size):
        raise MethodError(
            f"{owner} got training masks of {tuple(batch.gt_mask.shape[-2:])} px for images of {size} px; "
            "masks must come at the method's input size"
        )
    return (batch.gt_mask.to(device).float() > 0.5).float(), labels
