"""CLIP taps: layer selection, V-V attention, extra tokens, against direct re-computations (tiny configs)."""
from __future__ import annotations

import pytest
import torch

from zsadbench.backbones import create_clip
from zsadbench.backbones.taps import take_indices
from zsadbench.errors import ConfigError


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return create_clip("zsad-tiny-14-336", image_size=252)  # a resized grid (18x18) keeps it fast


@pytest.fixture(scope="module")
def images(tiny):
    gen = torch.Generator().manual_seed(5)
    return tiny.normalize(torch.rand(2, 3, 252, 252, generator=gen))


def _plain_block(block, x):
    h = block.ln_1(x)
    x = x + block.attn(h, h, h, need_weights=False)[0]
    return x + block.mlp(block.ln_2(x))


def _vv_by_hand(block, h):
    """softmax(v vᵀ / sqrt(d)) v per head, written with explicit loops over heads, then out_proj."""
    attn = block.attn
    width = h.shape[-1]
    heads = attn.num_heads
    dim = width // heads
    v = h @ attn.in_proj_weight[2 * width :].T + attn.in_proj_bias[2 * width :]
    outs = []
    for head in range(heads):
        vh = v[..., head * dim : (head + 1) * dim]
        weights = torch.softmax(vh @ vh.transpose(-1, -2) / dim**0.5, dim=-1)
        outs.append(weights @ vh)
    return attn.out_proj(torch.cat(outs, dim=-1))


def test_take_indices():
    assert take_indices(24, [24, 6, 18, 12]) == [5, 11, 17, 23]
    assert take_indices(12, 3) == [9, 10, 11]
    for bad in ([0], [25], 0, 25, []):
        with pytest.raises(ConfigError):
            take_indices(24, bad)


def test_plain_taps_match_open_clip(tiny, images):
    ours = tiny.forward_intermediates(images, [1, 2, 4], norm=True)
    ref = tiny.visual.forward_intermediates(images, indices=[0, 1, 3], normalize_intermediates=True, output_fmt="NLC")
    assert ours.indices == (1, 2, 4)
    for mine, theirs in zip(ours.patches, ref["image_intermediates"]):
        assert mine.shape == (2, 18 * 18, 64)
        torch.testing.assert_close(mine, theirs)
    final = tiny.forward_intermediates(images, 1, norm=True, project=True)
    torch.testing.assert_close(final.cls, tiny.encode_image(images), rtol=1e-5, atol=1e-5)


def test_documented_shapes(tiny, images):
    out = tiny.forward_intermediates(images, 2, project=True, norm=True, extra_tokens=torch.randn(3, 64))
    assert [p.shape for p in out.patches] == [(2, 324, 32)] * 2
    assert out.cls.shape == (2, 32) and out.extra.shape == (2, 3, 32)
    assert out.final.shape == (2, 3 + 1 + 324, 64) and out.num_prefix == 4
    raw = tiny.forward_intermediates(images, [3])
    assert raw.patches[0].shape == (2, 324, 64) and raw.cls.shape == (2, 64) and raw.extra is None
    torch.testing.assert_close(raw.cls, raw.final[:, 0])


def test_vv_attention_equals_direct_recomputation(tiny, images):
    vv_last = 2
    out = tiny.forward_intermediates(images, [2, 3, 4], vv_last=vv_last)
    visual = tiny.visual
    blocks = visual.transformer.resblocks
    x = visual.ln_pre(tiny.embed_tokens(images))
    ordinary = []
    for block in blocks:
        ordinary.append(x)
        x = _plain_block(block, x)
    # the V-V stream starts from the input of block 3 and adds VV(ln_1(ordinary input)) of blocks 3 and 4
    x_vv3 = ordinary[2] + _vv_by_hand(blocks[2], blocks[2].ln_1(ordinary[2]))
    x_vv4 = x_vv3 + _vv_by_hand(blocks[3], blocks[3].ln_1(ordinary[3]))
    torch.testing.assert_close(out.patches[0], ordinary[2][:, 1:], rtol=1e-5, atol=1e-5)  # block 2: ordinary
    torch.testing.assert_close(out.patches[1], x_vv3[:, 1:], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out.patches[2], x_vv4[:, 1:], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out.cls, x[:, 0], rtol=1e-5, atol=1e-5)  # CLS from the ordinary stream
    torch.testing.assert_close(out.final, x, rtol=1e-5, atol=1e-5)
    # the ordinary stream at the same taps: the output of blocks 2, 3 and 4
    for got, expected in zip(out.ordinary, [ordinary[2], ordinary[3], x]):
        torch.testing.assert_close(got, expected[:, 1:], rtol=1e-5, atol=1e-5)



