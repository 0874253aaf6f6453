"""VisualAD's training loop on an auxiliary set, as in the reference ``train.py``.

AdamW with two learning rates (tokens vs. ``ln_post``/SAF/SCA), one weight decay for every group, a cosine
schedule over the epochs stepped once per epoch, each token's gradient clipped on its own. The state after
the last epoch is kept (no model selection).
"""
from __future__ import annotations

import math

import torch

from zsadbench.errors import DataError, MethodError
from zsadbench.maps import upsample
from zsadbench.method import FitData
from zsadbench.training import epoch_seed
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


def _targets(batch: Batch, size: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    if batch.gt_label is None:
        raise DataError(f"VisualAD training batch {batch.image_path[:1]} has no gt_label; the auxiliary set needs labels")
    labels = batch.gt_label.to(device)
    if batch.gt_mask is None:
        masks = torch.zeros(len(batch), size, size, device=device)
    else:
        if tuple(batch.gt_mask.shape[-2:]) != (size, size):
            raise MethodError(
                f"VisualAD got training masks of {tuple(batch.gt_mask.shape[-2:])} px for images of {size} px; "
                "masks must come at the method's input size"
            )
        masks = (batch.gt_mask.to(device).float() > 0.5).float()
    return masks, labels


def train(model: VisualADModel, data: FitData, cfg: VisualADConfig, device: torch.device | str) -> list[dict[str, float]]:
    """Train ``model.head`` for ``cfg.epochs`` epochs on ``data``; returns the mean losses of each epoch."""
    optimizer = make_optimizer(model, cfg)
    schedule = make_schedule(optimizer, cfg)
    params = loss_params(cfg)
    steps = max(1, math.ceil(data.num_images / cfg.batch_size))
    head = model.head
    history: list[dict[str, float]] = []
    model.train()
    try:
        for epoch in range(cfg.epochs):
            sums = {"total": 0.0, "seg": 0.0, "img": 0.0, "con": 0.0}
            count = 0
            for batch in data.batches(cfg.batch_size, shuffle=True, seed=epoch_seed(data.seed, epoch)):
                masks, labels = _targets(batch, cfg.image_size, torch.device(device))
                output = model(batch.image.to(device))
                maps = upsample(output.maps, cfg.image_size)
                losses = visualad_loss(maps, masks, labels, output.anomaly[:, -1], output.normal[:, -1], params)
                if not torch.isfinite(losses["total"]):
                    raise MethodError(
                        f"VisualAD loss is {losses['total'].item()} at epoch {epoch + 1}, step {count + 1}; "
                        "lower lr_tokens/lr_other or turn backbone_bf16 off"
                    )
                optimizer.zero_grad(set_to_none=True)
                losses["total"].backward()
                if cfg.token_grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_([head.anomaly_token], cfg.token_grad_clip)
                    torch.nn.utils.clip_grad_norm_([head.normal_token], cfg.token_grad_clip)
                optimizer.step()
                for key in sums:
                    sums[key] += float(losses[key].detach())
                count += 1
                data.report(
                    f"epoch {epoch + 1}/{cfg.epochs} loss {sums['total'] / count:.4f}",
                    min(1.0, (epoch + min(count, steps) / steps) / cfg.epochs),
                )
            if count == 0:
                raise DataError(f"VisualAD: the auxiliary set {data.dataset!r} yielded no training batches")
            schedule.step()
            history.append({key: value / count for key, value in sums.items()})
    finally:
        model.eval()
    return history
