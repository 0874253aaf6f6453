"""Vision-language and vision backbones shared by every method: CLIP through open_clip, DINOv2 through timm.

- :func:`create_clip` → :class:`ClipBackbone` (image/text towers, taps, V-V attention, extra tokens, windows);
- :func:`create_dinov2` → :class:`Dinov2Backbone` (the same tap contract);
- :func:`create_backbone` picks one of the two from the name;
- :class:`Intermediates`, the record every ``forward_intermediates`` returns;
- :class:`PromptTextEncoder`, the text tower with learnable context vectors and deep prompts;
- :class:`FeatureCache` / :func:`cached_taps` for frozen computations; :func:`autocast` and friends for speed;
- :class:`WeightsInfo` and the known-weights table (:data:`KNOWN_WEIGHTS`, :func:`list_weights`).
"""
from __future__ import annotations

from .clip import ClipBackbone
from .clip_factory import create_clip
from .dinov2 import Dinov2Backbone, create_dinov2
from .factory import create_backbone
from .feature_cache import FeatureCache, backbone_namespace, cached_taps
from .runtime import autocast, in_batches, prepare_for_inference
from .taps import Intermediates
from .text import PromptTextEncoder
from .weights import KNOWN_WEIGHTS, WeightsInfo, list_weights


__all__ = [
    "ClipBackbone",
    "Dinov2Backbone",
    "FeatureCache",
    "Intermediates",
    "KNOWN_WEIGHTS",
    "PromptTextEncoder",
    "WeightsInfo",
    "autocast",
    "backbone_namespace",
    "cached_taps",
    "create_backbone",
    "create_clip",
    "create_dinov2",
    "in_batches",
    "list_weights",
    "prepare_for_inference",
]
