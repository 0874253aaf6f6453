"""Greedy k-center coreset selection on randomly projected features (PatchCore's Algorithm 1, as anomalib runs it).

The features are projected by a sparse random matrix (Li, Hastie and Church's very sparse projections: density
``1/√D``, entries ``±√(1/density)/√k``) to the Johnson-Lindenstrauss dimension of ``eps``; the first centre is a
random row and each next one is the row farthest from the centres chosen so far. Every random choice comes from
the ``torch.Generator`` passed in, so a seeded generator gives the same coreset on every run.
"""
from __future__ import annotations

import math

import torch


def projection_dim(n_samples: int, eps: float) -> int:
    """The Johnson-Lindenstrauss dimension ``⌊4 ln n / (ε²/2 − ε³/3)⌋`` (at least 1)."""
    return max(1, int(4 * math.log(n_samples) / (eps**2 / 2 - eps**3 / 3)))


def coreset_draws(n_samples: int, n_features: int, eps: float,
                  generator: torch.Generator) -> tuple[torch.Tensor, int]:
    """The random part of one selection: the projection matrix ``[k, n_features]`` and the first centre's row."""
    k = projection_dim(n_samples, eps)
    density = 1 / math.sqrt(n_features)
    kept = torch.rand(k, n_features, generator=generator) < density
    signs = torch.randint(0, 2, (k, n_features), generator=generator).float() * 2 - 1
    matrix = kept.float() * signs * (math.sqrt(1 / density) / math.sqrt(k))
    start = int(torch.randint(n_samples, (1,), generator=generator))
    return matrix, start


def greedy_coreset(features: torch.Tensor, size: int, eps: float, generator: torch.Generator) -> torch.Tensor:
    """Indices ``[size]`` of the rows of ``features`` ``[n, D]`` that greedy k-center selection picks, in
    selection order."""
    n = features.shape[0]
    if not 1 <= size <= n:
        raise ValueError(f"a coreset of {size} rows cannot be taken from {n} rows")
    matrix, start = coreset_draws(n, features.shape[1], eps, generator)
    projected = features @ matrix.to(features.device, features.dtype).T
    chosen = [start]
    nearest = (projected - projected[start]).norm(dim=1)
    for _ in range(size - 1):
        index = int(nearest.argmax())
        chosen.append(index)
        nearest = torch.minimum(nearest, (projected - projected[index]).norm(dim=1))
    return torch.tensor(chosen, dtype=torch.long)
