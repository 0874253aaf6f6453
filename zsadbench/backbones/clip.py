"""CLIP image and text towers from open_clip, with the taps zero- and few-shot anomaly methods need.

:func:`create_clip` builds an open_clip architecture (or one of our tiny test configurations), loads its
weights (see :mod:`zsadbench.backbones.weights`), resizes the positional embedding for another input size
and returns a frozen :class:`ClipBackbone`.
"""
from __future__ import annotations

import difflib
from collections.abc import Sequence
from pathlib import Path

import open_clip
import torch
import torch.nn as nn
import torch.nn.functional as F
from open_clip.transformer import ResidualAttentionBlock

from zsadbench.errors import ConfigError

from .pos_embed import interpolate_grid_pos_embed
from .taps import (
    Intermediates,
    NormalizingBackbone,
    check_deep_tokens,
    check_vv_last,
    collect,
    run_blocks,
    take_attention,
    take_indices,
    vv_attention_from_values,
)
from .weights import WeightsInfo

CONFIG_DIR = Path(__file__).with_name("model_configs")
OPENAI_MEAN = open_clip.OPENAI_DATASET_MEAN
OPENAI_STD = open_clip.OPENAI_DATASET_STD
_configs_added = False


def register_model_configs() -> None:
    """Make our tiny test architectures (``model_configs/*.json``) known to open_clip (once per process)."""
    global _configs_added
    if not _configs_added:
        open_clip.add_model_config(CONFIG_DIR)
        _configs_added = True


def check_arch(name: str) -> None:
    """Raise :class:`ConfigError` with close matches when ``name`` is not an open_clip architecture."""
    register_model_configs()
    known = open_clip.list_models()
    if name not in known:
        close = difflib.get_close_matches(name, known, n=3)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ConfigError(f"unknown CLIP architecture {name!r}.{hint} See open_clip.list_models() for all names")


