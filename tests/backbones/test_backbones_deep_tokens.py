"""CLIP deep visual prompts (``forward_intermediates(deep_tokens=...)``) against a plain re-statement of the tower."""
from __future__ import annotations

import pytest
import torch

from zsadbench.backbones import create_clip
from zsadbench.errors import ConfigError


@pytest.fixture(scope="module")
def tiny():
    return create_clip("zsad-tiny-14-336", image_size=112)  # 8x8 grid, 4 blocks, width 64


@pytest.fixture(scope="module")
def images(tiny):
    return tiny.normalize(torch.rand(2, 3, 112, 112, generator=torch.Generator().manual_seed(3)))


def _plain_block(block, x):
    h = block.ln_1(x)
    x = x + block.attn(h, h, h, need_weights=False)[0]
    return x + block.mlp(block.ln_2(x))


def _prompts(count: int, tokens: int, batch: int | None = None, seed: int = 0) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    shape = (tokens, 64) if batch is None else (batch, tokens, 64)
    return [torch.randn(*shape, generator=gen) * 0.5 for _ in range(count)]


def _appended_by_hand(tiny, images, prompts):
    """The tower with the prompts *after* the patches (the official AdaCLIP layout), replaced before each of the
    first ``len(prompts)`` blocks: returns the outputs of every block, prompts stripped, and the final prompts."""
    visual = tiny.visual
    x = visual.ln_pre(tiny.embed_tokens(images))
    n = x.shape[1]
    outputs = []
    for i, block in enumerate(visual.transformer.resblocks):
        if i < len(prompts):
            p = prompts[i] if prompts[i].ndim == 3 else prompts[i].expand(x.shape[0], -1, -1)
            x = torch.cat([x[:, :n], p], dim=1)
        x = _plain_block(block, x)
        outputs.append(x[:, :n])
    return outputs, x[:, n:]


def test_deep_tokens_equal_appended_prompts_replaced_per_block(tiny, images):
    prompts = _prompts(3, 2)
    out = tiny.forward_intermediates(images, [1, 2, 3, 4], deep_tokens=prompts)
    expected, final_prompts = _appended_by_hand(tiny, images, prompts)
    for got, block_out in zip(out.patches, expected):
        torch.testing.assert_close(got, block_out[:, 1:], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out.cls, expected[-1][:, 0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out.extra, final_prompts, rtol=1e-5, atol=1e-5)
    assert out.num_prefix == 3 and out.final.shape == (2, 2 + 1 + 64, 64)


def test_a_blocks_prompts_change_only_that_block_and_later(tiny, images):
    prompts = _prompts(3, 2)
    base = tiny.forward_intermediates(images, [1, 2, 3, 4], deep_tokens=prompts)
    changed = list(prompts)
    changed[2] = changed[2] + 1.0  # the prompts entering block 3
    moved = tiny.forward_intermediates(images, [1, 2, 3, 4], deep_tokens=changed)
    assert torch.equal(base.patches[0], moved.patches[0]) and torch.equal(base.patches[1], moved.patches[1])
    assert not torch.allclose(base.patches[2], moved.patches[2])
    assert not torch.allclose(base.patches[3], moved.patches[3])


def test_prompts_of_the_first_block_alone_stay_through_the_tower(tiny, images):
    prompts = _prompts(1, 3)
    out = tiny.forward_intermediates(images, [4], deep_tokens=prompts)
    expected, final_prompts = _appended_by_hand(tiny, images, prompts)
    torch.testing.assert_close(out.patches[0], expected[-1][:, 1:], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out.extra, final_prompts, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(out.patches[0], tiny.forward_intermediates(images, [4]).patches[0])


def test_per_image_prompts_equal_running_each_image_alone(tiny, images):
    prompts = _prompts(2, 2, batch=2, seed=4)
    both = tiny.forward_intermediates(images, [4], deep_tokens=prompts)
    for b in range(2):
        alone = tiny.forward_intermediates(images[b:b + 1], [4], deep_tokens=[p[b] for p in prompts])
        torch.testing.assert_close(both.patches[0][b:b + 1], alone.patches[0], rtol=1e-5, atol=1e-5)


def test_deep_tokens_receive_gradients_and_the_tower_none(tiny, images):
    prompts = [torch.nn.Parameter(p) for p in _prompts(2, 2)]
    out = tiny.forward_intermediates(images[:1], [4], deep_tokens=prompts)
    target = torch.randn(out.patches[0].shape, generator=torch.Generator().manual_seed(0))
    (tiny.post_norm(out.patches[0]) * target).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in prompts)
    assert all(p.grad is None for p in tiny.parameters())


def test_deep_tokens_with_the_vv_path_strip_the_prompts(tiny, images):
    prompts = _prompts(2, 2)
    out = tiny.forward_intermediates(images, [4], vv_last=2, deep_tokens=prompts)
    assert out.patches[0].shape == (2, 64, 64) and out.extra.shape == (2, 2, 64)


def test_bad_deep_tokens_are_refused(tiny, images):
    with pytest.raises(ConfigError, match="at most 4"):
        tiny.forward_intermediates(images, [4], deep_tokens=_prompts(5, 2))
    with pytest.raises(ConfigError, match="one T"):
        tiny.forward_intermediates(images, [4], deep_tokens=[torch.zeros(2, 64), torch.zeros(3, 64)])
    with pytest.raises(ConfigError, match="one T"):
        tiny.forward_intermediates(images, [4], deep_tokens=[torch.zeros(2, 32)])
    with pytest.raises(ConfigError, match="not both"):
        tiny.forward_intermediates(images, [4], deep_tokens=_prompts(1, 2), extra_tokens=torch.zeros(1, 64))
