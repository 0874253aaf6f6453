"""The InCTRL network: a frozen CLIP, and per number of prompts an adapter and two score heads.

Frozen side (:meth:`InCTRLModel.tower`): each tapped block's raw patch tokens and the image token (final CLS →
``ln_post`` → projection), through the feature cache; the text prior's ensemble features per category. Learned
side (:class:`ResidualHeads`): the adapter of the image-level residual, the image head scoring it and the holistic
head scoring the patch residual map plus the image-level score and the text prior.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn as nn

from zsadbench.backbones import FeatureCache, autocast, cached_taps
from zsadbench.backbones.clip import ClipBackbone
from zsadbench.training import FrozenBackboneModel, check_layers

from .config import InCTRLConfig
from .prompts import text_features
from .scoring import final_score, patch_residual_map, text_prior


@dataclass
class Tower:
    """The frozen tower's outputs of ``B`` images: ``patches`` (one raw ``[B, N, C]`` tensor per tapped block, in
    the config's order) and ``token`` (``[B, E]``, the projected image token)."""

    patches: list[torch.Tensor]
    token: torch.Tensor

    def take(self, index: torch.Tensor) -> "Tower":
        """The rows ``index`` (any shape ``[...]``) of every tensor: ``[..., N, C]`` patches, ``[..., E]`` tokens."""
        return Tower([p[index] for p in self.patches], self.token[index])


@dataclass
class Prompts:
    """The normal prompt images' features: ``patches`` per tapped block (``[M, C]`` shared by every query, or
    ``[B, M, C]`` per query, ``M = k·N``) and ``tokens`` (``[k, E]`` or ``[B, k, E]``)."""

    patches: list[torch.Tensor]
    tokens: torch.Tensor

    @classmethod
    def of(cls, tower: Tower) -> "Prompts":
        """The prompts a tower of ``[..., k]`` images makes: the k images' patches laid end to end."""
        return cls([p.flatten(-3, -2) for p in tower.patches], tower.token)


@dataclass
class Scores:
    """InCTRL's outputs for ``B`` queries: ``final`` (the image score), ``holistic`` (the holistic head's score),
    ``image`` (the image-level residual score), ``text`` (the text prior), all ``[B]``, and ``residual_map``
    (``[B, N]``, the patch residual map)."""

    final: torch.Tensor
    holistic: torch.Tensor
    image: torch.Tensor
    text: torch.Tensor
    residual_map: torch.Tensor


class Adapter(nn.Module):
    """``relu(W₂ relu(W₁ x))`` without biases, hidden width ``dim // reduction``."""

    def __init__(self, dim: int, reduction: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(dim, max(1, dim // reduction), bias=False), nn.ReLU(),
            nn.Linear(max(1, dim // reduction), dim, bias=False), nn.ReLU(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class ScoreHead(nn.Module):
    """``[B, dim_in]`` → ``[B]`` in ``(0, 1)``: per hidden width a linear layer, ReLU and batch norm, then a linear
    layer to one output and a sigmoid."""

    def __init__(self, dim_in: int, hidden: Sequence[int]) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for width in hidden:
            layers += [nn.Linear(dim_in, width), nn.ReLU(), nn.BatchNorm1d(width)]
            dim_in = width
        self.net = nn.Sequential(*layers, nn.Linear(dim_in, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.net(x)).squeeze(-1)


class ResidualHeads(nn.Module):
    """What InCTRL learns for one number of prompts: ``adapter``, ``image_head`` (on the ``embed_dim`` image-level
    residual) and ``holistic_head`` (on the ``num_patches`` residual map plus the two scalars)."""

    def __init__(self, embed_dim: int, num_patches: int, cfg: InCTRLConfig) -> None:
        super().__init__()
        self.adapter = Adapter(embed_dim, cfg.adapter_reduction)
        self.image_head = ScoreHead(embed_dim, cfg.head_hidden)
        self.holistic_head = ScoreHead(num_patches, cfg.head_hidden)

    def image_residual(self, query_tokens: torch.Tensor, prompt_tokens: torch.Tensor) -> torch.Tensor:
        """``[B, E]``: the mean adapted prompt token minus the adapted query token (``prompt_tokens`` ``[k, E]``
        or ``[B, k, E]``)."""
        prompts = self.adapter(prompt_tokens).mean(dim=-2)
        return prompts - self.adapter(query_tokens)

    def forward(self, query: Tower, prompts: Prompts, text: torch.Tensor, text_scale: float) -> Scores:
        """The scores of ``query`` against ``prompts``, with the text features of each query's category (``[2, E]``
        or ``[B, 2, E]``)."""
        residual_map = patch_residual_map(query.patches, prompts.patches)
        image = self.image_head(self.image_residual(query.token, prompts.tokens))
        prior = text_prior(query.token, text, text_scale)
        holistic = self.holistic_head(residual_map + prior[:, None] + image[:, None])
        return Scores(final_score(holistic, residual_map), holistic, image, prior, residual_map)


class InCTRLModel(FrozenBackboneModel):
    """Frozen ``backbone`` plus one :class:`ResidualHeads` per entry of ``cfg.train_shots`` (``heads["k"]``)."""

    def __init__(self, backbone: ClipBackbone, cfg: InCTRLConfig) -> None:
        check_layers(backbone, cfg.layers, f"{type(cfg).__name__}.layers")
        super().__init__(backbone)
        self.cfg = cfg
        grid = backbone.grid_size
        self.heads = nn.ModuleDict(
            {str(k): ResidualHeads(backbone.embed_dim, grid[0] * grid[1], cfg) for k in cfg.train_shots}
        )
        self._text: dict[str, torch.Tensor] = {}

    @property
    def device(self) -> torch.device:
        return self.backbone.device

    def tower(self, images01: torch.Tensor, *, cache: FeatureCache | None = None, precision: str = "fp32") -> Tower:
        """The frozen tower on RGB images in ``[0, 1]`` (through ``cache`` when given); float32, no gradient."""
        backbone, layers = self.backbone, [int(layer) for layer in self.cfg.layers]
        taps = cached_taps(cache, backbone, backbone.normalize(images01.to(self.device)), layers, precision=precision)
        position = {index: i for i, index in enumerate(taps.indices)}
        with torch.no_grad():
            token = backbone.project(backbone.post_norm(taps.cls.float()))
        return Tower([taps.patches[position[layer]].float() for layer in layers], token.float())

    def text(self, categories: Sequence[str], precision: str = "fp32") -> torch.Tensor:
        """``[B, 2, E]`` unit text features of each category (each name encoded once, then cached)."""
        for name in set(categories) - set(self._text):
            with torch.no_grad(), autocast(self.device, precision):  # type: ignore[arg-type]
                self._text[name] = text_features(self.backbone, name).float()
        return torch.stack([self._text[name] for name in categories])

    def scores(self, shots: int, query: Tower, prompts: Prompts, text: torch.Tensor) -> Scores:
        """:class:`Scores` of ``query`` with the heads trained for ``shots`` prompts."""
        return self.heads[str(shots)](query, prompts, text, self.cfg.text_scale)
