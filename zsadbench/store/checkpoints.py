"""Per-epoch training checkpoints, so a killed run resumes training from its last finished epoch.

The runner hands a method an :class:`EpochCheckpoints` in :class:`~zsadbench.method.FitData`; the method
calls :meth:`~EpochCheckpoints.save` after every epoch and :meth:`~EpochCheckpoints.latest` before the first.
Only the newest checkpoint is kept; it is written atomically, so a kill during a save leaves the previous one.
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import torch

from .files import atomic_write_bytes


class EpochCheckpoints:
    """The checkpoints of one training run (one trained-state key) in ``folder``."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.path = self.folder / "last.pt"

    def save(self, epoch: int, state: dict[str, Any]) -> None:
        """Record that ``epoch`` (1-based count of finished epochs) ended with ``state`` (tensors, numbers,
        lists and dicts, e.g. model and optimiser state dicts and the RNG states)."""
        buffer = io.BytesIO()
        torch.save({"epoch": int(epoch), "state": state}, buffer)
        atomic_write_bytes(self.path, buffer.getvalue())

    def latest(self) -> tuple[int, dict[str, Any]] | None:
        """``(epochs finished, state)`` of the newest checkpoint, or ``None`` when there is none."""
        if not self.path.is_file():
            return None
        record = torch.load(self.path, map_location="cpu", weights_only=True)
        return int(record["epoch"]), record["state"]

    def clear(self) -> None:
        """Remove the checkpoints (after the trained state itself is stored)."""
        self.path.unlink(missing_ok=True)
        if self.folder.is_dir() and not any(self.folder.iterdir()):
            self.folder.rmdir()
