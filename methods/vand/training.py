"""VAND's training (reference ``train.py``): Adam on the linear layers only, the last epoch is kept.

Loss per batch: ``Σ_layers [Focal(S_l, gt) + Dice(S_l, gt)]`` with ``S_l`` the anomaly probability map of block
``l`` at the input size (the focal term sees both classes, ``1 − S_l`` and ``S_l``; the Dice term only the
anomaly one). The image tower is frozen, so its taps come from ``FitData.features`` (the tower runs once per
image) when the runner provides a cache.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

from zsadbench.method import FitData
from zsadbench.training import EpochTrainer, Stage, dice_loss, focal_loss, targets
from zsadbench.types import Batch

from .config import VANDConfig
from .model import VANDModel
from .tower import read_tower

OWNER = "VAND"


def segmentation_loss(probabilities: Sequence[torch.Tensor], masks: torch.Tensor, cfg: VANDConfig) -> dict[str, torch.Tensor]:
    """``{"total", "focal", "dice"}`` of the ``[B, S, S]`` anomaly probability maps of every layer against binary
    ``[B, S, S]`` masks, each summed over layers."""
    focal = sum(focal_loss(p, masks, gamma=cfg.focal_gamma, alpha=1.0, smooth=cfg.focal_smooth) for p in probabilities)
    dice = sum(dice_loss(p, masks, smooth=cfg.dice_smooth) for p in probabilities)
    return {"total": focal + dice, "focal": focal, "dice": dice}


def train(model: VANDModel, data: FitData, cfg: VANDConfig, device: str, precision: str) -> list[dict[str, float]]:
    """Train ``model.adapters`` for ``cfg.epochs_for(data.dataset)`` epochs, resuming from ``data.checkpoints``;
    returns the epoch losses."""
    epochs = cfg.epochs_for(data.dataset)
    optimizer = torch.optim.Adam(model.adapters.parameters(), lr=cfg.lr, betas=tuple(cfg.betas))

    def loss(batch: Batch) -> dict[str, torch.Tensor]:
        masks, _ = targets(batch, cfg.image_size, device, OWNER)
        patches, _ = read_tower(model.backbone, batch.image.to(device), cfg.layers, cache=data.features,
                                precision=precision)
        return segmentation_loss(model.layer_probabilities(patches, model.texts(batch.categories)), masks, cfg)

    stage = Stage("adapters", epochs, {"adapters": model.adapters}, optimizer, loss, batch_size=cfg.batch_size)
    model.train()
    try:
        return EpochTrainer(data, OWNER, epochs).fit(stage)
    finally:
        model.eval()
