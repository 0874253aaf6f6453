"""FAPrompt's compound abnormality prompts and its data-dependent abnormality prior.

Normal prompt ``[N_1 … N_n] object.``; abnormality prompt p ``[N_1 … N_n][A_1^p … A_m^p] damaged object.``,
the N tokens shared with the normal prompt, the A tokens its own (plus the image's prior when one is given).
AnomalyCLIP's deep text prompts overwrite positions 1.. before text blocks 2..depth, for every prompt. The
text features are returned unnormalised: the abnormality feature is the mean of the prompts' raw features.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from zsadbench.backbones import PromptTextEncoder
from zsadbench.methods.anomalyclip import PromptTokens, deep_prompt_list

PLACEHOLDER = "X"


def prompt_texts(normal_ctx: int, abnormal_ctx: int) -> tuple[str, str]:
    """The normal and abnormality prompt strings with their placeholders."""
    return (" ".join([PLACEHOLDER] * normal_ctx) + " object.",
            " ".join([PLACEHOLDER] * (normal_ctx + abnormal_ctx)) + " damaged object.")


class CompoundPrompts(nn.Module):
    """``ctx_normal`` ``[n, W]``, ``ctx_abnormal`` ``[P, m, W]`` and ``deep_depth − 1`` deep prompts of
    ``deep_tokens``; ``half_deep`` rounds the deep prompts to float16 where they enter the text tower."""

    def __init__(self, encoder: PromptTextEncoder, normal_ctx: int, abnormal_ctx: int, abnormal_prompts: int,
                 deep_tokens: int, deep_depth: int, init_std: float, *, half_deep: bool = False) -> None:
        super().__init__()
        self.half_deep = half_deep
        width = encoder.width
        normal, abnormal = prompt_texts(normal_ctx, abnormal_ctx)
        self.normal_text = PromptTokens(encoder, [normal])
        self.abnormal_text = PromptTokens(encoder, [abnormal])
        self.ctx_normal = nn.Parameter(torch.randn(normal_ctx, width) * init_std)
        self.ctx_abnormal = nn.Parameter(torch.randn(abnormal_prompts, abnormal_ctx, width) * init_std)
        self.deep = deep_prompt_list(deep_depth - 1, deep_tokens, width, init_std)

    def forward(self, encoder: PromptTextEncoder, priors: torch.Tensor,
                with_normal: bool = True) -> tuple[torch.Tensor | None, torch.Tensor]:
        """Raw text features: normal ``[1, D]`` (``None`` without ``with_normal``) and abnormality ``[S, P, D]``,
        one set of P prompts per row of ``priors`` (``[S, W]``, added to every abnormal token), one text pass."""
        sets, prompts = priors.shape[0], self.ctx_abnormal.shape[0]
        abnormal = self.ctx_abnormal.unsqueeze(0) + priors[:, None, None, :]
        normal = self.ctx_normal.expand(sets, prompts, -1, -1)
        ctx = torch.cat([normal, abnormal], dim=2).flatten(0, 1)
        tokens = self.abnormal_text.tokens.expand(sets * prompts, -1)
        embeddings = encoder.fill_placeholders(self.abnormal_text.embeddings.expand(sets * prompts, -1, -1), tokens,
                                               PLACEHOLDER, ctx)
        if with_normal:
            normal_embedding = encoder.fill_placeholders(self.normal_text.embeddings, self.normal_text.tokens,
                                                         PLACEHOLDER, self.ctx_normal)
            embeddings = torch.cat([normal_embedding, embeddings])
            tokens = torch.cat([self.normal_text.tokens, tokens])
        deep = [d.half().float() for d in self.deep] if self.half_deep else list(self.deep)
        features = encoder.encode(embeddings, tokens, deep_prompts=deep or None, deep_start=2, deep_position=1,
                                  until_eot=True).float()
        if not with_normal:
            return None, features.reshape(sets, prompts, -1)
        return features[:1], features[1:].reshape(sets, prompts, -1)


class AbnormalityPrior(nn.Module):
    """``Linear(k·D → k·D / reduction) → ReLU → Linear(→ W)``: k patch tokens ``[B, k, D]`` → a prior ``[B, W]``."""

    def __init__(self, patches: int, embed_dim: int, width: int, reduction: int) -> None:
        super().__init__()
        inputs = patches * embed_dim
        self.net = nn.Sequential(nn.Linear(inputs, inputs // reduction), nn.ReLU(), nn.Linear(inputs // reduction, width))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.net(tokens.flatten(1))
