"""DINOv2 through timm: the shared tap contract, registers, V-V path and extra tokens (tiny configs)."""
from __future__ import annotations

import pytest
import torch
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

from zsadbench.backbones.dinov2 import create_dinov2
from zsadbench.errors import ConfigError


@pytest.fixture(scope="module")
def plain():
    torch.manual_seed(0)
    return create_dinov2("zsad-tiny-dinov2", image_size=224)


@pytest.fixture(scope="module")
def reg4():
    torch.manual_seed(1)
    return create_dinov2("zsad-tiny-dinov2-reg4", image_size=224)


def _images(backbone, n=2):
    gen = torch.Generator().manual_seed(3)
    return backbone.normalize(torch.rand(n, 3, backbone.image_size, backbone.image_size, generator=gen))


def test_geometry_and_statistics(plain, reg4):
    assert (plain.image_size, plain.patch_size, plain.grid_size) == (224, 14, (16, 16))
    assert (plain.width, plain.depth, plain.heads, plain.num_registers) == (64, 3, 2, 0)
    assert reg4.num_registers == 4
    assert plain.mean == tuple(IMAGENET_DEFAULT_MEAN) and plain.std == tuple(IMAGENET_DEFAULT_STD)
    assert all(not p.requires_grad for p in plain.parameters()) and not plain.training
    assert create_dinov2("zsad-tiny-dinov2").grid_size == (37, 37)  # DINOv2's native 518 px


@pytest.mark.parametrize("which", ["plain", "reg4"])
def test_taps_match_timm_and_drop_registers(which, request):
    backbone = request.getfixturevalue(which)
    images = _images(backbone)
    ours = backbone.forward_intermediates(images, [1, 3], norm=True)
    ref = backbone.model.forward_intermediates(images, indices=[0, 2], norm=True, output_fmt="NLC", intermediates_only=True)
    for mine, theirs in zip(ours.patches, ref):
        assert mine.shape == (2, 256, 64)
        torch.testing.assert_close(mine, theirs)
    features = backbone.model.forward_features(images)  # timm's final normed sequence
    torch.testing.assert_close(ours.cls, features[:, 0])
    assert ours.num_prefix == 1 + backbone.num_registers
    assert ours.final.shape == (2, 1 + backbone.num_registers + 256, 64)


def test_vv_path_matches_direct_recomputation(plain):
    images = _images(plain, n=1)
    out = plain.forward_intermediates(images, [3], vv_last=1)
    model = plain.model
    x = plain.embed_tokens(images)
    for block in model.blocks[:2]:
        x = block(x)
    block = model.blocks[2]
    h = block.norm1(x)
    width, heads = 64, 2
    dim = width // heads
    v = h @ block.attn.qkv.weight[2 * width :].T + block.attn.qkv.bias[2 * width :]
    merged = torch.cat(
        [torch.softmax(v[..., k * dim : (k + 1) * dim] @ v[..., k * dim : (k + 1) * dim].transpose(-1, -2) / dim**0.5, -1)
         @ v[..., k * dim : (k + 1) * dim] for k in range(heads)],
        dim=-1,
    )
    expected = x + block.ls1.gamma * block.attn.proj(merged)
    torch.testing.assert_close(out.patches[0], expected[:, 1:], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out.cls, block(x)[:, 0], rtol=1e-5, atol=1e-6)


def test_extra_tokens_positions(plain, reg4):
    torch.manual_seed(4)
    extra = torch.randn(2, 64)
    for backbone in (plain, reg4):
        images = _images(backbone, n=1)
        seq = backbone.embed_tokens(images, extra)
        base = backbone.embed_tokens(images)
        pos_cls = 0 if backbone.model.no_embed_class else backbone.model.pos_embed[0, 0]
        torch.testing.assert_close(seq[0, :2], extra + pos_cls)
        assert torch.equal(seq[:, 2:], base)
        out = backbone.forward_intermediates(images, 1, extra_tokens=extra)
        assert out.extra.shape == (1, 2, 64) and out.patches[0].shape == (1, 256, 64)
        torch.testing.assert_close(out.cls, out.final[:, 2])


def test_errors(plain):
    with pytest.raises(ConfigError, match="no projection"):
        plain.forward_intermediates(_images(plain, n=1), 1, project=True)
    with pytest.raises(ConfigError, match="Did you mean"):
        create_dinov2("vit_small_patch14_dinov3")
    with pytest.raises(ConfigError, match="multiple of the patch size 14"):
        create_dinov2("zsad-tiny-dinov2", image_size=500)
    with pytest.raises(ConfigError, match="built for 224 px"):
        plain.forward_intermediates(torch.zeros(1, 3, 518, 518), 1)
