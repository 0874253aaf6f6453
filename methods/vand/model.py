"""The VAND network: a frozen CLIP, the fixed prompt-ensemble text features and one trainable linear layer per
tapped block, from the raw residual stream (width) into the joint embedding space.

Zero-shot map: per tapped block, ``softmax(scale · cos(linear(patch), [t_n, t_a]))`` upsampled to the input
size, summed over blocks (anomaly channel). Image score: the same softmax on the image feature (CLS →
``ln_post`` → projection). Few-shot map: per memory block, ``1 − max cos`` of each raw patch token to the
support's raw tokens of that block, upsampled, summed, added to the zero-shot map.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn as nn

from zsadbench.backbones.clip import ClipBackbone
from zsadbench.training import FrozenBackboneModel, check_layers

from .config import VANDConfig
from .prompts import object_word, state_features
from .scoring import anomaly_probability, memory_distance, state_logits, upsample_corners


def _example(depth: int) -> str:
    """Four evenly spaced blocks of a ``depth``-block tower (``6,12,18,24`` for 24), for error messages."""
    return ",".join(str(max(1, depth * k // 4)) for k in range(1, 5))


class VANDModel(FrozenBackboneModel):
    """Frozen ``backbone`` plus ``adapters`` (``nn.Linear(width, embed_dim)`` per block of ``cfg.layers``, in
    that order): the only parameters that train."""

    def __init__(self, backbone: ClipBackbone, cfg: VANDConfig) -> None:
        example = _example(backbone.depth)
        check_layers(backbone, cfg.layers, "VANDConfig.layers", example)
        check_layers(backbone, cfg.memory_layers, "VANDConfig.memory_layers", example)
        super().__init__(backbone)
        self.adapters = nn.ModuleList(nn.Linear(backbone.width, backbone.embed_dim) for _ in cfg.layers)
        self.cfg = cfg
        self._text: dict[str, torch.Tensor] = {}

    def text_features(self, category: str) -> torch.Tensor:
        """``[2, embed_dim]`` unit (normal, anomaly) features of ``category``'s prompt ensemble, computed once.

        They are made outside inference mode, so the same tensors serve training and prediction."""
        name = object_word(category, self.cfg.prompt_name)
        if name not in self._text:
            with torch.inference_mode(False), torch.no_grad():
                self._text[name] = state_features(self.backbone, name)
        return self._text[name]

    def texts(self, categories: Sequence[str]) -> torch.Tensor:
        """``[B, 2, embed_dim]``: each image's text features."""
        return torch.stack([self.text_features(category) for category in categories])

    def projected(self, patches: Mapping[int, torch.Tensor]) -> list[torch.Tensor]:
        """``[B, N, embed_dim]`` per block of ``cfg.layers``: its raw patches through its linear layer."""
        return [adapter(patches[layer]) for layer, adapter in zip(self.cfg.layers, self.adapters)]

    def layer_probabilities(self, patches: Mapping[int, torch.Tensor], text: torch.Tensor) -> list[torch.Tensor]:
        """One ``[B, S, S]`` anomaly probability map per block of ``cfg.layers`` (``S = image_size``)."""
        cfg = self.cfg
        return [anomaly_probability(state_logits(tokens, text, cfg.logit_scale), self.grid, cfg.image_size)
                for tokens in self.projected(patches)]

    def image_features(self, cls: torch.Tensor) -> torch.Tensor:
        """``[B, embed_dim]``: the raw final CLS through ``ln_post`` and the projection (CLIP's image feature)."""
        return self.backbone.project(self.backbone.post_norm(cls))

    def image_probability(self, cls: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """``[B]``: the anomaly probability of the image feature."""
        return state_logits(self.image_features(cls), text, self.cfg.logit_scale).softmax(dim=-1)[:, 1]

    def memory_maps(self, patches: Mapping[int, torch.Tensor], memory: Mapping[int, torch.Tensor]) -> list[torch.Tensor]:
        """One ``[B, S, S]`` distance map per block of ``cfg.memory_layers``: ``1 − max cos`` to that block's
        memory, upsampled."""
        maps = []
        for layer in self.cfg.memory_layers:
            distance = memory_distance(patches[layer], memory[layer])
            maps.append(upsample_corners(distance.reshape(distance.shape[0], 1, *self.grid), self.cfg.image_size)[:, 0])
        return maps
