"""AnomalyCLIP's training loop (``train.py``): Adam on the prompts only, the last epoch is kept.

Loss per batch: ``local_weight · Σ_layers [Focal + Dice(S_a, S) + Dice(S_n, 1 − S)] + CE(image logits)``,
on probabilities upsampled bilinearly to the input size. The image tower is frozen, so its outputs come
from ``FitData.features`` (the tower runs once per image) when the runner provides a cache.
"""
from __future__ import annotations

import torch

from zsadbench.method import FitData

from .config import AnomalyCLIPConfig
from .epochs import check_finite, latest, restore_rng, run_epochs
from .losses import global_loss, local_loss, targets
from .model import AnomalyCLIPModel
from .scoring import upsample
from .visual import tower_features

OWNER = "AnomalyCLIP"


def train(model: AnomalyCLIPModel, data: FitData, cfg: AnomalyCLIPConfig, device: str, precision: str) -> list[dict[str, float]]:
    """Train ``model.prompts`` for ``cfg.epochs`` epochs, resuming from ``data.checkpoints``; returns the epoch losses."""
    optimizer = torch.optim.Adam(model.prompts.parameters(), lr=cfg.lr, betas=tuple(cfg.betas))
    done, state = latest(data)
    history: list[dict[str, float]] = []
    if done:
        model.prompts.load_state_dict(state["prompts"])
        optimizer.load_state_dict(state["optimizer"])
        history = list(state["history"])
        restore_rng(state["rng"])

    def step(batch) -> dict[str, torch.Tensor]:
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
        total = cfg.local_weight * local + image
        check_finite(total, OWNER, f"{len(history) + 1}th epoch")
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
        return {"total": total, "local": local, "global": image}

    def snapshot() -> dict:
        return {"prompts": model.prompts.state_dict(), "optimizer": optimizer.state_dict()}

    model.train()
    try:
        return run_epochs(data, owner=OWNER, offset=0, start=done, epochs=cfg.epochs, batch_size=cfg.batch_size,
                          step=step, snapshot=snapshot, history=history, total_epochs=cfg.epochs)
    finally:
        model.eval()
