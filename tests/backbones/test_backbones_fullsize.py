"""Slow checks: the real architectures at full size (random weights) run one forward pass at the methods'
sizes, and torch.compile gives the eager results."""
from __future__ import annotations

import open_clip
import pytest
import torch

from zsadbench.backbones import create_clip
from zsadbench.backbones.dinov2 import create_dinov2

pytestmark = pytest.mark.slow


@torch.no_grad()
def test_vit_l_14_336_quickgelu_at_518():
    torch.manual_seed(0)
    backbone = create_clip("ViT-L-14-336-quickgelu", image_size=518)
    assert (backbone.width, backbone.embed_dim, backbone.depth, backbone.heads) == (1024, 768, 24, 16)
    assert backbone.grid_size == (37, 37) and backbone.visual.positional_embedding.shape == (1370, 1024)
    assert isinstance(backbone.visual.transformer.resblocks[0].mlp.gelu, open_clip.transformer.QuickGELU)
    images = backbone.normalize(torch.rand(1, 3, 518, 518, generator=torch.Generator().manual_seed(0)))
    out = backbone.forward_intermediates(images, [6, 12, 18, 24], vv_last=19, norm=True, project=True)
    assert [p.shape for p in out.patches] == [(1, 1369, 768)] * 4
    assert out.cls.shape == (1, 768) and torch.isfinite(out.patches[-1]).all()
    plain_cls = backbone.project(backbone.post_norm(out.final[:, 0]))
    torch.testing.assert_close(out.cls, plain_cls)


@torch.no_grad()
def test_vit_b_16_plus_240_at_native_size():
    torch.manual_seed(0)
    backbone = create_clip("ViT-B-16-plus-240", image_size=240)
    assert (backbone.width, backbone.embed_dim, backbone.depth, backbone.grid_size) == (896, 640, 12, (15, 15))
    assert isinstance(backbone.visual.transformer.resblocks[0].mlp.gelu, torch.nn.GELU)
    images = backbone.normalize(torch.rand(1, 3, 240, 240, generator=torch.Generator().manual_seed(0)))
    window = backbone.forward_from_tokens(backbone.embed_tokens(images))
    torch.testing.assert_close(window["cls"], backbone.encode_image(images), rtol=1e-4, atol=1e-4)
    out = backbone.forward_intermediates(images, [3, 8], vv_last=12, norm=True)
    assert [p.shape for p in out.patches] == [(1, 225, 896)] * 2
    text = backbone.encode_text(backbone.tokenize(["a photo of a damaged bottle."]))
    assert text.shape == (1, 640)


@torch.no_grad()
def test_dinov2_small_reg4_at_518():
    torch.manual_seed(0)
    backbone = create_dinov2("vit_small_patch14_reg4_dinov2", image_size=518)
    images = backbone.normalize(torch.rand(1, 3, 518, 518, generator=torch.Generator().manual_seed(0)))
    out = backbone.forward_intermediates(images, 4, norm=True)
    assert [p.shape for p in out.patches] == [(1, 1369, 384)] * 4 and out.num_prefix == 5


@torch.no_grad()
def test_compiled_blocks_match_eager():
    from zsadbench.backbones import prepare_for_inference

    torch.manual_seed(0)
    eager = create_clip("zsad-tiny-16-240")
    torch.manual_seed(0)
    compiled = prepare_for_inference(create_clip("zsad-tiny-16-240"), compile_blocks=True)
    assert list(compiled.state_dict()) == list(eager.state_dict())  # compiling in place keeps the names
    images = eager.normalize(torch.rand(2, 3, 240, 240, generator=torch.Generator().manual_seed(0)))
    a = eager.forward_intermediates(images, [2, 3], norm=True)
    b = compiled.forward_intermediates(images, [2, 3], norm=True)
    for x, y in zip(a.patches, b.patches):
        torch.testing.assert_close(x, y, rtol=1e-4, atol=1e-5)
