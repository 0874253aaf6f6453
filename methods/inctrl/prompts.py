"""InCTRL's text prior: the normal and anomalous prompt ensembles of a category, and their CLIP features.

The ensemble is 7 normal and 4 anomalous state phrases, each in 22 photo templates (the official
``open_clip/model.py``, ``get_texts``), state-major. The CIFAR-10 class names (and ``animal``), InCTRL's semantic
anomaly benchmark, get one prompt each instead: the object present for normal, absent for anomalous.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from zsadbench.backbones.clip import ClipBackbone

NORMAL_STATES: tuple[str, ...] = (
    "{}",
    "flawless {}",
    "perfect {}",
    "unblemished {}",
    "{} without flaw",
    "{} without defect",
    "{} without damage",
)
ANOMALOUS_STATES: tuple[str, ...] = ("damaged {}", "{} with flaw", "{} with defect", "{} with damage")
TEMPLATES: tuple[str, ...] = (
    "a cropped photo of the {}.",
    "a cropped photo of a {}.",
    "a close-up photo of a {}.",
    "a close-up photo of the {}.",
    "a bright photo of a {}.",
    "a bright photo of the {}.",
    "a dark photo of a {}.",
    "a dark photo of the {}.",
    "a jpeg corrupted photo of a {}.",
    "a jpeg corrupted photo of the {}.",
    "a blurry photo of the {}.",
    "a blurry photo of a {}.",
    "a photo of the {}.",
    "a photo of a {}.",
    "a photo of a small {}.",
    "a photo of the small {}.",
    "a photo of a large {}.",
    "a photo of the large {}.",
    "a photo of a {} for visual inspection.",
    "a photo of the {} for visual inspection.",
    "a photo of a {} for anomaly detection.",
    "a photo of the {} for anomaly detection.",
)
#: Names that get the semantic (presence / absence) prompt pair instead of the state ensemble.
SEMANTIC_CLASSES: frozenset[str] = frozenset(
    {"airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck", "animal"}
)


def prompt_texts(category: str) -> tuple[list[str], list[str]]:
    """``(normal, anomalous)`` prompts of ``category`` (underscores read as spaces)."""
    name = category.replace("_", " ")
    if name in SEMANTIC_CLASSES:
        return [f"a photo of {name} for anomaly detection."], [f"a photo without {name} for anomaly detection."]
    normal = [t.format(s.format(name)) for s in NORMAL_STATES for t in TEMPLATES]
    anomalous = [t.format(s.format(name)) for s in ANOMALOUS_STATES for t in TEMPLATES]
    return normal, anomalous


def encode_prompts(backbone: ClipBackbone, texts: list[str]) -> torch.Tensor:
    """``[P, embed_dim]`` CLIP text features of ``texts`` (not normalised), through the shortest context that
    holds every end token: the text tower is causal and reads the end token, so the positions after the longest
    prompt cannot change a feature. Text towers of another kind run on the full context."""
    tokens = backbone.tokenize(texts)
    clip = backbone.model
    if getattr(clip, "text_pool_type", None) != "argmax" or getattr(clip, "attn_mask", None) is None:
        return backbone.encode_text(tokens)
    end = tokens.argmax(dim=-1)
    length = int(end.max()) + 1
    x = clip.token_embedding(tokens[:, :length]) + clip.positional_embedding[:length]
    x = clip.ln_final(clip.transformer(x, attn_mask=clip.attn_mask[:length, :length]))
    pooled = x[torch.arange(len(tokens), device=x.device), end]
    projection = clip.text_projection
    return projection(pooled) if isinstance(projection, nn.Linear) else pooled @ projection


def ensemble(features: torch.Tensor) -> torch.Tensor:
    """The unit mean direction of unit-normalised features ``[P, D]`` → ``[D]``."""
    return F.normalize(F.normalize(features, dim=-1).mean(dim=0), dim=-1)


def text_features(backbone: ClipBackbone, category: str) -> torch.Tensor:
    """``[2, embed_dim]``: the unit (normal, anomalous) ensemble features of ``category``, float32."""
    normal, anomalous = prompt_texts(category)
    features = encode_prompts(backbone, normal + anomalous).float()
    return torch.stack([ensemble(features[: len(normal)]), ensemble(features[len(normal):])])
