"""DINOv2 ViTs through timm, with the same tap contract as the CLIP backbone.

Names are timm's (``vit_small_patch14_dinov2`` … ``vit_large_patch14_dinov2``, ``*_reg4_dinov2`` with four
registers) plus tiny test configurations (``zsad-tiny-dinov2``, ``zsad-tiny-dinov2-reg4``: 3 blocks, width
64, 2 heads, patch 14). The input size is fixed at construction; timm resamples the positional embedding
of loaded weights to it (bicubic, DINOv2's own choice), unlike the CLIP backbone's bilinear resize.
"""
from __future__ import annotations

import difflib
from pathlib import Path

import timm
import torch
import torch.nn as nn
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.layers import Attention
from timm.models.vision_transformer import Block

from zsadbench.errors import ConfigError, WeightsError

from .seeding import seeded_init
from .taps import (
    Intermediates,
    NormalizingBackbone,
    check_vv_last,
    collect,
    run_blocks,
    take_attention,
    take_indices,
    value_heads,
    vv_attention_from_values,
)
from .weights import (TORCH_HUB_CACHE, WeightsInfo, check_checkpoint, check_sha256, known_weights,
                      missing_weights_message)

TINY = {
    "zsad-tiny-dinov2": ("vit_small_patch14_dinov2", {}),
    "zsad-tiny-dinov2-reg4": ("vit_small_patch14_reg4_dinov2", {}),
}
_TINY_SHAPE = {"depth": 3, "embed_dim": 64, "num_heads": 2}
TAG = "lvd142m"


class Dinov2Backbone(NormalizingBackbone):
    """A frozen timm DINOv2 ViT with :meth:`forward_intermediates` (registers removed from ``patches``).

    Attributes as on :class:`~zsadbench.backbones.clip.ClipBackbone` where they apply: ``model``, ``name``,
    ``weights``, ``mean``/``std`` (ImageNet's), ``image_size``, ``patch_size``, ``grid_size``, ``width``,
    ``depth``, ``heads``; ``num_registers``. There is no text tower and no projection.
    """

    def __init__(self, model: nn.Module, name: str, weights: WeightsInfo) -> None:
        super().__init__(model, name, weights, IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD)

    @property
    def image_size(self) -> int:
        return int(self.model.patch_embed.img_size[0])

    @property
    def patch_size(self) -> int:
        return int(self.model.patch_embed.patch_size[0])

    @property
    def grid_size(self) -> tuple[int, int]:
        return tuple(int(g) for g in self.model.patch_embed.grid_size)  # type: ignore[return-value]

    @property
    def width(self) -> int:
        return int(self.model.embed_dim)

    @property
    def depth(self) -> int:
        return len(self.model.blocks)

    @property
    def heads(self) -> int:
        return int(self.model.blocks[0].attn.num_heads)

    @property
    def num_registers(self) -> int:
        return int(self.model.num_reg_tokens)

    @property
    def device(self) -> torch.device:
        return self.model.patch_embed.proj.weight.device

    def post_norm(self, x: torch.Tensor) -> torch.Tensor:
        """The final norm alone."""
        return self.model.norm(x)

    def embed_tokens(self, images: torch.Tensor, extra_tokens: torch.Tensor | None = None) -> torch.Tensor:
        """The input of the first block: ``[extra_1..extra_T, CLS, registers, patches]`` (after ``norm_pre``,
        an identity for DINOv2). Extra tokens get the CLS position's embedding; with registers timm folds
        that into the CLS token itself, so they get none."""
        model = self.model
        if images.shape[-2:] != (self.image_size, self.image_size):
            raise ConfigError(
                f"images are {tuple(images.shape[-2:])} px but {self.name} was built for {self.image_size} px; "
                f"resize them or create the backbone with image_size={images.shape[-1]}"
            )
        x = model._pos_embed(model.patch_embed(images))
        if extra_tokens is not None:
            extra = extra_tokens if extra_tokens.ndim == 3 else extra_tokens.unsqueeze(0).expand(x.shape[0], -1, -1)
            if extra.shape[0] != x.shape[0] or extra.shape[-1] != self.width:
                raise ConfigError(
                    f"extra_tokens must be [T, {self.width}] or [{x.shape[0]}, T, {self.width}], "
                    f"got {tuple(extra_tokens.shape)}"
                )
            extra = extra.to(x.dtype)
            if not model.no_embed_class:
                extra = extra + model.pos_embed[:, :1].to(x.dtype)
            x = torch.cat([extra, x], dim=1)
        return model.norm_pre(x)

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
    ) -> Intermediates:
        """Same contract as :meth:`ClipBackbone.forward_intermediates`; ``norm`` applies the final norm;
        ``project`` is not available (DINOv2 has no projection); ``attention_taps`` reads
        ``x + ls1(attn(norm1(x)))`` inside the chosen blocks."""
        if project:
            raise ConfigError(f"{self.name} has no projection; call forward_intermediates with project=False")
        blocks = self.model.blocks
        take = take_indices(len(blocks), indices)
        attention_take = take_attention(len(blocks), attention_taps)
        vv_start = check_vv_last(vv_last, len(blocks))
        num_extra = 0 if extra_tokens is None else extra_tokens.shape[-2]
        num_prefix = num_extra + self.model.num_prefix_tokens
        x = self.embed_tokens(images, extra_tokens)
        streams = run_blocks(x, blocks, take, vv_start, _block_with_vv, block_halves, attention_take)
        head = self.model.norm if norm else (lambda t: t)
        return collect(streams, take, num_extra, num_prefix, head, vv_last)


