"""AnomalyCLIP's object-agnostic prompts: ``[X]×n object.`` and ``[X]×n damaged object.`` with learnable X.

The learnable context replaces the ``X`` placeholders; deep text prompts *overwrite* the first tokens after
SOS (positions 1..) of the sequence entering text blocks 2..``deep_depth``, shared by both prompts
(``ResidualAttentionBlock_learnable_token`` in the reference). The modules here hold only learnable
tensors; the frozen text tower is passed in at call time so it never enters a state dict.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from zsadbench.backbones import PromptTextEncoder
from zsadbench.errors import ConfigError

PLACEHOLDER = "X"


def prompt_texts(n_ctx: int) -> tuple[str, str]:
    """The normal and anomalous prompt strings with ``n_ctx`` placeholders."""
    ctx = " ".join([PLACEHOLDER] * n_ctx)
    return f"{ctx} object.", f"{ctx} damaged object."


def check_text_depth(encoder: PromptTextEncoder, deep_depth: int, owner: str) -> None:
    """Raise naming ``deep_depth`` when the deep prompts would go past the text tower's blocks."""
    if deep_depth > encoder.depth:
        raise ConfigError(
            f"{owner}.deep_depth={deep_depth} puts deep prompts up to text block {deep_depth}, but this text tower "
            f"has {encoder.depth}; use --set deep_depth={encoder.depth} (or 1 for none)"
        )


def deep_prompt_list(count: int, tokens: int, width: int, std: float) -> nn.ParameterList:
    """``count`` learnable ``[tokens, width]`` tensors drawn from N(0, std²) (empty when ``tokens`` is 0)."""
    if tokens == 0:
        count = 0
    return nn.ParameterList(nn.Parameter(torch.randn(tokens, width) * std) for _ in range(count))


class PromptTokens(nn.Module):
    """The frozen token ids and embeddings of a list of prompt strings (non-persistent buffers)."""

    def __init__(self, encoder: PromptTextEncoder, texts: Sequence[str]) -> None:
        super().__init__()
        tokens = encoder.backbone.tokenize(list(texts))
        with torch.no_grad():
            embeddings = encoder.token_embeddings(tokens).float()
        self.register_buffer("tokens", tokens, persistent=False)
        self.register_buffer("embeddings", embeddings, persistent=False)

    def encode(
        self, encoder: PromptTextEncoder, ctx: torch.Tensor, deep: Sequence[torch.Tensor] = ()
    ) -> torch.Tensor:
        """L2-normalised text features ``[P, embed_dim]`` with ``ctx`` (``[P, n, width]``) in the placeholders."""
        filled = encoder.fill_placeholders(self.embeddings, self.tokens, PLACEHOLDER, ctx)
        features = encoder.encode(filled, self.tokens, deep_prompts=list(deep) or None, deep_start=2, deep_position=1)
        return F.normalize(features.float(), dim=-1)


class ObjectAgnosticPrompts(nn.Module):
    """``ctx_pos`` / ``ctx_neg`` (``[n_ctx, width]`` each) and ``deep_depth − 1`` deep prompts of ``deep_tokens``;
    ``half_deep`` rounds the deep prompts to float16 where they enter the text tower, as the official code's
    ``.half()`` cast does (the parameters themselves stay float32)."""

    def __init__(self, encoder: PromptTextEncoder, n_ctx: int, deep_tokens: int, deep_depth: int, init_std: float,
                 *, half_deep: bool = False) -> None:
        super().__init__()
        self.half_deep = half_deep
        width = encoder.width
        self.text = PromptTokens(encoder, prompt_texts(n_ctx))
        self.ctx_pos = nn.Parameter(torch.randn(n_ctx, width) * init_std)
        self.ctx_neg = nn.Parameter(torch.randn(n_ctx, width) * init_std)
        self.deep = deep_prompt_list(deep_depth - 1, deep_tokens, width, init_std)

    def forward(self, encoder: PromptTextEncoder) -> torch.Tensor:
        """``[2, embed_dim]``: the normalised normal and anomaly text features, one text pass for both."""
        deep = [d.half().float() for d in self.deep] if self.half_deep else list(self.deep)
        return self.text.encode(encoder, torch.stack([self.ctx_pos, self.ctx_neg]), deep)
