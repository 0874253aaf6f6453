"""PaDiM as a plain ``nn.Module`` on a frozen CNN: one Gaussian per feature-map position, Mahalanobis scores.

The inverse covariance is never formed. With ``B`` the centred support features of a position divided by
``√(N−1)`` and ``B = U diag(s) Vᵀ`` its thin SVD, ``Σ = ε I + BᵀB`` has the inverse
``I/ε + V diag(1/(ε + s²) − 1/ε) Vᵀ``, so ``δᵀΣ⁻¹δ = |δ|²/ε + Σ_i w_i (v_iᵀδ)²``: a position stores its mean,
``min(N, D)`` directions and their weights (about 70 MB for 4 shots of WideResNet-50-2 at 224 px, instead of
3.8 GB of float32 inverses). The fit and the distances run in float64, as the reference implementation does
with NumPy.
"""
from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from zsadbench.backbones.cnn import CnnBackbone
from zsadbench.errors import MethodError
from zsadbench.methods.patchcore import extract, smooth


def channel_indices(total: int, count: int, seed: int) -> torch.Tensor:
    """The ``count`` channels of ``total`` PaDiM keeps: ``random.Random(seed).sample(range(total), count)``, the
    reference implementation's draw (``random.seed(1024)`` then ``random.sample``)."""
    return torch.tensor(random.Random(seed).sample(range(total), count), dtype=torch.long)


def stacked_embedding(maps: list[torch.Tensor], channels: torch.Tensor) -> torch.Tensor:
    """``[B, len(channels), h, w]``: the maps resized (nearest) to the first one's grid, concatenated in order,
    then the chosen channels. Each map's chosen channels are taken before resizing (a nearest resize copies
    values, so this is the same tensor), which leaves most of the deeper maps unresized."""
    grid = maps[0].shape[-2:]
    channels = channels.to(maps[0].device)
    out = maps[0].new_empty((maps[0].shape[0], channels.numel(), *grid))
    start = 0
    for m in maps:
        chosen = ((channels >= start) & (channels < start + m.shape[1])).nonzero()[:, 0]
        part = m.index_select(1, channels[chosen] - start)
        out[:, chosen] = part if m.shape[-2:] == grid else F.interpolate(part, size=grid, mode="nearest")
        start += m.shape[1]
    return out


@dataclass
class Gaussians:
    """One Gaussian per position in the factored form of the module docstring: ``mean`` ``[P, D]``, ``basis``
    ``[P, r, D]`` (orthonormal rows ``v_i``), ``weights`` ``[P, r]`` and ``eps``; float64."""

    mean: torch.Tensor
    basis: torch.Tensor
    weights: torch.Tensor
    eps: float

    @classmethod
    def fit(cls, embeddings: torch.Tensor, eps: float) -> "Gaussians":
        """Fit ``[N, D, P]`` support features: mean, unbiased covariance (zero for ``N = 1``) plus ``eps · I``."""
        x = embeddings.double()
        count = x.shape[0]
        mean = x.mean(dim=0)
        scale = (count - 1) ** -0.5 if count > 1 else 0.0
        centred = ((x - mean) * scale).permute(2, 0, 1)  # [P, N, D]
        _, singular, basis = torch.linalg.svd(centred, full_matrices=False)
        weights = 1.0 / (eps + singular**2) - 1.0 / eps
        return cls(mean.T.contiguous(), basis, weights, float(eps))

    def distances(self, embedding: torch.Tensor) -> torch.Tensor:
        """Mahalanobis distances ``[B, P]`` of ``[B, D, P]`` features, in float64."""
        delta = embedding.double().permute(2, 0, 1) - self.mean[:, None, :]  # [P, B, D]
        along = delta @ self.basis.transpose(1, 2)  # [P, B, r]
        squared = delta.pow(2).sum(dim=-1) / self.eps + (along.pow(2) * self.weights[:, None, :]).sum(dim=-1)
        return squared.clamp_min(0).sqrt().T

    def to(self, device: torch.device | str) -> "Gaussians":
        return Gaussians(self.mean.to(device), self.basis.to(device), self.weights.to(device), self.eps)


class PaDiMModel(nn.Module):
    """PaDiM on ``backbone`` (a :class:`~zsadbench.backbones.cnn.CnnBackbone` reading the chosen layers)
    keeping the feature channels ``channels``; :meth:`fit` sets ``gaussians``."""

    def __init__(self, backbone: CnnBackbone, channels: torch.Tensor, covariance_eps: float = 0.01,
                 blur_sigma: float = 4.0) -> None:
        super().__init__()
        self.backbone = backbone
        self.channels = channels
        self.covariance_eps = covariance_eps
        self.blur_sigma = blur_sigma
        self.gaussians: Gaussians | None = None

    def embed(self, images01: torch.Tensor, precision: str = "fp32") -> torch.Tensor:
        """Features ``[B, D, h, w]`` of ``[B,3,S,S]`` images in ``[0,1]``."""
        return stacked_embedding(extract(self.backbone, images01, precision), self.channels)

    @torch.no_grad()
    def fit(self, batches: Iterable[torch.Tensor], precision: str = "fp32") -> None:
        """Fit the per-position Gaussians to every support image of ``batches``."""
        embeddings = torch.cat([self.embed(images, precision).flatten(2) for images in batches])
        self.gaussians = Gaussians.fit(embeddings, self.covariance_eps)

    def distance_maps(self, embedding: torch.Tensor) -> torch.Tensor:
        """Mahalanobis distance ``[B, h, w]`` of each position's feature (float32)."""
        if self.gaussians is None:
            raise ValueError("PaDiM has no Gaussians; call fit() first")
        batch, _, height, width = embedding.shape
        positions = self.gaussians.mean.shape[0]
        if positions != height * width:
            raise MethodError(f"PaDiM was fitted on a {positions}-position feature grid but these images give "
                              f"{height}x{width}; set image_size to the size it was fitted at")
        return self.gaussians.distances(embedding.flatten(2)).float().reshape(batch, height, width)

    def anomaly_maps(self, distances: torch.Tensor, size: int) -> torch.Tensor:
        """``[B, h, w]`` distances resized bilinearly to ``[B, size, size]`` and smoothed."""
        maps = F.interpolate(distances[:, None], size=(size, size), mode="bilinear", align_corners=False)[:, 0]
        return smooth(maps, self.blur_sigma)

    @torch.no_grad()
    def forward(self, images01: torch.Tensor, precision: str = "fp32") -> tuple[torch.Tensor, torch.Tensor]:
        """Image scores ``[B]`` (each map's maximum) and anomaly maps ``[B, S, S]``."""
        maps = self.anomaly_maps(self.distance_maps(self.embed(images01, precision)), images01.shape[-1])
        return maps.flatten(1).amax(dim=1), maps
