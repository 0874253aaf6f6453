"""FAPrompt's training (``train.py``): Adam on the prompts and the prior network, the last epoch is kept.

Loss per batch: ``L(free map) + conditioned_weight · L(conditioned map) + CE(global logits)
+ score_weight · focal(image score) + orthogonal_weight · L_orth + prior_weight · L_prior`` with
``L = focal + Dice(S_a, S) + Dice(S_n, 1 − S)`` on probabilities upsampled bilinearly to the input size.
The image tower is frozen, so its outputs come from ``FitData.features`` (the tower runs once per image) when
the runner provides a cache.
"""
from __future__ import annotations

import torch

from zsadbench.maps import upsample
from zsadbench.method import FitData
from zsadbench.methods.anomalyclip import global_loss, local_loss, tower_features
from zsadbench.training import EpochTrainer, Stage, targets
from zsadbench.types import Batch

from .config import FAPromptConfig
from .losses import orthogonal_loss, prior_loss, score_focal_loss
from .model import FAPromptModel, Outputs, image_score

OWNER = "FAPrompt"


def losses(out: Outputs, masks: torch.Tensor, labels: torch.Tensor, cfg: FAPromptConfig) -> dict[str, torch.Tensor]:
    """Every term of the loss of one batch, and their weighted ``total``."""
    constants = dict(gamma=cfg.focal_gamma, smooth=cfg.focal_smooth, dice_smooth=cfg.dice_smooth)
    free = local_loss(upsample(out.free, cfg.image_size), masks, **constants)
    conditioned = local_loss(upsample(out.conditioned, cfg.image_size), masks, **constants)
    image = global_loss(out.logits, labels)
    score = score_focal_loss(image_score(out, cfg), labels, gamma=cfg.score_gamma)
    orthogonal = orthogonal_loss(out.abnormal)
    prior = prior_loss(out.prior, labels)
    total = (free + cfg.conditioned_weight * conditioned + image + cfg.score_weight * score
             + cfg.orthogonal_weight * orthogonal + cfg.prior_weight * prior)
    return {"total": total, "free": free, "conditioned": conditioned, "global": image, "score": score,
            "orthogonal": orthogonal, "prior": prior}


def train(model: FAPromptModel, data: FitData, cfg: FAPromptConfig, device: str, precision: str) -> list[dict[str, float]]:
    """Train ``model.learned`` for ``cfg.epochs`` epochs, resuming from ``data.checkpoints``; returns the epoch losses."""
    optimizer = torch.optim.Adam(model.learned.parameters(), lr=cfg.lr, betas=tuple(cfg.betas))

    def loss(batch: Batch) -> dict[str, torch.Tensor]:
        masks, labels = targets(batch, cfg.image_size, device, OWNER)
        tower = tower_features(model.backbone, batch.image.to(device), [cfg.layer], cfg.vv_last, cache=data.features,
                               precision=precision)
        return losses(model(tower), masks, labels, cfg)

    stage = Stage("prompts", cfg.epochs, {"learned": model.learned}, optimizer, loss, batch_size=cfg.batch_size)
    model.train()
    try:
        return EpochTrainer(data, OWNER, cfg.epochs).fit(stage)
    finally:
        model.eval()
