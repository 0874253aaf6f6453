"""FAPrompt against a test-side re-statement of the official formulas on the tiny random CLIP (compound prompt
assembly, the image-conditioned prior, maps and scores), its losses on hand-computed cases, the state round
trip, what training updates, checkpoint resume, learning on synthetic data, and one run through the runner."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.ndimage import gaussian_filter

from zsadbench import registry
from zsadbench.backbones import FeatureCache
from zsadbench.cli.main import main
from zsadbench.datasets.synthetic import AUX_CATEGORIES, SyntheticAuxDataset
from zsadbench.errors import ConfigError, MethodError
from zsadbench.method import FitData
from zsadbench.methods.anomalyclip import local_loss, tower_features
from zsadbench.methods.faprompt.config import FAPromptConfig
from zsadbench.methods.faprompt.losses import orthogonal_loss, prior_loss, score_focal_loss
from zsadbench.methods.faprompt.method import FAPrompt
from zsadbench.methods.faprompt.model import Outputs, image_score
from zsadbench.methods.faprompt.training import losses
from zsadbench.runner.loading import ImageSet
from zsadbench.store import ResultStore
from zsadbench.types import Batch

from clip_reference import SIZE, reference_visual, toy_data
from interrupts import FailingAfter, Interrupted
from learning_helpers import pixel_auroc

pytestmark = pytest.mark.usefixtures("one_thread")
#: The smallest configuration: the 4-block random ViT at 56 px (a 4×4 grid), deep prompts before text block 2.
TINY = {"backbone": "zsad-tiny-14-336", "image_size": SIZE, "layer": 4, "vv_last": 3, "deep_depth": 2, "epochs": 2,
        "batch_size": 4}
CFG = FAPromptConfig().replace(**TINY)


def built(cfg: FAPromptConfig = CFG, seed: int = 0, prior_gain: float = 1.0) -> FAPrompt:
    """A set-up method counted as fitted; ``prior_gain`` scales the prior network's output layer."""
    torch.manual_seed(seed)
    method = FAPrompt(cfg, pretrained="none").setup()
    with torch.no_grad():
        method.model_.prior.net[2].weight.mul_(prior_gain)
        method.model_.prior.net[2].bias.mul_(prior_gain)
    method.load_state_dict(method.state_dict())
    return method


def images(count: int = 3, seed: int = 3) -> torch.Tensor:
    return torch.rand(count, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))


# -- a re-statement of the official computations on open_clip's public modules ---------------------------
def run_text(method: FAPrompt, text: str, fill: torch.Tensor) -> torch.Tensor:
    """Raw features of ``len(fill)`` copies of ``text`` with ``fill[i]`` (``[m, W]``) at positions 1..m, the deep
    prompts overwriting positions 1..4 before text blocks 2.., EOT (highest id) after ln_final, projection."""
    model, deep = method.model_.backbone.model, method.model_.prompts.deep
    tokens = method.model_.backbone.tokenize([text] * len(fill))
    x = model.token_embedding(tokens).clone()
    x[:, 1 : 1 + fill.shape[1]] = fill
    x = x + model.positional_embedding
    for number, block in enumerate(model.transformer.resblocks, start=1):
        if 2 <= number <= len(deep) + 1:
            x = x.clone()
            x[:, 1:5] = deep[number - 2]
        x = block(x, attn_mask=model.attn_mask)
    x = model.ln_final(x)
    return x[torch.arange(len(fill)), tokens.argmax(-1)] @ model.text_projection


