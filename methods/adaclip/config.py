"""Hyper-parameters of AdaCLIP, with the values of the official code (commit e27ee32) as defaults.

Defaults are those of ``train.py``'s argument parser, which the release script ``train.sh`` runs unchanged:
ViT-L/14@336 at 518 px with the maps of blocks 6, 12, 18 and 24, hybrid (static + dynamic) prompts in both
towers of length 5 and depth 4, hybrid semantic fusion with 20 clusters, AdamW at lr 0.01 with betas
(0.5, 0.999), 5 epochs of batch 1. The constants the code hard-codes (the logit scale 100, the HSF mixing
weight 0.2 and its 5 tokens per cluster, the static prompts' initial std, the loss constants) are fields too.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from zsadbench.config import MethodConfig
from zsadbench.constraints import AT_LEAST_ONE, NON_NEGATIVE, POSITIVE, Constraints, Interval, Items


@dataclass(frozen=True)
class AdaCLIPConfig(MethodConfig):
    """AdaCLIP settings.

    Backbone: ``backbone`` (open_clip architecture; ``ViT-L-14-336-quickgelu`` is OpenAI's ViT-L/14@336px),
    ``image_size`` (518 gives a 37×37 grid), ``layers`` (1-based visual blocks whose patch tokens make maps;
    the official code takes the quarters of the tower's depth). ``activation`` is the MLP activation of both
    towers: ``gelu`` as the official loader runs OpenAI's weights (it builds its model from the plain
    ``ViT-L-14-336`` config, so the published numbers came from that tower), ``quickgelu`` the activation the
    weights were trained with. ``pos_interpolation`` resizes the positional grid to ``image_size``: ``bicubic``
    with antialiasing as the official loader does, or ``bilinear`` as AnomalyCLIP does.

    Prompts: ``prompting_branch`` names the towers that get prompts (``V`` visual, ``L`` text, ``VL`` both,
    empty for none). ``prompting_type`` names their kind: ``S`` static (learned, shared by every image), ``D``
    dynamic (a linear map of the image's frozen CLIP embedding), ``SD`` their sum (hybrid prompts). Each
    prompted block gets ``prompting_length`` prompt tokens. ``prompting_depth`` is the number of prompted
    blocks: visual blocks 1..depth, where the tokens are appended, then replaced block by block; text blocks
    2..depth, where they overwrite the positions after the start token. ``prompt_init_std`` is the std of the
    static prompts. ``prompt_cast="fp16"`` rounds the prompts to float16 where they enter a tower, as the
    official ``.half()`` cast does; the default ``fp32`` keeps them exact.

    Scoring: each tapped layer's raw patch tokens go through a learnable linear map to the joint space, the
    final CLS (``ln_post``, projection) through another. Logits are ``logit_scale`` times the cosine with the
    normal and anomalous text features, which are the class-name prompt ensemble of the code (7 normal and
    5 anomalous states times 4 templates). ``use_hsf`` turns on hybrid semantic fusion: the
    ``hsf_tokens_per_cluster · k_clusters`` patches most anomalous on average over the layers are clustered
    by k-means into ``k_clusters`` clusters (k-means++ seeded with ``hsf_seed``, scikit-learn's ``KMeans``),
    and the mean of the cluster centres is mixed into the image feature with weight ``hsf_alpha``. ``sigma``
    is the Gaussian applied to the final map at ``image_size`` (0 turns it off).

    Training: AdamW (``lr``, ``betas``, ``weight_decay``) for ``epochs`` epochs of ``batch_size`` images; the
    loss is the focal loss of the image probabilities plus, per layer, focal + Dice(anomaly, gt) +
    Dice(normal, 1 − gt) on the upsampled maps, with the focal constants ``focal_gamma``/``focal_smooth`` and
    the Dice constant ``dice_smooth``. ``dice_unit="image"`` computes each Dice term per image and averages the
    images; ``row`` per image row, as the official trainer does (it squeezes the batch-1 mask to ``[H, W]``,
    so its Dice loss takes each row for a sample).
    """

    backbone: str = "ViT-L-14-336-quickgelu"
    image_size: int = 518
    activation: Literal["gelu", "quickgelu"] = "gelu"
    pos_interpolation: Literal["bicubic", "bilinear"] = "bicubic"
    layers: tuple[int, ...] = (6, 12, 18, 24)
    prompting_branch: Literal["VL", "V", "L", ""] = "VL"
    prompting_type: Literal["SD", "S", "D"] = "SD"
    prompting_depth: int = 4
    prompting_length: int = 5
    prompt_init_std: float = 0.02
    prompt_cast: Literal["fp32", "fp16"] = "fp32"
    logit_scale: float = 100.0
    use_hsf: bool = True
    k_clusters: int = 20
    hsf_tokens_per_cluster: int = 5
    hsf_alpha: float = 0.2
    hsf_seed: int = 0
    sigma: float = 4.0
    epochs: int = 5
    batch_size: int = 1
    lr: float = 0.01
    betas: tuple[float, ...] = (0.5, 0.999)
    weight_decay: float = 0.01
    focal_gamma: float = 2.0
    focal_smooth: float = 1e-5
    dice_smooth: float = 1.0
    dice_unit: Literal["image", "row"] = "image"

    _parameter_constraints: ClassVar[Constraints] = {
        "image_size": POSITIVE,
        "layers": Items(AT_LEAST_ONE, distinct=True, increasing=True, note="1-based block numbers"),
        "prompting_depth": Interval(1, None, closed="left", note="blocks that get prompts"),
        "prompting_length": Interval(1, None, closed="left", note="prompt tokens per block"),
        "prompt_init_std": NON_NEGATIVE,
        "logit_scale": POSITIVE,
        "k_clusters": AT_LEAST_ONE,
        "hsf_tokens_per_cluster": AT_LEAST_ONE,
        "hsf_alpha": Interval(0, 1, closed="both"),
        "hsf_seed": Interval(0, 2**32 - 1, closed="both", note="k-means++ seed"),
        "sigma": Interval(0, None, closed="left", note="0 turns smoothing off"),
        "epochs": POSITIVE,
        "batch_size": POSITIVE,
        "lr": POSITIVE,
        "betas": Items(Interval(0, 1, closed="left"), length=2),
        "weight_decay": NON_NEGATIVE,
        "focal_gamma": NON_NEGATIVE,
        "focal_smooth": Interval(0, 0.5, closed="left"),
        "dice_smooth": NON_NEGATIVE,
    }

    @property
    def visual_prompts(self) -> bool:
        """Whether the image tower gets prompts."""
        return "V" in self.prompting_branch

    @property
    def text_prompts(self) -> bool:
        """Whether the text tower gets prompts (none with ``prompting_depth`` 1: its first block is never prompted)."""
        return "L" in self.prompting_branch and self.prompting_depth > 1

    @property
    def dynamic(self) -> bool:
        """Whether some tower gets dynamic prompts, which need the image's frozen CLIP embedding."""
        return "D" in self.prompting_type and (self.visual_prompts or self.text_prompts)
