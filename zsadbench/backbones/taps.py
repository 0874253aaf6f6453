"""The tap contract shared by every vision backbone: layer selection, the V-V attention path, the output record.

``forward_intermediates(images, indices, *, vv_last=0, extra_tokens=None, norm=False, project=False,
attention_taps=())`` on
:class:`~zsadbench.backbones.clip.ClipBackbone` and :class:`~zsadbench.backbones.dinov2.Dinov2Backbone`
returns an :class:`Intermediates`; the helpers here are what both implement it with.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn as nn
import torch.nn.functional as F

from zsadbench.errors import ConfigError


@dataclass
class Intermediates:
    """What one ``forward_intermediates`` call returns.

    - ``indices``: the tapped blocks, 1-based, ascending (e.g. ``(6, 12, 18, 24)``).
    - ``patches``: one ``[B, N, C]`` tensor per tapped block, in ``indices`` order, special tokens (CLS,
      registers, extra tokens) removed, ``N = grid_h * grid_w`` in row-major order. For a block among the
      last ``vv_last`` it is the V-V stream, otherwise the ordinary residual stream (the block's output).
    - ``ordinary``: the same taps from the ordinary stream (PromptAD's memory bank reads these beside the
      V-V patches); the very tensors of ``patches`` when ``vv_last`` is 0; empty when the call was made with
      ``final_patches=False``.
    - ``cls``: ``[B, C]``, the CLS token after the last block, from the ordinary stream.
    - ``extra``: ``[B, T, C]``, the inserted extra tokens after the last block (ordinary stream), or ``None``.
    - ``final``: ``[B, T + P + N, width]``, the whole ordinary-stream sequence after the last block, raw (no
      final norm, no projection), laid out ``[extra_1..extra_T, CLS, registers, patches]`` with
      ``P = num_prefix - T`` special tokens of the backbone itself (only those ``T + P`` tokens with
      ``final_patches=False``); ``None`` when read from a feature cache.
    - ``num_prefix``: number of tokens before the first patch in ``final`` (``T + P``).
    - ``attention``: ``{block: [B, N, C]}`` for each 1-based block of ``attention_taps``: the ordinary residual
      stream after that block's attention residual and before its MLP (``x + ls_1(attn(ln_1(x)))`` with ``x``
      the block's input), special tokens removed; empty when no ``attention_taps`` are asked.

    ``norm=True`` applies the backbone's final norm (``ln_post`` / ``norm``) to ``patches``, ``ordinary``,
    ``attention``, ``cls`` and ``extra``; ``project=True`` then multiplies them by the visual projection (CLIP
    only). ``final`` stays raw.
    """

    indices: tuple[int, ...]
    patches: list[torch.Tensor]
    ordinary: list[torch.Tensor]
    cls: torch.Tensor
    extra: torch.Tensor | None
    final: torch.Tensor | None
    num_prefix: int
    attention: dict[int, torch.Tensor] = field(default_factory=dict)


def take_indices(depth: int, indices: int | Sequence[int]) -> list[int]:
    """0-based block positions for 1-based ``indices``, or for the last ``n`` blocks when given an int ``n``.

    >>> take_indices(24, [6, 12, 18, 24])
    [5, 11, 17, 23]
    >>> take_indices(12, 2)
    [10, 11]
    """
    if isinstance(indices, int):
        if not 1 <= indices <= depth:
            raise ConfigError(f"indices={indices} asks for the last {indices} blocks; the backbone has {depth}")
        return list(range(depth - indices, depth))
    chosen = sorted(set(int(i) for i in indices))
    if not chosen:
        raise ConfigError("indices is empty; give 1-based block numbers such as [6, 12, 18, 24] or an int n for the last n")
    bad = [i for i in chosen if not 1 <= i <= depth]
    if bad:
        raise ConfigError(f"indices {bad} are outside 1..{depth} (1-based block numbers of this {depth}-block backbone)")
    return [i - 1 for i in chosen]


def take_attention(depth: int, attention_taps: Sequence[int]) -> list[int]:
    """0-based block positions for the 1-based ``attention_taps`` (none when it is empty)."""
    chosen = sorted(set(int(i) for i in attention_taps))
    bad = [i for i in chosen if not 1 <= i <= depth]
    if bad:
        raise ConfigError(f"attention_taps {bad} are outside 1..{depth} (1-based block numbers of this {depth}-block backbone)")
    return [i - 1 for i in chosen]


def check_vv_last(vv_last: int, depth: int) -> int:
    """Validate ``vv_last`` and return the 0-based position of the first V-V block (``depth`` when off)."""
    if not 0 <= vv_last <= depth:
        raise ConfigError(f"vv_last={vv_last} must be between 0 and the number of blocks ({depth})")
    return depth - vv_last


def check_deep_tokens(deep_tokens: Sequence[torch.Tensor], batch: int, width: int, depth: int) -> list[torch.Tensor]:
    """Deep prompt tokens as ``[batch, T, width]`` tensors (a ``[T, width]`` one is shared by the batch); raises
    :class:`ConfigError` when there are more than ``depth`` of them or their shapes differ."""
    if len(deep_tokens) > depth:
        raise ConfigError(f"{len(deep_tokens)} deep_tokens tensors for a {depth}-block backbone; give at most {depth}")
    shaped = [t.unsqueeze(0).expand(batch, -1, -1) if t.ndim == 2 else t for t in deep_tokens]
    if shaped:
        count = shaped[0].shape[1]
        bad = [tuple(t.shape) for t in shaped if t.ndim != 3 or tuple(t.shape) != (batch, count, width)]
        if bad:
            raise ConfigError(
                f"deep_tokens must all be [T, {width}] or [{batch}, T, {width}] with one T, got {bad[0]} "
                f"beside {tuple(shaped[0].shape)}"
            )
    return shaped


def value_heads(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, heads: int) -> torch.Tensor:
    """The attention values of ``x [B,L,C]`` as ``[B, heads, L, C/heads]`` from a ``[C, C]`` value projection."""
    batch, length, channels = x.shape
    v = F.linear(x, weight, bias)
    return v.reshape(batch, length, heads, channels // heads).transpose(1, 2)


def vv_attention_from_values(v: torch.Tensor, out_proj: nn.Module) -> torch.Tensor:
    """``out_proj(softmax(v vᵀ · d^-½) v)`` per head, heads merged: V-V ("DPAM") self-attention.

    ``v`` is ``[B, heads, L, d]``; the result is ``[B, L, heads*d]``. Query and key are both the values,
    the scale is the usual ``d^-½`` of the head dimension.
    """
    batch, heads, length, dim = v.shape
    out = F.scaled_dot_product_attention(v, v, v)
    return out_proj(out.transpose(1, 2).reshape(batch, length, heads * dim))


#: ``halves(block, x)`` → ``(mid, block(x))``: the block run as its two residual halves, ``mid`` the stream after
#: the attention residual (before the MLP); the output must equal ``block(x)`` bit for bit.
BlockHalves = Callable[[nn.Module, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]
#: ``block_with_vv(block, x[, prefix])`` → ``(mid, block(x), increment)``: ``mid`` as for :data:`BlockHalves`, plus
#: the V-V increment computed from the same normed input; with ``prefix``, ``mid`` and ``block(x)`` cover the first
#: ``prefix`` tokens only (the increment still covers every token).
VVBlock = Callable[..., tuple[torch.Tensor, torch.Tensor, torch.Tensor]]


@dataclass
class Streams:
    """What :func:`run_blocks` returns: the final ordinary-stream sequence ``x``, the full sequences ``taps``
    and ``ordinary`` after the tapped blocks, and the ordinary stream after the attention residual of each
    attention-tapped block (``attention``, keyed by 1-based block)."""

    x: torch.Tensor
    taps: list[torch.Tensor]
    ordinary: list[torch.Tensor]
    attention: dict[int, torch.Tensor]


def run_blocks(
    x: torch.Tensor,
    blocks: Sequence[nn.Module],
    take: list[int],
    vv_start: int,
    block_with_vv: VVBlock,
    halves: BlockHalves,
    attention_take: Sequence[int] = (),
    deep_tokens: Sequence[torch.Tensor] = (),
    last_prefix: int | None = None,
) -> Streams:
    """Run ``blocks`` on ``x``, tapping after the 0-based blocks in ``take`` and inside those in ``attention_take``.

    From block ``vv_start`` on, ``block_with_vv`` runs each block and a V-V stream ``x_vv`` (started as that
    block's input) accumulates the increments; ``taps`` there come from ``x_vv``. Before ``vv_start`` a block in
    ``attention_take`` runs as its two ``halves``, any other as ``block(x)``. ``deep_tokens`` (``[B, T, C]``
    each, from :func:`check_deep_tokens`) enter the ordinary stream: the first is put in front of ``x`` before
    block 0, each later one overwrites those ``T`` positions before its block. With ``last_prefix`` (for a V-V
    last block) the last block's ordinary stream is computed for its first ``last_prefix`` tokens only.
    """
    x_vv: torch.Tensor | None = None
    taps: list[torch.Tensor] = []
    ordinary: list[torch.Tensor] = []
    attention: dict[int, torch.Tensor] = {}
    for i, block in enumerate(blocks):
        if i < len(deep_tokens):
            kept = x if i == 0 else x[:, deep_tokens[i].shape[1]:]
            x = torch.cat([deep_tokens[i].to(x.dtype), kept], dim=1)
        if i >= vv_start:
            x_in = x
            trimmed = last_prefix is not None and i == len(blocks) - 1
            mid, x, delta = block_with_vv(block, x_in, last_prefix) if trimmed else block_with_vv(block, x_in)
            x_vv = (x_in if x_vv is None else x_vv) + delta
        elif i in attention_take:
            mid, x = halves(block, x)
        else:
            x = block(x)
        if i in attention_take:
            attention[i + 1] = mid
        if i in take:
            taps.append(x_vv if i >= vv_start else x)
            ordinary.append(x)
    return Streams(x, taps, ordinary, attention)


def collect(
    streams: Streams,
    take: list[int],
    num_extra: int,
    num_prefix: int,
    head: Callable[[torch.Tensor], torch.Tensor],
    vv_last: int,
    final_patches: bool = True,
) -> Intermediates:
    """The :class:`Intermediates` of one pass of :func:`run_blocks`: special tokens stripped from the taps,
    ``head`` (final norm and/or projection) applied to every returned token; ``ordinary`` left empty when the
    pass skipped the last block's ordinary patch tokens (``final_patches`` False)."""
    x = streams.x
    patches = [head(t[:, num_prefix:]) for t in streams.taps]
    return Intermediates(
        indices=tuple(i + 1 for i in take),
        patches=patches,
        ordinary=patches if vv_last == 0 else _ordinary(streams, num_prefix, head, final_patches),
        cls=head(x[:, num_extra]),
        extra=head(x[:, :num_extra]) if num_extra else None,
        final=x,
        num_prefix=num_prefix,
        attention={block: head(t[:, num_prefix:]) for block, t in streams.attention.items()},
    )



def _ordinary(streams: Streams, num_prefix: int, head: Callable[[torch.Tensor], torch.Tensor],
              final_patches: bool) -> list[torch.Tensor]:
    """The ordinary-stream taps, special tokens stripped; none when the last block's patches were skipped."""
    return [head(t[:, num_prefix:]) for t in streams.ordinary] if final_patches else []

class NormalizingBackbone(nn.Module):
    """What every backbone shares: the wrapped model, its name, weights record and input mean/std."""

    def __init__(self, model: nn.Module, name: str, weights, mean, std) -> None:
        super().__init__()
        self.model = model
        self.name = name
        self.weights = weights
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        self.register_buffer("_mean", torch.tensor(self.mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("_std", torch.tensor(self.std).view(1, 3, 1, 1), persistent=False)

    def normalize(self, images01: torch.Tensor) -> torch.Tensor:
        """``[B,3,H,W]`` RGB in ``[0,1]`` → normalised with the backbone's mean and std."""
        return (images01 - self._mean.to(images01.dtype)) / self._std.to(images01.dtype)
