"""VAND's fixed prompt ensemble: state phrases × photo templates, per state (normal, anomalous).

The phrases and templates are those of the reference ``prompt_ensemble.py``, in its order: each state phrase
is put into every template (phrase-major). A state's text feature is the L2-normalised mean of its prompts'
L2-normalised embeddings from the frozen text tower.
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

ANOMALOUS_STATES: tuple[str, ...] = (
    "damaged {}",
    "broken {}",
    "{} with flaw",
    "{} with defect",
    "{} with damage",
)

TEMPLATES: tuple[str, ...] = (
    "a bad photo of a {}.",
    "a low resolution photo of the {}.",
    "a bad photo of the {}.",
    "a cropped photo of the {}.",
    "a bright photo of a {}.",
    "a dark photo of the {}.",
    "a photo of my {}.",
    "a photo of the cool {}.",
    "a close-up photo of a {}.",
    "a black and white photo of the {}.",
    "a bright photo of the {}.",
    "a cropped photo of a {}.",
    "a jpeg corrupted photo of a {}.",
    "a blurry photo of the {}.",
    "a photo of the {}.",
    "a good photo of the {}.",
    "a photo of one {}.",
    "a close-up photo of the {}.",
    "a photo of a {}.",
    "a low resolution photo of a {}.",
    "a photo of a large {}.",
    "a blurry photo of a {}.",
    "a jpeg corrupted photo of the {}.",
    "a good photo of a {}.",
    "a photo of the small {}.",
    "a photo of the large {}.",
    "a black and white photo of a {}.",
    "a dark photo of a {}.",
    "a photo of a cool {}.",
    "a photo of a small {}.",
    "there is a {} in the scene.",
    "there is the {} in the scene.",
    "this is a {} in the scene.",
    "this is the {} in the scene.",
    "this is one {} in the scene.",
)


def object_word(category: str, rule: str) -> str:
    """The word put into the prompts for ``category``: as it is (``rule="category"``) or with spaces for
    underscores (``"spaces"``)."""
    return category.replace("_", " ") if rule == "spaces" else category


def prompt_ensemble(name: str) -> tuple[list[str], list[str]]:
    """All normal and all anomalous prompts of the object ``name``, phrase-major."""
    normal = [template.format(state.format(name)) for state in NORMAL_STATES for template in TEMPLATES]
    anomalous = [template.format(state.format(name)) for state in ANOMALOUS_STATES for template in TEMPLATES]
    return normal, anomalous


def encode_prompts(backbone: ClipBackbone, texts: list[str]) -> torch.Tensor:
    """``[P, embed_dim]`` text-tower embeddings (not normalised) of ``texts``, on the shortest context that holds
    every prompt's end token.

    CLIP's text transformer is causal and pools at the end-of-text token (the largest id), so the positions after
    the longest prompt cannot change the result; leaving them out makes the ensemble several times cheaper.
    """
    clip = backbone.model
    tokens = backbone.tokenize(texts)
    eot = tokens.argmax(dim=-1)
    length = int(eot.max()) + 1
    x = clip.token_embedding(tokens[:, :length]) + clip.positional_embedding[:length]
    x = clip.ln_final(clip.transformer(x, attn_mask=clip.attn_mask[:length, :length]))
    pooled = x[torch.arange(len(texts), device=x.device), eot]
    projection = clip.text_projection
    return projection(pooled) if isinstance(projection, nn.Linear) else pooled @ projection


def state_features(backbone: ClipBackbone, name: str) -> torch.Tensor:
    """``[2, embed_dim]``: the normalised normal and anomalous text features of the object ``name``."""
    normal, anomalous = prompt_ensemble(name)
    embedded = F.normalize(encode_prompts(backbone, normal + anomalous).float(), dim=-1)
    means = torch.stack([embedded[: len(normal)].mean(dim=0), embedded[len(normal):].mean(dim=0)])
    return F.normalize(means, dim=-1)
