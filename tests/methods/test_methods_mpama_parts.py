"""MPA/MPAMA equation by equation on crafted inputs: pooling, prompt assembly, bridge, routing, losses, config."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from zsadbench.backbones import create_clip, PromptTextEncoder
from zsadbench.errors import ConfigError
from zsadbench.methods.mpama.config import MPAConfig, MPAMAConfig, PromptLayout
from zsadbench.methods.mpama.losses import hinge_loss, level_losses, local_loss
from zsadbench.methods.mpama.moe import MoEProjection, expert_kinds
from zsadbench.methods.mpama.pooling import pad_sizes, perception_pool
from zsadbench.methods.mpama.prompts import Bridge, MultiPerceptionPrompts


# -- AGG_p ----------------------------------------------------------------------------------------
def loop_pool(grid: torch.Tensor, p: int, padding: str) -> torch.Tensor:
    """Window i-(p-1)//2 .. i+p//2 on each axis, by explicit loops: the definition in the README."""
    h, w = grid.shape
    out = torch.empty(h, w)
    for i in range(h):
        for j in range(w):
            rows = range(i - (p - 1) // 2, i + p // 2 + 1)
            cols = range(j - (p - 1) // 2, j + p // 2 + 1)
            values = []
            for r in rows:
                for c in cols:
                    inside = 0 <= r < h and 0 <= c < w
                    if padding == "replicate":
                        values.append(grid[min(max(r, 0), h - 1), min(max(c, 0), w - 1)])
                    elif inside or padding == "zero":
                        values.append(grid[r, c] if inside else torch.tensor(0.0))
            out[i, j] = torch.stack(values).mean()
    return out


@pytest.mark.parametrize("padding", ["valid", "replicate", "zero"])
@pytest.mark.parametrize("p", [1, 2, 3, 4, 5])
def test_pooling_matches_the_window_definition(p, padding):
    grid = torch.arange(20.0).reshape(4, 5) ** 1.5
    tokens = torch.stack([grid.reshape(-1), -grid.reshape(-1)], dim=-1).unsqueeze(0)  # [1, 20, 2]
    pooled = perception_pool(tokens, (4, 5), p, padding)
    assert pooled.shape == tokens.shape
    torch.testing.assert_close(pooled[0, :, 0].reshape(4, 5), loop_pool(grid, p, padding))
    torch.testing.assert_close(pooled[0, :, 1], -pooled[0, :, 0])


def test_pooling_by_hand_for_p2_valid_and_the_padding_of_even_sizes():
    grid = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    tokens = grid.reshape(1, 4, 1)
    assert pad_sizes(2) == (0, 1) and pad_sizes(3) == (1, 1) and pad_sizes(4) == (1, 2)
    pooled = perception_pool(tokens, (2, 2), 2, "valid")[0, :, 0]
    # token (0,0) averages the whole 2x2; (0,1) its column pair; (1,1) itself (the window hangs off the grid)
    torch.testing.assert_close(pooled, torch.tensor([2.5, 3.0, 3.5, 4.0]))
    zero = perception_pool(tokens, (2, 2), 2, "zero")[0, :, 0]
    torch.testing.assert_close(zero, torch.tensor([2.5, 1.5, 1.75, 1.0]))
    with pytest.raises(ConfigError, match="pool_padding"):
        perception_pool(tokens, (2, 2), 2, "reflect")


# -- prompts --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def encoder():
    torch.manual_seed(0)
    return PromptTextEncoder(create_clip("zsad-tiny-14-336", "none"))


def make_prompts(encoder, layout, n_ctx=6, deep_depth=2):
    torch.manual_seed(1)
    return MultiPerceptionPrompts(encoder, layout, n_ctx=n_ctx, deep_tokens=2, deep_depth=deep_depth, init_std=0.02)


def test_shared_prefix_tokens_are_shared_by_the_levels_and_the_rest_is_per_level(encoder):
    prompts = make_prompts(encoder, PromptLayout((1, 2, 3), True, True, 2))
    normal, anomaly = prompts.local_context()
    assert normal.shape == (3, 6, encoder.width)
    for level in range(3):
        assert torch.equal(normal[level, :2], prompts.shared_normal)
        assert torch.equal(anomaly[level, :2], prompts.shared_anomaly)
        assert torch.equal(normal[level, 2:], prompts.level_normal[level])
    # which tokens feed which text feature: level 1's features depend on the shared prefix and its own tokens only
    local, _ = prompts(encoder)
    grads = torch.autograd.grad(local[1, 0].sum(), [prompts.shared_normal, prompts.level_normal, prompts.level_anomaly])
    assert grads[0].abs().sum() > 0
    assert grads[1][1].abs().sum() > 0 and grads[1][0].abs().sum() == 0 and grads[1][2].abs().sum() == 0
    assert grads[2].abs().sum() == 0


def test_prompts_put_the_context_after_sos_and_keep_object_and_damaged(encoder, monkeypatch):
    prompts = make_prompts(encoder, PromptLayout((1, 2), True, False, 2))
    seen = {}
    original = encoder.encode

    def spy(embeddings, tokens, **kwargs):
        seen["emb"], seen["tokens"], seen["deep"] = embeddings, tokens, kwargs["deep_prompts"]
        return original(embeddings, tokens, **kwargs)

    monkeypatch.setattr(encoder, "encode", spy)
    local, global_ = prompts(encoder)
    assert local.shape == (2, 2, 32) and global_.shape == (2, 32)
    torch.testing.assert_close(local.norm(dim=-1), torch.ones(2, 2))
    emb, tokens = seen["emb"], seen["tokens"]
    assert emb.shape[0] == 6  # 2 levels + 1 global, normal then anomalous
    normal, anomaly = prompts.local_context()
    torch.testing.assert_close(emb[0, 1:7], normal[0])
    torch.testing.assert_close(emb[4, 1:7], anomaly[1])
    torch.testing.assert_close(emb[2, 1:7], prompts.global_normal)
    torch.testing.assert_close(emb[5, 1:7], prompts.global_anomaly)
    words = encoder.backbone.tokenizer.decode
    assert "damaged object" in words(tokens[5].tolist()) and "damaged" not in words(tokens[2].tolist())
    assert len(seen["deep"]) == 1  # deep_depth 2: one deep prompt, at text block 2


def test_coupled_prompts_give_the_global_branch_the_mean_of_the_levels(encoder):
    prompts = make_prompts(encoder, PromptLayout((1, 2), False, False, 2))
    assert not hasattr(prompts, "global_normal") and prompts.bridge is None
    local, global_ = prompts(encoder)
    mean = local.mean(dim=0)
    torch.testing.assert_close(global_, mean / mean.norm(dim=-1, keepdim=True))


def test_bridge_concatenates_the_global_tokens_with_the_elementwise_max_over_levels():
    bridge = Bridge(width=3, hidden=5)
    global_ctx = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    local_ctx = torch.tensor([[[0.0, 9.0, -1.0], [1.0, 1.0, 1.0]],
                              [[2.0, -3.0, 0.5], [0.0, 7.0, -2.0]]])  # [levels=2, E=2, W=3]
    assert bridge(global_ctx, local_ctx).shape == (2, 3)
    bridge.net = nn.Identity()
    expected = torch.tensor([[1.0, 2.0, 3.0, 2.0, 9.0, 0.5], [4.0, 5.0, 6.0, 1.0, 7.0, 1.0]])
    torch.testing.assert_close(bridge(global_ctx, local_ctx), expected)


def test_bridged_global_prompts_depend_on_the_local_tokens(encoder):
    bridged = make_prompts(encoder, PromptLayout((1, 2), True, True, 2))
    _, global_ = bridged(encoder)
    grad = torch.autograd.grad(global_[1].sum(), bridged.level_anomaly)[0]
    assert grad.abs().sum() > 0
    plain = make_prompts(encoder, PromptLayout((1, 2), True, False, 2))
    _, global_ = plain(encoder)
    assert torch.autograd.grad(global_[1].sum(), plain.level_anomaly)[0].abs().sum() == 0


# -- routing --------------------------------------------------------------------------------------
def test_expert_pool_composition():
    assert expert_kinds(1) == ["frozen"]
    assert expert_kinds(2) == ["frozen", "learnable"]
    assert expert_kinds(5) == ["frozen", "learnable", "learnable", "learnable", "zero"]
    with pytest.raises(ConfigError):
        expert_kinds(0)


def crafted_moe(renormalize: bool = True) -> MoEProjection:
    projection = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])  # width 3 -> dim 2
    moe = MoEProjection(projection, 4, top_k=2, renormalize=renormalize)  # frozen, 2 learnable, zero
    with torch.no_grad():
        moe.router.copy_(torch.eye(4, 3) * 2.0)  # logit e = 2·x_e (zero expert's logit is 0)
        moe.learnable[0].mul_(2.0)
        moe.learnable[1].mul_(-1.0)
    return moe


