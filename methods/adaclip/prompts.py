"""AdaCLIP's hybrid prompts and the class-name prompt ensemble of its text branch.

Hybrid prompts (``PromptLayer`` and the dynamic ``ProjectLayer`` of the official code): per prompted block
a ``[length, width]`` static tensor, plus a dynamic part made by one linear map of the image's frozen CLIP
embedding (shared by every prompted block of that tower), summed when both are on. The modules hold only
learnable tensors; the towers are passed in at call time.

Text features (``TextEmbebddingLayer``): for a class name, every normal state (7) and every anomalous state (5)
is put in each of 4 templates; each sentence is encoded and L2-normalised, each state group averaged and
normalised again, giving a (normal, anomalous) pair per image.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from zsadbench.backbones import PromptTextEncoder

NORMAL_STATES = ("{}", "flawless {}", "perfect {}", "unblemished {}", "{} without flaw", "{} without defect",
                 "{} without damage")
ANOMALOUS_STATES = ("damaged {}", "broken {}", "{} with flaw", "{} with defect", "{} with damage")
TEMPLATES = ("a bad photo of a {}.", "a low resolution photo of the {}.", "a bad photo of the {}.",
             "a cropped photo of the {}.")


def class_sentences(category: str) -> tuple[list[str], int]:
    """The ensemble's sentences for ``category`` (its ``-`` read as spaces, as the official code does): the
    normal ones first, then the anomalous ones; returns them and the number of normal ones."""
    name = category.replace("-", " ")
    normal = [template.format(state.format(name)) for state in NORMAL_STATES for template in TEMPLATES]
    anomalous = [template.format(state.format(name)) for state in ANOMALOUS_STATES for template in TEMPLATES]
    return normal + anomalous, len(normal)


class HybridPrompts(nn.Module):
    """The prompts of one tower: ``count`` blocks of ``length`` tokens of ``width``.

    ``static`` (``[count, length, width]``, N(0, ``init_std``²)) when static prompts are on, ``generator`` (one
    ``Linear(embed_dim, length · width)``, PyTorch's default initialisation, as each of the official
    ``length`` heads ``Linear(embed_dim, width)`` has) when dynamic prompts are on.
    """

    def __init__(self, count: int, length: int, width: int, embed_dim: int, *, static: bool, dynamic: bool,
                 init_std: float, half: bool = False) -> None:
        super().__init__()
        self.count, self.length, self.width, self.half = count, length, width, half
        self.static = nn.Parameter(torch.randn(count, length, width) * init_std) if static else None
        self.generator = nn.Linear(embed_dim, length * width) if dynamic else None

    def forward(self, embedding: torch.Tensor | None) -> list[torch.Tensor]:
        """The ``count`` prompt tensors: ``[B, length, width]`` when dynamic (``embedding`` is ``[B, embed_dim]``),
        else ``[length, width]`` shared by the batch; rounded through float16 when ``half``."""
        static = list(self.static) if self.static is not None else [None] * self.count
        if self.generator is None:
            parts = static
        else:
            if embedding is None:
                raise ValueError("dynamic prompts need the images' frozen CLIP embedding")
            dynamic = self.generator(embedding.float()).reshape(-1, self.length, self.width)
            parts = [dynamic if s is None else dynamic + s for s in static]
        return [p.half().float() for p in parts] if self.half else parts


class ClassTexts:
    """Token ids and frozen token embeddings of each class's sentences, kept per class name."""

    def __init__(self, encoder: PromptTextEncoder) -> None:
        self.encoder = encoder
        self._known: dict[str, tuple[torch.Tensor, torch.Tensor, int]] = {}

    def __call__(self, category: str) -> tuple[torch.Tensor, torch.Tensor, int]:
        """``(tokens [P, 77], embeddings [P, 77, width], number of normal sentences)`` of ``category``."""
        if category not in self._known:
            sentences, normal = class_sentences(category)
            tokens = self.encoder.backbone.tokenize(sentences)
            with torch.no_grad():
                embeddings = self.encoder.token_embeddings(tokens).float()
            self._known[category] = (tokens, embeddings, normal)
        return self._known[category]


def encode_classes(encoder: PromptTextEncoder, texts: ClassTexts, categories: Sequence[str],
                   deep: Sequence[torch.Tensor] = ()) -> torch.Tensor:
    """``[B, 2, embed_dim]``: each image's normalised (normal, anomalous) text features for its category.

    ``deep`` are the text prompts of blocks 2, 3, ...: ``[B, length, width]`` (one per image) or
    ``[length, width]``; they overwrite the positions after the start token of every sentence of that image.
    All images' sentences go through the tower in one pass.
    """
    parts = [texts(category) for category in categories]
    counts = [tokens.shape[0] for tokens, _, _ in parts]
    tokens = torch.cat([t for t, _, _ in parts])
    embeddings = torch.cat([e for _, e, _ in parts])
    per_sentence = [d.repeat_interleave(torch.tensor(counts, device=d.device), dim=0) if d.ndim == 3 else d
                    for d in deep]
    features = encoder.encode(embeddings, tokens, deep_prompts=per_sentence or None, deep_start=2, deep_position=1,
                              until_eot=True)
    features = F.normalize(features.float(), dim=-1)
    pairs = []
    for (_, _, normal), chunk in zip(parts, features.split(counts)):
        pair = torch.stack([chunk[:normal].mean(dim=0), chunk[normal:].mean(dim=0)])
        pairs.append(F.normalize(pair, dim=-1))
    return torch.stack(pairs)
