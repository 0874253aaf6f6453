"""InCTRL: the residuals and scores on hand-made features, the official prompt list, the training episodes, the
state round trip, the support fit, and one run through the runner (auxiliary training once, then 1- and 2-shot)."""
from __future__ import annotations

import hashlib
import json
import math

import numpy as np
import pytest
import torch

from zsadbench import registry
from zsadbench.cli.main import main
from zsadbench.errors import ConfigError, DataError, MethodError
from zsadbench.method import FitData, fit_kind, trains_then_adapts
from zsadbench.methods.inctrl import method as method_module
from zsadbench.methods.inctrl.config import InCTRLConfig
from zsadbench.methods.inctrl.episodes import AuxiliaryPool, Episodes
from zsadbench.methods.inctrl.method import InCTRL
from zsadbench.methods.inctrl.model import ResidualHeads
from zsadbench.methods.inctrl.prompts import prompt_texts
from zsadbench.methods.inctrl.scoring import binary_focal_loss, final_score, patch_residual_map, text_prior
from zsadbench.store import ResultStore
from zsadbench.types import Batch

pytestmark = pytest.mark.usefixtures("one_thread")

#: The smallest configuration: a 3-block random ViT at 64 px (a 4×4 grid), two episodes of 4 queries per stage.
TINY = {"backbone": "zsad-tiny-16-240", "image_size": 64, "layers": (1, 2, 3), "epochs": 1, "steps_per_epoch": 2,
        "batch_size": 4}
CONFIG = InCTRLConfig().replace(**TINY)
#: sha256 of the official ``get_texts`` lists (normal, a ``--`` line, anomalous, joined by newlines), computed
#: with the official ``open_clip/model.py`` at commit cc535d0.
OFFICIAL_TEXTS = {
    "metal nut": "00ba9d7265115c96f82cfba7f1078a48ec36570f931d08f9d02744eb4c5a63f4",
    "bird": "2a9e6e18a5a58fbe279a201ba96fb573281e311131969fd8e9e912e72fd8c08e",
}


def images(count: int, seed: int, size: int = 64) -> torch.Tensor:
    return torch.rand(count, 3, size, size, generator=torch.Generator().manual_seed(seed))


def auxiliary(pixels: torch.Tensor, labels: list[int], categories: list[str], seed: int = 0) -> FitData:
    """Auxiliary fit data over fixed images (batches in order, as the runner's unshuffled pass gives them)."""
    label_tensor = torch.tensor(labels)

    def batches(batch_size: int = 8, shuffle: bool = False, seed: int = 0):
        for start in range(0, len(pixels), batch_size):
            part = slice(start, start + batch_size)
            yield Batch(image=pixels[part], category="object", gt_label=label_tensor[part],
                        gt_mask=torch.zeros(len(pixels[part]), *pixels.shape[-2:], dtype=torch.bool),
                        categories=tuple(categories[part]))

    return FitData("auxiliary", batches, len(pixels), "visa", seed=seed)


def support(pixels: torch.Tensor, category: str = "bottle") -> FitData:
    def batches(batch_size: int = 8, shuffle: bool = False, seed: int = 0):
        yield Batch(image=pixels, category=category)

    return FitData("support", batches, len(pixels), "mvtec", category, len(pixels))


#: Two auxiliary categories of 4 normal and 4 anomalous images each.
AUX_LABELS = [0, 0, 0, 0, 1, 1, 1, 1] * 2
AUX_CATEGORIES = ["candle"] * 8 + ["pcb1"] * 8


def trained(seed: int = 0) -> InCTRL:
    torch.manual_seed(0)
    method = InCTRL(CONFIG, pretrained="none").setup()
    return method.fit(auxiliary(images(16, 1), AUX_LABELS, AUX_CATEGORIES, seed=seed))


# -- residuals and scores on hand-made features ----------------------------------------------------------
def test_the_patch_residual_is_half_the_cosine_distance_to_the_nearest_prompt_patch_averaged_over_layers():
    query = [torch.tensor([[[2.0, 0.0], [0.0, 3.0]]]), torch.tensor([[[1.0, 0.0], [1.0, 0.0]]])]
    prompts = [torch.tensor([[1.0, 0.0], [1.0, 1.0]]), torch.tensor([[0.0, 1.0], [-1.0, 0.0]])]
    # layer 1: patch 0 meets [1,0] (distance 0), patch 1 meets [1,1] (cos 1/√2); layer 2: both meet [0,1] (cos 0)
    first = (1 - 1 / math.sqrt(2)) / 2
    expected = torch.tensor([[(0.0 + 0.5) / 2, (first + 0.5) / 2]])
    torch.testing.assert_close(patch_residual_map(query, prompts), expected)


