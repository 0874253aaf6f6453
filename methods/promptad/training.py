"""The prompt-training schedule of PromptAD (and FineGrainedAD): phases of full-batch SGD steps with cosine decay.

Each phase (e.g. the segmentation prompts, then the classification prompts) has its own optimiser: SGD with
momentum and weight decay, ``CosineAnnealingLR(T_max=epochs, eta_min)``, one step per epoch on all k shots. With
:class:`~zsadbench.store.checkpoints.EpochCheckpoints` every finished epoch is saved (trained modules, the phase's
optimiser and schedule, the RNG state), and a new fit resumes after the last saved epoch. The last epoch is kept.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn as nn

from zsadbench.errors import MethodError
from zsadbench.method import FitData


@dataclass
class Phase:
    """One training phase: ``loss()`` returns named losses including ``"total"``; ``params`` are optimised."""

    name: str
    epochs: int
    params: list[nn.Parameter]
    loss: Callable[[], dict[str, torch.Tensor]]


@dataclass(frozen=True)
class Schedule:
    lr: float
    momentum: float
    weight_decay: float
    eta_min: float


def run_phases(phases: list[Phase], modules: dict[str, nn.Module], schedule: Schedule, data: FitData,
               method: str) -> list[dict[str, float]]:
    """Train every phase in order; returns each epoch's losses (``phase``, ``epoch`` and the named losses)."""
    checkpoints = data.checkpoints
    resumed = checkpoints.latest() if checkpoints is not None else None
    done, saved = (resumed if resumed is not None else (0, None))
    if saved is not None:
        for name, module in modules.items():
            module.load_state_dict(saved["modules"][name])
        torch.set_rng_state(saved["rng"])
    history: list[dict[str, float]] = list(saved["history"]) if saved is not None else []
    total = sum(p.epochs for p in phases)
    offset = 0
    for phase in phases:
        if done >= offset + phase.epochs or phase.epochs == 0:
            offset += phase.epochs
            continue
        optimizer = torch.optim.SGD(phase.params, lr=schedule.lr, momentum=schedule.momentum,
                                    weight_decay=schedule.weight_decay)
        cosine = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=phase.epochs, eta_min=schedule.eta_min)
        start = max(0, done - offset)
        if start and saved is not None and saved.get("phase") == phase.name:
            optimizer.load_state_dict(saved["optimizer"])
            cosine.load_state_dict(saved["cosine"])
        for epoch in range(start, phase.epochs):
            losses = phase.loss()
            if not torch.isfinite(losses["total"]):
                raise MethodError(f"{method} {phase.name} loss is {float(losses['total'])} at epoch {epoch + 1}; lower lr")
            optimizer.zero_grad(set_to_none=True)
            losses["total"].backward()
            optimizer.step()
            cosine.step()
            history.append({"phase": phase.name, "epoch": epoch + 1, **{k: float(v.detach()) for k, v in losses.items()}})
            data.report(f"{phase.name} epoch {epoch + 1}/{phase.epochs} loss {float(losses['total'].detach()):.4f}",
                        (offset + epoch + 1) / total)
            if checkpoints is not None:
                checkpoints.save(offset + epoch + 1, {
                    "phase": phase.name,
                    "modules": {n: m.state_dict() for n, m in modules.items()},
                    "optimizer": optimizer.state_dict(),
                    "cosine": cosine.state_dict(),
                    "rng": torch.get_rng_state(),
                    "history": history,
                })
        offset += phase.epochs
    return history
