"""Speed helpers for frozen backbones: mixed-precision autocast, memory layout, ``torch.compile``, batching."""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Literal

import torch

from zsadbench.errors import ConfigError

Precision = Literal["fp32", "bf16", "fp16"]
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def autocast(device: str | torch.device, precision: Precision = "fp32") -> contextlib.AbstractContextManager:
    """A context running matmuls and attention in ``precision`` on ``device`` (``fp32``: no autocast).

    Weights stay fp32 (the reference code runs fp32 copies of the fp16 OpenAI weights); LayerNorm and
    softmax stay fp32 under autocast. fp16 autocast on CPU is refused: it is not supported there.
    """
    if precision == "fp32":
        return contextlib.nullcontext()
    if precision not in _DTYPES:
        raise ConfigError(f"precision must be one of fp32, bf16, fp16; got {precision!r}")
    device_type = torch.device(device).type
    if device_type == "cpu" and precision == "fp16":
        raise ConfigError("precision fp16 needs a GPU; use bf16 or fp32 on CPU")
    return torch.autocast(device_type=device_type, dtype=_DTYPES[precision])


def prepare_for_inference(backbone: torch.nn.Module, *, compile_blocks: bool = False) -> torch.nn.Module:
    """Lay the patch-embedding convolution out channels-last and, optionally, compile each transformer
    block in place (``nn.Module.compile``: state-dict names are kept). Returns ``backbone``."""
    for module in backbone.modules():
        if isinstance(module, torch.nn.Conv2d):
            module.to(memory_format=torch.channels_last)
    if compile_blocks:
        for block in _blocks(backbone):
            block.compile(dynamic=False)
    return backbone


def _blocks(backbone: torch.nn.Module) -> Iterator[torch.nn.Module]:
    model = backbone.model
    if hasattr(model, "visual"):
        yield from model.visual.transformer.resblocks
    else:
        yield from model.blocks


def in_batches(
    fn: Callable[[torch.Tensor], torch.Tensor], inputs: torch.Tensor, batch_size: int
) -> torch.Tensor:
    """``fn`` over ``inputs`` in chunks of ``batch_size`` along dim 0, outputs concatenated."""
    if batch_size < 1:
        raise ConfigError(f"batch_size must be at least 1, got {batch_size}")
    return torch.cat([fn(inputs[i : i + batch_size]) for i in range(0, inputs.shape[0], batch_size)], dim=0)


def as_channels_last(images: torch.Tensor) -> torch.Tensor:
    """Images ``[B,3,H,W]`` in channels-last memory order (what cuDNN's convolutions prefer)."""
    return images.contiguous(memory_format=torch.channels_last)
