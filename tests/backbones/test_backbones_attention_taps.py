"""Attention taps (the ordinary stream after a block's attention residual, before its MLP) of the CLIP and DINOv2
backbones, against hand computations (tiny configs), plain and in V-V blocks, directly and through the cache."""
from __future__ import annotations

import pytest
import torch

from zsadbench.backbones import FeatureCache, cached_taps, create_clip
from zsadbench.backbones.clip import block_halves as clip_halves
from zsadbench.backbones.dinov2 import block_halves as dinov2_halves
from zsadbench.backbones.dinov2 import create_dinov2
from zsadbench.errors import ConfigError

TOL = dict(rtol=1e-5, atol=1e-5)


@pytest.fixture(scope="module")
def clip():
    return create_clip("zsad-tiny-14-336", image_size=56)  # 4 blocks, a 4x4 grid


@pytest.fixture(scope="module")
def dinov2():
    return create_dinov2("zsad-tiny-dinov2-reg4", image_size=56)  # 3 blocks, 4 registers


def _images(backbone, n=2):
    gen = torch.Generator().manual_seed(7)
    return backbone.normalize(torch.rand(n, 3, backbone.image_size, backbone.image_size, generator=gen))


def _attention_by_hand(h, qkv_weight, qkv_bias, out_proj, heads):
    """Multi-head softmax(q kᵀ / sqrt(d)) v with explicit per-head loops, then the output projection."""
    width = h.shape[-1]
    dim = width // heads
    q, k, v = (h @ qkv_weight[j * width : (j + 1) * width].T + qkv_bias[j * width : (j + 1) * width] for j in range(3))
    outs = []
    for head in range(heads):
        part = slice(head * dim, (head + 1) * dim)
        weights = torch.softmax(q[..., part] @ k[..., part].transpose(-1, -2) / dim**0.5, dim=-1)
        outs.append(weights @ v[..., part])
    return out_proj(torch.cat(outs, dim=-1))


def _clip_by_hand(clip, images):
    """Per block: the stream after the attention residual, and the block's output (1-based lists, index 0 unused)."""
    x = clip.visual.ln_pre(clip.embed_tokens(images))
    mids, outs = [None], [None]
    for block in clip.visual.transformer.resblocks:
        attn = block.attn
        mid = x + block.ls_1(_attention_by_hand(block.ln_1(x), attn.in_proj_weight, attn.in_proj_bias, attn.out_proj,
                                                attn.num_heads))
        x = mid + block.ls_2(block.mlp(block.ln_2(mid)))
        mids.append(mid)
        outs.append(x)
    return mids, outs


def _dinov2_by_hand(backbone, images):
    x = backbone.embed_tokens(images)
    mids = [None]
    for block in backbone.model.blocks:
        attn = block.attn
        mid = x + block.ls1.gamma * _attention_by_hand(block.norm1(x), attn.qkv.weight, attn.qkv.bias, attn.proj,
                                                       attn.num_heads)
        x = mid + block.ls2.gamma * block.mlp(block.norm2(mid))
        mids.append(mid)
    return mids


@pytest.mark.parametrize("vv_last", [0, 2])
def test_clip_attention_taps_equal_a_hand_computation(clip, vv_last):
    images = _images(clip)
    out = clip.forward_intermediates(images, [4], vv_last=vv_last, attention_taps=(3, 1, 4))
    mids, _ = _clip_by_hand(clip, images)
    assert sorted(out.attention) == [1, 3, 4]  # with vv_last=2, block 1 is plain and blocks 3 and 4 are V-V
    for block, tokens in out.attention.items():
        assert tokens.shape == (2, 16, 64)
        torch.testing.assert_close(tokens, mids[block][:, 1:], **TOL)


def test_clip_attention_taps_take_the_head_and_drop_extra_tokens(clip):
    images = _images(clip)
    extra = torch.randn(3, 64, generator=torch.Generator().manual_seed(1)) * 0.1
    raw = clip.forward_intermediates(images, [4], extra_tokens=extra, attention_taps=(2,))
    both = clip.forward_intermediates(images, [4], extra_tokens=extra, norm=True, project=True, attention_taps=(2,))
    assert raw.attention[2].shape == (2, 16, 64) and both.attention[2].shape == (2, 16, 32)
    torch.testing.assert_close(both.attention[2], clip.project(clip.post_norm(raw.attention[2])))


def test_dinov2_attention_taps_equal_a_hand_computation(dinov2):
    images = _images(dinov2)
    mids = _dinov2_by_hand(dinov2, images)
    for vv_last in (0, 1):  # with vv_last=1, block 3 is V-V
        out = dinov2.forward_intermediates(images, [3], vv_last=vv_last, attention_taps=(2, 3))
        for block in (2, 3):
            assert out.attention[block].shape == (2, 16, 64)  # CLS and 4 registers removed
            torch.testing.assert_close(out.attention[block], mids[block][:, 5:], **TOL)


@pytest.mark.parametrize("grad", [False, True])
def test_block_halves_equal_the_block_exactly(clip, dinov2, grad):
    with torch.set_grad_enabled(grad):
        x = clip.visual.ln_pre(clip.embed_tokens(_images(clip)))
        for block in clip.visual.transformer.resblocks:
            expected = block(x)
            assert torch.equal(clip_halves(block, x)[1], expected)
            x = expected
        x = dinov2.embed_tokens(_images(dinov2))
        for block in dinov2.model.blocks:
            expected = block(x)
            assert torch.equal(dinov2_halves(block, x)[1], expected)
            x = expected


@pytest.mark.parametrize("vv_last", [0, 2])
def test_attention_taps_leave_every_other_output_unchanged(clip, vv_last):
    images = _images(clip)
    plain = clip.forward_intermediates(images, [1, 2, 4], vv_last=vv_last, norm=True)
    tapped = clip.forward_intermediates(images, [1, 2, 4], vv_last=vv_last, norm=True, attention_taps=(1, 2, 3, 4))
    assert plain.attention == {}
    for a, b in zip(plain.patches + plain.ordinary + [plain.cls, plain.final],
                    tapped.patches + tapped.ordinary + [tapped.cls, tapped.final]):
        assert torch.equal(a, b)


def test_attention_taps_outside_the_model_are_refused(clip, dinov2):
    for backbone in (clip, dinov2):
        with pytest.raises(ConfigError, match="attention_taps"):
            backbone.forward_intermediates(_images(backbone, 1), [1], attention_taps=(backbone.depth + 1,))


def test_cache_keys_include_the_attention_taps(tmp_path, clip):
    images = _images(clip)
    cache = FeatureCache(tmp_path)
    cached_taps(cache, clip, images, [4], vv_last=2)
    assert cache.misses == 2
    direct = clip.forward_intermediates(images, [4], vv_last=2, attention_taps=(2, 3))
    for _ in range(2):  # an entry written without attention taps is not served for a request with them
        got = cached_taps(cache, clip, images, [4], vv_last=2, attention_taps=(3, 2))
        assert sorted(got.attention) == [2, 3]
        for block in (2, 3):
            assert torch.equal(got.attention[block], direct.attention[block])
        assert torch.equal(got.patches[0], direct.patches[0]) and torch.equal(got.ordinary[0], direct.ordinary[0])
    assert (cache.misses, cache.hits) == (4, 2)
    assert cached_taps(cache, clip, images, [4], vv_last=2).attention == {}
    assert cache.hits == 4  # the entries without attention taps keep their keys
