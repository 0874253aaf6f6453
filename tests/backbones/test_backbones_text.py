"""Text tower with learnable prompts: context vectors, deep prompts, batching, EOT pooling (tiny config)."""
from __future__ import annotations

import pytest
import torch

from zsadbench.backbones import create_clip
from zsadbench.backbones.text import PromptTextEncoder
from zsadbench.errors import ConfigError

PROMPTS = ["X X X X object.", "X X X X damaged object.", "X X X X a photo of a cracked bottle."]


@pytest.fixture(scope="module")
def encoder():
    torch.manual_seed(0)
    return PromptTextEncoder(create_clip("zsad-tiny-16-240"))


@pytest.fixture(scope="module")
def tokens(encoder):
    return encoder.backbone.tokenize(PROMPTS)


def _block_inputs(encoder, run):
    """Record the input of every text block while ``run()`` executes."""
    seen = []
    hooks = [b.register_forward_pre_hook(lambda m, args, kw: seen.append(args[0].detach().clone()), with_kwargs=True)
             for b in encoder.backbone.model.transformer.resblocks]
    try:
        result = run()
    finally:
        for h in hooks:
            h.remove()
    return result, seen


def test_plain_embeddings_reproduce_encode_text(encoder, tokens):
    ours = encoder.encode(encoder.token_embeddings(tokens), tokens)
    torch.testing.assert_close(ours, encoder.backbone.encode_text(tokens))
    assert ours.shape == (3, 32)


def test_fill_placeholders_replaces_only_placeholders(encoder, tokens):
    pid = encoder.placeholder_id("X")
    assert (tokens == pid).sum(dim=1).tolist() == [4, 4, 4]
    ctx = torch.nn.Parameter(torch.randn(4, encoder.width))
    base = encoder.token_embeddings(tokens)
    filled = encoder.fill_placeholders(base, tokens, "X", ctx)
    for p in range(3):
        positions = (tokens[p] == pid).nonzero().flatten()
        assert positions.tolist() == [1, 2, 3, 4]  # right after the start token
        torch.testing.assert_close(filled[p, positions], ctx.detach())
        others = (tokens[p] != pid)
        assert torch.equal(filled[p, others], base[p, others])
    encoder.encode(filled, tokens).pow(2).sum().backward()
    assert ctx.grad is not None and ctx.grad.abs().sum() > 0
    assert all(p.grad is None for p in encoder.backbone.parameters())


def test_fill_placeholders_rejects_wrong_count(encoder, tokens):
    with pytest.raises(ConfigError, match="placeholder"):
        encoder.fill_placeholders(encoder.token_embeddings(tokens), tokens, "X", torch.randn(5, encoder.width))
    with pytest.raises(ConfigError, match="single-token"):
        encoder.placeholder_id("xylophonist")


def test_deep_prompts_overwrite_only_their_positions(encoder, tokens):
    torch.manual_seed(1)
    emb = encoder.token_embeddings(tokens)
    deep = [torch.randn(2, encoder.width)]
    plain, plain_inputs = _block_inputs(encoder, lambda: encoder.encode(emb, tokens))
    _, deep_inputs = _block_inputs(
        encoder, lambda: encoder.encode(emb, tokens, deep_prompts=deep, deep_start=2, deep_position=1)
    )
    # block 1 sees the same sequence; block 2 sees positions 1-2 overwritten and nothing else changed
    assert torch.equal(deep_inputs[0], plain_inputs[0])
    changed = (deep_inputs[1] != plain_inputs[1]).any(dim=-1)  # [P, L]
    assert changed[:, 1:3].all() and not changed[:, 0].any() and not changed[:, 3:].any()
    torch.testing.assert_close(deep_inputs[1][:, 1:3], deep[0].expand(3, -1, -1))


def test_deep_prompts_match_manual_recomputation(encoder, tokens):
    torch.manual_seed(2)
    model = encoder.backbone.model
    emb = encoder.token_embeddings(tokens)
    deep = [torch.randn(4, encoder.width)]
    ours = encoder.encode(emb, tokens, deep_prompts=deep, deep_start=2, deep_position=1)
    x = emb + model.positional_embedding
    x = model.transformer.resblocks[0](x, attn_mask=model.attn_mask)
    x = x.clone()
    x[:, 1:5] = deep[0]
    x = model.transformer.resblocks[1](x, attn_mask=model.attn_mask)
    x = model.ln_final(x)
    eot = tokens.argmax(dim=-1).tolist()
    expected = torch.stack([x[p, eot[p]] for p in range(3)]) @ model.text_projection
    torch.testing.assert_close(ours, expected)
    with pytest.raises(ConfigError, match="past the 2 text blocks"):
        encoder.encode(emb, tokens, deep_prompts=deep * 2, deep_start=2)


def test_batched_equals_one_at_a_time(encoder, tokens):
    torch.manual_seed(3)
    ctx = torch.randn(3, 4, encoder.width)
    deep = [torch.randn(3, encoder.width)]
    emb = encoder.fill_placeholders(encoder.token_embeddings(tokens), tokens, "X", ctx)
    batched = encoder.encode(emb, tokens, deep_prompts=deep)
    for p in range(3):
        single = encoder.encode(
            encoder.fill_placeholders(encoder.token_embeddings(tokens[p : p + 1]), tokens[p : p + 1], "X", ctx[p]),
            tokens[p : p + 1],
            deep_prompts=deep,
        )
        torch.testing.assert_close(batched[p : p + 1], single, rtol=1e-5, atol=1e-6)


def test_eot_pooling_uses_each_prompts_end(encoder, tokens):
    # a different EOT position per prompt: changing a token after the EOT must not change the output
    emb = encoder.token_embeddings(tokens)
    eot = tokens.argmax(dim=-1)
    assert len(set(eot.tolist())) == 3
    modified = emb.clone()
    modified[0, eot[0] + 1 :] += 1.0
    torch.testing.assert_close(encoder.encode(modified, tokens)[0], encoder.encode(emb, tokens)[0])
