"""Language-guided progressive region aggregation: which tokens of the support shots belong to which prompt level.

Built on :func:`zsadbench.clustering.dpc_knn` with the paper's four changes:

1. *higher resolution*: the shots are encoded tile by tile at ``cluster_size`` px (:func:`tiled_tokens`);
2. *reference dimension*: tokens are clustered on their cosine similarities to prompt features, not on the
   visual features themselves;
3. *two stages*: foreground/background on the similarities to those two prompts, then the components on the
   similarities to the component prompts, among foreground tokens only;
4. *initial centres*: each cluster's centre is the token most similar to its prompt, so cluster ``i`` *is*
   the region of prompt ``i``.

:func:`shipped_regions` follows the released code instead (see ``as_shipped`` in the config). Both return boolean
masks ``[L, K, T]`` on the high-resolution grid for the levels of :func:`~.mllp.level_names`;
:func:`region_weights` turns them into loss weights on the training grid.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from zsadbench.clustering import dpc_knn


def tiled_tokens(encode, images: list[torch.Tensor], size: int, tile: int) -> torch.Tensor:
    """Patch features of each image resized to ``size`` px and cut into ``(size/tile)²`` tiles of ``tile`` px.

    ``encode(tiles [T, 3, tile, tile]) -> [T, n·n, D]`` gives each tile's token grid; the grids are stitched back
    into one ``[K, (n·size/tile)², D]`` row-major grid per image.
    """
    per_side = size // tile
    out = []
    for image in images:
        big = F.interpolate(image[None].float(), size=(size, size), mode="bicubic", align_corners=False, antialias=True)
        big = big.clamp(0, 1)[0]
        tiles = big.unfold(1, tile, tile).unfold(2, tile, tile)  # [3, r, c, tile, tile]
        tiles = tiles.permute(1, 2, 0, 3, 4).reshape(per_side * per_side, 3, tile, tile)
        tokens = encode(tiles)  # [r·c, n·n, D]
        n = math.isqrt(tokens.shape[1])
        grid = tokens.reshape(per_side, per_side, n, n, -1).permute(0, 2, 1, 3, 4)
        out.append(grid.reshape(per_side * n * per_side * n, -1))
    return torch.stack(out)


def _best_distinct(similarity: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    """For each column of ``similarity [K, T, C]`` the most similar allowed token, distinct within an item: ``[K, C]``."""
    sim = similarity.masked_fill(~allowed[..., None], -math.inf).clone()
    picks = []
    for c in range(sim.shape[2]):
        best = sim[:, :, c].argmax(dim=1)
        picks.append(best)
        sim[torch.arange(sim.shape[0]), best, :] = -math.inf
    return torch.stack(picks, dim=1)


def paper_regions(tokens: torch.Tensor, foreground: torch.Tensor, background: torch.Tensor,
                  components: torch.Tensor, k1: int, k2: int) -> torch.Tensor:
    """Masks ``[3 + E, K, T]`` from tokens ``[K, T, D]`` and normalised prompt features (``[D]``, ``[D]``, ``[E, D]``)."""
    count, length, _ = tokens.shape
    everything = torch.ones(count, length, dtype=torch.bool, device=tokens.device)
    stage1 = tokens @ torch.stack([foreground, background]).T  # [K, T, 2]
    centres = _best_distinct(stage1, everything)
    split = dpc_knn(stage1, 2, k=min(k1, length - 1), centres=centres, scale=1 / math.sqrt(2)).labels
    fg = split == 0
    masks = [everything, fg, ~fg]
    n_comp = components.shape[0]
    if n_comp == 1:
        return torch.stack(masks + [fg])
    stage2 = tokens @ components.T  # [K, T, E]
    labels = torch.full((count, length), -1, dtype=torch.long, device=tokens.device)
    for b in range(count):  # items differ in their number of foreground tokens
        own = fg[b]
        if int(own.sum()) <= max(n_comp, k2):
            labels[b, own] = stage2[b, own].argmax(dim=1)  # too few tokens to cluster: nearest prompt
            continue
        centre = _best_distinct(stage2[b : b + 1], own[None])
        out = dpc_knn(stage2[b : b + 1], n_comp, k=k2, exclude=~own[None], centres=centre, scale=1 / math.sqrt(n_comp))
        labels[b, own] = out.labels[0, own]
    return torch.stack(masks + [labels == i for i in range(n_comp)])


def effective_k(k: int, clusters: int) -> int:
    """The released code's neighbour count: ``min(3, max(clusters // 2, 1))`` when ``k > clusters``, else ``k``."""
    return min(3, max(clusters // 2, 1)) if k > clusters else k


def shipped_foreground(tokens: torch.Tensor, stage1: torch.Tensor, background: torch.Tensor) -> torch.Tensor:
    """The released code's foreground ``[K, T]`` from each shot's stage-1 labels ``[K, T]`` (clusters 0 and 1).

    Every shot's tokens are averaged over shot 0's two clusters; a shot whose cluster-1 mean is closer to the
    background prompt takes shot 0's split with cluster 0 as its foreground, any other keeps its own labels with
    cluster 1 as its foreground. An empty cluster (a NaN mean) never makes a shot swap.
    """
    first = stage1[0]
    means = torch.stack([tokens[:, first == c].mean(dim=1) for c in range(2)], dim=1)  # [K, 2, D]
    closeness = means @ background
    swap = closeness[:, 0] < closeness[:, 1]
    return torch.where(swap[:, None], (first == 0).expand_as(stage1), stage1 == 1)


def shipped_labels(sim: torch.Tensor, tokens: torch.Tensor, background: torch.Tensor, k1: int, k2: int,
                   generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """The released code's two clustering stages on the similarities ``sim [K, T, E+1]`` of the tokens ``[K, T, D]``
    to the entities and the background: ``(foreground [K, T], labels [K, T])``, ``labels`` the stage-2 cluster of
    each token as the released ``idx_token`` holds it (a token outside shot 0's foreground takes the cluster of its
    shot's token 0, a token outside its own shot's foreground cluster 0), with TCFormer's arithmetic and noise."""
    count, length, n_clusters = sim.shape
    tcformer = dict(include_self=True, assign="nearest", scale=n_clusters**-0.5, density_noise=1e-6,
                    generator=generator, density="tcformer")
    stage1 = dpc_knn(sim, 2, k=effective_k(k1, 2), **tcformer).labels
    fg = shipped_foreground(tokens, stage1, background)
    if int(fg.sum(dim=1).min()) < max(n_clusters, effective_k(k2, n_clusters)):
        return fg, torch.zeros(count, length, dtype=torch.long, device=sim.device)
    labels = dpc_knn(sim, n_clusters, k=effective_k(k2, n_clusters), exclude=~fg, **tcformer).labels
    return fg, torch.where(fg[0][None, :], labels, labels[:, :1])


def shipped_regions(tokens: torch.Tensor, background: torch.Tensor, components: torch.Tensor,
                    k1: int, k2: int, generator: torch.Generator) -> torch.Tensor:
    """The released code's aggregation: masks ``[3 + E, K, T]`` (image, foreground, background, components) from
    :func:`shipped_labels`; each entity (and the background) takes the cluster whose mean token of shot 0 is the
    most similar."""
    count, length, _ = tokens.shape
    anchors = torch.cat([components, background[None]])  # entities, then the background
    fg, labels = shipped_labels(tokens @ anchors.T, tokens, background, k1, k2, generator)
    cluster_means = torch.stack([
        F.normalize(tokens[0][labels[0] == c].mean(dim=0), dim=-1) if bool((labels[0] == c).any())
        else torch.zeros_like(background) for c in range(anchors.shape[0])
    ])
    matched = (anchors @ cluster_means.T).argmax(dim=1)
    everything = torch.ones(count, length, dtype=torch.bool, device=tokens.device)
    comps = [labels == int(matched[i]) for i in range(components.shape[0])]
    return torch.stack([everything, fg, labels == int(matched[-1])] + comps)


def region_weights(masks: torch.Tensor, grid: tuple[int, int], gamma: float) -> torch.Tensor:
    """Loss weights ``1 + gamma · mask`` average-pooled from the high-resolution grid to ``grid``: ``[L, K, h·w]``."""
    levels, count, length = masks.shape
    side = math.isqrt(length)
    weights = 1.0 + gamma * masks.float().reshape(levels * count, 1, side, side)
    pooled = F.adaptive_avg_pool2d(weights, grid)
    return pooled.reshape(levels, count, grid[0] * grid[1])
