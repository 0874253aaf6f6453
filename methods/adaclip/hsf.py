"""Hybrid semantic fusion (HSF): a region-level feature of the most anomalous patches, for the image score.

As the official ``HybridSemanticFusion`` computes it (the code's variant, which its comment says differs from the
paper's description): the layers' patch logits are averaged and turned into anomaly probabilities; the
``tokens_per_cluster · k`` most anomalous patches are taken from every layer; their features, the layers side by
side, are clustered by scikit-learn's ``KMeans`` (k-means++, one initialisation, Lloyd, 300 iterations, tol 1e-4);
each cluster's centre is the mean of its patches over the layers, and the fused feature is the mean of the
centres, L2-normalised. The clustering is computed without gradients; the centres carry them.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F


def top_anomalous(logits: Sequence[torch.Tensor], count: int) -> torch.Tensor:
    """Indices ``[B, count']`` of the patches with the highest anomaly probability of the layer-averaged
    ``[B, N, 2]`` logits (``count' = min(count, N)``), most anomalous first."""
    probs = torch.stack(list(logits)).mean(dim=0).softmax(dim=-1)[..., 1]
    return probs.topk(min(count, probs.shape[1]), dim=1).indices


def cluster_labels(features: np.ndarray, clusters: int, seed: int) -> np.ndarray:
    """k-means labels ``[n]`` of the rows of ``features`` (``clusters`` capped at the number of rows)."""
    from sklearn.cluster import KMeans

    kmeans = KMeans(n_clusters=min(clusters, features.shape[0]), n_init="auto",
                    random_state=np.random.RandomState(seed))
    return kmeans.fit_predict(features)


def fuse(patches: Sequence[torch.Tensor], logits: Sequence[torch.Tensor], k_clusters: int, tokens_per_cluster: int,
         seed: int) -> torch.Tensor:
    """``[B, D]``: the L2-normalised mean of the cluster centres of each image's most anomalous patches.

    ``patches`` are the layers' normalised ``[B, N, D]`` patch features, ``logits`` their ``[B, N, 2]`` logits.
    Each image is clustered on its own with k-means++ seeded with ``seed``. A cluster k-means leaves empty
    (only when fewer distinct patches than clusters are selected) is left out of the mean.
    """
    index = top_anomalous(logits, k_clusters * tokens_per_cluster)
    chosen = [p.gather(1, index.unsqueeze(-1).expand(-1, -1, p.shape[-1])) for p in patches]  # L × [B, k, D]
    side_by_side = torch.cat(chosen, dim=-1).detach().float().cpu().numpy()
    per_patch = torch.stack(chosen).mean(dim=0)  # the mean over the layers, [B, k, D]
    fused = []
    for b in range(per_patch.shape[0]):
        labels = torch.from_numpy(cluster_labels(side_by_side[b], k_clusters, seed)).long().to(per_patch.device)
        members = F.one_hot(labels).T.to(per_patch.dtype)  # [C, k]
        present = members.sum(dim=1) > 0
        centres = members[present] @ per_patch[b] / members[present].sum(dim=1, keepdim=True)
        fused.append(centres.mean(dim=0))
    return F.normalize(torch.stack(fused), dim=-1)
