"""WinCLIP / WinCLIP+ as a plain ``nn.Module`` on top of a CLIP backbone.

Per image: the full-image embedding (CLS), the ``ln_post``-normalised patch tokens (visual width, not
projected) and one embedding per sliding window and scale. A window embedding is the CLS output of the
visual transformer re-run on the CLS token plus the window's patch tokens, taken *after* the patch and
positional embeddings (so every token keeps its position). All windows of a scale, for every image of the
batch, go through the transformer together (in chunks of at most ``max_window_tokens`` tokens).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from . import scoring
from .prompts import prompt_ensemble


@dataclass
class Encoded:
    """Visual features of a batch: ``image`` ``[B,D]``, ``windows`` one ``[B,W_s,D]`` per scale, ``patches``
    ``[B,N,width]``."""

    image: torch.Tensor
    windows: list[torch.Tensor]
    patches: torch.Tensor


class WinCLIPModel(nn.Module):
    """Zero-shot WinCLIP, plus WinCLIP+ once :meth:`remember` has stored reference images.

    ``backbone`` is a :class:`zsadbench.backbones.ClipBackbone` (any object with its ``visual``,
    ``normalize``, ``embed_tokens``, ``forward_from_tokens``, ``post_norm``, ``project``, ``tokenize`` and
    ``encode_text`` members). Images go in as RGB in ``[0,1]`` at the backbone's input size.
    """

    def __init__(
        self,
        backbone: nn.Module,
        scales: tuple[int, ...] = (2, 3),
        stride: int = 1,
        temperature: float = 0.07,
        max_window_tokens: int = 16384,
    ) -> None:
        super().__init__()
        self.backbone = backbone
        self.scales = tuple(scales)
        self.temperature = float(temperature)
        self.max_window_tokens = int(max_window_tokens)
        self.grid = tuple(backbone.grid_size)
        self.windows = [scoring.window_indices(self.grid, s, stride) for s in self.scales]
        self._text: dict[str, torch.Tensor] = {}
        self.reference_patches: torch.Tensor | None = None
        self.reference_windows: list[torch.Tensor] | None = None

    @property
    def device(self) -> torch.device:
        return self.backbone.visual.conv1.weight.device

    @property
    def num_patches(self) -> int:
        return self.grid[0] * self.grid[1]

    # -- text -------------------------------------------------------------------------------------
    @torch.no_grad()
    def text_embeddings(self, name: str) -> torch.Tensor:
        """``[2, D]``: the mean *unnormalised* embedding of the normal, then of the anomalous prompts of
        ``name``; computed once per name and cached."""
        if name not in self._text:
            normal, anomalous = prompt_ensemble(name)
            embedded = self._encode_prompts(self.backbone.tokenize(normal + anomalous)).float()
            self._text[name] = torch.stack([embedded[: len(normal)].mean(0), embedded[len(normal) :].mean(0)])
        return self._text[name]

    def _encode_prompts(self, tokens: torch.Tensor) -> torch.Tensor:
        """``backbone.encode_text`` on the shortest context holding every prompt's end token.

        CLIP's text transformer is causal and reads the end-of-text token (the largest id), so the
        positions after the longest prompt cannot change the result; dropping them makes the ensemble
        about four times cheaper. Text towers of another kind go through ``encode_text`` unchanged.
        """
        clip = self.backbone.model
        if getattr(clip, "text_pool_type", None) != "argmax" or getattr(clip, "attn_mask", None) is None:
            return self.backbone.encode_text(tokens)
        tokens = tokens.to(self.device)
        length = int(tokens.argmax(dim=-1).max()) + 1
        x = clip.token_embedding(tokens[:, :length]) + clip.positional_embedding[:length]
        x = clip.ln_final(clip.transformer(x, attn_mask=clip.attn_mask[:length, :length]))
        x = x[torch.arange(len(tokens), device=x.device), tokens.argmax(dim=-1)]
        return clip.text_projection(x) if isinstance(clip.text_projection, nn.Linear) else x @ clip.text_projection

    # -- vision -----------------------------------------------------------------------------------
    @torch.no_grad()
    def encode(self, images: torch.Tensor) -> Encoded:
        """Image, window and patch features of ``[B,3,S,S]`` images in ``[0,1]``."""
        backbone = self.backbone
        visual = backbone.visual
        tokens = backbone.embed_tokens(backbone.normalize(images.to(self.device, torch.float32)))
        hidden = backbone.post_norm(visual.transformer(visual.ln_pre(tokens)))
        image = backbone.project(hidden[:, 0])
        windows = [self._window_embeddings(tokens, idx) for idx in self.windows]
        return Encoded(image=image, windows=windows, patches=hidden[:, 1:])

    def _window_embeddings(self, tokens: torch.Tensor, windows: torch.Tensor) -> torch.Tensor:
        batch, _, width = tokens.shape
        n_windows, per_window = windows.shape
        patches = tokens[:, 1 + windows.to(tokens.device)]  # [B, W, k, width]
        cls = tokens[:, :1, None].expand(batch, n_windows, 1, width)
        sequences = torch.cat([cls, patches], dim=2).reshape(batch * n_windows, 1 + per_window, width)
        step = max(1, self.max_window_tokens // (1 + per_window))
        pooled = [self.backbone.forward_from_tokens(chunk)["cls"] for chunk in sequences.split(step)]
        return torch.cat(pooled).reshape(batch, n_windows, -1)

    # -- few-shot memory ------------------------------------------------------------------------
    @torch.no_grad()
    def remember(self, images: torch.Tensor) -> None:
        """Store the patch tokens and window embeddings of ``[k,3,S,S]`` normal reference images."""
        encoded = self.encode(images)
        self.reference_patches = encoded.patches
        self.reference_windows = encoded.windows

    def forget(self) -> None:
        """Drop the reference memory (back to zero-shot WinCLIP)."""
        self.reference_patches = None
        self.reference_windows = None

    @property
    def shots(self) -> int:
        return 0 if self.reference_patches is None else int(self.reference_patches.shape[0])

    # -- scores -----------------------------------------------------------------------------------
    def zero_shot_maps(self, encoded: Encoded, text: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Image scores ``[B]`` and the multi-scale patch map ``[B,N]`` from the text side."""
        image = scoring.anomaly_probability(encoded.image, text, self.temperature)
        per_scale = [
            scoring.harmonic_aggregation(scoring.anomaly_probability(w, text, self.temperature), idx, self.num_patches)
            for w, idx in zip(encoded.windows, self.windows)
        ]
        return image, scoring.combine_zero_shot(image, per_scale)

    def few_shot_map(self, encoded: Encoded) -> torch.Tensor:
        """The WinCLIP+ visual association map ``[B,N]`` against the reference memory."""
        if self.reference_patches is None or self.reference_windows is None:
            raise ValueError("WinCLIP+ has no reference images; call remember() first")
        patch = scoring.visual_association(encoded.patches, self.reference_patches)
        per_scale = [
            scoring.harmonic_aggregation(scoring.visual_association(w, ref), idx, self.num_patches)
            for w, ref, idx in zip(encoded.windows, self.reference_windows, self.windows)
        ]
        return scoring.combine_few_shot(patch, per_scale)

    @torch.no_grad()
    def forward(self, images: torch.Tensor, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Scores ``[B]`` and maps ``[B,S,S]`` (bilinear from the patch grid) for images in ``[0,1]``."""
        encoded = self.encode(images)
        scores, grid_map = self.zero_shot_maps(encoded, self.text_embeddings(name).to(encoded.image))
        if self.shots:
            few = self.few_shot_map(encoded)
            grid_map = (grid_map + few) / 2
            scores = (scores + few.amax(dim=1)) / 2
        maps = grid_map.reshape(-1, 1, *self.grid)
        maps = F.interpolate(maps, size=images.shape[-2:], mode="bilinear", align_corners=False)
        return scores, maps[:, 0]
