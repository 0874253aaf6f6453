"""MPA's text side: local prompts per perception level with a shared prefix, decoupled global prompts, and
the cross-level bridge.

Local prompt of level p (E learnable tokens, the first S shared by every level)::

    L_n^p = [V_1 … V_S][V_{S+1}^p … V_E^p] object.      L_a^p = [W_1 … W_S][W_{S+1}^p … W_E^p] damaged object.

Global prompts have their own E tokens ``[V^G]``/``[W^G]``. The bridge turns them into
``MLP(concat(G̃, max_p L̄^p))`` along the channel axis, token by token, where ``L̄^p`` are the E learnable
tokens of level p (shared prefix included) and the max runs element-wise over the levels; one MLP serves the
normal and the anomalous prompt. All 2·|P| + 2 prompts go through the text tower in one pass.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from zsadbench.backbones import PromptTextEncoder
from zsadbench.methods.anomalyclip import PromptTokens, deep_prompt_list, prompt_texts

from .config import PromptLayout


class Bridge(nn.Module):
    """The cross-level bridge MLP: ``Linear(2W → hidden) → GELU → Linear(hidden → W)`` applied per token."""

    def __init__(self, width: int, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(2 * width, hidden), nn.GELU(), nn.Linear(hidden, width))

    def forward(self, global_ctx: torch.Tensor, local_ctx: torch.Tensor) -> torch.Tensor:
        """``global_ctx`` ``[E, W]``, ``local_ctx`` ``[L, E, W]`` → ``[E, W]``: MLP(concat(G, max over levels))."""
        salient = local_ctx.max(dim=0).values
        return self.net(torch.cat([global_ctx, salient], dim=-1))


class MultiPerceptionPrompts(nn.Module):
    """The learnable prompt tensors of MPA (see the module docstring); only learnables are in the state dict.

    ``shared_*``: ``[S, W]``; ``level_*``: ``[L, E − S, W]``; ``global_*``: ``[E, W]`` (decoupled only);
    ``deep``: AnomalyCLIP's deep text prompts, shared by all prompts.
    """

    def __init__(
        self,
        encoder: PromptTextEncoder,
        layout: PromptLayout,
        *,
        n_ctx: int,
        deep_tokens: int,
        deep_depth: int,
        init_std: float,
        bridge_hidden_ratio: float = 1.0,
    ) -> None:
        super().__init__()
        width = encoder.width
        levels = len(layout.levels)
        shared = layout.shared_prefix
        self.layout = layout
        self.n_ctx = n_ctx

        def param(*shape: int) -> nn.Parameter:
            return nn.Parameter(torch.randn(*shape) * init_std)

        self.shared_normal = param(shared, width)
        self.shared_anomaly = param(shared, width)
        self.level_normal = param(levels, n_ctx - shared, width)
        self.level_anomaly = param(levels, n_ctx - shared, width)
        if layout.decoupled:
            self.global_normal = param(n_ctx, width)
            self.global_anomaly = param(n_ctx, width)
        self.bridge = Bridge(width, max(1, round(bridge_hidden_ratio * width))) if layout.bridge else None
        self.deep = deep_prompt_list(deep_depth - 1, deep_tokens, width, init_std)
        count = levels + (1 if layout.decoupled else 0)
        normal, anomaly = prompt_texts(n_ctx)
        self.text = PromptTokens(encoder, [normal] * count + [anomaly] * count)

    def local_context(self) -> tuple[torch.Tensor, torch.Tensor]:
        """``(normal, anomaly)`` learnable tokens of every level, ``[L, E, W]`` each (shared prefix first)."""
        levels = self.level_normal.shape[0]

        def assemble(shared: torch.Tensor, own: torch.Tensor) -> torch.Tensor:
            return torch.cat([shared.unsqueeze(0).expand(levels, -1, -1), own], dim=1)

        return assemble(self.shared_normal, self.level_normal), assemble(self.shared_anomaly, self.level_anomaly)

    def global_context(self, local_normal: torch.Tensor, local_anomaly: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The global prompts' tokens ``[E, W]`` each, bridged when the layout says so."""
        if self.bridge is None:
            return self.global_normal, self.global_anomaly
        return self.bridge(self.global_normal, local_normal), self.bridge(self.global_anomaly, local_anomaly)

    def forward(self, encoder: PromptTextEncoder) -> tuple[torch.Tensor, torch.Tensor]:
        """``(local [L, 2, D], global [2, D])`` normalised text features, (normal, anomaly) along dim −2.

        Coupled prompts (``decoupled`` off): the global features are the normalised mean of the levels'.
        """
        local_n, local_a = self.local_context()
        ctx_n, ctx_a = [local_n], [local_a]
        if self.layout.decoupled:
            global_n, global_a = self.global_context(local_n, local_a)
            ctx_n.append(global_n.unsqueeze(0))
            ctx_a.append(global_a.unsqueeze(0))
        features = self.text.encode(encoder, torch.cat(ctx_n + ctx_a), list(self.deep))
        normal, anomaly = features.chunk(2)
        levels = local_n.shape[0]
        local = torch.stack([normal[:levels], anomaly[:levels]], dim=1)
        if self.layout.decoupled:
            return local, torch.stack([normal[levels], anomaly[levels]])
        return local, F.normalize(local.mean(dim=0), dim=-1)
