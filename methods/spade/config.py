"""Hyper-parameters of SPADE, with the paper's values as defaults."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from zsadbench.config import MethodConfig
from zsadbench.constraints import AT_LEAST_ONE, Constraints, CrossChecks
from zsadbench.methods.patchcore import BLUR_FITS, CNN_CONSTRAINTS


@dataclass(frozen=True)
class SPADEConfig(MethodConfig):
    """SPADE settings.

    ``backbone`` is a timm CNN run at ``image_size`` px (WideResNet-50-2 at 224, as in the paper). An image is
    described by the global average of its ``global_layer`` map (the classifier's pooled feature) and scored by
    its mean distance to its ``top_k`` nearest support images (K = 50 in the paper; fewer when the support set is
    smaller). Each position of each of ``layers`` scores its mean distance to the ``pixel_k`` nearest features
    (κ = 1) among all positions of that layer in those K images; the per-layer maps are resized bilinearly to
    the input, averaged with equal weights and smoothed with a Gaussian of ``blur_sigma`` pixels.
    """

    backbone: str = "wide_resnet50_2"
    layers: tuple[str, ...] = ("layer1", "layer2", "layer3")
    global_layer: str = "layer4"
    image_size: int = 224
    top_k: int = 50
    pixel_k: int = 1
    blur_sigma: float = 4.0

    _parameter_constraints: ClassVar[Constraints] = {
        **CNN_CONSTRAINTS,
        "top_k": AT_LEAST_ONE,
        "pixel_k": AT_LEAST_ONE,
    }
    _cross_checks: ClassVar[CrossChecks] = (BLUR_FITS,)
