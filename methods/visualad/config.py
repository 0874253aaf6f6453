"""Hyper-parameters of VisualAD, with the values of the public reference code (commit 8479132) as defaults.

Where the paper's code hard-codes a value (SCA anchors, dropouts, the loss constants) it is a field here so
that it enters the config hash and can be changed with ``--set visualad.<field>=<value>``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from zsadbench.config import MethodConfig
from zsadbench.constraints import AT_LEAST_ONE, NON_NEGATIVE, POSITIVE, Constraints, Interval, Items


@dataclass(frozen=True)
class VisualADConfig(MethodConfig):
    """VisualAD settings.

    Backbone: ``backbone`` is an open_clip architecture (``ViT-L-14-336-quickgelu``, the reference's OpenAI
    ViT-L/14@336px) or a timm DINOv2 name (``vit_large_patch14_dinov2`` ...); ``layers`` are the tapped
    1-based blocks; ``image_size`` the input side (518 gives a 37×37 grid with patch 14).

    Tokens: ``token_init_scale`` multiplies ``width^-0.5 · N(0,1)`` for the anomaly and normal tokens.

    SCA (one per tapped layer): ``num_anchors`` anchor queries, ``sca_dropout`` on the attention and the
    output, ``res_scale_init`` the initial residual scale, ``max_patches`` the length of the learnable key
    positional encoding (must cover the patch grid), ``sca_init_std`` the std of anchors and encoding.

    SAF (one per tapped layer): hidden width ``saf_hidden_ratio · width``, ``saf_dropout`` during training.

    Maps and scores: ``sigma`` of the Gaussian applied to the summed map at ``image_size`` (0 disables it),
    ``topk_ratio`` of the pixels averaged into the image score. ``test_ln_post``: ``trained`` scores with the
    trained copy of the final norm, as training does; ``original`` with the backbone's own, as the release's
    ``test.py`` does (it saves the trained norm but never loads it).

    Training: batches of ``batch_size`` images; AdamW (``betas``, ``weight_decay``) with ``lr_tokens`` for the two tokens and ``lr_other`` for
    ``ln_post``, SCA and SAF; cosine schedule over ``epochs`` stepped per epoch down to ``eta_min``;
    ``token_grad_clip`` is the max gradient norm of each token, 0 for none (nothing else is clipped). Losses: focal
    (``focal_gamma``, ``focal_alpha``, ``focal_smooth``) + Dice (``dice_smooth``) per layer, BCE on the top-k
    image score, and the token hinge ``relu(cos(a, n) + hinge_margin)``.
    """

    backbone: str = "ViT-L-14-336-quickgelu"
    image_size: int = 518
    layers: tuple[int, ...] = (6, 12, 18, 24)
    token_init_scale: float = 0.1
    num_anchors: int = 4
    sca_dropout: float = 0.1
    res_scale_init: float = 0.01
    max_patches: int = 1536
    sca_init_std: float = 0.02
    saf_hidden_ratio: float = 1.0
    saf_dropout: float = 0.1
    sigma: float = 4.0
    topk_ratio: float = 0.01
    epochs: int = 2
    batch_size: int = 8
    lr_tokens: float = 1e-3
    lr_other: float = 1e-4
    weight_decay: float = 0.01
    betas: tuple[float, ...] = (0.9, 0.999)
    eta_min: float = 1e-4
    token_grad_clip: float = 1.0
    focal_gamma: float = 2.0
    focal_alpha: float = 1.0
    focal_smooth: float = 1e-5
    dice_smooth: float = 1.0
    hinge_margin: float = 0.5
    test_ln_post: Literal["trained", "original"] = "trained"

    _parameter_constraints: ClassVar[Constraints] = {
        "image_size": POSITIVE,
        "layers": Items(AT_LEAST_ONE, distinct=True, increasing=True, note="1-based block numbers"),
        "num_anchors": POSITIVE,
        "sca_dropout": Interval(0, 1, closed="left"),
        "max_patches": POSITIVE,
        "saf_hidden_ratio": POSITIVE,
        "saf_dropout": Interval(0, 1, closed="left"),
        "sigma": Interval(0, None, closed="left", note="0 turns smoothing off"),
        "topk_ratio": Interval(0, 1, closed="right"),
        "epochs": POSITIVE,
        "batch_size": POSITIVE,
        "lr_tokens": POSITIVE,
        "lr_other": POSITIVE,
        "weight_decay": NON_NEGATIVE,
        "betas": Items(Interval(0, 1, closed="left"), length=2),
        "eta_min": NON_NEGATIVE,
        "token_grad_clip": NON_NEGATIVE,
        "focal_gamma": NON_NEGATIVE,
        "focal_alpha": NON_NEGATIVE,
        "focal_smooth": Interval(0, 0.5, closed="left"),
        "dice_smooth": NON_NEGATIVE,
    }

    @property
    def is_dinov2(self) -> bool:
        """True when ``backbone`` names a timm DINOv2 model rather than an open_clip CLIP."""
        return "dinov2" in self.backbone.lower()