class ClipBackbone(NormalizingBackbone):
    """A frozen open_clip CLIP with tap access to its visual transformer.

    Attributes: ``model`` (the open_clip ``CLIP``), ``visual`` (its ``VisionTransformer``), ``tokenizer``
    (``list[str] -> LongTensor [P, 77]``), ``mean``/``std`` (tuples of 3 floats), ``image_size`` (input side),
    ``patch_size``, ``grid_size`` ``(h, w)``, ``width`` (visual width), ``embed_dim`` (joint embedding),
    ``depth`` (visual blocks), ``heads`` (visual heads), ``name`` (the architecture built) and ``weights``
    (:class:`~zsadbench.backbones.weights.WeightsInfo`).
    """

    def __init__(self, model: nn.Module, name: str, weights: WeightsInfo, mean, std, tokenizer) -> None:
        super().__init__(model, name, weights, mean, std)
        self.tokenizer = tokenizer

    # -- geometry -----------------------------------------------------------------------------------
    @property
    def visual(self) -> nn.Module:
        return self.model.visual

    @property
    def image_size(self) -> int:
        return int(self.visual.image_size[0])

    @property
    def patch_size(self) -> int:
        return int(self.visual.patch_size[0])

    @property
    def grid_size(self) -> tuple[int, int]:
        return tuple(int(g) for g in self.visual.grid_size)  # type: ignore[return-value]

    @property
    def width(self) -> int:
        return int(self.visual.conv1.out_channels)

    @property
    def embed_dim(self) -> int:
        return int(self.visual.proj.shape[1])

    @property
    def depth(self) -> int:
        return len(self.visual.transformer.resblocks)

    @property
    def heads(self) -> int:
        return int(self.visual.transformer.resblocks[0].attn.num_heads)

    @property
    def device(self) -> torch.device:
        return self.visual.conv1.weight.device

    def set_image_size(self, image_size: int, interpolation: str = "bilinear") -> None:
        """Run at ``image_size`` px: the grid part of the positional embedding is resized (``bilinear``, or
        ``bicubic`` with antialiasing; ``align_corners=False``, fp32) from the current grid to
        ``image_size // patch_size``."""
        if image_size <= 0 or image_size % self.patch_size:
            raise ConfigError(
                f"image_size={image_size} must be a positive multiple of the patch size {self.patch_size} "
                f"of {self.name} (e.g. {max(1, round(image_size / self.patch_size)) * self.patch_size})"
            )
        side = image_size // self.patch_size
        if (side, side) == self.grid_size:
            return
        visual = self.visual
        resized = interpolate_grid_pos_embed(visual.positional_embedding.data, self.grid_size, (side, side),
                                             mode=interpolation)
        visual.positional_embedding = nn.Parameter(resized, requires_grad=visual.positional_embedding.requires_grad)
        visual.image_size = (image_size, image_size)
        visual.grid_size = (side, side)

    # -- whole-model encoders ----------------------------------------------------------------------------
    def tokenize(self, texts: list[str]) -> torch.Tensor:
        """Token ids ``LongTensor [P, 77]`` on the backbone's device."""
        return self.tokenizer(texts).to(self.device)

    def encode_text(self, tokens: torch.Tensor) -> torch.Tensor:
        """``[P, 77]`` token ids → ``[P, embed_dim]`` (EOT token, ``ln_final``, projection; not L2-normalised)."""
        return self.model.encode_text(tokens.to(self.device))

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """Normalised ``[B,3,S,S]`` images → ``[B, embed_dim]`` (CLS, ``ln_post``, projection; not L2-normalised)."""
        return self.model.encode_image(images)

    # -- pieces of the visual transformer ------------------------------------------------------------
    def embed_tokens(self, images: torch.Tensor, extra_tokens: torch.Tensor | None = None) -> torch.Tensor:
        """The input sequence of the first block, *before* ``ln_pre``.

        ``images`` are normalised ``[B,3,S,S]`` with ``S = image_size``. Returns ``[B, T+1+N, width]``:
        ``conv1`` patch embeddings (row-major, ``N = grid_h*grid_w``) after the CLS token, plus the
        (interpolated) positional embedding. With ``extra_tokens`` (``[T, width]`` or ``[B, T, width]``)
        these are put first, each with the CLS position's embedding added: ``[extra_1..extra_T, CLS, patches]``.
        """
        visual = self.visual
        if images.shape[-2:] != (self.image_size, self.image_size):
            raise ConfigError(
                f"images are {tuple(images.shape[-2:])} px but {self.name} was built for {self.image_size} px; "
                f"resize them or create the backbone with image_size={images.shape[-1]}"
            )
        x = visual.conv1(images)
        x = x.flatten(2).transpose(1, 2)
        cls = visual.class_embedding.to(x.dtype).view(1, 1, -1).expand(x.shape[0], -1, -1)
        x = torch.cat([cls, x], dim=1) + visual.positional_embedding.to(x.dtype)
        if extra_tokens is None:
            return x
        extra = extra_tokens if extra_tokens.ndim == 3 else extra_tokens.unsqueeze(0).expand(x.shape[0], -1, -1)
        if extra.shape[0] != x.shape[0] or extra.shape[-1] != self.width:
            raise ConfigError(
                f"extra_tokens must be [T, {self.width}] or [{x.shape[0]}, T, {self.width}], got {tuple(extra_tokens.shape)}"
            )
        extra = extra.to(x.dtype) + visual.positional_embedding[:1].to(x.dtype)
        return torch.cat([extra, x], dim=1)

    def forward_from_tokens(self, tokens: torch.Tensor) -> dict[str, torch.Tensor]:
        """Run the rest of the visual transformer on a sequence from :meth:`embed_tokens` (or a subset of it).

        ``tokens`` is ``[B, 1+K, width]`` with the CLS token first (e.g. CLS plus the K patch tokens of a
        window, positional embeddings already added). Applies ``ln_pre`` → all blocks → ``ln_post`` →
        ``proj`` and returns ``{"cls": [B, embed_dim], "patches": [B, K, embed_dim]}`` (not L2-normalised).
        ``cls`` of a full sequence equals :meth:`encode_image`.
        """
        visual = self.visual
        x = visual.transformer(visual.ln_pre(tokens))
        x = visual.ln_post(x) @ visual.proj
        return {"cls": x[:, 0], "patches": x[:, 1:]}

    def post_norm(self, x: torch.Tensor) -> torch.Tensor:
        """The final visual norm (``ln_post``) alone."""
        return self.visual.ln_post(x)

    def project(self, x: torch.Tensor) -> torch.Tensor:
        """The visual projection alone: ``x @ proj``, ``width`` → ``embed_dim``."""
        return x @ self.visual.proj

    def forward_intermediates(
        self,
        images: torch.Tensor,
        indices: int | list[int] | tuple[int, ...],
        *,
        vv_last: int = 0,
        extra_tokens: torch.Tensor | None = None,
        norm: bool = False,
        project: bool = False,
        attention_taps: tuple[int, ...] | list[int] = (),
        deep_tokens: Sequence[torch.Tensor] = (),
        final_patches: bool = True,
    ) -> Intermediates:
        """Tapped patch tokens of chosen blocks, plus the final CLS and extra tokens (see :class:`Intermediates`).

        ``indices`` are 1-based block numbers (``[6, 12, 18, 24]``) or an int ``n`` for the last ``n`` blocks.
        ``vv_last`` (AnomalyCLIP's DPAM, PromptAD's V-V surgery): in the last ``vv_last`` blocks a second
        stream accumulates ``x_vv += VV(ln_1(x))`` with ``x`` the ordinary stream entering the block, and no
        FFN; it starts as the input of the first such block. Tapped patches of those blocks come from the V-V
        stream; CLS and extra tokens always from the ordinary stream. ``extra_tokens`` are inserted before
        CLS as in :meth:`embed_tokens`. ``norm`` applies ``ln_post``, ``project`` the projection.
        ``attention_taps`` (1-based blocks) also returns, in ``attention``, the ordinary stream inside each of
        those blocks after its attention residual and before its MLP (``x + ls_1(attn(ln_1(x)))``).
        ``deep_tokens`` are deep visual prompts (VPT-deep, AdaCLIP): ``deep_tokens[j]`` (``[T, width]`` or
        ``[B, T, width]``) are the ``T`` prompt tokens of block ``j + 1``. The first are put before CLS after
        ``ln_pre``, with no positional embedding; each later one overwrites them in the sequence entering its
        block; after the last they stay and go through the remaining blocks. They are returned as the extra
        tokens (``extra``, ``num_prefix``) and cannot be combined with ``extra_tokens``.
        ``final_patches=False`` (needs ``vv_last`` >= 1) says the caller reads no ordinary-stream patch token of the
        last block: V-V taps, CLS and extra tokens are all the last block's patches feed. That block then runs
        its ordinary stream (attention output, MLP) for the tokens before the patches only, about three quarters
        of a block less work; ``final`` holds those tokens, ``ordinary`` is empty, the V-V taps are the same bits,
        and ``attention_taps`` cannot name the last block.

        AnomalyCLIP's ``DPAM_layer=20`` replaces the attention of the last 19 blocks: ``vv_last=19`` (its
        image feature is ``project(final[:, 0])``, without ``ln_post``). PromptAD's V-V path covers all
        blocks: ``vv_last=depth``.
        """
        visual = self.visual
        blocks = visual.transformer.resblocks
        take = take_indices(len(blocks), indices)
        attention_take = take_attention(len(blocks), attention_taps)
        vv_start = check_vv_last(vv_last, len(blocks))
        deep = check_deep_tokens(deep_tokens, images.shape[0], self.width, len(blocks))
        if deep and extra_tokens is not None:
            raise ConfigError("pass extra_tokens or deep_tokens, not both: both take the places before CLS")
        num_extra = deep[0].shape[1] if deep else 0 if extra_tokens is None else extra_tokens.shape[-2]
        num_prefix = num_extra + 1
        if not final_patches:
            if vv_last < 1:
                raise ConfigError("final_patches=False needs vv_last >= 1: without the V-V path the last block's "
                                  "patch tokens are the taps")
            if len(blocks) - 1 in attention_take:
                raise ConfigError(f"attention_taps names the last block ({len(blocks)}), whose patch tokens "
                                  "final_patches=False skips; keep final_patches=True")
        x = visual.ln_pre(self.embed_tokens(images, extra_tokens))
        streams = run_blocks(x, blocks, take, vv_start, _block_with_vv, block_halves, attention_take, deep,
                             last_prefix=None if final_patches else num_prefix)
        return collect(streams, take, num_extra, num_prefix, self._head(norm, project), vv_last, final_patches)

    def _head(self, norm: bool, project: bool):
        if project and not norm:
            return lambda t: t @ self.visual.proj
        if project:
            return lambda t: self.visual.ln_post(t) @ self.visual.proj
        return self.visual.ln_post if norm else (lambda t: t)


