"""Per-epoch training checkpoints, so a killed run resumes training from its last finished epoch.

The runner hands a method an :class:`EpochCheckpoints` in :class:`~zsadbench.method.FitData`; the method
calls :meth:`~EpochCheckpoints.save` after every epoch and :meth:`~EpochCheckpoints.latest` before the first.
The newest two checkpoints are kept (``last.pt`` and ``previous.pt``), each written atomically: a kill during
a save leaves the one before, and a damaged newest one is discarded with a warning in favour of the one before.
"""
from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import Any

import torch

from .files import atomic_write_bytes


class EpochCheckpoints:
    """The checkpoints of one training run (one trained-state key) in ``folder``."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.path = self.folder / "last.pt"
        self.previous = self.folder / "previous.pt"

    def save(self, epoch: int, state: dict[str, Any]) -> None:
        """Record that ``epoch`` (1-based count of finished epochs) ended with ``state`` (tensors, numbers,
        lists and dicts, e.g. model and optimiser state dicts and the RNG states)."""
        buffer = io.BytesIO()
        torch.save({"epoch": int(epoch), "state": state}, buffer)
        if self.path.is_file():
            os.replace(self.path, self.previous)
        atomic_write_bytes(self.path, buffer.getvalue())

    def latest(self) -> tuple[int, dict[str, Any]] | None:
        """``(epochs finished, state)`` of the newest readable checkpoint, or ``None`` when there is none. A
        checkpoint that cannot be read is removed with a warning naming it."""
        for path in (self.path, self.previous):
            if not path.is_file():
                continue
            try:
                record = torch.load(path, map_location="cpu", weights_only=True)
                return int(record["epoch"]), record["state"]
            except Exception as exc:  # noqa: BLE001 - whatever the damage, the checkpoint before it is used
                warnings.warn(f"training checkpoint {path} cannot be read ({type(exc).__name__}); it is removed and "
                              "training resumes from the one before, if any", RuntimeWarning, stacklevel=2)
                path.unlink(missing_ok=True)
        return None

    def clear(self) -> None:
        """Remove the checkpoints (after the trained state itself is stored)."""
        self.path.unlink(missing_ok=True)
        self.previous.unlink(missing_ok=True)
        if self.folder.is_dir() and not any(self.folder.iterdir()):
            self.folder.rmdir()
