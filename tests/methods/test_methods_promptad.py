"""PromptAD: prompt assembly, losses and fusion against hand-computed cases; learning on the synthetic set; the CLI
over every fake dataset layout."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from zsadbench.backbones import PromptTextEncoder, create_clip
from zsadbench.errors import ConfigError
from zsadbench.methods.promptad.config import PromptADConfig
from zsadbench.methods.promptad.losses import (
    margin_loss,
    mean_alignment_loss,
    token_summed_triplet_loss,
    triplet_loss,
    v2t_loss,
)
from zsadbench.methods.promptad.method import PromptAD
from zsadbench.methods.promptad.model import Scores, fuse, group_losses, promptad_texts
from zsadbench.methods.promptad.prompts import GroupFeatures, GroupTexts, PromptBank, prompt_text
from zsadbench.methods.promptad.scoring import grid_to_map, harmonic, memory_score, text_score
from zsadbench.methods.promptad.states import GENERIC_STATES, abnormal_states, class_name

from promptad_helpers import TINY, S, learning_gain, run_all_datasets


@pytest.fixture(scope="module")
def backbone():
    torch.manual_seed(0)
    return create_clip(TINY, "none", image_size=64)


# -- words and prompts ------------------------------------------------------------------------------
def test_class_names_and_states():
    assert class_name("metal_nut") == "metal nut" and class_name("pcb4") == "printed circuit board"
    assert class_name("Class7") == "class" and class_name("bracket_black") == "bracket black"
    assert abnormal_states("synthetic", "nut") == GENERIC_STATES
    bottle = abnormal_states("mvtec", "bottle")
    assert bottle[: len(GENERIC_STATES)] == GENERIC_STATES and "{} with contamination" in bottle
    assert abnormal_states("mvtec", "bottle", class_specific=False) == GENERIC_STATES
    texts = promptad_texts("mvtec", "metal_nut")
    assert texts.normal == ("metal nut",) and texts.learned == ("metal nut",)
    assert "damaged metal nut" in texts.handcrafted and "flipped metal nut" in texts.handcrafted


def test_prompt_bank_places_context_by_position_and_matches_a_hand_assembled_prompt(backbone):
    torch.manual_seed(1)
    text = PromptTextEncoder(backbone)
    groups = {"a": GroupTexts(("nut",), ("damaged nut", "nut with flaw"), ("nut",)),
              "b": GroupTexts(("screw",), ("bent screw",), ("screw",))}
    bank = PromptBank(text, groups, n_pro=2, n_ctx=3, n_pro_ab=2, n_ctx_ab=1)
    out = bank()
    assert out["a"].normal.shape == (2, 32) and out["a"].handcrafted.shape == (4, 32) and out["a"].learned.shape == (4, 32)
    assert out["b"].handcrafted.shape == (2, 32) and out["b"].learned.shape == (4, 32)
    assert prompt_text("nut.", 3) == "X X X nut."
    # learned prompt (i=1, j=0) of group b, assembled by hand: token embeddings with positions 1..4 replaced
    tokens = backbone.tokenize([prompt_text("screw", 4)])
    emb = text.token_embeddings(tokens).clone()
    emb[0, 1:4] = bank.normal_ctx[1]
    emb[0, 4:5] = bank.abnormal_ctx[0]
    expected = text.encode(emb, tokens)[0]
    torch.testing.assert_close(out["b"].learned[1 * 2 + 0], expected, rtol=1e-4, atol=1e-5)
    # handcrafted prompt of context 1, second body of group a
    tokens = backbone.tokenize([prompt_text("nut with flaw", 3)])
    emb = text.token_embeddings(tokens).clone()
    emb[0, 1:4] = bank.normal_ctx[1]
    torch.testing.assert_close(out["a"].handcrafted[1 * 2 + 1], text.encode(emb, tokens)[0], rtol=1e-4, atol=1e-5)
    # gradients reach both contexts, and only them
    out["a"].abnormal_anchor.sum().backward()
    assert bank.normal_ctx.grad.abs().sum() > 0 and bank.abnormal_ctx.grad.abs().sum() > 0
    assert {n for n, _ in bank.named_parameters()} == {"normal_ctx", "abnormal_ctx"}


def test_gallery_anchors_are_normalised_means(backbone):
    torch.manual_seed(2)
    bank = PromptBank(PromptTextEncoder(backbone), {"c": promptad_texts("mvtec", "bottle")}, n_pro=1, n_ctx=4,
                      n_pro_ab=4, n_ctx_ab=1)
    g = bank()["c"]
    raw = torch.cat([g.handcrafted, g.learned])
    torch.testing.assert_close(g.abnormal_anchor, raw.mean(0) / raw.mean(0).norm())
    torch.testing.assert_close(g.pair()[0], g.normal[0] / g.normal[0].norm())
    assert g.abnormal.shape == (len(abnormal_states("mvtec", "bottle")) + 4, 32)


# -- losses and scores ------------------------------------------------------------------------------
def test_losses_on_hand_computed_cases():
    e0, e1 = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    # logits 2·[1, 0] -> -log(e^2 / (e^2 + 1))
    torch.testing.assert_close(v2t_loss(e0[None], e0, e1[None], 2.0), torch.tensor(math.log1p(math.exp(-2.0))))
    weighted = v2t_loss(torch.stack([e0, e1]), e0, e1[None], 2.0, torch.tensor([1.0, 3.0]))
    expected = (math.log1p(math.exp(-2.0)) + 3 * math.log1p(math.exp(2.0))) / 2
    torch.testing.assert_close(weighted, torch.tensor(expected))
    # squared distances: z = e1 -> near 2, far 0 -> relu(2 - 0 + 0.5); z = e0 -> relu(0 - 2 + 0.5) = 0
    torch.testing.assert_close(triplet_loss(torch.stack([e0, e1]), e0, e1, 0.5), torch.tensor(2.5 / 2))
    torch.testing.assert_close(triplet_loss(e1[None], e0, e1, 1.0, squared=False), torch.tensor(math.sqrt(2) + 1.0))
    # token-summed: z [1, 2, 2] = (e1, e1); per channel, squared differences summed over the two tokens:
    # near (to e0) = (2, 2), far (to e1) = (0, 0) -> mean of relu(2 - 0 + 1) = 3
    z = torch.stack([e1, e1])[None]
    near = ((z - e0) ** 2).sum(dim=1)[0]
    far = ((z - e1) ** 2).sum(dim=1)[0]
    assert near.tolist() == [2.0, 2.0] and far.tolist() == [0.0, 0.0]
    torch.testing.assert_close(token_summed_triplet_loss(z, e0, e1, 1.0), torch.tensor(3.0))
    # mean alignment: handcrafted (2, 0) and learned (0, 5) normalise to e0 and e1: |e0 - e1|^2 = 2
    torch.testing.assert_close(mean_alignment_loss(torch.tensor([[2.0, 0.0]]), torch.tensor([[0.0, 5.0]])), torch.tensor(2.0))


def test_margin_forms_by_hand():
    # a token map [1, 2, 2] of tokens e0 and e1 against anchors n = e0 and a = e1, margin 0.5
    e0, e1 = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    z = torch.stack([e0, e1])[None]
    # per token: e0 is at 0 from n and sqrt(2) from a, e1 the other way round
    euclidean = (max(0.0, 0 - math.sqrt(2) + 0.5) + max(0.0, math.sqrt(2) - 0 + 0.5)) / 2
    squared = (max(0.0, 0 - 2 + 0.5) + max(0.0, 2 - 0 + 0.5)) / 2
    # summed over the two tokens, per channel: channel 0 is (1-1)² + (0-1)² = 1 from n and (1-0)² + (0-0)² = 1
    # from a; channel 1 likewise 1 and 1 -> relu(1 - 1 + 0.5) in both
    summed = 0.5
    for form, expected in (("euclidean", euclidean), ("squared", squared), ("token_summed", summed)):
        torch.testing.assert_close(margin_loss(z, e0, e1, 0.5, form), torch.tensor(expected), msg=form)
    # on CLS features [K, D] the token-summed form is the squared distance per feature
    cls = torch.stack([e0, e1])
    torch.testing.assert_close(margin_loss(cls, e0, e1, 0.5, "token_summed"), torch.tensor(squared))
    # weights scale the features in the token-summed form: a zero weight leaves only the other token
    weights = torch.tensor([[0.0, 1.0]])
    torch.testing.assert_close(margin_loss(z, e0, e1, 0.5, "token_summed", weights=weights),
                               token_summed_triplet_loss(torch.stack([torch.zeros(2), e1])[None], e0, e1, 0.5))


def test_group_losses_take_the_configured_margin_form():
    e0, e1 = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    group = GroupFeatures(normal=e0[None], handcrafted=e1[None], learned=e1[None])  # anchors e0 and e1
    z = torch.stack([e0, e1])[None]  # the case of test_margin_forms_by_hand, margin 0.5
    expected = {"euclidean": (math.sqrt(2) + 0.5) / 2, "squared": 2.5 / 2, "token_summed": 0.5}
    for form, value in expected.items():
        losses = group_losses(z, group, 1.0, 0.5, 0.0, form)
        torch.testing.assert_close(losses["eam"], torch.tensor(value), msg=form)
    assert PromptADConfig().margin_form == "token_summed"
    with pytest.raises(ConfigError, match="margin_form"):
        PromptADConfig(margin_form="cosine")


def test_scores_and_fusion_formulas():
    e0, e1 = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    z = torch.stack([e0, e1, torch.tensor([0.6, 0.8])])
    got = text_score(z, e0, e1, 3.0)
    expected = torch.tensor([1 / (1 + math.exp(3)), 1 / (1 + math.exp(-3)), 1 / (1 + math.exp(-3 * 0.2))])
    torch.testing.assert_close(got, expected)
    # memory: a token equal to a memory entry scores 0, an orthogonal one (1 - 0) / 2; layers are averaged
    query = [torch.stack([e0, e1])[None], torch.stack([e1, e1])[None]]
    memory = [e0[None], e0[None]]
    torch.testing.assert_close(memory_score(query, memory), torch.tensor([[0.25, 0.5]]))
    torch.testing.assert_close(harmonic(torch.tensor([0.5, 0.2]), torch.tensor([0.5, 0.3])), torch.tensor([0.25, 0.12]))
    scores = Scores(text=torch.full((1, 4), 0.5), visual=torch.tensor([[0.1, 0.2, 0.3, 0.6]]), image_text=torch.tensor([0.3]))
    image, maps = fuse(scores, (2, 2), 4, 0.0)
    torch.testing.assert_close(image, torch.tensor([1 / (1 / 0.6 + 1 / 0.3)]))
    assert maps.shape == (1, 4, 4) and maps.dtype == torch.float32
    torch.testing.assert_close(maps[0, 0, 0], torch.tensor(1 / (1 / 0.5 + 1 / 0.1)))  # corner keeps its cell's value
    flat = grid_to_map(torch.full((2, 9), 0.7), (3, 3), 12, 4.0)
    torch.testing.assert_close(flat, torch.full((2, 12, 12), 0.7))  # smoothing keeps a constant map constant


def test_config_errors_name_the_field():
    with pytest.raises(ConfigError, match="PromptADConfig.n_ctx"):
        PromptADConfig(n_ctx=0)
    with pytest.raises(ConfigError, match="memory_layers"):
        PromptADConfig(memory_layers=(0, 3))
    with pytest.raises(ConfigError, match="memory_layers"):
        PromptAD(PromptADConfig(backbone=TINY, memory_layers=(3, 8)), pretrained="none").setup()


# -- learning -----------------------------------------------------------------------------------------
def test_trained_prompts_beat_the_initial_ones_on_held_out_pixel_auroc(synthetic):
    torch.set_num_threads(1)

    def make(**kw):
        return PromptADConfig(backbone=TINY, image_size=S, memory_layers=(1, 2), map_size=S, epochs_cls=1, **kw)

    before, after = learning_gain(PromptAD, make, synthetic)
    gain = float(np.mean(after) - np.mean(before))
    # Measured (tiny random CLIP, 128 px, 1 shot, 30 epochs, 4 categories), mean gains for seeds 0/1/2:
    # +0.33 / +0.33 / +0.44 (before 0.25-0.96, after 0.55-0.94 per category); seed 0 runs here.
    assert gain > 0.15, (before, after)


# -- end to end -----------------------------------------------------------------------------------------
def test_cli_runs_every_dataset_few_shot(fake_root, tmp_path):
    run_all_datasets("promptad", fake_root, tmp_path / "out", [])