def block_halves(block: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """An open_clip ``ResidualAttentionBlock`` on ``x`` as its two residual halves: returns ``(mid, block(x))``
    with ``mid = x + ls_1(attn(ln_1(x)))`` and ``block(x) = mid + ls_2(mlp(ln_2(mid)))``, the very operations
    of the block's own ``forward``."""
    if type(block).forward is not ResidualAttentionBlock.forward:
        raise ConfigError(f"attention_taps needs open_clip's standard residual blocks; this model has {type(block).__name__}")
    mid = x + block.ls_1(block.attention(q_x=block.ln_1(x)))
    return mid, mid + block.ls_2(block.mlp(block.ln_2(mid)))


def _block_with_vv(block: nn.Module, x: torch.Tensor,
                   prefix: int | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One open_clip residual block on ``x``, plus the V-V attention increment computed from the same
    ``ln_1(x)``: returns ``(mid, block(x), ls_1(VV(ln_1(x))))`` with ``mid = x + ls_1(attn(ln_1(x)))`` the
    stream before the MLP. The block's attention is written out (one input projection, scaled dot-product
    attention, the output projection) so that the V-V path reuses its values instead of projecting
    ``ln_1(x)`` a second time. With ``prefix``, ``mid`` and ``block(x)`` are computed for the first ``prefix``
    tokens only (their queries against every key); the values, and so the increment, still cover every token."""
    attn = block.attn
    if not isinstance(attn, nn.MultiheadAttention) or hasattr(block, "ln_1_kv") or not attn.batch_first:
        raise ConfigError(f"vv_last needs standard attention blocks; this model has {type(block).__name__}")
    h = block.ln_1(x)
    batch, length, width = h.shape
    heads = attn.num_heads
    qkv = F.linear(h, attn.in_proj_weight, attn.in_proj_bias)
    q, k, v = (t.reshape(batch, length, heads, width // heads).transpose(1, 2) for t in qkv.chunk(3, dim=-1))
    increment = block.ls_1(vv_attention_from_values(v, attn.out_proj))
    if prefix is None:
        attended = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(batch, length, width)
        mid = x + block.ls_1(attn.out_proj(attended))
        return mid, mid + block.ls_2(block.mlp(block.ln_2(mid))), increment
    # So few queries take other paths through the fused attention and BLAS kernels, and there the last bits of a
    # row depend on how many rows the batch holds; one image at a time, they do not depend on the batch.
    rows = [_prefix_rows(block, x[b, :prefix], q[b, :, :prefix], k[b], v[b]) for b in range(batch)]
    mid, out = (torch.stack(parts) for parts in zip(*rows))
    return mid, out, increment


def _prefix_rows(block: nn.Module, x: torch.Tensor, q: torch.Tensor, k: torch.Tensor,
                 v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One image's first ``P`` tokens through ``block`` (``mid``, ``out``, each ``[P, C]``), from their input ``x``
    ``[P, C]``, their queries ``q`` ``[heads, P, d]`` and every token's keys and values ``[heads, L, d]``."""
    heads, count, dim = q.shape
    weights = torch.softmax((q @ k.transpose(-2, -1)) * dim**-0.5, dim=-1)
    mid = x + block.ls_1(block.attn.out_proj((weights @ v).transpose(0, 1).reshape(count, heads * dim)))
    return mid, mid + block.ls_2(block.mlp(block.ln_2(mid)))
