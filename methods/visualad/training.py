"""VisualAD's training on an auxiliary set, as in the reference ``train.py``, on the framework's epoch engine.

AdamW with two learning rates (tokens vs. ``ln_post``/SAF/SCA), one weight decay for every group, a cosine
schedule over the epochs stepped once per epoch, each token's gradient clipped on its own. The state after
the last epoch is kept (no model selection). Every epoch is checkpointed, so a killed fit resumes after its
last finished epoch. The feature cache does not apply: the learnable tokens run through every block of the
backbone, so no part of its output is frozen.
"""
from __future__ import annotations

import torch

from zsadbench.maps import upsample
from zsadbench.method import FitData
from zsadbench.training import EpochTrainer, Stage, targets
from zsadbench.types import Batch

from .config import VisualADConfig
from .losses import LossParams, visualad_loss
from .model import VisualADModel
def make_optimizer(model: VisualADModel, cfg: VisualADConfig) -> torch.optim.AdamW:
    """AdamW: ``lr_tokens`` for each token (own groups), ``lr_other`` for ``ln_post``, SAF and SCA."""
    head = model.head
    groups = [
        {"params": [head.anomaly_token], "lr": cfg.lr_tokens},
        {"params": [head.normal_token], "lr": cfg.lr_tokens},
        {"params": list(head.ln_post.parameters()), "lr": cfg.lr_other},
        {"params": list(head.saf.parameters()), "lr": cfg.lr_other},
        {"params": list(head.sca.parameters()), "lr": cfg.lr_other},
    ]
    return torch.optim.AdamW(groups, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay)


def make_schedule(optimizer: torch.optim.Optimizer, cfg: VisualADConfig) -> torch.optim.lr_scheduler.CosineAnnealingLR:
    """Cosine annealing over ``cfg.epochs`` (stepped once per epoch) down to ``cfg.eta_min``; groups whose base
    lr equals ``eta_min`` (``lr_other`` = 1e-4 by default) stay constant."""
    return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.epochs, eta_min=cfg.eta_min)


def loss_params(cfg: VisualADConfig) -> LossParams:
    return LossParams(
        focal_gamma=cfg.focal_gamma,
        focal_alpha=cfg.focal_alpha,
        focal_smooth=cfg.focal_smooth,
        dice_smooth=cfg.dice_smooth,
        hinge_margin=cfg.hinge_margin,
        topk_ratio=cfg.topk_ratio,
    )


def train(model: VisualADModel, data: FitData, cfg: VisualADConfig, device: torch.device | str) -> list[dict[str, float]]:
    """Train ``model.head`` for ``cfg.epochs`` epochs on ``data`` (resuming from ``data.checkpoints``); returns
    the mean losses of each epoch."""
    optimizer = make_optimizer(model, cfg)
    params = loss_params(cfg)
    head = model.head

    def loss(batch: Batch) -> dict[str, torch.Tensor]:
        masks, labels = targets(batch, cfg.image_size, torch.device(device), "VisualAD")
        output = model(batch.image.to(device))
        maps = upsample(output.maps, cfg.image_size)
        return visualad_loss(maps, masks, labels, output.anomaly[:, -1], output.normal[:, -1], params)

    def clip_tokens() -> None:
        torch.nn.utils.clip_grad_norm_([head.anomaly_token], cfg.token_grad_clip)
        torch.nn.utils.clip_grad_norm_([head.normal_token], cfg.token_grad_clip)

    stage = Stage("head", cfg.epochs, {"head": head}, optimizer, loss, batch_size=cfg.batch_size,
                  schedule=make_schedule(optimizer, cfg), before_step=clip_tokens if cfg.token_grad_clip > 0 else None)
    model.train()
    try:
        return EpochTrainer(data, "VisualAD", cfg.epochs).fit(stage)
    finally:
        model.eval()