def test_top2_routing_renormalises_the_chosen_gates_and_the_zero_expert_outputs_zero():
    moe = crafted_moe()
    x = torch.tensor([[1.0, 0.5, -3.0], [-2.0, -1.0, -4.0]])
    logits = x @ moe.router.T  # [[2, 1, -6, 0], [-4, -2, -8, 0]]
    gates, chosen, probs = moe.gates(x)
    assert chosen[0].tolist() == [0, 1] and sorted(chosen[1].tolist()) == [1, 3]
    torch.testing.assert_close(probs, logits.softmax(-1))
    torch.testing.assert_close(gates[0, :2], torch.softmax(logits[0, :2], -1))
    torch.testing.assert_close(gates.sum(-1), torch.ones(2))
    assert gates[0, 2:].abs().sum() == 0 and gates[1, 0] == 0 and gates[1, 2] == 0
    outputs = moe.expert_outputs(x)
    assert outputs[:, 3].abs().sum() == 0
    torch.testing.assert_close(outputs[:, 0], x @ moe.frozen)
    routed = moe(x)
    p1 = torch.softmax(torch.tensor([-2.0, 0.0]), -1)  # token 2: learnable 1 and the zero expert
    torch.testing.assert_close(routed.tokens[1], p1[0] * (x[1] @ moe.learnable[0]))
    assert routed.counts.tolist() == [1, 2, 0, 1]