def block_halves(block: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A timm ViT ``Block`` on ``x`` as its two residual halves: returns ``(mid, block(x))`` with
    ``mid = x + drop_path1(ls1(attn(norm1(x))))`` and ``block(x) = mid + drop_path2(ls2(mlp(norm2(mid))))``,
    the very operations of the block's own ``forward``."""
    if type(block).forward is not Block.forward:
        raise ConfigError(f"attention_taps needs timm's standard ViT Block; this model has {type(block).__name__}")
    mid = x + block.drop_path1(block.ls1(block.attn(block.norm1(x))))
    return mid, mid + block.drop_path2(block.ls2(block.mlp(block.norm2(mid))))


def _block_with_vv(block: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A timm ViT block on ``x`` plus the V-V increment ``ls1(VV(norm1(x)))`` from the same ``norm1(x)``:
    returns ``(mid, block(x), increment)`` with ``mid = x + ls1(attn(norm1(x)))`` the stream before the MLP."""
    attn = block.attn
    if not isinstance(attn, Attention) or attn.gate is not None or attn.attn_dim != x.shape[-1]:
        raise ConfigError(f"vv_last needs timm's standard Attention; this block has {type(attn).__name__}")
    h = block.norm1(x)
    mid = x + block.ls1(attn(h))
    x_out = mid + block.ls2(block.mlp(block.norm2(mid)))
    dim = attn.attn_dim
    bias = None if attn.qkv.bias is None else attn.qkv.bias[2 * dim :]
    v = value_heads(h, attn.qkv.weight[2 * dim :], bias, attn.num_heads)
    return mid, x_out, block.ls1(vv_attention_from_values(v, lambda o: attn.proj(attn.norm(o))))


def create_dinov2(
    name: str,
    pretrained: str = "none",
    *,
    image_size: int | None = None,
    device: str | torch.device = "cpu",
    frozen: bool = True,
) -> Dinov2Backbone:
    """A frozen, eval-mode DINOv2 backbone.

    ``pretrained``: ``none`` (random, seeded from the model name), ``lvd142m`` (the official weights,
    from timm's Hugging Face cache or a download), or a checkpoint path (timm's or the original
    ``dinov2_vits14_pretrain.pth`` format). ``image_size`` defaults to 518 (37×37 patches).
    """
    arch, overrides = _arch(name)
    kwargs = dict(overrides, num_classes=0)
    if image_size is not None:
        if image_size <= 0 or image_size % 14:
            raise ConfigError(f"image_size={image_size} must be a positive multiple of the patch size 14 of {name}")
        kwargs["img_size"] = int(image_size)
    tag = (pretrained or "none").strip()
    tag = "none" if tag.lower() == "none" else tag
    path = _weights_file(arch, tag) if tag != "none" else None
    try:
        if path is None:
            with seeded_init(name):
                model = timm.create_model(arch, pretrained=False, **kwargs)
        else:
            model = timm.create_model(arch, pretrained=True, pretrained_cfg_overlay={"file": str(path)}, **kwargs)
    except RuntimeError as exc:
        if path is None:
            raise
        first = str(exc).splitlines()[0][:200]
        raise WeightsError(f"{path} does not fit {arch} ({first}); pass the matching model name") from exc
    model.eval()
    if frozen:
        model.requires_grad_(False)
    digest = None if path is None else check_sha256(path, None, str(path))
    info = WeightsInfo(tag=tag if path is None or tag == TAG else Path(tag).name,
                       path=None if path is None else str(path), sha256=digest, random=path is None)
    return Dinov2Backbone(model, name, info).eval().to(device)


def _arch(name: str) -> tuple[str, dict]:
    if name in TINY:
        arch, extra = TINY[name]
        return arch, {**_TINY_SHAPE, **extra}
    known = timm.list_models("vit_*_patch14*dinov2")
    if name not in known:
        close = difflib.get_close_matches(name, known + list(TINY), n=3)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ConfigError(f"unknown DINOv2 model {name!r}.{hint} Known: {', '.join(known + list(TINY))}")
    return name, {}


def _weights_file(arch: str, tag: str) -> Path:
    """The checkpoint for ``tag``: a local path, or timm's Hugging Face copy of the ``lvd142m`` weights."""
    if tag != TAG:
        path = Path(tag).expanduser()
        if not path.is_file():
            raise WeightsError(
                f"--pretrained {tag!r} is neither the tag {TAG!r} nor an existing file; pass {TAG}, the path of "
                "a checkpoint, or none for random weights"
            )
        check_checkpoint(path)
        return path
    entry = known_weights(arch, TAG)
    if entry is not None and (TORCH_HUB_CACHE / entry.filename).is_file():
        return TORCH_HUB_CACHE / entry.filename
    repo = f"timm/{arch}.{TAG}"
    try:
        from huggingface_hub import hf_hub_download

        return Path(hf_hub_download(repo_id=repo, filename="model.safetensors"))
    except Exception as exc:  # noqa: BLE001 - offline hubs raise many types
        reason = f"{type(exc).__name__} from the Hugging Face hub ({repo})"
        raise WeightsError(missing_weights_message(arch, TAG, reason)) from exc

