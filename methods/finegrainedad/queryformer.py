"""The Query Former: learnable intrinsic representations of every prompt level, read from its normal and abnormal features.

Two parallel cross-attention layers take the ``L`` learnable queries and attend over the normal (resp. abnormal)
features of the ``L`` levels; one linear layer fuses the two outputs. With ``one_to_one`` every query sees only
its own level's feature, as in the released code (where the softmax over one key is 1 and the queries drop out).
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


class QueryFormer(nn.Module):
    """``forward(normal [L, D], abnormal [L, D]) -> [L, D]`` intrinsic representations (not normalised)."""

    def __init__(self, levels: int, dim: int, heads: int, *, one_to_one: bool = False, init_std: float = 0.02) -> None:
        super().__init__()
        self.queries = nn.Parameter(torch.randn(levels, dim) * init_std)
        self.normal_attention = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.abnormal_attention = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.fuse = nn.Linear(2 * dim, dim)
        self.one_to_one = one_to_one

    def forward(self, normal: torch.Tensor, abnormal: torch.Tensor) -> torch.Tensor:
        levels = self.queries.shape[0]
        mask = None
        if self.one_to_one:  # True = not allowed: every query attends to its own key only
            mask = ~torch.eye(levels, dtype=torch.bool, device=normal.device)
        q = self.queries[None]
        n, _ = self.normal_attention(q, normal[None], normal[None], attn_mask=mask, need_weights=False)
        a, _ = self.abnormal_attention(q, abnormal[None], abnormal[None], attn_mask=mask, need_weights=False)
        return self.fuse(torch.cat([n[0], a[0]], dim=-1))


def query_loss(intrinsic: torch.Tensor, normal: torch.Tensor, abnormal: torch.Tensor) -> torch.Tensor:
    """``mean_l (1 − cos(q_l, n_l)) + (1 − cos(q_l, a_l))``: pulls each intrinsic feature towards its level's
    normal and abnormal features (both taken as fixed targets)."""
    q = F.normalize(intrinsic, dim=-1)
    n = F.normalize(normal.detach(), dim=-1)
    a = F.normalize(abnormal.detach(), dim=-1)
    return ((1 - (q * n).sum(-1)) + (1 - (q * a).sum(-1))).mean()
