"""The prompt-training schedule of PromptAD (and FineGrainedAD): phases of full-batch SGD steps with cosine decay.

Each phase (e.g. the segmentation prompts, then the classification prompts) has its own optimiser: SGD with
momentum and weight decay, ``CosineAnnealingLR(T_max=epochs, eta_min)``, one step per epoch on all k shots. The
phases run as stages of the framework's :class:`~zsadbench.training.EpochTrainer`: every finished epoch is
checkpointed (trained modules, the phase's optimiser and schedule, the RNG states) and a new fit resumes after
the last saved epoch. The last epoch is kept.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn as nn

from zsadbench.method import FitData
from zsadbench.training import EpochTrainer, Stage


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
    trainer = EpochTrainer(data, method, sum(p.epochs for p in phases))
    history: list[dict[str, float]] = []
    for phase in phases:
        if phase.epochs == 0:
            continue
        optimizer = torch.optim.SGD(phase.params, lr=schedule.lr, momentum=schedule.momentum,
                                    weight_decay=schedule.weight_decay)
        cosine = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=phase.epochs, eta_min=schedule.eta_min)
        stage = Stage(phase.name, phase.epochs, modules, optimizer, lambda _, loss=phase.loss: loss(), schedule=cosine)
        history.extend({"phase": phase.name, **losses} for losses in trainer.fit(stage))
    return history
