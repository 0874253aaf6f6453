"""The text tower run only up to the last EOT token (``PromptTextEncoder.encode(until_eot=True)``)."""
from __future__ import annotations

import pytest
import torch

from zsadbench.backbones import create_clip
from zsadbench.backbones.text import PromptTextEncoder
from zsadbench.errors import ConfigError

PROMPTS = ["a photo of a bottle.", "a bad photo of the damaged metal nut with a scratch.", "X"]


@pytest.fixture(scope="module")
def encoder():
    return PromptTextEncoder(create_clip("zsad-tiny-16-240"))


def _block_lengths(encoder, run):
    """The sequence length entering every text block while ``run()`` executes."""
    seen = []
    hooks = [b.register_forward_pre_hook(lambda m, args, kw: seen.append(args[0].shape[1]), with_kwargs=True)
             for b in encoder.backbone.model.transformer.resblocks]
    try:
        result = run()
    finally:
        for h in hooks:
            h.remove()
    return result, seen


def test_until_eot_gives_the_full_features_on_the_shortest_sequence(encoder):
    tokens = encoder.backbone.tokenize(PROMPTS)
    emb = encoder.token_embeddings(tokens)
    full, full_lengths = _block_lengths(encoder, lambda: encoder.encode(emb, tokens))
    short, short_lengths = _block_lengths(encoder, lambda: encoder.encode(emb, tokens, until_eot=True))
    last_eot = int(tokens.argmax(dim=-1).max())
    assert full_lengths == [77, 77] and short_lengths == [last_eot + 1] * 2
    torch.testing.assert_close(short, full, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(full, encoder.backbone.encode_text(tokens))


def test_until_eot_keeps_deep_prompts_that_reach_past_the_eot(encoder):
    tokens = encoder.backbone.tokenize(["a cat."])  # EOT at position 4
    emb = encoder.token_embeddings(tokens)
    deep = [torch.randn(6, encoder.width, generator=torch.Generator().manual_seed(0))]
    full = encoder.encode(emb, tokens, deep_prompts=deep)
    short, lengths = _block_lengths(encoder, lambda: encoder.encode(emb, tokens, deep_prompts=deep, until_eot=True))
    assert lengths == [7, 7]  # positions 1..6 hold the prompt
    torch.testing.assert_close(short, full, rtol=1e-5, atol=1e-6)


def test_until_eot_gradients_reach_the_prompts(encoder):
    tokens = encoder.backbone.tokenize(PROMPTS)
    emb = encoder.token_embeddings(tokens)
    deep = torch.nn.Parameter(torch.randn(3, 2, encoder.width) * 0.1)
    encoder.encode(emb, tokens, deep_prompts=[deep], until_eot=True).pow(2).sum().backward()
    assert deep.grad is not None and deep.grad.abs().sum() > 0
    with pytest.raises(ConfigError, match="go past"):
        encoder.encode(emb, tokens, deep_prompts=[deep, deep], deep_start=2, until_eot=True)
