"""Shared by the AnomalyCLIP and MPA/MPAMA tests: the image size of their tiny configurations, toy auxiliary data,
a re-statement of the reference visual tower (V-V attention) on open_clip's public modules, and checkpoints
that stop a fit after a given epoch."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from zsadbench.method import FitData
from zsadbench.methods.anomalyclip.method import AnomalyCLIP
from zsadbench.types import Batch

SIZE = 56


def toy_data(num: int = 8, checkpoints=None, features=None) -> FitData:
    """Flat noisy images; odd ones carry a bright square that the mask marks."""

    def batches(batch_size: int = 8, shuffle: bool = False, seed: int = 0):
        gen = torch.Generator().manual_seed(seed)
        order = torch.randperm(num, generator=gen) if shuffle else torch.arange(num)
        for start in range(0, num, batch_size):
            idx = order[start : start + batch_size]
            images = torch.stack([0.4 + 0.05 * torch.rand(3, SIZE, SIZE, generator=torch.Generator().manual_seed(i))
                                  for i in idx.tolist()])
            masks = torch.zeros(len(idx), SIZE, SIZE, dtype=torch.bool)
            for row, i in enumerate(idx.tolist()):
                if i % 2:
                    masks[row, 8 + 2 * i : 22 + 2 * i, 10:24] = True
            images[masks.unsqueeze(1).expand(-1, 3, -1, -1)] = 0.95
            yield Batch(image=images, category="toy", gt_label=(idx % 2).long(), gt_mask=masks)

    return FitData("auxiliary", batches, num, "toy", seed=0, checkpoints=checkpoints, features=features)


def reference_vv(block, x: torch.Tensor) -> torch.Tensor:
    """DPAM: q = k = v (the value projection of ln_1(x)), softmax(v vᵀ / √d) v per head, out_proj."""
    attn = block.attn
    width, heads = x.shape[-1], attn.num_heads
    v = F.linear(block.ln_1(x), attn.in_proj_weight[2 * width :], attn.in_proj_bias[2 * width :])
    v = v.reshape(x.shape[0], x.shape[1], heads, width // heads).transpose(1, 2)
    weights = (v @ v.transpose(-1, -2) / math.sqrt(width // heads)).softmax(-1)
    return attn.out_proj((weights @ v).transpose(1, 2).reshape(x.shape))


def reference_visual(method: AnomalyCLIP, images01: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(image feature = final CLS @ proj, patches = V-V stream of the last block → ln_post → proj), both normalised."""
    backbone = method.model_.backbone
    visual = backbone.visual
    x = visual.conv1(backbone.normalize(images01)).flatten(2).transpose(1, 2)
    cls = visual.class_embedding.expand(x.shape[0], 1, -1)
    x = visual.ln_pre(torch.cat([cls, x], 1) + visual.positional_embedding)
    blocks = visual.transformer.resblocks
    x_vv = None
    for i, block in enumerate(blocks):
        if i >= len(blocks) - method.config.vv_last:
            x_vv = (x if x_vv is None else x_vv) + reference_vv(block, x)
        x = block(x)
    patches = visual.ln_post(x_vv[:, 1:]) @ visual.proj
    return F.normalize(x[:, 0] @ visual.proj, dim=-1), F.normalize(patches, dim=-1)