def test_each_query_is_compared_with_its_own_prompts_when_they_are_given_per_query():
    query = [torch.tensor([[[1.0, 0.0]], [[1.0, 0.0]]])]
    own = [torch.tensor([[[1.0, 0.0]], [[0.0, 1.0]]])]  # the first query's prompt is itself, the second's orthogonal
    torch.testing.assert_close(patch_residual_map(query, own), torch.tensor([[0.0], [0.5]]))


def test_the_text_prior_is_the_anomalous_softmax_probability_at_scale_100():
    text = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    tokens = torch.tensor([[3.0, 4.0], [2.0, 0.0]])  # cosines (0.6, 0.8) and (1, 0)
    expected = torch.tensor([1 / (1 + math.exp(-20.0)), 1 / (1 + math.exp(100.0))])
    torch.testing.assert_close(text_prior(tokens, text, 100.0), expected)
    torch.testing.assert_close(text_prior(tokens, text.expand(2, 2, 2), 100.0), expected)  # per-query texts


def test_the_final_score_is_the_mean_of_the_holistic_score_and_the_largest_residual():
    torch.testing.assert_close(final_score(torch.tensor([0.4]), torch.tensor([[0.1, 0.8, 0.3]])), torch.tensor([0.6]))


def test_the_focal_loss_takes_the_scores_as_logits_as_the_official_loss_does():
    bce = math.log1p(math.exp(-0.5))  # label 1, logit 0.5
    expected = (1 - math.exp(-bce)) ** 2 * bce
    torch.testing.assert_close(binary_focal_loss(torch.tensor([0.5]), torch.tensor([1]), 1.0, 2.0),
                               torch.tensor(expected))
    bce0 = math.log1p(math.exp(0.2))  # label 0, logit 0.2
    both = binary_focal_loss(torch.tensor([0.5, 0.2]), torch.tensor([1, 0]), 0.5, 2.0)
    torch.testing.assert_close(both, torch.tensor(0.5 * (expected + (1 - math.exp(-bce0)) ** 2 * bce0) / 2))


def test_the_image_level_residual_is_the_mean_adapted_prompt_minus_the_adapted_query():
    heads = ResidualHeads(2, 4, InCTRLConfig(adapter_reduction=1))
    with torch.no_grad():
        for layer in (heads.adapter.net[0], heads.adapter.net[2]):
            layer.weight.copy_(torch.eye(2))  # relu(I relu(I x)) = x for x >= 0
    query, prompts = torch.tensor([[1.0, 2.0]]), torch.tensor([[3.0, 0.0], [1.0, 4.0]])
    torch.testing.assert_close(heads.image_residual(query, prompts), torch.tensor([[1.0, 0.0]]))
    torch.testing.assert_close(heads.image_residual(query, prompts[None]), torch.tensor([[1.0, 0.0]]))


# -- prompts --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("category, official", [("metal_nut", "metal nut"), ("bird", "bird")])
def test_the_prompts_are_the_official_list(category, official):
    normal, anomalous = prompt_texts(category)
    digest = hashlib.sha256("\n".join(normal + ["--"] + anomalous).encode()).hexdigest()
    assert digest == OFFICIAL_TEXTS[official]


def test_the_prompt_ensemble_is_state_major_with_semantic_pairs_for_cifar_names():
    normal, anomalous = prompt_texts("metal_nut")
    assert (len(normal), len(anomalous)) == (7 * 22, 4 * 22)
    assert normal[0] == "a cropped photo of the metal nut."
    assert normal[22] == "a cropped photo of the flawless metal nut."
    assert anomalous[-1] == "a photo of the metal nut with damage for anomaly detection."
    assert prompt_texts("bird") == (["a photo of bird for anomaly detection."],
                                    ["a photo without bird for anomaly detection."])


# -- training episodes ----------------------------------------------------------------------------------
def pool(labels=AUX_LABELS, categories=AUX_CATEGORIES) -> AuxiliaryPool:
    return AuxiliaryPool.collect(auxiliary(images(len(labels), 1), labels, categories), 4, "InCTRL")


