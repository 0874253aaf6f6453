"""The CLIP text tower with learnable prompts: context vectors, deep prompts, batched encoding, EOT pooling.

The usual flow (CoOp / AnomalyCLIP / PromptAD)::

    prompts = PromptTextEncoder(backbone)
    tokens = backbone.tokenize(["X X X X object.", "X X X X damaged object."])
    emb = prompts.token_embeddings(tokens)                       # [P, 77, W], frozen
    emb = prompts.fill_placeholders(emb, tokens, "X", ctx)       # learnable ctx [P, 4, W] or [4, W]
    feats = prompts.encode(emb, tokens, deep_prompts=deep)       # [P, embed_dim], one pass for all P

All sequences go through the transformer in one batch; the output of each is taken at its EOT token (the
highest token id, as in CLIP), after ``ln_final``, then projected. Nothing here holds parameters of its
own: the learnable tensors belong to the method, so only they receive gradients.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn

from zsadbench.errors import ConfigError

from .clip import ClipBackbone


class PromptTextEncoder(nn.Module):
    """Runs the text tower of a :class:`ClipBackbone` on token *embeddings* rather than token ids."""

    def __init__(self, backbone: ClipBackbone) -> None:
        super().__init__()
        self.backbone = backbone

    @property
    def width(self) -> int:
        """Width of the text transformer (the size of context vectors)."""
        return int(self.backbone.model.token_embedding.embedding_dim)

    @property
    def depth(self) -> int:
        return len(self.backbone.model.transformer.resblocks)

    def placeholder_id(self, word: str) -> int:
        """The token id of a one-token placeholder word (e.g. ``"X"``); raises if it is not one token."""
        ids = self.backbone.tokenizer.encode(word)
        if len(ids) != 1:
            raise ConfigError(f"placeholder {word!r} is {len(ids)} tokens; use a single-token word such as 'X'")
        return int(ids[0])

    def token_embeddings(self, tokens: torch.Tensor) -> torch.Tensor:
        """``[P, L]`` token ids → ``[P, L, width]`` embeddings (no positional embedding yet)."""
        return self.backbone.model.token_embedding(tokens.to(self.backbone.device))

    def fill_placeholders(
        self, embeddings: torch.Tensor, tokens: torch.Tensor, placeholder: str | int, ctx: torch.Tensor
    ) -> torch.Tensor:
        """Put context vectors where ``tokens`` hold the placeholder, left to right.

        ``ctx`` is ``[n, width]`` (shared by all prompts) or ``[P, n, width]``; every prompt must hold exactly
        ``n`` placeholders. Differentiable in ``ctx``; other positions keep their embeddings.
        """
        pid = placeholder if isinstance(placeholder, int) else self.placeholder_id(placeholder)
        mask = tokens.to(embeddings.device) == pid
        count = ctx.shape[-2]
        per_prompt = mask.sum(dim=1)
        if not bool((per_prompt == count).all()):
            raise ConfigError(
                f"every prompt needs {count} placeholder tokens for ctx of shape {tuple(ctx.shape)}; "
                f"found {per_prompt.tolist()}"
            )
        if ctx.ndim == 2:
            ctx = ctx.unsqueeze(0).expand(embeddings.shape[0], -1, -1)
        if ctx.shape[0] != embeddings.shape[0]:
            raise ConfigError(f"ctx has {ctx.shape[0]} prompts, the tokens {embeddings.shape[0]}")
        return embeddings.masked_scatter(mask.unsqueeze(-1), ctx.to(embeddings.dtype).reshape(-1))

    def encode(
        self,
        embeddings: torch.Tensor,
        tokens: torch.Tensor,
        *,
        deep_prompts: Sequence[torch.Tensor] | None = None,
        deep_start: int = 2,
        deep_position: int = 1,
        until_eot: bool = False,
    ) -> torch.Tensor:
        """Encode ``[P, L, width]`` prompt embeddings; returns ``[P, embed_dim]`` (not L2-normalised).

        ``tokens`` (``[P, L]``) only locate each prompt's EOT token (``argmax``). Deep prompts (AnomalyCLIP):
        ``deep_prompts[j]`` (``[n, width]``, or ``[P, n, width]``) *overwrites* positions
        ``deep_position .. deep_position+n-1`` of the sequence entering block ``deep_start + j`` (1-based).
        AnomalyCLIP's setting is ``deep_start=2``, ``deep_position=1`` with 8 tensors of 4 tokens (blocks 2-9).
        ``until_eot`` runs the sequences only up to the last EOT token of the batch (and the deep prompts'
        positions): under CLIP's causal mask no later position reaches an EOT output, so the features are
        the same, for a fraction of the work when the prompts are short.
        """
        model = self.backbone.model
        dtype = model.transformer.get_cast_dtype()
        blocks = model.transformer.resblocks
        deep = list(deep_prompts or [])
        if deep and not (1 <= deep_start and deep_start + len(deep) - 1 <= len(blocks)):
            raise ConfigError(
                f"{len(deep)} deep prompts from block {deep_start} go past the {len(blocks)} text blocks"
            )
        eot = tokens.to(embeddings.device).argmax(dim=-1)
        length = embeddings.shape[1]
        if until_eot:
            length = min(length, max([int(eot.max()) + 1] + [deep_position + d.shape[-2] for d in deep]))
        x = embeddings[:, :length].to(dtype) + model.positional_embedding[:length].to(dtype)
        mask = None if model.attn_mask is None else model.attn_mask[:length, :length]
        for i, block in enumerate(blocks, start=1):
            j = i - deep_start
            if deep and 0 <= j < len(deep):
                x = _overwrite(x, deep[j].to(dtype), deep_position)
            x = block(x, attn_mask=mask)
        x = model.ln_final(x)
        pooled = x[torch.arange(x.shape[0], device=x.device), eot]
        projection = model.text_projection
        return projection(pooled) if isinstance(projection, nn.Linear) else pooled @ projection


def _overwrite(x: torch.Tensor, tokens: torch.Tensor, position: int) -> torch.Tensor:
    """``x`` with positions ``position .. position+n-1`` replaced by ``tokens`` (``[n, W]`` or ``[P, n, W]``)."""
    n = tokens.shape[-2]
    if position < 0 or position + n > x.shape[1]:
        raise ConfigError(f"deep prompt of {n} tokens at position {position} does not fit a {x.shape[1]}-token sequence")
    if tokens.ndim == 2:
        tokens = tokens.unsqueeze(0).expand(x.shape[0], -1, -1)
    return torch.cat([x[:, :position], tokens, x[:, position + n :]], dim=1)