def test_final_patches_false_skips_only_what_no_output_reads(tiny, images):
    torch.manual_seed(3)
    extra = torch.randn(2, 64) * 0.1
    whole = tiny.forward_intermediates(images, [2, 3, 4], vv_last=2, extra_tokens=extra)
    trimmed = tiny.forward_intermediates(images, [2, 3, 4], vv_last=2, extra_tokens=extra, final_patches=False)
    # the V-V taps come from values the last block computes for every token either way: the same bits
    assert all(torch.equal(a, b) for a, b in zip(whole.patches, trimmed.patches))
    # CLS and the extra tokens: the same sums, only their matrix products run on fewer rows
    torch.testing.assert_close(trimmed.cls, whole.cls, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(trimmed.extra, whole.extra, rtol=1e-5, atol=1e-6)
    assert trimmed.final.shape == (2, 3, 64) and trimmed.num_prefix == 3
    torch.testing.assert_close(trimmed.final, whole.final[:, :3], rtol=1e-5, atol=1e-6)
    assert trimmed.ordinary == []
    # an image's CLS is the same bits whatever else its batch holds
    alone = [tiny.forward_intermediates(images[i : i + 1], [2, 3, 4], vv_last=2, extra_tokens=extra,
                                        final_patches=False) for i in range(len(images))]
    assert torch.equal(torch.cat([a.cls for a in alone]), trimmed.cls)
    assert torch.equal(torch.cat([a.extra for a in alone]), trimmed.extra)
    with pytest.raises(ConfigError, match="vv_last"):
        tiny.forward_intermediates(images, [4], final_patches=False)
    with pytest.raises(ConfigError, match="attention_taps"):
        tiny.forward_intermediates(images, [4], vv_last=1, attention_taps=(4,), final_patches=False)
    inside = tiny.forward_intermediates(images, [4], vv_last=1, attention_taps=(3,), final_patches=False)
    torch.testing.assert_close(inside.attention[3],
                               tiny.forward_intermediates(images, [4], vv_last=1, attention_taps=(3,)).attention[3])

def test_vv_off_equals_plain(tiny, images):
    plain = tiny.forward_intermediates(images, [4])
    also_plain = tiny.forward_intermediates(images, [4], vv_last=0)
    assert torch.equal(plain.patches[0], also_plain.patches[0])
    assert plain.ordinary is plain.patches
    vv = tiny.forward_intermediates(images, [4], vv_last=1)
    assert not torch.allclose(vv.patches[0], plain.patches[0])
    with pytest.raises(ConfigError, match="vv_last"):
        tiny.forward_intermediates(images, [4], vv_last=5)


def test_extra_tokens_enter_before_cls(tiny, images):
    torch.manual_seed(2)
    extra = torch.randn(2, 64) * 0.1
    out = tiny.forward_intermediates(images, [4], extra_tokens=extra)
    visual = tiny.visual
    pos_cls = visual.positional_embedding[0]
    base = tiny.embed_tokens(images)
    seq = torch.cat([(extra + pos_cls).expand(2, -1, -1), base], dim=1)
    x = visual.ln_pre(seq)
    for block in visual.transformer.resblocks:
        x = _plain_block(block, x)
    torch.testing.assert_close(out.extra, x[:, :2], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out.cls, x[:, 2], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out.patches[0], x[:, 3:], rtol=1e-5, atol=1e-5)
    # the inserted tokens attend with the rest: the patch features change
    assert not torch.allclose(out.patches[0], tiny.forward_intermediates(images, [4]).patches[0])


def test_extra_tokens_receive_gradients(tiny, images):
    extra = torch.nn.Parameter(torch.randn(2, 64) * 0.01)
    ln_post = torch.nn.LayerNorm(64)
    out = tiny.forward_intermediates(images[:1], [4], extra_tokens=extra)
    target = torch.randn(out.extra.shape, generator=torch.Generator().manual_seed(0))
    (ln_post(out.extra) * target).sum().backward()  # a plain sum of a LayerNorm output has zero gradient
    assert extra.grad is not None and extra.grad.abs().sum() > 0
    assert all(p.grad is None for p in tiny.parameters())


def test_post_norm_and_project_compose(tiny, images):
    raw = tiny.forward_intermediates(images, [4])
    both = tiny.forward_intermediates(images, [4], norm=True, project=True)
    torch.testing.assert_close(both.patches[0], tiny.project(tiny.post_norm(raw.patches[0])))
    proj_only = tiny.forward_intermediates(images, [4], project=True)
    torch.testing.assert_close(proj_only.cls, raw.cls @ tiny.visual.proj)