def test_episodes_are_balanced_and_prompts_are_other_normal_images_of_the_query_category():
    aux = pool()
    episodes = list(Episodes(aux, steps=20, shots=2).batches(6, seed=3))
    assert len(episodes) == 20
    for episode in episodes:
        assert episode.gt_label.tolist() == [0, 0, 0, 1, 1, 1]
        assert torch.equal(episode.image, aux.images[episode.rows])
        for row, prompts in zip(episode.rows.tolist(), episode.prompts.tolist()):
            assert len(set(prompts)) == 2 and row not in prompts
            assert all(aux.labels[p] == 0 and aux.categories[p] == aux.categories[row] for p in prompts)
    # each kind is dealt in passes: every image of the kind once before any comes again
    normal = [r for e in episodes for r in e.rows[:3].tolist()]
    anomalous = [r for e in episodes for r in e.rows[3:].tolist()]
    assert sorted(normal[:8]) == [0, 1, 2, 3, 8, 9, 10, 11] and sorted(normal[8:16]) == sorted(normal[:8])
    assert sorted(anomalous[:8]) == [4, 5, 6, 7, 12, 13, 14, 15]


def test_episodes_depend_only_on_the_seed():
    aux = pool()

    def dealt(seed: int) -> list[tuple[list[int], list[list[int]]]]:
        return [(e.rows.tolist(), e.prompts.tolist()) for e in Episodes(aux, 5, 2).batches(4, seed=seed)]

    assert dealt(7) == dealt(7) and dealt(7) != dealt(8)


def test_a_category_with_fewer_normal_images_than_prompts_repeats_them_and_one_with_a_single_one_is_left_out():
    aux = pool([0, 0, 1, 1], ["candle"] * 4)
    episodes = list(Episodes(aux, steps=3, shots=4).batches(2, seed=0))
    for episode in episodes:
        row = episode.rows[0].item()
        assert episode.prompts[0].tolist() == [1 - row] * 4  # the only other normal image, four times
    with pytest.warns(RuntimeWarning, match="categories pcb1 of the auxiliary set .* are left out"):
        kept = pool([0, 0, 1, 0, 1], ["candle"] * 3 + ["pcb1"] * 2)
    assert kept.categories == ("candle",) * 3 and kept.labels.tolist() == [0, 0, 1] and len(kept.images) == 3
    with pytest.raises(DataError, match="has no anomalous image"):
        pool([0, 0, 0], ["candle"] * 3)
    with pytest.warns(RuntimeWarning), pytest.raises(DataError, match="has no normal image"):
        pool([0, 1, 1], ["pcb1"] * 3)  # the only category has one normal image: nothing is left


# -- the plugin -----------------------------------------------------------------------------------------
def test_training_changes_only_the_heads_and_is_seeded():
    torch.manual_seed(0)
    fresh = InCTRL(CONFIG, pretrained="none").setup()
    initial = fresh.state_dict()
    backbone = {k: v.clone() for k, v in fresh.model_.backbone.state_dict().items()}
    method = trained()
    assert len(method.history_) == CONFIG.epochs * len(CONFIG.train_shots)
    state = method.state_dict()
    assert sorted(state) == sorted(initial)
    assert all(not torch.equal(state[k], initial[k]) for k in state if k.endswith("adapter.net.0.weight"))
    assert all(torch.equal(v, backbone[k]) for k, v in method.model_.backbone.state_dict().items())
    again = trained().state_dict()
    assert all(torch.equal(state[k], again[k]) for k in state)
    other = trained(seed=1).state_dict()
    assert any(not torch.equal(state[k], other[k]) for k in state)


