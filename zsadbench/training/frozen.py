"""The frozen backbone that methods train small modules around, and the check of the blocks they tap."""
from __future__ import annotations

from collections.abc import Sequence

import torch.nn as nn

from ..errors import ConfigError


def check_layers(backbone: nn.Module, layers: Sequence[int], field: str, example: str | None = None) -> None:
    """Raise naming ``field`` (``Config.field``) when a 1-based block number in ``layers`` is outside the
    backbone's ``depth`` blocks; ``example`` is the value the message suggests (default: the last block)."""
    depth = int(backbone.depth)
    bad = [layer for layer in layers if not 1 <= layer <= depth]
    if bad:
        suggestion = example if example is not None else str(depth)
        raise ConfigError(
            f"{field} {list(layers)}: {bad} outside 1..{depth}, the blocks of {getattr(backbone, 'name', 'this backbone')}; "
            f"e.g. --set {field.rpartition('.')[2]}={suggestion}"
        )


class FrozenBackboneModel(nn.Module):
    """Base of a network that trains modules around a frozen ``backbone``: the backbone has no gradients and
    stays in eval mode whatever ``train()`` is called with; ``grid`` is its patch grid ``(h, w)``."""

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone.requires_grad_(False).eval()

    def train(self, mode: bool = True) -> "FrozenBackboneModel":
        super().train(mode)
        self.backbone.eval()
        return self

    @property
    def grid(self) -> tuple[int, int]:
        return tuple(self.backbone.grid_size)  # type: ignore[return-value]
