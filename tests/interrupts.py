"""A training interrupted at a chosen epoch, as a kill right after that epoch's checkpoint would leave it."""
from __future__ import annotations

from zsadbench.store.checkpoints import EpochCheckpoints


class Interrupted(Exception):
    pass


class FailingAfter(EpochCheckpoints):
    """Checkpoints whose save raises after recording epoch ``stop`` (as a killed run would stop there)."""

    def __init__(self, folder, stop: int) -> None:
        super().__init__(folder)
        self.stop = stop

    def save(self, epoch, state) -> None:
        super().save(epoch, state)
        if epoch == self.stop:
            self.stop = -1
            raise Interrupted(epoch)
