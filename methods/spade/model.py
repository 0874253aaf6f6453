"""SPADE as a plain ``nn.Module`` on a frozen CNN: image kNN on pooled features, then dense correspondences of
each query position with all positions of the retrieved support images, layer by layer."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from zsadbench.backbones.cnn import CnnBackbone
from zsadbench.methods.patchcore import extract, nearest_neighbours, smooth


@dataclass
class Gallery:
    """The support images' features: ``pooled`` ``[N, C]`` (global average of the pooled layer) and ``maps``,
    one ``[N, C_l, h_l, w_l]`` per pixel layer."""

    pooled: torch.Tensor
    maps: list[torch.Tensor]

    def to(self, device: torch.device | str) -> "Gallery":
        return Gallery(self.pooled.to(device), [m.to(device) for m in self.maps])


def pixel_distances(query: torch.Tensor, gallery: torch.Tensor, k: int) -> torch.Tensor:
    """``[h, w]``: the mean distance of each position's feature of ``query`` ``[C, h, w]`` to its ``k`` nearest
    features among every position of the ``gallery`` maps ``[K, C, h', w']``."""
    channels, height, width = query.shape
    bank = gallery.permute(0, 2, 3, 1).reshape(-1, channels)
    distances, _ = nearest_neighbours(query.permute(1, 2, 0).reshape(-1, channels), bank, min(k, bank.shape[0]))
    return distances.mean(dim=1).reshape(height, width)


class SPADEModel(nn.Module):
    """SPADE on ``backbone``, a :class:`~zsadbench.backbones.cnn.CnnBackbone` reading the pixel layers followed by
    the pooled layer (its last map); :meth:`fit` sets ``gallery``."""

    def __init__(self, backbone: CnnBackbone, top_k: int = 50, pixel_k: int = 1, blur_sigma: float = 4.0) -> None:
        super().__init__()
        self.backbone = backbone
        self.top_k = top_k
        self.pixel_k = pixel_k
        self.blur_sigma = blur_sigma
        self.gallery: Gallery | None = None

    def encode(self, images01: torch.Tensor, precision: str = "fp32") -> Gallery:
        """Pooled features and pixel-layer maps of ``[B,3,S,S]`` images in ``[0,1]``."""
        maps = extract(self.backbone, images01, precision)
        return Gallery(maps[-1].mean(dim=(2, 3)), maps[:-1])

    @torch.no_grad()
    def fit(self, batches: Iterable[torch.Tensor], precision: str = "fp32") -> None:
        """Keep the features of every support image of ``batches``."""
        parts = [self.encode(images, precision) for images in batches]
        self.gallery = Gallery(torch.cat([p.pooled for p in parts]),
                               [torch.cat(layer) for layer in zip(*(p.maps for p in parts))])

    def retrieve(self, pooled: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Image scores ``[B]`` (mean distance to the K nearest support images, K = ``min(top_k, N)``) and those
        images' rows ``[B, K]``."""
        if self.gallery is None:
            raise ValueError("SPADE has no support features; call fit() first")
        support = self.gallery.pooled
        distances, rows = nearest_neighbours(pooled, support, min(self.top_k, support.shape[0]))
        return distances.mean(dim=1), rows

    def layer_maps(self, encoded: Gallery, rows: torch.Tensor) -> list[torch.Tensor]:
        """Per pixel layer, the ``[B, h_l, w_l]`` distances of each query position to its retrieved gallery."""
        return [
            torch.stack([pixel_distances(query[b], support[rows[b]], self.pixel_k) for b in range(len(query))])
            for query, support in zip(encoded.maps, self.gallery.maps)
        ]

    def anomaly_maps(self, layer_maps: list[torch.Tensor], size: int) -> torch.Tensor:
        """The per-layer maps resized bilinearly to ``[B, size, size]``, averaged and smoothed."""
        resized = [F.interpolate(m[:, None], size=(size, size), mode="bilinear", align_corners=False)[:, 0]
                   for m in layer_maps]
        return smooth(torch.stack(resized).mean(dim=0), self.blur_sigma)

    @torch.no_grad()
    def forward(self, images01: torch.Tensor, precision: str = "fp32") -> tuple[torch.Tensor, torch.Tensor]:
        """Image scores ``[B]`` and anomaly maps ``[B, S, S]`` of ``[B,3,S,S]`` images in ``[0,1]``."""
        encoded = self.encode(images01, precision)
        scores, rows = self.retrieve(encoded.pooled)
        return scores, self.anomaly_maps(self.layer_maps(encoded, rows), images01.shape[-1])
