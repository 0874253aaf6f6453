"""AnomalyCLIP's training (``train.py``): Adam on the prompts only, the last epoch is kept.

Loss per batch: ``local_weight · Σ_layers [Focal + Dice(S_a, S) + Dice(S_n, 1 − S)] + CE(image logits)``,
on probabilities upsampled bilinearly to the input size. The image tower is frozen, so its outputs come
from ``FitData.features`` (the tower runs once per image) when the runner provides a cache.
"""
from __future__ import annotations

import torch

from zsadbench.method import FitData
from zsadbench.training import EpochTrainer, Stage, targets
from zsadbench.types import Batch

from .config import AnomalyCLIPConfig
from .losses import global_loss, local_loss
from .model import AnomalyCLIPModel
from .scoring import upsample
from .visual import tower_features

OWNER = "AnomalyCLIP"


def train(model: AnomalyCLIPModel, data: FitData, cfg: AnomalyCLIPConfig, device: str, precision: str) -> list[dict[str, float]]:
    """Train ``model.prompts`` for ``cfg.epochs`` epochs, resuming from ``data.checkpoints``; returns the epoch losses."""
    optimizer = torch.optim.Adam(model.prompts.parameters(), lr=cfg.lr, betas=tuple(cfg.betas))

    def loss(batch: Batch) -> dict[str, torch.Tensor]:
        masks, labels = targets(batch, cfg.image_size, device, OWNER)
        tower = tower_features(
            model.backbone, batch.image.to(device), cfg.layers, cfg.vv_last, cache=data.features, precision=precision
        )
        text = model.text_features()
        local = sum(
            local_loss(upsample(probs, cfg.image_size), masks, gamma=cfg.focal_gamma, smooth=cfg.focal_smooth,
                       dice_smooth=cfg.dice_smooth)
            for probs in model.patch_maps(tower, text)
        )
        image = global_loss(model.image_logits(tower, text), labels)
        return {"total": cfg.local_weight * local + image, "local": local, "global": image}

    stage = Stage("prompts", cfg.epochs, {"prompts": model.prompts}, optimizer, loss, batch_size=cfg.batch_size)
    model.train()
    try:
        return EpochTrainer(data, OWNER, cfg.epochs).fit(stage)
    finally:
        model.eval()
