"""Hyper-parameters of AnomalyCLIP in its fixed official configuration (reference code at commit 45ed4dd).

Defaults are the values of the release scripts ``train.sh``/``test.sh`` after the 2025-04-13 fixes: one
layer-24 map, local-loss weight 4, 12 context tokens, deep text prompts of 4 tokens in text blocks 2-9,
V-V attention in the last 19 visual blocks, Adam 1e-3 with betas (0.5, 0.999), 15 epochs, batch 8, 518 px.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from zsadbench.config import MethodConfig
from zsadbench.constraints import AT_LEAST_ONE, NON_NEGATIVE, POSITIVE, Constraints, CrossCheck, CrossChecks, Interval, Items

#: The allowed values of the fields every AnomalyCLIP-style config shares (tower, prompts, scoring, Adam, losses).
PROMPT_LEARNING_CONSTRAINTS: Constraints = {
    "image_size": POSITIVE,
    "vv_last": NON_NEGATIVE,
    "n_ctx": POSITIVE,
    "deep_tokens": NON_NEGATIVE,
    "deep_depth": POSITIVE,
    "init_std": NON_NEGATIVE,
    "temperature": POSITIVE,
    "sigma": NON_NEGATIVE,
    "epochs": POSITIVE,
    "batch_size": POSITIVE,
    "lr": POSITIVE,
    "betas": Items(Interval(0, 1, closed="left"), length=2),
    "focal_gamma": NON_NEGATIVE,
    "focal_smooth": Interval(0, 0.5, closed="left"),
    "dice_smooth": NON_NEGATIVE,
}
#: Deep prompts overwrite context slots, so there cannot be more of them than context tokens.
DEEP_TOKENS_FIT_CONTEXT = CrossCheck(
    ("deep_tokens", "n_ctx"), lambda c: c.deep_tokens <= c.n_ctx,
    "deep_tokens={deep_tokens} overwrite context slots, so they cannot exceed n_ctx={n_ctx}",
)


@dataclass(frozen=True)
class AnomalyCLIPConfig(MethodConfig):
    """AnomalyCLIP settings.

    Backbone: ``backbone`` (open_clip architecture; ``ViT-L-14-336-quickgelu`` is OpenAI's ViT-L/14@336px),
    ``image_size`` (518 gives a 37×37 grid), ``layers`` (1-based visual blocks whose V-V patches make maps;
    official: only 24), ``vv_last`` (blocks, counted from the top, whose attention runs the V-V path; 19 is
    ``DPAM_layer=20``).

    Prompts: ``n_ctx`` learnable context tokens before ``object`` / ``damaged object``; ``deep_tokens``
    tokens overwrite positions 1.. of the text sequence entering blocks 2..``deep_depth`` (``deep_depth`` 1
    switches deep prompts off); ``init_std`` of every learnable tensor. ``deep_prompt_cast="fp16"`` rounds the
    deep prompts to float16 where they enter the text tower, as the official code's ``.half()`` cast does; the
    default ``fp32`` keeps them exact (deviation 4 of the README).

    Scoring: ``temperature`` of the two-class softmax (fixed 0.07), ``sigma`` of the Gaussian on the final
    map at ``image_size`` (0 turns it off).

    Training: Adam (``lr``, ``betas``) for ``epochs`` epochs of ``batch_size`` images; loss
    ``local_weight · Σ_layers [focal + Dice(anomaly, gt) + Dice(normal, 1 − gt)] + CE(global)`` with the focal
    constants ``focal_gamma``/``focal_smooth`` and ``dice_smooth``.
    """

    backbone: str = "ViT-L-14-336-quickgelu"
    image_size: int = 518
    layers: tuple[int, ...] = (24,)
    vv_last: int = 19
    n_ctx: int = 12
    deep_tokens: int = 4
    deep_depth: int = 9
    deep_prompt_cast: Literal["fp32", "fp16"] = "fp32"
    init_std: float = 0.02
    temperature: float = 0.07
    sigma: float = 4.0
    epochs: int = 15
    batch_size: int = 8
    lr: float = 1e-3
    betas: tuple[float, ...] = (0.5, 0.999)
    local_weight: float = 4.0
    focal_gamma: float = 2.0
    focal_smooth: float = 1e-5
    dice_smooth: float = 1.0

    _parameter_constraints: ClassVar[Constraints] = {
        **PROMPT_LEARNING_CONSTRAINTS,
        "layers": Items(AT_LEAST_ONE, distinct=True, note="1-based block numbers"),
    }
    _cross_checks: ClassVar[CrossChecks] = (DEEP_TOKENS_FIT_CONTEXT,)
