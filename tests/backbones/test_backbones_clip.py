"""CLIP backbone: construction, geometry, positional-embedding resizing and the window API (tiny configs)."""
from __future__ import annotations

import numpy as np
import open_clip
import pytest
import torch

from zsadbench.backbones import create_clip
from zsadbench.backbones.pos_embed import interpolate_grid_pos_embed


@pytest.fixture(scope="module")
def tiny240():
    torch.manual_seed(0)
    return create_clip("zsad-tiny-16-240")


@pytest.fixture(scope="module")
def tiny518():
    torch.manual_seed(1)
    return create_clip("zsad-tiny-14-336", image_size=518)


def _images(backbone, n=2, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return backbone.normalize(torch.rand(n, 3, backbone.image_size, backbone.image_size, generator=gen))


def _bilinear_numpy(grid: np.ndarray, out_h: int, out_w: int) -> np.ndarray:
    """Bilinear resize with half-pixel centres and edge clamping, written out (the align_corners=False rule)."""
    in_h, in_w, _ = grid.shape

    def axis(out_n, in_n):
        src = (np.arange(out_n) + 0.5) * in_n / out_n - 0.5
        src = np.clip(src, 0, None)
        lo = np.minimum(np.floor(src).astype(int), in_n - 1)
        hi = np.minimum(lo + 1, in_n - 1)
        return lo, hi, src - lo

    y0, y1, wy = axis(out_h, in_h)
    x0, x1, wx = axis(out_w, in_w)
    top = grid[y0][:, x0] * (1 - wx)[None, :, None] + grid[y0][:, x1] * wx[None, :, None]
    bottom = grid[y1][:, x0] * (1 - wx)[None, :, None] + grid[y1][:, x1] * wx[None, :, None]
    return top * (1 - wy)[:, None, None] + bottom * wy[:, None, None]


def test_geometry_of_tiny_configs(tiny240, tiny518):
    assert (tiny240.image_size, tiny240.patch_size, tiny240.grid_size) == (240, 16, (15, 15))
    assert (tiny240.width, tiny240.embed_dim, tiny240.depth, tiny240.heads) == (64, 32, 3, 2)
    assert (tiny518.image_size, tiny518.patch_size, tiny518.grid_size) == (518, 14, (37, 37))
    assert tiny518.visual.positional_embedding.shape == (1 + 37 * 37, 64)
    assert tiny518.weights.random and tiny518.weights.sha256 is None and tiny518.weights.tag == "none"


def test_frozen_and_eval(tiny240):
    assert not tiny240.training and not tiny240.model.training
    assert all(not p.requires_grad for p in tiny240.parameters())


def test_quickgelu_follows_config(tiny240, tiny518):
    assert isinstance(tiny518.visual.transformer.resblocks[0].mlp.gelu, open_clip.transformer.QuickGELU)
    assert isinstance(tiny240.visual.transformer.resblocks[0].mlp.gelu, torch.nn.GELU)


def test_pos_embed_native_size_is_identity():
    pos = torch.randn(1 + 24 * 24, 8)
    assert torch.equal(interpolate_grid_pos_embed(pos, (24, 24), (24, 24)), pos)


def test_native_image_size_keeps_pos_embed():
    torch.manual_seed(3)
    a = create_clip("zsad-tiny-16-240")
    torch.manual_seed(3)
    b = create_clip("zsad-tiny-16-240", image_size=240)
    assert torch.equal(a.visual.positional_embedding, b.visual.positional_embedding)


def test_pos_embed_interpolation_matches_hand_bilinear():
    torch.manual_seed(4)
    native = create_clip("zsad-tiny-14-336")
    torch.manual_seed(4)
    big = create_clip("zsad-tiny-14-336", image_size=518)
    old = native.visual.positional_embedding.detach().numpy()
    new = big.visual.positional_embedding.detach().numpy()
    assert np.array_equal(new[0], old[0])  # CLS row untouched
    expected = _bilinear_numpy(old[1:].reshape(24, 24, -1).astype(np.float64), 37, 37).reshape(37 * 37, -1)
    np.testing.assert_allclose(new[1:], expected, rtol=0, atol=1e-5)


def test_bad_image_size_and_name():
    from zsadbench.errors import ConfigError

    with pytest.raises(ConfigError, match="multiple of the patch size 14"):
        create_clip("zsad-tiny-14-336", image_size=500)
    with pytest.raises(ConfigError, match="Did you mean"):
        create_clip("ViT-L-14-33")


def test_random_init_depends_on_the_name_only_and_leaves_the_global_generator_alone():
    torch.manual_seed(7)
    a = create_clip("zsad-tiny-16-240")
    after_a = torch.rand(3)
    torch.manual_seed(8)
    b = create_clip("zsad-tiny-16-240")
    torch.manual_seed(7)
    torch.rand(3)  # nothing else drew from the generator while ``a`` was built
    c = create_clip("zsad-tiny-14-336")
    assert torch.equal(a.visual.proj, b.visual.proj)
    torch.manual_seed(7)
    assert torch.equal(torch.rand(3), after_a)
    assert a.visual.proj.shape != c.visual.proj.shape or not torch.equal(a.visual.proj, c.visual.proj)


def test_normalize_uses_clip_statistics(tiny240):
    images = torch.rand(1, 3, 4, 4)
    mean = torch.tensor(open_clip.OPENAI_DATASET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(open_clip.OPENAI_DATASET_STD).view(1, 3, 1, 1)
    torch.testing.assert_close(tiny240.normalize(images), (images - mean) / std)


def test_encoders_match_open_clip(tiny518):
    images = _images(tiny518)
    reference = tiny518.model.visual(images)  # open_clip's own forward at the new grid
    torch.testing.assert_close(tiny518.encode_image(images), reference)
    tokens = tiny518.tokenize(["a photo of a flawless bottle.", "damaged object"])
    assert tokens.shape == (2, 77) and tokens.dtype == torch.long
    assert tiny518.encode_text(tokens).shape == (2, 32)


def test_full_window_equals_encode_image(tiny240):
    images = _images(tiny240)
    out = tiny240.forward_from_tokens(tiny240.embed_tokens(images))
    torch.testing.assert_close(out["cls"], tiny240.encode_image(images), rtol=1e-5, atol=1e-5)
    assert out["patches"].shape == (2, 225, 32)


def test_window_subset_runs_on_selected_tokens(tiny240):
    images = _images(tiny240, n=1)
    tokens = tiny240.embed_tokens(images)
    keep = torch.tensor([0, 1, 2, 16, 17])  # CLS and a 2x2 window at the top-left corner
    out = tiny240.forward_from_tokens(tokens[:, keep])
    visual = tiny240.visual
    x = visual.ln_pre(tokens[:, keep])
    for block in visual.transformer.resblocks:
        h = block.ln_1(x)
        x = x + block.attn(h, h, h, need_weights=False)[0]
        x = x + block.mlp(block.ln_2(x))
    expected = visual.ln_post(x[:, 0]) @ visual.proj
    torch.testing.assert_close(out["cls"], expected, rtol=1e-5, atol=1e-5)
    assert out["patches"].shape == (1, 4, 32)


def test_embed_tokens_layout(tiny240):
    images = _images(tiny240, n=1)
    tokens = tiny240.embed_tokens(images)
    visual = tiny240.visual
    conv = torch.nn.functional.conv2d(images, visual.conv1.weight, stride=16)  # [1, 64, 15, 15]
    patch_row_col = conv[0, :, 1, 2] + visual.positional_embedding[1 + 1 * 15 + 2]
    torch.testing.assert_close(tokens[0, 1 + 1 * 15 + 2], patch_row_col)
    torch.testing.assert_close(tokens[0, 0], visual.class_embedding + visual.positional_embedding[0])


def test_create_backbone_dispatches_on_name():
    from zsadbench.backbones import ClipBackbone, Dinov2Backbone, create_backbone

    torch.manual_seed(0)
    assert isinstance(create_backbone("zsad-tiny-16-240"), ClipBackbone)
    dino = create_backbone("zsad-tiny-dinov2", image_size=224)
    assert isinstance(dino, Dinov2Backbone) and dino.grid_size == (16, 16)
