"""A checkpointed epoch loop shared by the prompt-learning methods (AnomalyCLIP, MPA, MPAMA).

Every finished epoch is saved through :class:`~zsadbench.store.checkpoints.EpochCheckpoints` with the
method's own state (model and optimiser state dicts), the loss history and the RNG states, under one epoch
counter that runs across training stages (a second stage's epoch ``k`` is saved as ``offset + k``). The
shuffling order of an epoch depends only on the run seed and that counter, so a resumed run sees the same
batches as an uninterrupted one.
"""
from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from zsadbench.errors import DataError, MethodError
from zsadbench.method import FitData
from zsadbench.training import epoch_seed
from zsadbench.types import Batch


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


def latest(data: FitData) -> tuple[int, dict[str, Any]]:
    """``(epochs finished, state)`` of the run's newest checkpoint; ``(0, {})`` when there is none."""
    found = None if data.checkpoints is None else data.checkpoints.latest()
    return (0, {}) if found is None else found


def run_epochs(
    data: FitData,
    *,
    owner: str,
    offset: int,
    start: int,
    epochs: int,
    batch_size: int,
    step: Callable[[Batch], dict[str, torch.Tensor]],
    snapshot: Callable[[], dict[str, Any]],
    history: list[dict[str, float]],
    total_epochs: int,
) -> list[dict[str, float]]:
    """Epochs ``start .. epochs-1`` of a stage whose first epoch is number ``offset + 1`` overall.

    ``step(batch)`` trains on one batch and returns its losses (``"total"`` first); ``snapshot()`` returns
    the state to checkpoint. The mean losses of each epoch are appended to ``history`` (also checkpointed).
    """
    for epoch in range(start, epochs):
        number = offset + epoch + 1
        sums: dict[str, float] = {}
        count = 0
        steps = max(1, -(-data.num_images // batch_size))
        for batch in data.batches(batch_size, shuffle=True, seed=epoch_seed(data.seed, number - 1)):
            losses = step(batch)
            for key, value in losses.items():
                sums[key] = sums.get(key, 0.0) + float(value.detach())
            count += 1
            data.report(
                f"epoch {number}/{total_epochs} loss {sums['total'] / count:.4f}",
                min(1.0, (number - 1 + min(count, steps) / steps) / total_epochs),
            )
        if count == 0:
            raise DataError(f"{owner}: the auxiliary set {data.dataset!r} yielded no training batches")
        history.append({key: value / count for key, value in sums.items()})
        if data.checkpoints is not None:
            data.checkpoints.save(number, {**snapshot(), "history": history, "rng": rng_state()})
    return history


def check_finite(loss: torch.Tensor, owner: str, what: str) -> None:
    """Raise :class:`~zsadbench.errors.MethodError` on a NaN/inf loss, naming where it happened."""
    if not torch.isfinite(loss):
        raise MethodError(f"{owner} loss is {loss.item()} ({what}); lower lr or run in fp32 (--precision fp32)")
