"""The epoch engine every method that trains runs on: checkpoints, resume, RNG state, progress, finite losses.

A fit is a sequence of :class:`Stage` objects run by one :class:`EpochTrainer`, under one epoch counter that
runs across the stages (a second stage's epoch ``k`` is epoch ``offset + k`` of the fit). After every epoch
the trainer saves, through :class:`~zsadbench.store.checkpoints.EpochCheckpoints`, the stage's modules,
optimiser and schedule, the loss history of every stage so far, the RNG states and the stage's ``extra``
values. The shuffling order of an epoch depends only on the fit's seed and that counter, so a fit killed at
any moment and started again resumes after its last finished epoch and ends in the state an uninterrupted fit
reaches.
"""
from __future__ import annotations

import random
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn as nn

from ..errors import DataError, MethodError
from ..method import FitData
from ..types import Batch

#: Version of the checkpoint layout; checkpoints of another layout are ignored (the fit starts over).
CHECKPOINT_FORMAT = 1

Losses = dict[str, torch.Tensor]


def epoch_seed(seed: int, epoch: int) -> int:
    """The shuffling seed of one epoch (0-based count over the whole fit), derived from the fit's seed."""
    return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


def rng_state() -> dict[str, Any]:
    """The torch, NumPy and Python RNG states in a form ``torch.load(weights_only=True)`` reads back."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "python": random.getstate(),
    }


def restore_rng(state: dict[str, Any]) -> None:
    """Undo :func:`rng_state`."""
    torch.set_rng_state(state["torch"])
    saved = state["numpy"]
    np.random.set_state(
        (saved["kind"], saved["keys"].numpy().astype(np.uint32), saved["pos"], saved["has_gauss"], saved["cached"])
    )
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))


@dataclass
class Stage:
    """One training stage: ``epochs`` epochs minimising ``loss(...)["total"]`` with ``optimizer``.

    ``loss`` takes a training batch when ``batch_size`` is set (the trainer iterates the fit data, shuffled
    per epoch), or ``None`` for one full-batch step per epoch (``batch_size=None``: e.g. k support images
    whose features the method holds). ``modules`` hold everything trained so far (earlier stages' modules
    included when this stage keeps them): they are checkpointed and restored on resume. ``schedule`` steps
    once per epoch; ``before_step`` runs between ``backward`` and the optimiser step (gradient clipping);
    ``extra`` values are saved with each checkpoint and read back with :meth:`EpochTrainer.saved`.
    """

    name: str
    epochs: int
    modules: dict[str, nn.Module]
    optimizer: torch.optim.Optimizer
    loss: Callable[[Batch | None], Losses]
    batch_size: int | None = None
    schedule: Any = None
    before_step: Callable[[], None] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class EpochTrainer:
    """Runs the stages of one fit in order, checkpointing each epoch and resuming from ``data.checkpoints``.

    ``owner`` names the method in errors and progress; ``total_epochs`` is the fit's epoch count over all
    stages (for the progress fraction).
    """

    def __init__(self, data: FitData, owner: str, total_epochs: int) -> None:
        self.data = data
        self.owner = owner
        self.total_epochs = max(1, total_epochs)
        self.offset = 0
        self.done, self._saved = _resume_point(data, owner)
        self.history: dict[str, list[dict[str, float]]] = dict(self._saved["history"]) if self._saved else {}

    def saved(self, key: str, default: Any = None) -> Any:
        """An ``extra`` value of the checkpoint the fit resumes from (``default`` without one)."""
        return default if self._saved is None else self._saved["extra"].get(key, default)

    def resumes_after(self, epochs: int) -> bool:
        """True when the checkpoint the fit resumes from lies past its first ``epochs`` epochs."""
        return self.done > epochs

    def fit(self, stage: Stage) -> list[dict[str, float]]:
        """Train ``stage`` (resuming inside it or skipping it when a checkpoint lies past it); its epoch losses."""
        start, end = self.offset, self.offset + stage.epochs
        self.offset = end
        first = 0
        if self._saved is not None and start < self.done:
            self._restore(stage, own=self.done <= end)
            if self.done >= end:
                return list(self.history.get(stage.name, []))
            first = self.done - start
        history = self.history.setdefault(stage.name, [])
        for epoch in range(first, stage.epochs):
            number = start + epoch + 1
            means = self._epoch(stage, number)
            if stage.schedule is not None:
                stage.schedule.step()
            history.append({"epoch": number, **means})
            if self.data.checkpoints is not None:
                self.data.checkpoints.save(number, self._checkpoint(stage))
        return list(history)

    # -- internals --------------------------------------------------------------------------------------
    def _epoch(self, stage: Stage, number: int) -> dict[str, float]:
        data = self.data
        sums: dict[str, float] = {}
        count = 0
        if stage.batch_size is None:
            batches: Any = [None]
            steps = 1
        else:
            batches = data.batches(stage.batch_size, shuffle=True, seed=epoch_seed(data.seed, number - 1))
            steps = max(1, -(-data.num_images // stage.batch_size))
        for batch in batches:
            losses = stage.loss(batch)
            total = losses["total"]
            if not torch.isfinite(total):
                raise MethodError(
                    f"{self.owner} loss is {total.item()} ({stage.name}, epoch {number}); "
                    "lower the learning rate or run in fp32 (--precision fp32)"
                )
            stage.optimizer.zero_grad(set_to_none=True)
            total.backward()
            if stage.before_step is not None:
                stage.before_step()
            stage.optimizer.step()
            for key, value in losses.items():
                sums[key] = sums.get(key, 0.0) + float(value.detach())
            count += 1
            data.report(
                f"{stage.name} epoch {number}/{self.total_epochs} loss {sums['total'] / count:.4f}",
                min(1.0, (number - 1 + min(count, steps) / steps) / self.total_epochs),
            )
        if count == 0:
            raise DataError(f"{self.owner}: the fit data of {data.dataset!r} yielded no training batches")
        return {key: value / count for key, value in sums.items()}

    def _checkpoint(self, stage: Stage) -> dict[str, Any]:
        return {
            "format": CHECKPOINT_FORMAT,
            "stage": stage.name,
            "modules": {name: module.state_dict() for name, module in stage.modules.items()},
            "optimizer": stage.optimizer.state_dict(),
            "schedule": stage.schedule.state_dict() if stage.schedule is not None else {},
            "history": self.history,
            "rng": rng_state(),
            "extra": dict(stage.extra),
        }

    def _restore(self, stage: Stage, own: bool) -> None:
        """Load ``stage``'s modules from the checkpoint; with ``own`` (the checkpoint is one of this stage's
        epochs) also its optimiser, schedule and the RNG states."""
        saved = self._saved
        missing = sorted(set(stage.modules) - set(saved["modules"]))
        if missing:
            raise MethodError(f"{self.owner}: the training checkpoint has no {missing[0]!r} for stage {stage.name!r}; "
                              "run again with --force to train from the start")
        for name, module in stage.modules.items():
            module.load_state_dict(saved["modules"][name])
        if own:
            if saved["stage"] == stage.name:
                stage.optimizer.load_state_dict(saved["optimizer"])
                if stage.schedule is not None:
                    stage.schedule.load_state_dict(saved["schedule"])
            restore_rng(saved["rng"])


def _resume_point(data: FitData, owner: str) -> tuple[int, dict[str, Any] | None]:
    """``(epochs finished, checkpoint)`` of the fit's newest readable checkpoint; ``(0, None)`` without one."""
    if data.checkpoints is None:
        return 0, None
    found = data.checkpoints.latest()  # skips (and warns about) checkpoints that cannot be read
    if found is None:
        return 0, None
    epoch, state = found
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        warnings.warn(f"{owner}: training checkpoint {data.checkpoints.path} has another layout; training starts over",
                      stacklevel=3)
        return 0, None
    return epoch, state