def test_without_renormalisation_the_gates_are_the_masked_softmax():
    moe = crafted_moe(renormalize=False)
    x = torch.tensor([[1.0, 0.5, -3.0]])
    gates, _, probs = moe.gates(x)
    torch.testing.assert_close(gates[0, :2], probs[0, :2])
    assert gates.sum() < 1


def test_the_frozen_expert_is_not_a_parameter_and_the_optimiser_leaves_it_untouched():
    torch.manual_seed(0)
    projection = torch.randn(8, 4)
    moe = MoEProjection(projection, 5, top_k=2, router_init_std=0.5)
    assert all(p is not moe.frozen for p in moe.parameters()) and "frozen" not in moe.state_dict()
    for i in range(3):
        assert torch.equal(moe.learnable[i], projection)  # learnable experts start as the projection
    optimizer = torch.optim.Adam(moe.parameters(), lr=1e-2)
    x = torch.randn(64, 8)
    for _ in range(5):
        optimizer.zero_grad()
        (moe(x).tokens ** 2).mean().backward()
        optimizer.step()
    assert torch.equal(moe.frozen, projection)
    assert not torch.equal(moe.learnable[0], projection)


def test_top_k_is_capped_by_the_pool_size():
    moe = MoEProjection(torch.eye(3), 1, top_k=2)
    routed = moe(torch.randn(5, 3))
    torch.testing.assert_close(routed.tokens, routed.tokens @ torch.eye(3))
    assert moe.top_k == 1 and routed.counts.tolist() == [5]