def reference_text(method: FAPrompt, prior: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``N×5 object.`` and, per prompt p, ``N×5 A_p×2 damaged object.`` with the same N tokens and ``prior``
    (``[W]``) added to the A tokens; returns the raw normal ``[D]`` and abnormality ``[P, D]`` features."""
    prompts = method.model_.prompts
    count = prompts.ctx_abnormal.shape[0]
    normal = run_text(method, "X X X X X object.", prompts.ctx_normal[None])[0]
    fill = torch.cat([prompts.ctx_normal.expand(count, -1, -1), prompts.ctx_abnormal + prior], dim=1)
    return normal, run_text(method, "X X X X X X X damaged object.", fill)


def reference_prior(method: FAPrompt, tokens: torch.Tensor) -> torch.Tensor:
    """``Linear → ReLU → Linear`` of the concatenated tokens ``[k, D]``, with the method's weights."""
    net = method.model_.prior.net
    hidden = torch.relu(tokens.reshape(-1) @ net[0].weight.T + net[0].bias)
    return hidden @ net[2].weight.T + net[2].bias


def reference_outputs(method: FAPrompt, batch: torch.Tensor) -> dict[str, torch.Tensor]:
    """Maps, scores and priors of ``test.py`` restated image by image."""
    cfg = method.config
    image, patches = reference_visual(method, batch)
    normal, abnormal = reference_text(method, torch.zeros(method.model_.encoder.width))
    free_text = F.normalize(torch.stack([normal, abnormal.mean(0)]), dim=-1)
    rows: dict[str, list[torch.Tensor]] = {"map": [], "score": [], "prior": [], "selected": [], "text": []}
    for g, p in zip(image, patches):
        free = (p @ free_text.T / 0.07).softmax(-1)
        order = free[:, 1].argsort(descending=True) if cfg.prior_selection == "top" else torch.arange(len(p))
        selected = order[: cfg.prior_patches]
        prior = reference_prior(method, p[selected])
        normal_i, abnormal_i = reference_text(method, prior)
        text = F.normalize(torch.stack([normal_i, abnormal_i.mean(0)]), dim=-1)
        conditioned = (p @ text.T / 0.07).softmax(-1)
        probability = (text @ g / 0.07).softmax(-1)[1]
        up = [F.interpolate(m[:, 1].reshape(1, 1, 4, 4), size=(SIZE, SIZE), mode="bilinear", align_corners=False)[0, 0]
              for m in (free, conditioned)]
        rows["map"].append(torch.from_numpy(gaussian_filter(((up[0] + up[1]) / 2).numpy(), sigma=cfg.sigma)).float())
        rows["score"].append(0.5 * probability + 0.5 * (2 / 3 * free[:, 1].max() + 1 / 3 * conditioned[:, 1].max()))
        rows["prior"].append(prior)
        rows["selected"].append(selected)
        rows["text"].append(text)
    return {key: torch.stack(values) for key, values in rows.items()}


@pytest.mark.parametrize("selection", ["top", "first"])
def test_maps_scores_and_priors_follow_the_reference_formulas(selection):
    method = built(CFG.replace(prior_selection=selection), prior_gain=20.0)
    batch = images()
    with torch.no_grad():
        expected = reference_outputs(method, batch)
        out = method.predict(Batch(image=batch, category="x"))
        model = method.model_
        internal = model(tower_features(model.backbone, batch, [4], 3))
    torch.testing.assert_close(internal.prior, expected["prior"], atol=1e-5, rtol=1e-4)
    assert torch.equal(internal.selected, expected["selected"])
    torch.testing.assert_close(out.anomaly_map, expected["map"], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(out.pred_score, expected["score"], atol=1e-5, rtol=1e-4)
    assert out.anomaly_map.shape == (3, SIZE, SIZE) and out.anomaly_map.dtype == torch.float32
    # the prior is not negligible here: the conditioned text moves away from the prior-free one
    with torch.no_grad():
        free = reference_outputs(built(CFG.replace(prior_selection=selection), prior_gain=0.0), batch)["text"]
    assert (expected["text"] - free).abs().max() > 1e-2


def test_compound_prompts_share_the_normal_tokens_and_add_the_prior_to_every_abnormal_token():
    method = built()
    prompts, encoder = method.model_.prompts, method.model_.encoder
    prior = torch.randn(2, encoder.width, generator=torch.Generator().manual_seed(1))
    normal, abnormal = prompts(encoder, prior)
    assert normal.shape == (1, 32) and abnormal.shape == (2, 10, 32)
    with torch.no_grad():
        for row in range(2):
            ref_normal, ref_abnormal = reference_text(method, prior[row])
            torch.testing.assert_close(normal[0], ref_normal, atol=1e-5, rtol=1e-4)
            torch.testing.assert_close(abnormal[row], ref_abnormal, atol=1e-5, rtol=1e-4)
    # the normal tokens reach the abnormality features; an abnormality prompt's own tokens only its own feature
    grad_normal, grad_abnormal = torch.autograd.grad(abnormal[0, 3].sum(), [prompts.ctx_normal, prompts.ctx_abnormal],
                                                     retain_graph=True)
    assert grad_normal.abs().sum() > 0
    assert grad_abnormal[3].abs().sum() > 0 and grad_abnormal[[0, 1, 2, 4]].abs().sum() == 0
    assert torch.autograd.grad(normal.sum(), prompts.ctx_abnormal)[0].abs().sum() == 0
    assert set(method.state_dict()) == {"prompts.ctx_normal", "prompts.ctx_abnormal", "prompts.deep.0",
                                        "prior.net.0.weight", "prior.net.0.bias", "prior.net.2.weight",
                                        "prior.net.2.bias"}
    assert method.state_dict()["prior.net.0.weight"].shape == (10 * 32 // 16, 10 * 32)


def test_the_prior_follows_the_image_and_vanishes_with_a_zero_prior_network():
    method = built(prior_gain=20.0)
    model = method.model_
    with torch.no_grad():
        out = model(tower_features(model.backbone, images(), [4], 3))
        assert (out.prior[0] - out.prior[1]).abs().max() > 1e-3  # two images, two priors
        assert not torch.allclose(out.free, out.conditioned)
        # the selected patches are the prior-free map's most anomalous, in decreasing order
        ranked = out.free[:, 1].flatten(1).gather(1, out.selected)
        assert (ranked[:, :-1] >= ranked[:, 1:]).all()
        assert (ranked[:, -1:] >= out.free[:, 1].flatten(1).sort(dim=1, descending=True).values[:, 9:10]).all()
        zero = built(prior_gain=0.0).model_
        flat = zero(tower_features(zero.backbone, images(), [4], 3))
    torch.testing.assert_close(flat.conditioned, flat.free, atol=1e-6, rtol=0)


def test_the_official_fp16_cast_of_the_deep_prompts():
    cast, exact = built(CFG.replace(deep_prompt_cast="fp16")), built()
    with torch.no_grad():
        for tensor in exact.model_.prompts.deep:
            tensor.copy_(tensor.half().float())
        torch.testing.assert_close(cast.model_.free_text(), exact.model_.free_text(), atol=0, rtol=0)
    assert all(p.dtype == torch.float32 for p in cast.model_.prompts.deep)


# -- losses on hand-computed cases ---------------------------------------------------------------------
def test_score_focal_loss_takes_the_scores_as_logits():
    scores, labels = torch.tensor([0.8, 0.3]), torch.tensor([1, 0])
    bce = [math.log(1 + math.exp(-0.8)), math.log(1 + math.exp(0.3))]
    expected = sum((1 - math.exp(-b)) ** 2 * b for b in bce) / 2
    assert score_focal_loss(scores, labels).item() == pytest.approx(expected, rel=1e-6)
    assert score_focal_loss(scores, labels, gamma=0.0).item() == pytest.approx(sum(bce) / 2, rel=1e-6)


def test_orthogonal_loss_sums_the_absolute_cosines_of_distinct_pairs():
    features = torch.tensor([[2.0, 0.0], [1.0, 1.0], [0.0, -3.0]])  # cosines 1/√2, 0, −1/√2
    assert orthogonal_loss(features).item() == pytest.approx(2 ** 0.5, rel=1e-6)
    assert orthogonal_loss(features[:1]).item() == 0.0


def test_prior_loss_sums_the_mean_squares_of_the_normal_images():
    prior = torch.tensor([[1.0, 3.0], [2.0, 2.0], [0.0, 4.0]])
    assert prior_loss(prior, torch.tensor([0, 1, 0])).item() == pytest.approx(5.0 + 8.0)
    assert prior_loss(prior, torch.tensor([1, 1, 1])).item() == 0.0


def test_the_total_loss_weights_every_term_as_the_official_step():
    cfg = CFG.replace(image_size=4, score_global=0.5, score_free_max=2 / 3)
    free = torch.tensor([[[0.9, 0.2], [0.4, 0.6]]])
    conditioned = torch.tensor([[[0.7, 0.1], [0.3, 0.8]]])
    out = Outputs(free=torch.stack([1 - free, free], dim=1), conditioned=torch.stack([1 - conditioned, conditioned], dim=1),
                  logits=torch.tensor([[1.0, 3.0]]), prior=torch.tensor([[0.5, -0.5]]),
                  selected=torch.zeros(1, 1, dtype=torch.long), abnormal=torch.tensor([[1.0, 0.0], [1.0, 1.0]]))
    masks, labels = torch.zeros(1, 4, 4), torch.tensor([0])
    masks[0, :2, :2] = 1.0
    got = losses(out, masks, labels, cfg)
    probability = math.exp(3) / (math.exp(1) + math.exp(3))
    score = 0.5 * probability + 0.5 * (2 / 3 * 0.9 + 1 / 3 * 0.8)
    assert image_score(out, cfg).item() == pytest.approx(score, rel=1e-6)
    same_size = dict(size=(4, 4), mode="bilinear", align_corners=False)
    expected = {
        "free": local_loss(F.interpolate(out.free, **same_size), masks).item(),
        "conditioned": local_loss(F.interpolate(out.conditioned, **same_size), masks).item(),
        "global": -math.log(1 - probability),
        "score": (1 - math.exp(-math.log(1 + math.exp(score)))) ** 2 * math.log(1 + math.exp(score)),
        "orthogonal": 2 ** -0.5,
        "prior": 0.25,
    }
    for name, value in expected.items():
        assert got[name].item() == pytest.approx(value, rel=1e-5), name
    total = (expected["free"] + 0.5 * expected["conditioned"] + expected["global"] + expected["score"]
             + 0.1 * expected["orthogonal"] + expected["prior"])
    assert got["total"].item() == pytest.approx(total, rel=1e-5)


# -- training, state, configuration ------------------------------------------------------------------------
def test_training_updates_only_the_prompts_and_the_prior_network_and_lowers_the_loss():
    method = built(CFG.replace(epochs=6))
    backbone_before = {k: v.clone() for k, v in method.model_.backbone.state_dict().items()}
    learned_before = method.state_dict()
    method.fit(toy_data())
    assert method.history_[-1]["total"] < method.history_[0]["total"]
    assert set(method.history_[0]) >= {"free", "conditioned", "global", "score", "orthogonal", "prior"}
    for key, value in method.model_.backbone.state_dict().items():
        assert torch.equal(value, backbone_before[key]), key
    assert all(not torch.equal(learned_before[k], v) for k, v in method.state_dict().items())


def test_the_state_round_trip_restores_the_predictions():
    method = built(CFG.replace(epochs=1))
    method.fit(toy_data())
    fresh = built(seed=5)
    fresh.load_state_dict(method.state_dict())
    batch = Batch(image=images(), category="x")
    with torch.no_grad():
        first, second = method.predict(batch), fresh.predict(batch)
    assert torch.equal(first.pred_score, second.pred_score) and torch.equal(first.anomaly_map, second.anomaly_map)
    with pytest.raises(MethodError, match="missing"):
        fresh.load_state_dict({"prompts.ctx_normal": torch.zeros(5, 32)})


def test_an_interrupted_fit_resumes_from_its_last_epoch_and_ends_in_the_same_state(tmp_path):
    cfg = CFG.replace(epochs=3)
    whole = built(cfg)
    whole.fit(toy_data())
    checkpoints = FailingAfter(tmp_path / "ckpt", stop=2)
    with pytest.raises(Interrupted):
        built(cfg).fit(toy_data(checkpoints=checkpoints))
    resumed = built(cfg, seed=7)
    resumed.fit(toy_data(checkpoints=checkpoints))
    assert len(resumed.history_) == 3
    for key, value in whole.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[key], value)


def test_bad_configurations_name_the_field():
    with pytest.raises(ConfigError, match="deep_tokens"):
        FAPromptConfig(normal_ctx=3, deep_tokens=4)
    with pytest.raises(ConfigError, match="score_global"):
        FAPromptConfig(score_global=1.5)
    with pytest.raises(ConfigError, match="prior_selection"):
        FAPromptConfig().replace(prior_selection="best")
    with pytest.raises(ConfigError, match="prior_patches=17"):
        built(CFG.replace(prior_patches=17))
    with pytest.raises(ConfigError, match="layer"):
        built(CFG.replace(layer=24))
    with pytest.raises(ConfigError, match="deep_depth"):
        built(CFG.replace(deep_depth=9))


def test_the_official_defaults():
    cfg = FAPromptConfig()
    assert (cfg.backbone, cfg.image_size, cfg.layer, cfg.vv_last) == ("ViT-L-14-336-quickgelu", 518, 24, 19)
    assert (cfg.normal_ctx, cfg.abnormal_ctx, cfg.abnormal_prompts, cfg.prior_patches) == (5, 2, 10, 10)
    assert (cfg.deep_tokens, cfg.deep_depth, cfg.epochs, cfg.batch_size, cfg.lr, cfg.sigma) == (4, 9, 15, 8, 1e-3, 10.0)
    assert FAPrompt.trains_on_auxiliary and FAPrompt.settings == frozenset({"zero-shot"})


def test_training_improves_held_out_pixel_auroc_over_seeds(tmp_path):
    # 64 synthetic_aux images to train on, 64 new images of the same categories to score; the tiny random CLIP at
    # 112 px, 8 epochs; every other value is the official one.
    counts = dict(categories=AUX_CATEGORIES[:4], n_train=8, n_test_normal=6, n_test_anomalous=10, image_size=128)
    size = 112
    cfg = CFG.replace(image_size=size, epochs=8, batch_size=8)
    train_set, held_set = SyntheticAuxDataset(tmp_path / "train", **counts), SyntheticAuxDataset(tmp_path / "held", seed=1,
                                                                                                  **counts)
    train = ImageSet(train_set, train_set.select("test"), size, size)
    held_out = ImageSet(held_set, held_set.select("test"), size, size)
    gains = []
    for seed in (0, 1, 2):  # the prompts' and prior network's initialisation; the random backbone is the same
        method = built(cfg, seed=seed)
        before = pixel_auroc(method, held_out)
        method.fit(FitData("auxiliary", train.batches, len(train), "synthetic_aux", seed=seed, features=FeatureCache()))
        gains.append(pixel_auroc(method, held_out) - before)
        assert method.history_[-1]["total"] < method.history_[0]["total"]
    # Measured: before 0.527/0.383/0.361, after 0.569/0.540/0.580 (+0.04/+0.16/+0.22, mean +0.14).
    assert min(gains) > 0 and sum(gains) / len(gains) > 0.07, gains


def test_the_runner_trains_once_and_evaluates_every_category(tmp_path, monkeypatch):
    monkeypatch.setenv("ZSADBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("ZSADBENCH_SYNTHETIC_SIZE", "small")
    registry.reset()
    out = tmp_path / "out"
    sets = [arg for key, value in {**TINY, "epochs": 1}.items() for arg in ("--set", f"{key}={value}")]
    try:
        code = main(["run", "--plugin", "zsadbench.methods.faprompt.method:FAPrompt", "--method", "faprompt",
                     "--datasets", "synthetic", "--pretrained", "none", "--eval-size", "32", "--threads", "1",
                     "--out", str(out), "--no-table", *sets])
    finally:
        registry.reset()
    assert code == 0
    frame = ResultStore(out).to_frame()
    assert len(frame) == 3 and (frame.status == "ok").all() and set(frame.aux) == {"synthetic_aux"}
    assert np.isfinite(frame.image_auroc).all() and frame.pixel_auroc.between(0, 1).all()
    assert len(list((out / "cache" / "states").glob("*.pt"))) == 1
    ran = json.loads(frame.config_json.iloc[0])
    assert (ran["backbone"], ran["layer"], ran["prior_selection"]) == ("zsad-tiny-14-336", 4, "top")
