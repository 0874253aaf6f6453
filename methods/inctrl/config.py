"""Hyper-parameters of InCTRL, with the values of the public code (``mala-lab/InCTRL`` @ ``cc535d0``) as defaults.

The code's fixed choices: ViT-B/16+ at 240 px with LAION-400M epoch-32 weights, patch tokens of blocks 7, 9 and
11, an adapter with reduction 4, score heads of widths 128 and 64, the text prior at scale 100, AdamW (1e-3,
betas 0.9/0.999, torch's weight decay 0.01) for 10 epochs of 100 balanced batches of 16, and the binary focal
loss (alpha 1, gamma 2) on the final and image-level scores.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from zsadbench.config import MethodConfig
from zsadbench.constraints import (
    AT_LEAST_ONE,
    NON_NEGATIVE,
    POSITIVE,
    Constraints,
    Interval,
    Items,
)


@dataclass(frozen=True)
class InCTRLConfig(MethodConfig):
    """InCTRL settings.

    Backbone: ``backbone`` (open_clip architecture) at ``image_size`` px; ``layers`` are the 1-based blocks whose
    raw patch tokens (no final norm, no projection) give the patch-level residuals; the image token is the final
    CLS token after ``ln_post`` and the projection.

    Residuals and scores: each query patch's residual is half the cosine distance to its nearest prompt patch of
    the same block, averaged over ``layers`` (the patch residual map). The image-level residual is the mean of the
    prompts' adapted image tokens minus the query's (adapter: two bias-free linear layers with ReLU, hidden width
    ``embed_dim // adapter_reduction``), scored by the image head. The text prior is the anomaly probability of
    ``softmax(text_scale · cos(image token, [normal, anomaly] prompt-ensemble features)))``. The holistic head
    scores the residual map plus both scalars; the final score is the mean of its output and the map's maximum.
    Score heads: linear layers of widths ``head_hidden`` (each followed by ReLU and batch norm), then one output
    and a sigmoid.

    Training (on the auxiliary set): one set of heads per entry of ``train_shots``, each trained with that many
    normal prompts per query drawn from the query's category (the released checkpoints are one model per k); a
    support fit with k images uses the heads trained with k. Each epoch is ``steps_per_epoch`` batches of
    ``batch_size`` queries, ``batch_size // 2`` normal and the rest anomalous; AdamW (``lr``, ``betas``,
    ``weight_decay``) on the adapter and heads; loss: the binary focal loss (``focal_alpha``, ``focal_gamma``) of
    the final score plus that of the image-level score, each taken as a logit, as the official code does. The last
    epoch is kept.
    """

    backbone: str = "ViT-B-16-plus-240"
    image_size: int = 240
    layers: tuple[int, ...] = (7, 9, 11)
    adapter_reduction: int = 4
    head_hidden: tuple[int, ...] = (128, 64)
    text_scale: float = 100.0
    train_shots: tuple[int, ...] = (1, 2, 4)
    epochs: int = 10
    steps_per_epoch: int = 100
    batch_size: int = 16
    lr: float = 1e-3
    betas: tuple[float, ...] = (0.9, 0.999)
    weight_decay: float = 0.01
    focal_alpha: float = 1.0
    focal_gamma: float = 2.0

    _parameter_constraints: ClassVar[Constraints] = {
        "image_size": POSITIVE,
        "layers": Items(AT_LEAST_ONE, distinct=True, note="1-based block numbers"),
        "adapter_reduction": AT_LEAST_ONE,
        "head_hidden": Items(AT_LEAST_ONE, note="widths of the score heads' hidden layers"),
        "text_scale": POSITIVE,
        "train_shots": Items(AT_LEAST_ONE, distinct=True, note="prompts per query, one set of heads each"),
        "epochs": AT_LEAST_ONE,
        "steps_per_epoch": AT_LEAST_ONE,
        "batch_size": Interval(2, None, closed="left", note="queries per batch: half normal, the rest anomalous"),
        "lr": POSITIVE,
        "betas": Items(Interval(0, 1, closed="left"), length=2),
        "weight_decay": NON_NEGATIVE,
        "focal_alpha": POSITIVE,
        "focal_gamma": NON_NEGATIVE,
    }
