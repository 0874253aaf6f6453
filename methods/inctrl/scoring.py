"""InCTRL's residuals and scores as plain functions of features, and its training loss.

Shapes: ``B`` queries, ``N`` patches per image, ``k`` prompts per query, ``C`` token width, ``E`` joint embedding.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def patch_residual_map(queries: list[torch.Tensor], prompts: list[torch.Tensor]) -> torch.Tensor:
    """The multi-layer patch residual map ``[B, N]``.

    ``queries[l]`` is ``[B, N, C]`` (layer ``l``'s patch tokens of each query) and ``prompts[l]`` ``[B, M, C]`` (each
    query's own prompt patches of that layer, ``M = k·N``) or ``[M, C]`` (one prompt set for every query). A patch's
    residual in a layer is ``(1 − cos)/2`` to its nearest prompt patch; the map is the mean over the layers.
    """
    per_layer = []
    for query, prompt in zip(queries, prompts, strict=True):
        query, prompt = F.normalize(query, dim=-1), F.normalize(prompt, dim=-1)
        similarity = query @ prompt.transpose(-1, -2)
        per_layer.append((0.5 * (1.0 - similarity)).min(dim=-1).values)
    return torch.stack(per_layer).mean(dim=0)


def text_prior(image_tokens: torch.Tensor, text: torch.Tensor, scale: float) -> torch.Tensor:
    """``[B]`` anomaly probabilities ``softmax(scale · cos(token, [normal, anomalous]))[1]``; ``image_tokens`` is
    ``[B, E]``, ``text`` the unit ``[2, E]`` features of one category or ``[B, 2, E]`` of each query's."""
    unit = F.normalize(image_tokens, dim=-1)
    logits = scale * (text @ unit.unsqueeze(-1)).squeeze(-1) if text.ndim == 3 else scale * unit @ text.T
    return logits.softmax(dim=-1)[:, 1]


def final_score(holistic: torch.Tensor, residual_map: torch.Tensor) -> torch.Tensor:
    """``[B]``: the mean of the holistic head's score and the largest patch residual."""
    return 0.5 * (holistic + residual_map.max(dim=1).values)


def binary_focal_loss(scores: torch.Tensor, labels: torch.Tensor, alpha: float, gamma: float) -> torch.Tensor:
    """``mean(alpha · (1 − p_t)^gamma · BCE)`` with ``scores`` taken as *logits*, as the official loss
    (``BinaryFocalLoss`` with ``logits=True``) takes InCTRL's scores, which are already in ``[0, 1]``; ``p_t`` is
    ``exp(−BCE)``."""
    bce = F.binary_cross_entropy_with_logits(scores, labels.to(scores.dtype), reduction="none")
    return (alpha * (1.0 - torch.exp(-bce)).pow(gamma) * bce).mean()
