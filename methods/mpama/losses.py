"""MPA/MPAMA losses: the local loss per level (Eq. 4), the hinge (§3.2) and the stage totals (Eq. 5, Eq. 6).

All act on two-class probability maps upsampled to the input size, ``[B, 2, H, W]`` (normal, anomaly).
The hinge pools the normal pixels N₀ and the anomalous pixels N₁ of the whole batch; a set that is empty in
a batch contributes 0.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from zsadbench.methods.anomalyclip import global_loss, local_loss

from .config import MPAConfig

__all__ = ["global_loss", "hinge_loss", "level_losses", "local_loss"]


def hinge_loss(anomaly: torch.Tensor, masks: torch.Tensor, *, margin_normal: float = 0.5, margin_anomaly: float = 0.5) -> torch.Tensor:
    """``mean_{N₀} max(S_a − δ_n, 0) + mean_{N₁} max(δ_a − S_a, 0)`` for ``[B, H, W]`` anomaly probabilities."""
    positive = masks > 0.5
    zero = anomaly.new_zeros(())
    normal_part = F.relu(anomaly[~positive] - margin_normal).mean() if bool((~positive).any()) else zero
    anomaly_part = F.relu(margin_anomaly - anomaly[positive]).mean() if bool(positive.any()) else zero
    return normal_part + anomaly_part


def level_losses(maps: list[torch.Tensor], masks: torch.Tensor, cfg: MPAConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """``(Σ_p local, Σ_p hinge)`` over the levels' upsampled probability maps."""
    local = sum(
        local_loss(m, masks, gamma=cfg.focal_gamma, smooth=cfg.focal_smooth, dice_smooth=cfg.dice_smooth) for m in maps
    )
    hinge = sum(
        hinge_loss(m[:, 1], masks, margin_normal=cfg.margin_normal, margin_anomaly=cfg.margin_anomaly) for m in maps
    )
    return local, hinge  # type: ignore[return-value]
