"""``create_clip``'s loader options: the MLP activation of both towers and the positional-grid resize, as some
official loaders build their towers; the backbone's name records a choice other than the defaults."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from open_clip.transformer import QuickGELU

from zsadbench.backbones import create_clip


def activations(backbone) -> set[type]:
    return {type(m.mlp.gelu) for m in backbone.model.modules() if hasattr(getattr(m, "mlp", None), "gelu")}


def test_activation_replaces_every_mlp_activation_and_changes_the_output():
    quick = create_clip("zsad-tiny-14-336", "none")  # its config sets quick_gelu
    gelu = create_clip("zsad-tiny-14-336", "none", activation="gelu")
    assert activations(quick) == {QuickGELU} and activations(gelu) == {torch.nn.GELU}
    assert gelu.name == f"{quick.name} (gelu)"
    images = torch.rand(1, 3, 336, 336, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        assert not torch.allclose(quick.encode_image(images), gelu.encode_image(images))


def test_bicubic_positions_are_torch_antialiased_bicubic_of_the_grid():
    native = create_clip("zsad-tiny-14-336", "none")
    cubic = create_clip("zsad-tiny-14-336", "none", image_size=518, pos_interpolation="bicubic")
    linear = create_clip("zsad-tiny-14-336", "none", image_size=518)
    old = native.visual.positional_embedding.data
    grid = old[1:].reshape(1, 24, 24, -1).permute(0, 3, 1, 2)
    expected = F.interpolate(grid, size=(37, 37), mode="bicubic", antialias=True, align_corners=False)
    expected = torch.cat([old[:1], expected.permute(0, 2, 3, 1).reshape(37 * 37, -1)])
    assert torch.equal(cubic.visual.positional_embedding.data, expected)
    assert not torch.equal(cubic.visual.positional_embedding.data, linear.visual.positional_embedding.data)
    assert cubic.grid_size == (37, 37) and cubic.name.endswith("(bicubic positions)") and "(" not in linear.name
