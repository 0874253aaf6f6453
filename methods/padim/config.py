"""Hyper-parameters of PaDiM, with the paper's values as defaults (the reference implementation's where the
paper is silent)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from zsadbench.config import MethodConfig
from zsadbench.constraints import AT_LEAST_ONE, NON_NEGATIVE, POSITIVE, Constraints, CrossChecks
from zsadbench.methods.patchcore import BLUR_FITS, CNN_CONSTRAINTS


@dataclass(frozen=True)
class PaDiMConfig(MethodConfig):
    """PaDiM settings.

    ``backbone`` is a timm CNN whose stages ``layers`` are read at ``image_size`` px (WideResNet-50-2, layer1 to
    layer3, at 224 as in the paper). The deeper maps are resized to the first layer's grid (nearest) and
    concatenated; ``n_features`` channels of the concatenation are kept, drawn at random with Python's
    ``random.Random(channel_seed).sample`` (the reference implementation's draw: 550 of 1792 for WideResNet-50-2,
    100 of 448 for ResNet-18, seed 1024).

    Each position gets a Gaussian fitted to the support images: their mean and their covariance (unbiased; the
    zero matrix for a single image) plus ``covariance_eps`` times the identity. A position scores its
    Mahalanobis distance; maps are resized bilinearly to the input and smoothed with a Gaussian of
    ``blur_sigma`` pixels; the image score is the map's maximum.
    """

    backbone: str = "wide_resnet50_2"
    layers: tuple[str, ...] = ("layer1", "layer2", "layer3")
    image_size: int = 224
    n_features: int = 550
    channel_seed: int = 1024
    covariance_eps: float = 0.01
    blur_sigma: float = 4.0

    _parameter_constraints: ClassVar[Constraints] = {
        **CNN_CONSTRAINTS,
        "n_features": AT_LEAST_ONE,
        "channel_seed": NON_NEGATIVE,
        "covariance_eps": POSITIVE,
    }
    _cross_checks: ClassVar[CrossChecks] = (BLUR_FITS,)
