"""Hyper-parameters of FAPrompt, with the values of the official code (commit 7e9d9d2) as defaults.

Defaults are those the release scripts run (``train.sh``, ``test.sh``) and the constants ``FAPrompt.py``,
``train.py`` and ``test.py`` hard-code: ViT-L/14@336 at 518 px with V-V attention in the last 19 blocks and
the maps of the last block, one normal prompt of 5 learnable tokens and 10 abnormality prompts that add 2
learnable tokens each, deep text prompts of 4 tokens in text blocks 2-9, a prior network on 10 patch tokens
(hidden width 1/16 of its input), Adam at 1e-3 with betas (0.5, 0.999), 15 epochs of batch 8, Gaussian σ = 10.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from zsadbench.config import MethodConfig
from zsadbench.constraints import AT_LEAST_ONE, NON_NEGATIVE, Constraints, CrossCheck, CrossChecks, Interval
from zsadbench.methods.anomalyclip import PROMPT_LEARNING_CONSTRAINTS


@dataclass(frozen=True)
class FAPromptConfig(MethodConfig):
    """FAPrompt settings.

    Backbone (AnomalyCLIP's): ``backbone`` is the open_clip architecture (``ViT-L-14-336-quickgelu`` is OpenAI's
    ViT-L/14@336px). ``image_size`` is the input size in pixels (518 gives a 37×37 grid). ``layer`` is the
    1-based visual block whose V-V patches are scored (the official code reads the last one). ``vv_last`` counts
    the blocks, from the top, whose attention also runs the V-V path (19 is ``DPAM_layer=20``).

    Compound abnormality prompts: the normal prompt is ``normal_ctx`` learnable tokens before ``object.``. Each of
    the ``abnormal_prompts`` abnormality prompts is the same normal tokens followed by ``abnormal_ctx`` learnable
    tokens of its own before ``damaged object.``; the abnormality text feature is the mean of the prompts' raw
    (unnormalised) features. ``deep_tokens`` deep prompt tokens overwrite positions 1.. of the text sequence
    entering blocks 2..``deep_depth`` (``deep_depth`` 1 switches them off), shared by every prompt.
    ``init_std`` is the std of every learnable token. ``deep_prompt_cast="fp16"`` rounds the deep prompts to
    float16 where they enter the text tower, as the official ``.half()`` does; ``fp32`` keeps them exact.

    Data-dependent abnormality prior: ``prior_patches`` projected, L2-normalised patch tokens of the image are
    concatenated and mapped by ``Linear → ReLU → Linear`` to one text-width vector, added to every abnormal token
    of every abnormality prompt. ``prior_reduction`` divides the prior network's input width to give its hidden
    width. ``prior_selection="top"`` takes the patches the prior-free map scores most anomalous, in decreasing
    order (what the official code computes, then does not use); ``first`` takes the first patches of the grid,
    as the released code does (deviation 1 of the README).

    Scoring: ``temperature`` of the two-class softmax (fixed 0.07). ``sigma`` is the Gaussian applied to the
    anomaly map, the mean of the prior-free and the prior-conditioned anomaly maps at ``image_size`` (0 turns it
    off). Image score = ``score_global`` · the global probability (image feature against the conditioned text)
    + (1 − ``score_global``) · (``score_free_max`` · the prior-free map's maximum + (1 − ``score_free_max``) ·
    the conditioned map's maximum), maxima over the patch grid.

    Training: Adam (``lr``, ``betas``) for ``epochs`` epochs of ``batch_size`` images. The loss is
    [focal + Dice(anomaly, gt) + Dice(normal, 1 − gt)] of the prior-free map + ``conditioned_weight`` × the same
    of the conditioned map + the global cross-entropy + ``score_weight`` × a binary focal loss (gamma
    ``score_gamma``) that takes the image score as a logit + ``orthogonal_weight`` × Σ_{k<m} |cos| between the
    abnormality prompts' prior-free features + ``prior_weight`` × Σ over the normal images of the mean square
    of their prior. ``focal_gamma``/``focal_smooth`` and ``dice_smooth`` are the map losses' constants.
    """

    backbone: str = "ViT-L-14-336-quickgelu"
    image_size: int = 518
    layer: int = 24
    vv_last: int = 19
    normal_ctx: int = 5
    abnormal_ctx: int = 2
    abnormal_prompts: int = 10
    deep_tokens: int = 4
    deep_depth: int = 9
    deep_prompt_cast: Literal["fp32", "fp16"] = "fp32"
    init_std: float = 0.02
    prior_patches: int = 10
    prior_reduction: int = 16
    prior_selection: Literal["top", "first"] = "top"
    temperature: float = 0.07
    sigma: float = 10.0
    score_global: float = 0.5
    score_free_max: float = 2.0 / 3.0
    epochs: int = 15
    batch_size: int = 8
    lr: float = 1e-3
    betas: tuple[float, ...] = (0.5, 0.999)
    conditioned_weight: float = 0.5
    score_weight: float = 1.0
    score_gamma: float = 2.0
    orthogonal_weight: float = 0.1
    prior_weight: float = 1.0
    focal_gamma: float = 2.0
    focal_smooth: float = 1e-5
    dice_smooth: float = 1.0

    _parameter_constraints: ClassVar[Constraints] = {
        **{k: v for k, v in PROMPT_LEARNING_CONSTRAINTS.items() if k != "n_ctx"},
        "layer": Interval(1, None, closed="left", note="a 1-based block number"),
        "normal_ctx": AT_LEAST_ONE,
        "abnormal_ctx": AT_LEAST_ONE,
        "abnormal_prompts": AT_LEAST_ONE,
        "prior_patches": AT_LEAST_ONE,
        "prior_reduction": AT_LEAST_ONE,
        "score_global": Interval(0, 1, closed="both"),
        "score_free_max": Interval(0, 1, closed="both"),
        "conditioned_weight": NON_NEGATIVE,
        "score_weight": NON_NEGATIVE,
        "score_gamma": NON_NEGATIVE,
        "orthogonal_weight": NON_NEGATIVE,
        "prior_weight": NON_NEGATIVE,
    }
    _cross_checks: ClassVar[CrossChecks] = (
        CrossCheck(("deep_tokens", "normal_ctx"), lambda c: c.deep_tokens <= c.normal_ctx,
                   "deep_tokens={deep_tokens} overwrite the normal context slots, so they cannot exceed "
                   "normal_ctx={normal_ctx}"),
    )
