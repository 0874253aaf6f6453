"""PromptAD's training losses on L2-normalised visual features ``z [..., D]`` and text features.

Optional per-token ``weights`` (same shape as ``z`` without its last axis) multiply each token's loss before the
mean; FineGrainedAD uses them to stress the tokens of a prompt's own region.
"""
from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

MarginForm = Literal["token_summed", "euclidean", "squared"]


def _mean(values: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    return values.mean() if weights is None else (values * weights).mean()


def v2t_loss(z: torch.Tensor, normal: torch.Tensor, abnormal: torch.Tensor, scale: float | torch.Tensor,
             weights: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy of each token against ``[normal, abnormal_1..M]`` with the normal class as target.

    ``normal`` is ``[D]`` (the normalised normal anchor), ``abnormal`` ``[M, D]`` (normalised prompts); logits are
    ``scale · cos``.
    """
    logits = scale * torch.cat([(z @ normal).unsqueeze(-1), z @ abnormal.T], dim=-1)
    return _mean(-F.log_softmax(logits, dim=-1)[..., 0], weights)


def triplet_loss(z: torch.Tensor, normal: torch.Tensor, abnormal: torch.Tensor, margin: float, *,
                 squared: bool = True, weights: torch.Tensor | None = None) -> torch.Tensor:
    """``relu(d(z, normal) − d(z, abnormal) + margin)`` per token, averaged; ``d`` is the (squared) Euclidean distance."""
    near = (z - normal).pow(2).sum(dim=-1)
    far = (z - abnormal).pow(2).sum(dim=-1)
    if not squared:
        near, far = near.clamp_min(1e-12).sqrt(), far.clamp_min(1e-12).sqrt()
    return _mean(F.relu(near - far + margin), weights)


def token_summed_triplet_loss(z: torch.Tensor, normal: torch.Tensor, abnormal: torch.Tensor, margin: float) -> torch.Tensor:
    """The released code's margin loss on a token map ``z [K, N, D]``: squared differences summed over the
    *tokens*, then ``relu(· + margin)`` per channel and the mean (its ``TripletLoss`` sums over dim 1)."""
    near = (z - normal).pow(2).sum(dim=1)
    far = (z - abnormal).pow(2).sum(dim=1)
    return F.relu(near - far + margin).mean()


def margin_loss(z: torch.Tensor, normal: torch.Tensor, abnormal: torch.Tensor, margin: float, form: MarginForm, *,
                weights: torch.Tensor | None = None) -> torch.Tensor:
    """The explicit anomaly margin in one of its three forms: ``token_summed`` (the released code's: squared
    differences summed over the tokens of a token map, see :func:`token_summed_triplet_loss`; on features ``[K, D]``
    it is the squared distance per feature), ``euclidean`` (the paper's: ``relu(‖z−n̄‖ − ‖z−ā‖ + margin)`` per token)
    or ``squared`` (the same on squared distances). ``weights`` weigh each token's term in the per-token forms and
    scale the features in the token-summed one."""
    if form == "token_summed":
        scaled = z if weights is None else z * weights[..., None]
        return token_summed_triplet_loss(scaled, normal, abnormal, margin)
    return triplet_loss(z, normal, abnormal, margin, squared=form == "squared", weights=weights)


def mean_alignment_loss(handcrafted: torch.Tensor, learned: torch.Tensor) -> torch.Tensor:
    """``‖mean(norm(handcrafted)) − mean(norm(learned))‖²`` over raw ``[P, D]`` abnormal features."""
    gap = F.normalize(handcrafted, dim=-1).mean(dim=0) - F.normalize(learned, dim=-1).mean(dim=0)
    return gap.pow(2).sum()
