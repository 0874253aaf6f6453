"""Learnable prompts by semantic concatenation: shared normal and abnormal context vectors, groups of prompts.

Every prompt of a :class:`PromptBank` starts with the ``n_ctx`` normal context vectors of one of ``n_pro``
normal prompts. A *group* (one per category for PromptAD, one per level and component for FineGrainedAD) has

- normal prompts ``"[ctx_i] {body}."`` for each normal body,
- handcrafted abnormal prompts ``"[ctx_i] {abnormal body}."`` (the same normal context: semantic concatenation),
- learned abnormal prompts ``"[ctx_i][actx_j] {body}."`` for every pair of normal context ``i`` and abnormal
  context ``j`` (``n_pro_ab`` of ``n_ctx_ab`` vectors each).

All prompts of all groups are encoded in one pass of the text tower. Context vectors are written into the token
embeddings by position, right after the start token, so no word of a caption can be mistaken for a slot.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from zsadbench.backbones import PromptTextEncoder
from zsadbench.errors import ConfigError

SLOT = "X"


@dataclass(frozen=True)
class GroupTexts:
    """The bodies of one group's prompts (without context slots)."""

    normal: tuple[str, ...]
    handcrafted: tuple[str, ...]
    learned: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.normal or not (self.handcrafted or self.learned):
            raise ConfigError(f"a prompt group needs normal and abnormal prompts, got {self}")


@dataclass
class GroupFeatures:
    """Raw (not normalised) text features of one group: ``normal [Pn, D]``, ``handcrafted [Ph, D]``, ``learned [Pl, D]``."""

    normal: torch.Tensor
    handcrafted: torch.Tensor
    learned: torch.Tensor

    @property
    def abnormal(self) -> torch.Tensor:
        """All abnormal prompts, handcrafted then learned, L2-normalised: ``[Ph + Pl, D]``."""
        return F.normalize(torch.cat([self.handcrafted, self.learned]), dim=-1)

    @property
    def normal_anchor(self) -> torch.Tensor:
        """The normalised mean of the raw normal features ``[D]``."""
        return F.normalize(self.normal.mean(dim=0), dim=-1)

    @property
    def abnormal_anchor(self) -> torch.Tensor:
        """The normalised mean of the raw abnormal features (handcrafted and learned) ``[D]``."""
        return F.normalize(torch.cat([self.handcrafted, self.learned]).mean(dim=0), dim=-1)

    def pair(self) -> torch.Tensor:
        """``[2, D]``: the normal and abnormal anchors (PromptAD's text gallery)."""
        return torch.stack([self.normal_anchor, self.abnormal_anchor])


class PromptBank(nn.Module):
    """Shared context vectors and the token ids of every group's prompts; ``forward()`` encodes them all."""

    def __init__(
        self,
        text: PromptTextEncoder,
        groups: dict[str, GroupTexts],
        *,
        n_pro: int,
        n_ctx: int,
        n_pro_ab: int,
        n_ctx_ab: int,
        init_std: float = 0.02,
    ) -> None:
        super().__init__()
        self.text = [text]  # not a submodule: the frozen tower is not part of this module's state
        width = text.width
        self.n_pro, self.n_ctx, self.n_pro_ab, self.n_ctx_ab = n_pro, n_ctx, n_pro_ab, n_ctx_ab
        self.normal_ctx = nn.Parameter(torch.randn(n_pro, n_ctx, width) * init_std)
        self.abnormal_ctx = nn.Parameter(torch.randn(n_pro_ab, n_ctx_ab, width) * init_std)
        self.names = list(groups)
        plain, learned, self.layout = [], [], []
        for name, texts in groups.items():
            counts = []
            for bodies in (texts.normal, texts.handcrafted):
                plain.extend(prompt_text(b, n_ctx) for b in bodies)
                counts.append(len(bodies))
            learned.extend(prompt_text(b, n_ctx + n_ctx_ab) for b in texts.learned)
            counts.append(len(texts.learned))
            self.layout.append(counts)
        backbone = text.backbone
        for key, texts in (("plain", plain), ("learned", learned)):
            tokens = backbone.tokenize(texts) if texts else torch.zeros(0, 77, dtype=torch.long, device=backbone.device)
            self.register_buffer(f"{key}_tokens", tokens, persistent=False)
            with torch.no_grad():
                self.register_buffer(f"{key}_embeddings", text.token_embeddings(tokens).detach(), persistent=False)
        slot = text.placeholder_id(SLOT)
        for key, count in (("plain", n_ctx), ("learned", n_ctx + n_ctx_ab)):
            tokens = getattr(self, f"{key}_tokens")
            if tokens.numel() and not bool((tokens[:, 1 : 1 + count] == slot).all()):
                raise ConfigError("a prompt body starts with a word that merges with the context slots; reword it")

    def forward(self) -> dict[str, GroupFeatures]:
        """Raw features of every group (one text-tower pass over all prompts)."""
        n_pro, n_pro_ab = self.n_pro, self.n_pro_ab
        plain = self.plain_embeddings.unsqueeze(0).expand(n_pro, -1, -1, -1)  # [n_pro, P, L, W]
        plain = _insert(plain, self.normal_ctx[:, None].expand(-1, plain.shape[1], -1, -1), 1)
        ctx = torch.cat([
            self.normal_ctx[:, None].expand(-1, n_pro_ab, -1, -1),
            self.abnormal_ctx[None].expand(n_pro, -1, -1, -1),
        ], dim=2).reshape(n_pro * n_pro_ab, self.n_ctx + self.n_ctx_ab, -1)  # pair (i, j) at i * n_pro_ab + j
        learned = self.learned_embeddings.unsqueeze(0).expand(ctx.shape[0], -1, -1, -1)
        learned = _insert(learned, ctx[:, None].expand(-1, learned.shape[1], -1, -1), 1)
        embeddings = torch.cat([plain.flatten(0, 1), learned.flatten(0, 1)])
        tokens = torch.cat([
            self.plain_tokens.repeat(n_pro, 1), self.learned_tokens.repeat(ctx.shape[0], 1)
        ])
        encoded = self.text[0].encode(embeddings, tokens)
        n_plain = n_pro * self.plain_tokens.shape[0]
        plain_out = encoded[:n_plain].reshape(n_pro, -1, encoded.shape[-1])
        learned_out = encoded[n_plain:].reshape(ctx.shape[0], -1, encoded.shape[-1])
        out: dict[str, GroupFeatures] = {}
        p = q = 0
        for name, (n_normal, n_hand, n_learned) in zip(self.names, self.layout):
            normal = plain_out[:, p : p + n_normal].reshape(-1, encoded.shape[-1])
            hand = plain_out[:, p + n_normal : p + n_normal + n_hand].reshape(-1, encoded.shape[-1])
            out[name] = GroupFeatures(normal, hand, learned_out[:, q : q + n_learned].reshape(-1, encoded.shape[-1]))
            p += n_normal + n_hand
            q += n_learned
        return out


def prompt_text(body: str, slots: int) -> str:
    """``"X X X X body."``: ``slots`` context placeholders, the body, one final full stop."""
    body = body.strip().rstrip(".")
    return f"{' '.join([SLOT] * slots)} {body}."


def _insert(embeddings: torch.Tensor, ctx: torch.Tensor, start: int) -> torch.Tensor:
    """``embeddings [..., L, W]`` with positions ``start .. start+n-1`` replaced by ``ctx [..., n, W]``."""
    n = ctx.shape[-2]
    return torch.cat([embeddings[..., :start, :], ctx.to(embeddings.dtype), embeddings[..., start + n :, :]], dim=-2)
