"""The two training stages, checkpointed under one epoch counter (stage 2's epoch k is ``epochs + k``).

Stage 1 (MPA): the text side learns (Adam, ``lr``) with the image tower frozen; loss Eq. 5 =
``L_global + Σ_p L_local + λ Σ_p L_hinge``. Stage 2 (MPAMA): the prompts are frozen (their text features
are computed once), the MoE projection learns (Adam, ``stage2_lr``); loss Eq. 6 =
``Σ_p L_local + λ Σ_p L_hinge`` (+ the optional balance term). Both read the tower's pre-projection tokens
through ``FitData.features`` when the runner provides a cache, so the tower runs once per image.
"""
from __future__ import annotations

from typing import Any

import torch

from zsadbench.method import FitData
from zsadbench.methods.anomalyclip.epochs import check_finite, restore_rng, run_epochs
from zsadbench.methods.anomalyclip.losses import targets
from zsadbench.methods.anomalyclip.scoring import upsample
from zsadbench.methods.anomalyclip.visual import TowerFeatures, tower_features
from zsadbench.types import Batch

from .config import MPAConfig, MPAMAConfig
from .losses import global_loss, level_losses
from .model import MPAModel
from .moe import MoEProjection


def _tower(model: MPAModel, batch: Batch, data: FitData, device: str, precision: str) -> TowerFeatures:
    cfg = model.cfg
    return tower_features(model.backbone, batch.image.to(device), [cfg.layer], cfg.vv_last, cache=data.features,
                          precision=precision)


def train_stage1(
    model: MPAModel, data: FitData, cfg: MPAConfig, device: str, precision: str, done: int, state: dict[str, Any], total: int
) -> list[dict[str, float]]:
    """Stage 1 from epoch ``done`` (restoring ``state`` when ``done > 0``); returns its epoch losses."""
    owner = type(cfg).__name__.removesuffix("Config")
    optimizer = torch.optim.Adam(model.prompts.parameters(), lr=cfg.lr, betas=tuple(cfg.betas))
    history: list[dict[str, float]] = []
    if done:
        model.prompts.load_state_dict(state["prompts"])
        optimizer.load_state_dict(state["optimizer"])
        history = list(state["history"])
        restore_rng(state["rng"])

    def step(batch: Batch) -> dict[str, torch.Tensor]:
        masks, labels = targets(batch, cfg.image_size, device, owner)
        tower = _tower(model, batch, data, device, precision)
        local_text, global_text = model.text_features()
        tokens, _, _ = model.level_tokens(tower.patches[0])
        maps = [upsample(m, cfg.image_size) for m in model.level_maps(tokens, local_text)]
        local, hinge = level_losses(maps, masks, cfg)
        image = global_loss(model.image_logits(tower.cls, global_text), labels)
        total_loss = image + local + cfg.hinge_weight * hinge
        check_finite(total_loss, owner, f"stage 1, epoch {len(history) + 1}")
        optimizer.zero_grad(set_to_none=True)
        total_loss.backward()
        optimizer.step()
        return {"total": total_loss, "global": image, "local": local, "hinge": hinge}

    def snapshot() -> dict[str, Any]:
        return {"prompts": model.prompts.state_dict(), "optimizer": optimizer.state_dict()}

    return run_epochs(data, owner=owner, offset=0, start=done, epochs=cfg.epochs, batch_size=cfg.batch_size,
                      step=step, snapshot=snapshot, history=history, total_epochs=total)


def build_moe(model: MPAModel, cfg: MPAMAConfig, experts: int, seed: int) -> MoEProjection:
    """A fresh MoE projection from the frozen projection; the router is drawn from a generator seeded by ``seed``."""
    generator = torch.Generator().manual_seed(int(seed))
    return MoEProjection(
        model.backbone.visual.proj, experts, top_k=cfg.top_k, renormalize=cfg.renormalize,
        router_init_std=cfg.router_init_std, generator=generator,
    ).to(model.backbone.device)


def train_stage2(
    model: MPAModel, data: FitData, cfg: MPAMAConfig, device: str, precision: str, done: int, state: dict[str, Any],
    stage1: list[dict[str, float]],
) -> list[dict[str, float]]:
    """Stage 2 from its epoch ``done`` (restoring ``state`` when ``done > 0``) on ``model.moe``; text frozen."""
    owner = "MPAMA"
    moe = model.moe
    optimizer = torch.optim.Adam(moe.parameters(), lr=cfg.stage2_lr, betas=tuple(cfg.betas))
    history: list[dict[str, float]] = []
    if done:
        moe.load_state_dict(state["moe"])
        optimizer.load_state_dict(state["optimizer"])
        history = list(state["history"])
        restore_rng(state["rng"])
    with torch.no_grad():
        local_text, _ = model.text_features()

    def step(batch: Batch) -> dict[str, torch.Tensor]:
        masks, _ = targets(batch, cfg.image_size, device, owner)
        tower = _tower(model, batch, data, device, precision)
        tokens, _, balance = model.level_tokens(tower.patches[0])
        maps = [upsample(m, cfg.image_size) for m in model.level_maps(tokens, local_text)]
        local, hinge = level_losses(maps, masks, cfg)
        total_loss = local + cfg.hinge_weight * hinge + cfg.balance_weight * balance
        check_finite(total_loss, owner, f"stage 2, epoch {len(history) + 1}")
        optimizer.zero_grad(set_to_none=True)
        total_loss.backward()
        optimizer.step()
        return {"total": total_loss, "local": local, "hinge": hinge, "balance": balance}

    def snapshot() -> dict[str, Any]:
        return {"prompts": model.prompts.state_dict(), "moe": moe.state_dict(), "optimizer": optimizer.state_dict(),
                "experts": moe.experts, "stage1_history": stage1}

    return run_epochs(data, owner=owner, offset=cfg.epochs, start=done, epochs=cfg.stage2_epochs,
                      batch_size=cfg.batch_size, step=step, snapshot=snapshot, history=history,
                      total_epochs=cfg.epochs + cfg.stage2_epochs)
