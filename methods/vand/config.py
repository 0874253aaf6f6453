"""Hyper-parameters of VAND / APRIL-GAN (reference code at commit f13b8a6), the official values as defaults.

Defaults are those of the release scripts ``train.sh``, ``test_zero_shot.sh`` and ``test_few_shot.sh``: OpenAI's
ViT-L/14@336 at 518 px, patch tokens of blocks 6, 12, 18 and 24 (each through its own trainable linear layer)
and, few-shot, a memory of the same blocks; scale 100 before the two-class softmax; no smoothing; Adam at 1e-3
with betas (0.5, 0.999), batch 8, 3 epochs on MVTec AD and 15 on VisA; focal (γ = 2) plus Dice on the anomaly
channel of every layer's map.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from zsadbench.config import MethodConfig
from zsadbench.constraints import AT_LEAST_ONE, NON_NEGATIVE, POSITIVE, Constraints, Interval, Items

#: Epochs of the release script ``train.sh``: 15 when the auxiliary set is VisA, 3 when it is MVTec AD.
OFFICIAL_EPOCHS = {"visa": 15}
OFFICIAL_EPOCHS_OTHERWISE = 3


@dataclass(frozen=True)
class VANDConfig(MethodConfig):
    """VAND / APRIL-GAN settings.

    Backbone. ``backbone`` is the open_clip architecture (OpenAI's weights load into ViT-L-14-336). ``activation``
    is the MLP activation of both towers: ``gelu`` as in the official code, which builds its 518 px model from the
    plain ``ViT-L-14-336`` config and loads OpenAI's weights into it, or ``quickgelu``, the activation those weights
    were trained with. ``image_size`` is the input side (518 gives a 37×37 grid). ``pos_interpolation`` resizes
    the positional grid when the input side is not the native one: ``bicubic`` with antialiasing as the official
    loader does, or ``bilinear`` as AnomalyCLIP does.

    Zero-shot map. ``layers`` are the 1-based visual blocks whose raw patch tokens each pass their own linear layer
    into the joint space. Per layer, ``logit_scale`` · cosine similarity with the (normal, anomaly) text features
    gives two logits, upsampled bilinearly (corners aligned) to ``image_size`` before their softmax; the map is the
    sum over layers of the anomaly channel. ``prompt_name`` is the object word put into the prompts: ``category``
    as the dataset names it (the official code uses its ``meta.json`` class names as they are) or ``spaces``
    (underscores replaced by spaces). ``sigma`` is the Gaussian on the final map (0: none, as in the official code).
    The image score is the anomaly probability of the image feature (CLS, ``ln_post``, projection).

    Few-shot. ``memory_layers`` are the blocks whose raw patch tokens of the k support images form the memory; the
    map adds, per memory layer, ``1 − max cosine`` of each patch to the memory, upsampled the same way.
    ``fewshot_map_range`` divides the map's maximum in the few-shot image score ``0.5 · (zero-shot score +
    max(map) / fewshot_map_range)``: the official code divides by the range of that maximum over the category's
    test images, which a batch cannot know, so a fixed range stands in for it.

    Training (on the auxiliary set; only the linear layers learn). Adam (``lr``, ``betas``) runs ``epochs`` epochs
    of ``batch_size`` images; ``epochs`` 0 applies the official rule (15 on VisA, 3 otherwise). The loss is
    ``Σ_layers focal + Dice(anomaly, gt)``, with the focal term's ``focal_gamma`` and ``focal_smooth`` and the
    Dice term's ``dice_smooth``.
    """

    backbone: str = "ViT-L-14-336"
    activation: Literal["gelu", "quickgelu"] = "gelu"
    pos_interpolation: Literal["bicubic", "bilinear"] = "bicubic"
    image_size: int = 518
    layers: tuple[int, ...] = (6, 12, 18, 24)
    memory_layers: tuple[int, ...] = (6, 12, 18, 24)
    prompt_name: Literal["category", "spaces"] = "category"
    logit_scale: float = 100.0
    sigma: float = 0.0
    fewshot_map_range: float = 1.0
    epochs: int = 0
    batch_size: int = 8
    lr: float = 1e-3
    betas: tuple[float, ...] = (0.5, 0.999)
    focal_gamma: float = 2.0
    focal_smooth: float = 1e-5
    dice_smooth: float = 1.0

    _parameter_constraints: ClassVar[Constraints] = {
        "image_size": POSITIVE,
        "layers": Items(AT_LEAST_ONE, distinct=True, note="1-based block numbers"),
        "memory_layers": Items(AT_LEAST_ONE, distinct=True, note="1-based block numbers"),
        "logit_scale": POSITIVE,
        "sigma": NON_NEGATIVE,
        "fewshot_map_range": POSITIVE,
        "epochs": Interval(0, None, closed="left", note="0 applies the official rule: 15 on VisA, 3 otherwise"),
        "batch_size": POSITIVE,
        "lr": POSITIVE,
        "betas": Items(Interval(0, 1, closed="left"), length=2),
        "focal_gamma": NON_NEGATIVE,
        "focal_smooth": Interval(0, 0.5, closed="left"),
        "dice_smooth": NON_NEGATIVE,
    }

    def epochs_for(self, auxiliary: str) -> int:
        """The epochs of a training on ``auxiliary``: ``epochs``, or the official rule when it is 0."""
        return self.epochs or OFFICIAL_EPOCHS.get(auxiliary, OFFICIAL_EPOCHS_OTHERWISE)
