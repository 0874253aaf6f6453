"""AdaCLIP's training (official ``AdaCLIP_Trainer.train_one_batch``) on the framework's epoch engine.

Loss per batch: ``Focal(image probabilities, label) + Σ_layers [Focal(S_l, gt) + Dice(S_a, gt) +
Dice(S_n, 1 − gt)]``, where ``S_l`` is the softmax of layer ``l``'s logits upsampled to the input size and the
Dice terms are taken per image (or per image row, ``dice_unit="row"``, as the official trainer's batch-1 masks
make them). AdamW on the head only (prompts, projections, prompt generators); the last epoch is kept. The frozen
embedding that makes the dynamic prompts comes from ``FitData.features`` when the runner provides a cache; the
prompted tower runs every step.
"""
from __future__ import annotations

import torch

from zsadbench.method import FitData
from zsadbench.training import EpochTrainer, Stage, dice_loss, focal_loss, targets
from zsadbench.types import Batch

from .config import AdaCLIPConfig
from .model import AdaCLIPModel, upsample_logits

OWNER = "AdaCLIP"


def segmentation_loss(probs: torch.Tensor, masks: torch.Tensor, cfg: AdaCLIPConfig) -> torch.Tensor:
    """``Focal(S, gt) + Dice(S_a, gt) + Dice(S_n, 1 − gt)`` for ``[B, 2, H, W]`` probabilities and binary
    ``[B, H, W]`` masks; the focal term sees the anomaly channel (``S_n = 1 − S_a``), the Dice terms take each
    image, or each image row with ``dice_unit="row"``, for a sample."""
    def unit(t: torch.Tensor) -> torch.Tensor:
        return t.flatten(0, 1) if cfg.dice_unit == "row" else t

    anomaly, normal = probs[:, 1], probs[:, 0]
    return (focal_loss(anomaly, masks, gamma=cfg.focal_gamma, smooth=cfg.focal_smooth)
            + dice_loss(unit(anomaly), unit(masks), smooth=cfg.dice_smooth)
            + dice_loss(unit(normal), unit(1.0 - masks), smooth=cfg.dice_smooth))


def adaclip_loss(patch_logits: list[torch.Tensor], image_logits: torch.Tensor, masks: torch.Tensor,
                 labels: torch.Tensor, cfg: AdaCLIPConfig, grid: tuple[int, int]) -> dict[str, torch.Tensor]:
    """The official loss of one batch from the model's logits, with its image and segmentation parts."""
    image = focal_loss(image_logits.softmax(dim=-1)[:, 1], labels.float(), gamma=cfg.focal_gamma,
                       smooth=cfg.focal_smooth)
    segmentation = sum(
        segmentation_loss(upsample_logits(logits, grid, cfg.image_size).softmax(dim=1), masks, cfg)
        for logits in patch_logits
    )
    return {"total": image + segmentation, "image": image, "segmentation": segmentation}


def train(model: AdaCLIPModel, data: FitData, cfg: AdaCLIPConfig, device: str) -> list[dict[str, float]]:
    """Train ``model.head`` for ``cfg.epochs`` epochs, resuming from ``data.checkpoints``; returns the epoch losses."""
    optimizer = torch.optim.AdamW(model.head.parameters(), lr=cfg.lr, betas=tuple(cfg.betas),
                                  weight_decay=cfg.weight_decay)

    def loss(batch: Batch) -> dict[str, torch.Tensor]:
        masks, labels = targets(batch, cfg.image_size, device, OWNER)
        output = model(batch.image.to(device), batch.categories, data.features)
        return adaclip_loss(output.patch_logits, output.image_logits, masks, labels, cfg, model.grid)

    stage = Stage("head", cfg.epochs, {"head": model.head}, optimizer, loss, batch_size=cfg.batch_size)
    model.train()
    try:
        return EpochTrainer(data, OWNER, cfg.epochs).fit(stage)
    finally:
        model.eval()
