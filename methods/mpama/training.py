"""The two training stages, run by one :class:`~zsadbench.training.EpochTrainer` (stage 2's epoch k is epoch
``epochs + k`` of the fit).

Stage 1 (MPA): the text side learns (Adam, ``lr``) with the image tower frozen; loss Eq. 5 =
``L_global + Σ_p L_local + λ Σ_p L_hinge``. Stage 2 (MPAMA): the prompts are frozen (their text features
are computed once), the MoE projection learns (Adam, ``stage2_lr``); loss Eq. 6 =
``Σ_p L_local + λ Σ_p L_hinge`` (+ the optional balance term). Both read the tower's pre-projection tokens
through ``FitData.features`` when the runner provides a cache, so the tower runs once per image.
"""
from __future__ import annotations

import torch

from zsadbench.maps import upsample
from zsadbench.method import FitData
from zsadbench.methods.anomalyclip import TowerFeatures, tower_features
from zsadbench.training import Stage, targets
from zsadbench.types import Batch

from .config import MPAConfig, MPAMAConfig
from .losses import global_loss, level_losses
from .model import MPAModel
from .moe import MoEProjection


def _tower(model: MPAModel, batch: Batch, data: FitData, device: str, precision: str) -> TowerFeatures:
    cfg = model.cfg
    return tower_features(model.backbone, batch.image.to(device), [cfg.layer], cfg.vv_last, cache=data.features,
                          precision=precision)


def stage1(model: MPAModel, data: FitData, cfg: MPAConfig, device: str, precision: str, owner: str) -> Stage:
    """Stage 1: the prompts learn on the frozen tower."""
    optimizer = torch.optim.Adam(model.prompts.parameters(), lr=cfg.lr, betas=tuple(cfg.betas))

    def loss(batch: Batch) -> dict[str, torch.Tensor]:
        masks, labels = targets(batch, cfg.image_size, device, owner)
        tower = _tower(model, batch, data, device, precision)
        local_text, global_text = model.text_features()
        tokens, _, _ = model.level_tokens(tower.patches[0])
        maps = [upsample(m, cfg.image_size) for m in model.level_maps(tokens, local_text)]
        local, hinge = level_losses(maps, masks, cfg)
        image = global_loss(model.image_logits(tower.cls, global_text), labels)
        return {"total": image + local + cfg.hinge_weight * hinge, "global": image, "local": local, "hinge": hinge}

    return Stage("stage1", cfg.epochs, {"prompts": model.prompts}, optimizer, loss, batch_size=cfg.batch_size)


def build_moe(model: MPAModel, cfg: MPAMAConfig, experts: int, seed: int) -> MoEProjection:
    """A fresh MoE projection from the frozen projection; the router is drawn from a generator seeded by ``seed``."""
    generator = torch.Generator().manual_seed(int(seed))
    return MoEProjection(
        model.backbone.visual.proj, experts, top_k=cfg.top_k, renormalize=cfg.renormalize,
        router_init_std=cfg.router_init_std, single_expert=cfg.single_expert, generator=generator,
    ).to(model.backbone.device)


def stage2(model: MPAModel, data: FitData, cfg: MPAMAConfig, device: str, precision: str, owner: str) -> Stage:
    """Stage 2: ``model.moe`` learns with the text features of the trained (now frozen) prompts."""
    moe = model.moe
    optimizer = torch.optim.Adam(moe.parameters(), lr=cfg.stage2_lr, betas=tuple(cfg.betas))
    with torch.no_grad():
        local_text, _ = model.text_features()

    def loss(batch: Batch) -> dict[str, torch.Tensor]:
        masks, _ = targets(batch, cfg.image_size, device, owner)
        tower = _tower(model, batch, data, device, precision)
        tokens, _, balance = model.level_tokens(tower.patches[0])
        maps = [upsample(m, cfg.image_size) for m in model.level_maps(tokens, local_text)]
        local, hinge = level_losses(maps, masks, cfg)
        total = local + cfg.hinge_weight * hinge + cfg.balance_weight * balance
        return {"total": total, "local": local, "hinge": hinge, "balance": balance}

    return Stage("stage2", cfg.stage2_epochs, {"prompts": model.prompts, "moe": moe}, optimizer, loss,
                 batch_size=cfg.batch_size, extra={"experts": moe.experts})