def test_the_state_round_trips_and_the_support_fit_only_sets_the_prompts():
    method = trained()
    state = method.state_dict()
    shots, queries = images(2, 5), images(3, 6)
    method.fit(support(shots))
    assert method.prompt_shots_ == 2 and method.prompts_.tokens.shape[0] == 2
    assert method.prompts_.patches[0].shape[0] == 2 * 16  # two images of a 4×4 grid, laid end to end
    adapted = method.state_dict()
    assert set(adapted) - set(state) == {"prompt.patches.0", "prompt.patches.1", "prompt.patches.2", "prompt.tokens",
                                         "prompt.shots"}  # the trained state plus the prompts it was fitted on
    assert all(torch.equal(adapted[k], v) for k, v in state.items())
    expected = method.predict(Batch(image=queries, category="bottle"))
    assert expected.anomaly_map.shape == (3, 4, 4) and expected.pred_score.shape == (3,)

    torch.manual_seed(123)  # other initial heads: the loaded state must replace them
    restored = InCTRL(CONFIG, pretrained="none").setup()
    restored.load_state_dict(state)
    with pytest.raises(MethodError, match="fit it with FitData\\('support'"):
        restored.predict(Batch(image=queries, category="bottle"))
    restored.fit(support(shots))
    got = restored.predict(Batch(image=queries, category="bottle"))
    assert torch.equal(got.pred_score, expected.pred_score) and torch.equal(got.anomaly_map, expected.anomaly_map)

    with_prompts = InCTRL(CONFIG, pretrained="none").setup()
    with_prompts.load_state_dict(adapted)  # a state saved after the support fit predicts without another one
    again = with_prompts.predict(Batch(image=queries, category="bottle"))
    assert torch.equal(again.pred_score, expected.pred_score) and torch.equal(again.anomaly_map, expected.anomaly_map)

    one_shot = restored.fit(support(shots[:1])).predict(Batch(image=queries, category="bottle"))
    assert restored.prompt_shots_ == 1 and not torch.equal(one_shot.pred_score, expected.pred_score)


def test_a_state_of_another_configuration_and_an_untrained_shot_count_are_refused():
    state = trained().state_dict()
    other = InCTRL(CONFIG.replace(train_shots=(1, 2)), pretrained="none").setup()
    with pytest.raises(MethodError, match="state does not fit this config"):
        other.load_state_dict(state)
    with pytest.raises(ConfigError, match="train_shots=\\(1, 2\\) has no heads trained with 4 prompts"):
        other.fit(support(images(4, 2)))


def test_plugin_declaration():
    assert InCTRL.settings == frozenset({"few-shot"}) and InCTRL.shots == (1, 2, 4) and InCTRL.trains_on_auxiliary
    assert fit_kind(InCTRL, 2) == "support" and trains_then_adapts(InCTRL, 2)
    assert InCTRL.default_pretrained == "laion400m_e32"
    assert InCTRLConfig().layers == (7, 9, 11) and InCTRLConfig().backbone == "ViT-B-16-plus-240"
    with pytest.raises(ConfigError, match="InCTRLConfig.batch_size must be >= 2"):
        InCTRLConfig(batch_size=1)


def test_the_runner_trains_once_then_adapts_each_cell(tmp_path, monkeypatch):
    monkeypatch.setenv("ZSADBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("ZSADBENCH_SYNTHETIC_SIZE", "small")
    calls = []
    train = method_module.train

    def counted(*args, **kwargs):
        calls.append(args[1].dataset)
        return train(*args, **kwargs)

    monkeypatch.setattr(method_module, "train", counted)
    registry.reset()
    out = tmp_path / "out"
    sets = [arg for key, value in TINY.items()
            for arg in ("--set", f"{key}={','.join(map(str, value)) if isinstance(value, tuple) else value}")]
    code = main(["run", "--plugin", "zsadbench.methods.inctrl.method:InCTRL", "--method", "inctrl", "--datasets",
                 "synthetic", "--shots", "1,2", "--pretrained", "none", "--eval-size", "32", "--threads", "1",
                 "--out", str(out), "--no-table", *sets])
    registry.reset()
    assert code == 0
    assert calls == ["synthetic_aux"]
    frame = ResultStore(out).to_frame()
    assert len(frame) == 6 and (frame.status == "ok").all() and set(frame.shots) == {1, 2}
    assert frame.image_auroc.between(0, 1).all() and frame.pixel_auroc.between(0, 1).all()
    rows = ResultStore(out).rows()
    assert len({r.provenance.state for r in rows}) == 1 and all(r.provenance.support for r in rows)
    assert len(list((out / "cache" / "states").glob("*.pt"))) == 1
    ran = json.loads(frame.config_json.iloc[0])
    assert (ran["backbone"], ran["layers"]) == ("zsad-tiny-16-240", [1, 2, 3])
    assert np.isfinite(frame.image_auroc).all()
