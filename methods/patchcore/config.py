"""Hyper-parameters of PatchCore, with the paper's values as defaults (anomalib's where the paper is silent)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from zsadbench.config import MethodConfig
from zsadbench.constraints import (AT_LEAST_ONE, NON_NEGATIVE, Constraints, CrossCheck, CrossChecks, Interval,
                                   Items)

#: The rule every config of these CNN baselines shares: the smoothing kernel must fit inside the map.
BLUR_FITS = CrossCheck(
    ("image_size", "blur_sigma"), lambda c: c.image_size > int(4.0 * c.blur_sigma + 0.5),
    "image_size={image_size} must be larger than the smoothing kernel's radius int(4 * blur_sigma + 0.5) "
    "(blur_sigma={blur_sigma}); lower blur_sigma or raise image_size",
)
#: The allowed values of the fields the CNN baselines share.
CNN_CONSTRAINTS: Constraints = {
    "layers": Items(distinct=True, note="timm stage names, e.g. layer2"),
    "image_size": Interval(32, None, closed="left", note="pixels"),
    "blur_sigma": NON_NEGATIVE,
}


@dataclass(frozen=True)
class PatchCoreConfig(MethodConfig):
    """PatchCore settings.

    ``backbone`` is a timm CNN whose stages ``layers`` are read at ``image_size`` px (WideResNet-50-2, layer2 and
    layer3, at 224 as in the paper).

    Each position's feature is its ``patch_size × patch_size`` neighbourhood: per layer the ``C·p²`` values of
    the neighbourhood are averaged down to ``layer_dim`` by adaptive average pooling (0: to ``C``, which is the
    plain ``p × p`` average pooling anomalib applies), the deeper layers are resized bilinearly to the first
    layer's grid, and the concatenation is pooled the same way to ``feature_dim`` (0: kept as it is, anomalib).

    ``coreset_ratio`` of the support features are kept by greedy k-center selection on features projected to the
    Johnson-Lindenstrauss dimension of ``projection_eps`` (1.0 keeps every feature, no selection).

    A patch scores its distance to the nearest memory feature. The image score is the largest patch score,
    re-weighted by how far the patch is from the ``num_neighbors`` memory features nearest to its own nearest
    one (1: the largest patch score as it is). Maps are resized to the input (``upsample``) and smoothed with a
    Gaussian of ``blur_sigma`` pixels.
    """

    backbone: str = "wide_resnet50_2"
    layers: tuple[str, ...] = ("layer2", "layer3")
    image_size: int = 224
    patch_size: int = 3
    layer_dim: int = 1024
    feature_dim: int = 1024
    coreset_ratio: float = 0.1
    projection_eps: float = 0.9
    num_neighbors: int = 9
    upsample: Literal["bilinear", "nearest"] = "bilinear"
    blur_sigma: float = 4.0

    _parameter_constraints: ClassVar[Constraints] = {
        **CNN_CONSTRAINTS,
        "patch_size": Interval(1, None, closed="left", note="odd neighbourhood side in feature-map cells"),
        "layer_dim": Interval(0, None, closed="left", note="0 keeps each layer's channel count"),
        "feature_dim": Interval(0, None, closed="left", note="0 keeps the concatenation"),
        "coreset_ratio": Interval(0, 1, closed="right", note="share of the support features kept"),
        "projection_eps": Interval(0, 1, closed="neither", note="Johnson-Lindenstrauss distortion"),
        "num_neighbors": AT_LEAST_ONE,
    }
    _cross_checks: ClassVar[CrossChecks] = (
        CrossCheck(("patch_size",), lambda c: c.patch_size % 2 == 1,
                   "patch_size={patch_size} must be odd, so that each neighbourhood is centred on its position"),
        BLUR_FITS,
    )
