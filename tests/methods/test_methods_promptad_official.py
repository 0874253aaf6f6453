"""PromptAD read as the official code reads it: the visual memory (block L's output plus block L+1's attention
residual) and the image score at the official 400 px resolution, against hand computations on a tiny CLIP."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from zsadbench.backbones import cached_taps
from zsadbench.errors import ConfigError
from zsadbench.method import FitData
from zsadbench.methods.finegrainedad.config import FineGrainedADConfig
from zsadbench.methods.finegrainedad.method import FineGrainedAD
from zsadbench.methods.promptad.config import PromptADConfig
from zsadbench.methods.promptad.features import extract
from zsadbench.methods.promptad.method import PromptAD
from zsadbench.methods.promptad.model import Scores, fuse
from zsadbench.methods.promptad.scoring import harmonic
from zsadbench.types import Batch

from promptad_helpers import TINY

SIZE = 64  # a 4x4 grid of the 3-block tiny CLIP


def _method(**kw) -> PromptAD:
    settings = dict(backbone=TINY, image_size=SIZE, memory_layers=(1, 2), map_size=SIZE, epochs_seg=1, epochs_cls=1)
    config = PromptADConfig(**{**settings, **kw})
    return PromptAD(config, pretrained="none").setup()


def _images(n: int, seed: int) -> torch.Tensor:
    return torch.rand(n, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))


def _attention_by_hand(block, x):
    """``ls_1`` of multi-head softmax(q kᵀ / sqrt(d)) v of ``ln_1(x)``, per-head loops, then ``out_proj``."""
    attn = block.attn
    h = block.ln_1(x)
    width = h.shape[-1]
    heads = attn.num_heads
    dim = width // heads
    w, b = attn.in_proj_weight, attn.in_proj_bias
    q, k, v = (h @ w[j * width : (j + 1) * width].T + b[j * width : (j + 1) * width] for j in range(3))
    outs = []
    for head in range(heads):
        part = slice(head * dim, (head + 1) * dim)
        outs.append(torch.softmax(q[..., part] @ k[..., part].transpose(-1, -2) / dim**0.5, dim=-1) @ v[..., part])
    return block.ls_1(attn.out_proj(torch.cat(outs, dim=-1)))


def _official_memory_by_hand(backbone, images, layers):
    """Block L's ordinary-stream output plus block L+1's attention residual, patch tokens, L2-normalised."""
    visual = backbone.visual
    x = visual.ln_pre(backbone.embed_tokens(backbone.normalize(images)))
    outputs = []
    for block in visual.transformer.resblocks:
        x = block(x)  # the V-V path leaves the ordinary stream as it is
        outputs.append(x)
    blocks = visual.transformer.resblocks
    memory = [outputs[layer - 1] + _attention_by_hand(blocks[layer], outputs[layer - 1]) for layer in layers]
    return [F.normalize(m[:, 1:], dim=-1) for m in memory]


def _bilinear_by_hand(grid: np.ndarray, size: int) -> np.ndarray:
    """``align_corners=False`` bilinear upsampling of one ``[h, w]`` map to ``[size, size]``, written out."""
    def weights(n_in: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        src = np.maximum((np.arange(size) + 0.5) * n_in / size - 0.5, 0.0)
        low = np.floor(src).astype(int)
        return low, np.minimum(low + 1, n_in - 1), src - low

    (r0, r1, wr), (c0, c1, wc) = weights(grid.shape[0]), weights(grid.shape[1])
    rows = grid[r0] * (1 - wr)[:, None] + grid[r1] * wr[:, None]
    return rows[:, c0] * (1 - wc)[None] + rows[:, c1] * wc[None]


# -- (c) the memory -------------------------------------------------------------------------------------------
def test_official_memory_is_block_output_plus_next_attention_residual():
    method = _method()
    images = _images(2, 0)
    got = method._features(images, None).memory
    expected = _official_memory_by_hand(method.backbone_, images, (1, 2))
    for mine, theirs in zip(got, expected):
        assert mine.shape == (2, 16, 64)
        torch.testing.assert_close(mine, theirs, rtol=1e-5, atol=1e-5)


def test_block_memory_is_the_previous_tap_and_the_rest_does_not_change():
    method = _method(memory_tap="block")
    backbone, images = method.backbone_, _images(2, 1)
    block = method._features(images, None)
    old = cached_taps(None, backbone, backbone.normalize(images), [1, 2, 3], vv_last=3)
    for mine, layer in zip(block.memory, (1, 2)):
        assert torch.equal(mine, F.normalize(old.ordinary[layer - 1].float(), dim=-1))
    official = extract(backbone, images, (1, 2))
    assert torch.equal(official.patches, block.patches) and torch.equal(official.cls, block.cls)
    assert not torch.allclose(official.memory[0], block.memory[0])


# -- (d) the image score ----------------------------------------------------------------------------------------
def test_image_score_is_the_max_of_the_upsampled_memory_map():
    gen = torch.Generator().manual_seed(2)
    visual = torch.rand(3, 16, generator=gen)
    scores = Scores(text=torch.rand(3, 16, generator=gen), visual=visual, image_text=torch.rand(3, generator=gen) + 0.1)
    peak = [_bilinear_by_hand(v.reshape(4, 4).double().numpy(), 400).max() for v in visual]
    expected = harmonic(torch.tensor(peak, dtype=torch.float32), scores.image_text)
    image, _ = fuse(scores, (4, 4), 64, 4.0, 400)
    torch.testing.assert_close(image, expected)
    assert torch.equal(fuse(scores, (4, 4), 64, 0.0, 400)[0], image)  # taken before any smoothing
    grid, _ = fuse(scores, (4, 4), 64, 4.0, 0)
    torch.testing.assert_close(grid, harmonic(visual.amax(dim=1), scores.image_text))
    assert (image <= grid).all() and (image < grid).any()  # bilinear peaks never exceed the grid's


@pytest.mark.parametrize("size", [400, 0])
def test_predict_uses_the_image_score_size(size):
    torch.manual_seed(0)
    method = _method(image_score_size=size)
    shots = _images(1, 3)
    method.fit(FitData("support", lambda **_: iter([Batch(image=shots, category="object")]), 1, "synthetic",
                       "object", 1, 0))
    batch = Batch(image=_images(2, 4), category="object")
    pred = method.predict(batch)
    scores = method.head_.scores(method._features(batch.image, None))
    if size:
        peak = torch.tensor([_bilinear_by_hand(v.reshape(4, 4).double().numpy(), size).max() for v in scores.visual])
    else:
        peak = scores.visual.amax(dim=1).double()
    torch.testing.assert_close(pred.pred_score, harmonic(peak.float(), scores.image_text).float(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("cls", [PromptAD, FineGrainedAD])
def test_bgr_test_order_scores_the_channel_swapped_images(cls):
    """``test_colour_order="bgr"`` is the official test loop's order: the same as RGB scoring of the images with
    their red and blue channels swapped, and different from RGB scoring of the images themselves."""
    shots, queries = _images(1, 3), _images(2, 4)
    predictions = {}
    for order in ("rgb", "bgr"):
        torch.manual_seed(0)
        if cls is PromptAD:
            method = _method(test_colour_order=order)
        else:
            config = FineGrainedADConfig(backbone=TINY, image_size=SIZE, memory_layers=(1, 2), map_size=SIZE,
                                         epochs_seg=1, epochs_cls=1, cluster_size=2 * SIZE, query_heads=2,
                                         test_colour_order=order)
            method = FineGrainedAD(config, pretrained="none").setup()
        method.fit(FitData("support", lambda **_: iter([Batch(image=shots, category="nut")]), 1, "synthetic",
                           "nut", 1, 0))
        predictions[order] = method.predict(Batch(image=queries, category="nut"))
        if order == "rgb":
            swapped = method.predict(Batch(image=queries[:, [2, 1, 0]], category="nut"))
    assert torch.equal(predictions["bgr"].anomaly_map, swapped.anomaly_map)
    assert torch.equal(predictions["bgr"].pred_score, swapped.pred_score)
    assert not torch.equal(predictions["bgr"].anomaly_map, predictions["rgb"].anomaly_map)


# -- (e) the configuration ----------------------------------------------------------------------------------------
def test_official_tap_refuses_the_last_block_and_names_the_fix():
    with pytest.raises(ConfigError, match=r"PromptADConfig\.memory_layers \[1, 3\].*memory_tap='block'"):
        _method(memory_layers=(1, 3))
    assert _method(memory_layers=(1, 3), memory_tap="block").backbone_.depth == 3
    with pytest.raises(ConfigError, match="memory_tap='official'"):
        extract(_method(memory_tap="block").backbone_, _images(1, 5), (3,))


def test_settings_are_validated_and_inherited():
    with pytest.raises(ConfigError, match="PromptADConfig.memory_tap"):
        PromptADConfig(memory_tap="inside")
    with pytest.raises(ConfigError, match="PromptADConfig.image_score_size"):
        PromptADConfig(image_score_size=-1)
    defaults = PromptADConfig()
    assert (defaults.memory_tap, defaults.image_score_size) == ("official", 400)
    fine = FineGrainedADConfig()
    assert (fine.memory_tap, fine.image_score_size) == ("official", 400)
