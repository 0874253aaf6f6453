"""Spatial-Aware Cross-Attention (SCA): injects a tapped layer's spatial detail into the final tokens.

A few learnable anchor queries attend over the layer's patches (keys carry a learnable positional
encoding); each token then mixes the anchors' read-outs through a sigmoid gate computed from itself and
adds the projected mix, scaled by a small learnable residual factor. The attention does not depend on the
token, only the gate does.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from zsadbench.errors import ConfigError


class SpatialCrossAttention(nn.Module):
    """One SCA module (single head, width ``C``).

    ``forward(tokens [B,T,C], patches [B,N,C]) -> [B,T,C]``. The T tokens share the weights; dropout masks
    are drawn independently per token, as if the module were called once per token.
    """

    def __init__(
        self,
        width: int,
        num_anchors: int = 4,
        dropout: float = 0.1,
        max_patches: int = 1536,
        res_scale_init: float = 0.01,
        init_std: float = 0.02,
    ) -> None:
        super().__init__()
        self.width = width
        self.max_patches = max_patches
        self.anchors = nn.Parameter(torch.randn(num_anchors, width) * init_std)
        self.pos_encoding = nn.Parameter(torch.randn(1, max_patches, width) * init_std)
        self.q_proj = nn.Linear(width, width, bias=False)
        self.k_proj = nn.Linear(width, width, bias=False)
        self.v_proj = nn.Linear(width, width, bias=False)
        self.q_norm = nn.LayerNorm(width)
        self.k_norm = nn.LayerNorm(width)
        self.gate = nn.Linear(width, num_anchors)
        self.out_proj = nn.Linear(width, width)
        self.dropout = nn.Dropout(dropout)
        self.res_scale = nn.Parameter(torch.full((1,), float(res_scale_init)))
        for linear in (self.q_proj, self.k_proj, self.v_proj, self.out_proj):
            nn.init.xavier_uniform_(linear.weight)
        nn.init.zeros_(self.out_proj.bias)

    def attention(self, patches: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Softmax attention of the anchors over the patches ``[B, A, N]`` (before dropout) and the values ``[B, N, C]``."""
        batch, count, width = patches.shape
        if count > self.max_patches:
            raise ConfigError(
                f"SCA got {count} patches but max_patches={self.max_patches}; raise visualad.max_patches to at least "
                f"{count} or use a smaller image_size"
            )
        queries = self.q_norm(self.q_proj(self.anchors)).unsqueeze(0)
        keys = self.k_norm(self.k_proj(patches + self.pos_encoding[:, :count]))
        logits = queries @ keys.transpose(1, 2) * width**-0.5
        return logits.softmax(dim=-1), self.v_proj(patches)

    def forward(self, tokens: torch.Tensor, patches: torch.Tensor) -> torch.Tensor:
        attn, values = self.attention(patches)
        attn = self.dropout(attn.unsqueeze(1).expand(-1, tokens.shape[1], -1, -1))  # [B, T, A, N]
        read = attn @ values.unsqueeze(1)  # [B, T, A, C]
        gate = torch.sigmoid(self.gate(tokens)).unsqueeze(-1)  # [B, T, A, 1]
        mixed = (gate * read).sum(dim=2)
        return tokens + self.res_scale * self.dropout(self.out_proj(mixed))
