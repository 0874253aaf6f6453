"""Self-Alignment Function (SAF): a token-wise two-layer MLP that recalibrates patch features before scoring."""
from __future__ import annotations

import torch
import torch.nn as nn


class SelfAlignment(nn.Module):
    """``Linear(C,H) → GELU → Dropout → Linear(H,C) → Dropout`` with ``H = round(hidden_ratio · C)``.

    Xavier-uniform weights, zero biases and no residual connection, as in the reference code.
    ``forward`` maps ``[..., C]`` to ``[..., C]``.
    """

    def __init__(self, width: int, hidden_ratio: float = 1.0, dropout: float = 0.1) -> None:
        super().__init__()
        hidden = max(1, int(width * hidden_ratio))
        self.mlp = nn.Sequential(
            nn.Linear(width, hidden),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(hidden, width),
            nn.Dropout(dropout),
        )
        for module in self.mlp:
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp(x)
