"""PatchCore as a plain ``nn.Module`` on a frozen CNN: locally aware patch features, a coreset memory bank,
nearest-neighbour patch scores and the re-weighted image score."""
from __future__ import annotations

from collections.abc import Iterable

import torch
import torch.nn as nn
import torch.nn.functional as F

from zsadbench.backbones.cnn import CnnBackbone

from .common import extract, nearest_neighbours, smooth
from .coreset import greedy_coreset


def local_features(feature_map: torch.Tensor, patch_size: int, dim: int) -> torch.Tensor:
    """``[B, C, H, W]`` → ``[B, dim, H, W]``: each position's ``patch_size²`` neighbourhood (zero-padded at the
    border), its ``C·p²`` values (channel-major) averaged down to ``dim`` by adaptive average pooling.

    ``dim`` 0 or ``C`` pools each channel's own neighbourhood, which is ``p × p`` average pooling.
    """
    batch, channels, height, width = feature_map.shape
    if dim in (0, channels):
        return F.avg_pool2d(feature_map, patch_size, stride=1, padding=patch_size // 2, count_include_pad=True)
    unfolded = F.unfold(feature_map, patch_size, padding=patch_size // 2)  # [B, C·p², H·W]
    rows = unfolded.transpose(1, 2).reshape(batch * height * width, 1, -1)
    pooled = F.adaptive_avg_pool1d(rows, dim)
    return pooled.reshape(batch, height, width, dim).permute(0, 3, 1, 2)


def patch_embedding(maps: list[torch.Tensor], patch_size: int, layer_dim: int, feature_dim: int) -> torch.Tensor:
    """The PatchCore features ``[B, D, h, w]`` of one backbone pass (``maps``, shallowest layer first), on the
    first layer's grid: :func:`local_features` per layer, deeper layers resized bilinearly, concatenated, then
    pooled to ``feature_dim`` along the channels (0: kept)."""
    grid = maps[0].shape[-2:]
    parts = []
    for feature_map in maps:
        local = local_features(feature_map, patch_size, layer_dim)
        if local.shape[-2:] != grid:
            local = F.interpolate(local, size=grid, mode="bilinear", align_corners=False)
        parts.append(local)
    embedding = torch.cat(parts, dim=1)
    if feature_dim:
        batch, channels, height, width = embedding.shape
        rows = embedding.permute(0, 2, 3, 1).reshape(batch * height * width, 1, channels)
        embedding = F.adaptive_avg_pool1d(rows, feature_dim).reshape(batch, height, width, -1).permute(0, 3, 1, 2)
    return embedding


def reweighted_scores(patch_scores: torch.Tensor, locations: torch.Tensor, embedding: torch.Tensor,
                      bank: torch.Tensor, num_neighbors: int) -> torch.Tensor:
    """Image scores ``[B]`` (the paper's Eq. 7): with ``m_test`` the patch of largest score ``s*`` and ``m*`` its
    nearest memory feature, ``s = (1 − exp|m_test − m*| / Σ_{m ∈ N_b(m*)} exp|m_test − m|) · s*``, ``N_b(m*)``
    the ``b = num_neighbors`` memory features nearest to ``m*`` (``m*`` itself first). ``b = 1`` gives ``s*``.

    ``patch_scores`` and ``locations`` are ``[B, N]`` (distance to, and row of, each patch's nearest memory
    feature), ``embedding`` ``[B, N, D]``, ``bank`` ``[M, D]``.
    """
    if num_neighbors == 1:
        return patch_scores.amax(dim=1)
    rows = torch.arange(patch_scores.shape[0], device=patch_scores.device)
    worst = patch_scores.argmax(dim=1)
    score = patch_scores[rows, worst]
    star = bank[locations[rows, worst]]
    _, neighbours = nearest_neighbours(star, bank, min(num_neighbors, bank.shape[0]))
    distances = (embedding[rows, worst][:, None, :] - bank[neighbours]).norm(dim=-1)
    return (1 - torch.softmax(distances, dim=1)[:, 0]) * score


class PatchCoreModel(nn.Module):
    """PatchCore on ``backbone`` (a :class:`~zsadbench.backbones.cnn.CnnBackbone` reading the chosen layers).

    :meth:`fit` fills ``memory_bank`` ``[M, D]`` from support images; :meth:`forward` scores queries against it.
    """

    def __init__(self, backbone: CnnBackbone, patch_size: int = 3, layer_dim: int = 1024, feature_dim: int = 1024,
                 num_neighbors: int = 9, upsample: str = "bilinear", blur_sigma: float = 4.0) -> None:
        super().__init__()
        self.backbone = backbone
        self.patch_size = patch_size
        self.layer_dim = layer_dim
        self.feature_dim = feature_dim
        self.num_neighbors = num_neighbors
        self.upsample = upsample
        self.blur_sigma = blur_sigma
        self.memory_bank: torch.Tensor | None = None

    @property
    def embedding_dim(self) -> int:
        """``D``, the length of one patch feature."""
        if self.feature_dim:
            return self.feature_dim
        return sum(self.layer_dim or c for c in self.backbone.channels)

    def embed(self, images01: torch.Tensor, precision: str = "fp32") -> torch.Tensor:
        """Patch features ``[B, D, h, w]`` of ``[B,3,S,S]`` images in ``[0,1]``."""
        maps = extract(self.backbone, images01, precision)
        return patch_embedding(maps, self.patch_size, self.layer_dim, self.feature_dim)

    @torch.no_grad()
    def fit(self, batches: Iterable[torch.Tensor], coreset_ratio: float, projection_eps: float,
            generator: torch.Generator, precision: str = "fp32") -> None:
        """Fill the memory bank with the coreset of the patch features of every support image of ``batches``."""
        rows = [self.embed(images, precision).permute(0, 2, 3, 1).flatten(0, 2) for images in batches]
        bank = torch.cat(rows)
        if coreset_ratio < 1:
            size = max(1, int(bank.shape[0] * coreset_ratio))
            bank = bank[greedy_coreset(bank, size, projection_eps, generator).to(bank.device)]
        self.memory_bank = bank

    def patch_scores(self, embedding: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Distance ``[B, h, w]`` of each patch feature to its nearest memory feature, and that feature's row."""
        if self.memory_bank is None:
            raise ValueError("PatchCore has no memory bank; call fit() first")
        batch, dim, height, width = embedding.shape
        distances, rows = nearest_neighbours(embedding.permute(0, 2, 3, 1).reshape(-1, dim), self.memory_bank, 1)
        return distances.reshape(batch, height, width), rows.reshape(batch, height, width)

    def anomaly_maps(self, patch_scores: torch.Tensor, size: int) -> torch.Tensor:
        """``[B, h, w]`` patch scores resized to ``[B, size, size]`` (``upsample``) and smoothed."""
        options = {"align_corners": False} if self.upsample == "bilinear" else {}
        maps = F.interpolate(patch_scores[:, None], size=(size, size), mode=self.upsample, **options)[:, 0]
        return smooth(maps, self.blur_sigma)

    @torch.no_grad()
    def forward(self, images01: torch.Tensor, precision: str = "fp32") -> tuple[torch.Tensor, torch.Tensor]:
        """Image scores ``[B]`` and anomaly maps ``[B, S, S]`` of ``[B,3,S,S]`` images in ``[0,1]``."""
        embedding = self.embed(images01, precision)
        scores, rows = self.patch_scores(embedding)
        flat = embedding.permute(0, 2, 3, 1).flatten(1, 2)
        image = reweighted_scores(scores.flatten(1), rows.flatten(1), flat, self.memory_bank, self.num_neighbors)
        return image, self.anomaly_maps(scores, images01.shape[-1])
