"""Hyper-parameters of VisualAD, with the values of the public reference code (commit 8479132) as defaults.

Where the paper's code hard-codes a value (SCA anchors, dropouts, the loss constants) it is a field here so
that it enters the config hash and can be changed with ``--set visualad.<field>=<value>``.
"""
from __future__ import annotations

from dataclasses import dataclass

from zsadbench.config import MethodConfig
from zsadbench.errors import ConfigError


@dataclass(frozen=True)
class VisualADConfig(MethodConfig):
    """VisualAD settings.

    Backbone: ``backbone`` is an open_clip architecture (``ViT-L-14-336-quickgelu``, the reference's OpenAI
    ViT-L/14@336px) or a timm DINOv2 name (``vit_large_patch14_dinov2`` ...); ``layers`` are the tapped
    1-based blocks; ``image_size`` the input side (518 gives a 37×37 grid with patch 14).
    ``backbone_bf16`` runs the frozen backbone under bf16 autocast (the reference runs fp32; ``--precision bf16`` too).

    Tokens: ``token_init_scale`` multiplies ``width^-0.5 · N(0,1)`` for the anomaly and normal tokens.

    SCA (one per tapped layer): ``num_anchors`` anchor queries, ``sca_dropout`` on the attention and the
    output, ``res_scale_init`` the initial residual scale, ``max_patches`` the length of the learnable key
    positional encoding (must cover the patch grid), ``sca_init_std`` the std of anchors and encoding.

    SAF (one per tapped layer): hidden width ``saf_hidden_ratio · width``, ``saf_dropout`` during training.

    Maps and scores: ``sigma`` of the Gaussian applied to the summed map at ``image_size`` (0 disables it),
    ``topk_ratio`` of the pixels averaged into the image score.

    Training: AdamW (``betas``, ``weight_decay``) with ``lr_tokens`` for the two tokens and ``lr_other`` for
    ``ln_post``, SCA and SAF; cosine schedule over ``epochs`` stepped per epoch down to ``eta_min``;
    ``token_grad_clip`` is the max gradient norm of each token, 0 for none (nothing else is clipped). Losses: focal
    (``focal_gamma``, ``focal_alpha``, ``focal_smooth``) + Dice (``dice_smooth``) per layer, BCE on the top-k
    image score, and the token hinge ``relu(cos(a, n) + hinge_margin)``.
    """

    backbone: str = "ViT-L-14-336-quickgelu"
    image_size: int = 518
    layers: tuple[int, ...] = (6, 12, 18, 24)
    backbone_bf16: bool = False
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

    def __post_init__(self) -> None:
        name = type(self).__name__
        positive = {
            "image_size": self.image_size, "num_anchors": self.num_anchors, "max_patches": self.max_patches,
            "epochs": self.epochs, "batch_size": self.batch_size, "lr_tokens": self.lr_tokens,
            "lr_other": self.lr_other, "saf_hidden_ratio": self.saf_hidden_ratio,
        }
        for key, value in positive.items():
            if not value > 0:
                raise ConfigError(f"{name}.{key} must be > 0, got {value!r}")
        if not self.layers or any(layer < 1 for layer in self.layers) or len(set(self.layers)) != len(self.layers):
            raise ConfigError(f"{name}.layers must be distinct 1-based block numbers such as 6,12,18,24, got {self.layers!r}")
        if tuple(sorted(self.layers)) != tuple(self.layers):
            raise ConfigError(f"{name}.layers must be in increasing order, got {self.layers!r}")
        for key in ("sca_dropout", "saf_dropout"):
            if not 0.0 <= getattr(self, key) < 1.0:
                raise ConfigError(f"{name}.{key} must be in [0, 1), got {getattr(self, key)!r}")
        if not 0.0 < self.topk_ratio <= 1.0:
            raise ConfigError(f"{name}.topk_ratio must be in (0, 1], got {self.topk_ratio!r}")
        if self.sigma < 0:
            raise ConfigError(f"{name}.sigma must be >= 0 (0 turns smoothing off), got {self.sigma!r}")
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            raise ConfigError(f"{name}.betas must be two numbers in [0, 1) such as 0.9,0.999, got {self.betas!r}")
        for key in ("weight_decay", "eta_min", "token_grad_clip", "focal_gamma", "focal_alpha", "dice_smooth"):
            if getattr(self, key) < 0:
                raise ConfigError(f"{name}.{key} must be >= 0, got {getattr(self, key)!r}")
        if not 0.0 <= self.focal_smooth < 0.5:
            raise ConfigError(f"{name}.focal_smooth must be in [0, 0.5), got {self.focal_smooth!r}")

    @property
    def is_dinov2(self) -> bool:
        """True when ``backbone`` names a timm DINOv2 model rather than an open_clip CLIP."""
        return "dinov2" in self.backbone.lower()