# -- losses ---------------------------------------------------------------------------------------
def test_hinge_loss_by_hand():
    anomaly = torch.tensor([[[0.9, 0.2], [0.6, 0.3]]])
    mask = torch.tensor([[[1.0, 0.0], [1.0, 0.0]]])
    # normal pixels 0.2, 0.3 are below 0.5: 0; anomalous 0.9 above, 0.6 above: 0
    assert hinge_loss(anomaly, mask).item() == 0.0
    loss = hinge_loss(anomaly, mask, margin_normal=0.25, margin_anomaly=0.8)
    torch.testing.assert_close(loss, torch.tensor((0.0 + 0.05) / 2 + (0.0 + 0.2) / 2))


def test_hinge_loss_with_no_anomalous_pixel_keeps_only_the_normal_part():
    anomaly = torch.tensor([[[0.9, 0.2]]])
    torch.testing.assert_close(hinge_loss(anomaly, torch.zeros(1, 1, 2)), torch.tensor(0.4 / 2))


def test_level_losses_sum_the_local_and_hinge_terms_over_levels():
    cfg = MPAConfig()
    gen = torch.Generator().manual_seed(0)
    maps = []
    for _ in range(3):
        a = torch.rand(2, 4, 4, generator=gen)
        maps.append(torch.stack([1 - a, a], dim=1))
    masks = (torch.rand(2, 4, 4, generator=gen) > 0.7).float()
    local, hinge = level_losses(maps, masks, cfg)
    torch.testing.assert_close(local, sum(local_loss(m, masks) for m in maps))
    torch.testing.assert_close(hinge, sum(hinge_loss(m[:, 1], masks) for m in maps))


# -- config ---------------------------------------------------------------------------------------
def test_prompt_strategies_resolve_to_the_fig6_variants():
    assert MPAConfig().layout() == PromptLayout((1, 2, 3, 4), True, True, 2)
    assert MPAConfig(prompt_strategy="cp").layout() == PromptLayout((1,), False, False, 0)
    assert MPAConfig(prompt_strategy="dp").layout() == PromptLayout((1,), True, False, 0)
    assert MPAConfig(prompt_strategy="mpdp").layout() == PromptLayout((1, 2, 3, 4), True, False, 0)
    assert MPAConfig(prompt_strategy="mpdpb").layout() == PromptLayout((1, 2, 3, 4), True, True, 0)
    assert MPAConfig(multi_perception=False).layout().levels == (1,)
    assert MPAConfig(decoupled=False).layout() == PromptLayout((1, 2, 3, 4), False, False, 2)
    assert MPAConfig(perceptions=(2, 3, 4, 5)).layout().levels == (2, 3, 4, 5)


def test_expert_count_follows_the_paper_rule_unless_set():
    assert MPAMAConfig().experts_for("mvtec") == 5 and MPAMAConfig().experts_for("visa") == 4
    assert MPAMAConfig().experts_for("synthetic_aux") == 5
    assert MPAMAConfig(experts=3).experts_for("visa") == 3


def test_paper_defaults_and_bad_values():
    cfg = MPAMAConfig()
    assert (cfg.n_ctx, cfg.shared_prefix, cfg.hinge_weight, cfg.margin_normal, cfg.margin_anomaly) == (12, 2, 5.0, 0.5, 0.5)
    assert (cfg.lr, cfg.stage2_lr, cfg.epochs, cfg.stage2_epochs, cfg.top_k, cfg.layer) == (1e-3, 1e-6, 30, 10, 2, 24)
    with pytest.raises(ConfigError, match="shared_prefix"):
        MPAConfig(shared_prefix=13)
    with pytest.raises(ConfigError, match="perceptions"):
        MPAConfig(perceptions=(1, 1))
    with pytest.raises(ConfigError, match="routing"):
        MPAMAConfig(routing="mid")
    with pytest.raises(ConfigError, match="experts"):
        MPAMAConfig(experts=-1)
    with pytest.raises(ConfigError, match="map_weight"):
        MPAConfig(map_weight=2.0)
