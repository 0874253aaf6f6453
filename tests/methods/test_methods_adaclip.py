"""AdaCLIP: hand-computed losses, where the hybrid prompts enter both towers, HSF on a planted case, maps and
scores against a plain-torch re-statement on the tiny random backbone, state round trips, what training moves,
and a run through the runner on the synthetic set."""
from __future__ import annotations

import json
import math

import numpy as np
import open_clip
import pytest
import torch
import torch.nn.functional as F
from scipy.ndimage import gaussian_filter

from zsadbench import registry
from zsadbench.cli.main import main
from zsadbench.errors import ConfigError, MethodError
from zsadbench.method import FitData
from zsadbench.methods.adaclip.config import AdaCLIPConfig
from zsadbench.methods.adaclip.hsf import fuse
from zsadbench.methods.adaclip.method import AdaCLIP
from zsadbench.methods.adaclip.prompts import class_sentences
from zsadbench.methods.adaclip.training import adaclip_loss, segmentation_loss
from zsadbench.store import ResultStore
from zsadbench.types import Batch

pytestmark = pytest.mark.usefixtures("one_thread")

S = 56  # a 4x4 grid on the 14-px tiny backbone
TINY = AdaCLIPConfig(backbone="zsad-tiny-14-336", image_size=S, layers=(2, 4), prompting_depth=2, prompting_length=2,
                     k_clusters=2, epochs=1, batch_size=2)
TINY_FLAGS = ["--set", "backbone=zsad-tiny-14-336", "--set", f"image_size={S}", "--set", "layers=2,4",
              "--set", "prompting_depth=2", "--set", "prompting_length=2", "--set", "k_clusters=2",
              "--set", "epochs=1", "--set", "batch_size=4"]
MEAN = torch.tensor(open_clip.OPENAI_DATASET_MEAN).view(1, 3, 1, 1)
STD = torch.tensor(open_clip.OPENAI_DATASET_STD).view(1, 3, 1, 1)


def images(count: int, seed: int) -> torch.Tensor:
    low = torch.rand(count, 3, 8, 8, generator=torch.Generator().manual_seed(seed))
    return F.interpolate(low, size=S, mode="bilinear", align_corners=False)


def untrained(config: AdaCLIPConfig = TINY, seed: int = 0) -> AdaCLIP:
    """The tiny AdaCLIP with its initial head (drawn after ``torch.manual_seed(seed)``), counted as fitted."""
    torch.manual_seed(seed)
    method = AdaCLIP(config, pretrained="none").setup()
    method.fitted_ = True
    return method


def auxiliary(count: int = 4) -> FitData:
    pictures = images(count, 3)
    masks = torch.zeros(count, S, S, dtype=torch.bool)
    masks[count // 2:, 10:30, 20:40] = True
    labels = (torch.arange(count) >= count // 2).long()
    names = tuple(["bottle", "metal_nut"][i % 2] for i in range(count))

    def batches(batch_size: int = 2, shuffle: bool = False, seed: int = 0):
        for start in range(0, count, batch_size):
            part = slice(start, start + batch_size)
            yield Batch(image=pictures[part], category="object", gt_label=labels[part], gt_mask=masks[part],
                        categories=names[part])

    return FitData("auxiliary", batches, count, "synthetic_aux")


# -- plain-torch re-statements ------------------------------------------------------------------------------------
def _block(block, x, mask=None):
    h = block.ln_1(x)
    x = x + block.attn(h, h, h, need_weights=False, attn_mask=mask)[0]
    return x + block.mlp(block.ln_2(x))


def plain_visual(backbone, pictures, prompts, layers):
    """The image tower with the prompts appended after the patches and replaced before each prompted block:
    the raw patch tokens of ``layers`` and the final CLS after ``ln_post`` and ``proj``."""
    visual = backbone.visual
    x = visual.conv1((pictures - MEAN) / STD).flatten(2).transpose(1, 2)
    x = torch.cat([visual.class_embedding.expand(len(x), 1, -1), x], dim=1) + visual.positional_embedding
    x = visual.ln_pre(x)
    n, taps = x.shape[1], {}
    for number, block in enumerate(visual.transformer.resblocks, start=1):
        if number <= len(prompts):
            x = torch.cat([x[:, :n], prompts[number - 1]], dim=1)
        x = _block(block, x)
        taps[number] = x[:, 1:n]
    return [taps[layer] for layer in layers], visual.ln_post(x[:, 0]) @ visual.proj


def plain_text(backbone, category, prompts):
    """The (normal, anomalous) ensemble features of one image whose text prompts are ``prompts`` (blocks 2..)."""
    model = backbone.model
    sentences, normal = class_sentences(category)
    tokens = open_clip.get_tokenizer("zsad-tiny-14-336")(sentences)
    x = model.token_embedding(tokens) + model.positional_embedding
    for number, block in enumerate(model.transformer.resblocks, start=1):
        if 2 <= number <= len(prompts) + 1:
            x = torch.cat([x[:, :1], prompts[number - 2].expand(len(x), -1, -1), x[:, 1 + prompts[0].shape[0]:]], 1)
        x = _block(block, x, model.attn_mask)
    features = model.ln_final(x)[torch.arange(len(x)), tokens.argmax(dim=-1)] @ model.text_projection
    features = F.normalize(features, dim=-1)
    return F.normalize(torch.stack([features[:normal].mean(0), features[normal:].mean(0)]), dim=-1)


# -- configuration ------------------------------------------------------------------------------------------------
def test_defaults_are_the_official_values_and_bad_values_name_their_field():
    cfg = AdaCLIPConfig()
    assert (cfg.backbone, cfg.image_size, cfg.layers) == ("ViT-L-14-336-quickgelu", 518, (6, 12, 18, 24))
    assert (cfg.prompting_branch, cfg.prompting_type, cfg.prompting_depth, cfg.prompting_length) == ("VL", "SD", 4, 5)
    assert (cfg.use_hsf, cfg.k_clusters, cfg.hsf_tokens_per_cluster, cfg.hsf_alpha) == (True, 20, 5, 0.2)
    assert (cfg.epochs, cfg.batch_size, cfg.lr, cfg.betas, cfg.weight_decay) == (5, 1, 0.01, (0.5, 0.999), 0.01)
    assert (cfg.logit_scale, cfg.sigma, cfg.prompt_init_std) == (100.0, 4.0, 0.02)
    with pytest.raises(ConfigError, match=r"AdaCLIPConfig\.hsf_alpha must be in \[0, 1\]"):
        cfg.replace(hsf_alpha=1.5)
    with pytest.raises(ConfigError, match=r"AdaCLIPConfig\.prompting_type must be one of"):
        cfg.replace(prompting_type="X")
    with pytest.raises(ConfigError, match=r"prompting_depth=3 prompts more blocks than the 2 text blocks.*"
                                          r"--set prompting_depth=2"):
        AdaCLIP(TINY.replace(prompting_depth=3), pretrained="none").setup()
    with pytest.raises(ConfigError, match=r"AdaCLIPConfig\.layers \[2, 9\]: \[9\] outside 1\.\.4.*--set layers=1,2,3,4"):
        AdaCLIP(TINY.replace(layers=(2, 9)), pretrained="none").setup()
    assert (AdaCLIP.name, AdaCLIP.version, AdaCLIP.label, AdaCLIP.default_pretrained) == ("adaclip", "1", "AdaCLIP",
                                                                                          "openai")
    assert AdaCLIP.settings == {"zero-shot"} and AdaCLIP.trains_on_auxiliary


def test_the_ensemble_holds_seven_normal_and_five_anomalous_states_in_four_templates():
    sentences, normal = class_sentences("metal-nut")
    assert (len(sentences), normal) == (48, 28)
    assert sentences[0] == "a bad photo of a metal nut." and sentences[4] == "a bad photo of a flawless metal nut."
    assert sentences[28] == "a bad photo of a damaged metal nut." and sentences[-1] == "a cropped photo of the metal nut with damage."


# -- losses -------------------------------------------------------------------------------------------------------
def test_segmentation_loss_by_hand_per_image_and_per_row():
    probs_a = torch.tensor([[[0.9, 0.2], [0.1, 0.6]]])  # [1, 2, 2]
    probs = torch.stack([1 - probs_a, probs_a], dim=1)  # [1, 2, 2, 2]
    gt = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]])
    s = 1e-5
    focal = 0.0
    for p, g in zip(probs_a.flatten().tolist(), gt.flatten().tolist()):
        soft = min(max(g, s), 1 - s)
        pt = soft * p + (1 - soft) * (1 - p) + s
        focal += -((1 - pt) ** 2) * math.log(pt)
    focal /= 4
    dice_a = 1 - (2 * (0.9 + 0.6) + 1) / (1.8 + 2 + 1)
    dice_n = 1 - (2 * (0.8 + 0.9) + 1) / (2.2 + 2 + 1)
    image = segmentation_loss(probs, gt, TINY)
    assert image.item() == pytest.approx(focal + dice_a + dice_n, rel=1e-5)
    rows_a = [1 - (2 * 0.9 + 1) / (1.1 + 1 + 1), 1 - (2 * 0.6 + 1) / (0.7 + 1 + 1)]
    rows_n = [1 - (2 * 0.8 + 1) / (0.9 + 1 + 1), 1 - (2 * 0.9 + 1) / (1.3 + 1 + 1)]
    rows = segmentation_loss(probs, gt, TINY.replace(dice_unit="row"))
    assert rows.item() == pytest.approx(focal + sum(rows_a) / 2 + sum(rows_n) / 2, rel=1e-5)


def test_the_loss_adds_the_image_focal_term_to_every_layers_segmentation_loss():
    grid = (2, 2)
    logits = [torch.tensor([[[0.0, 1.0], [0.5, 0.0], [0.0, 0.0], [2.0, 0.0]]]) * k for k in (1.0, 3.0)]
    image_logits = torch.tensor([[0.0, math.log(3.0)]])  # p(anomalous) = 0.75
    cfg = TINY.replace(image_size=4)
    masks = torch.zeros(1, 4, 4)
    masks[0, :2, 2:] = 1
    parts = adaclip_loss(logits, image_logits, masks, torch.tensor([1]), cfg, grid)
    pt = 0.75 * (1 - 1e-5) + 0.25 * 1e-5 + 1e-5
    assert parts["image"].item() == pytest.approx(-((1 - pt) ** 2) * math.log(pt), rel=1e-5)
    by_layer = 0.0
    for layer in logits:
        up = F.interpolate(layer.transpose(1, 2).reshape(1, 2, 2, 2), size=4, mode="bilinear", align_corners=True)
        by_layer += segmentation_loss(up.softmax(dim=1), masks, cfg).item()
    assert parts["segmentation"].item() == pytest.approx(by_layer, rel=1e-6)
    assert parts["total"].item() == pytest.approx(parts["image"].item() + by_layer, rel=1e-6)


# -- prompts ------------------------------------------------------------------------------------------------------
def test_text_prompts_overwrite_positions_one_to_length_of_blocks_two_to_depth_only():
    method = untrained(TINY.replace(prompting_length=3))
    model = method.model_
    seen: list[torch.Tensor] = []
    hooks = [b.register_forward_pre_hook(lambda m, args, kw: seen.append(args[0].detach().clone()), with_kwargs=True)
             for b in model.backbone.model.transformer.resblocks]
    embedding = torch.randn(1, 32)
    prompts = model.head.text_prompts(embedding)
    try:
        model.text_features(["bottle"], embedding)
    finally:
        for hook in hooks:
            hook.remove()
    tokens, emb, _ = model.texts("bottle")
    length = int(tokens.argmax(dim=-1).max()) + 1
    plain = (emb + model.backbone.model.positional_embedding)[:, :length]
    assert torch.equal(seen[0], plain)  # block 1 sees the sentences as they are
    torch.testing.assert_close(seen[1][:, 1:4], prompts[0].expand(48, -1, -1))
    block1 = model.backbone.model.transformer.resblocks[0](plain, attn_mask=model.backbone.model.attn_mask[:length, :length])
    assert torch.equal(seen[1][:, 0], block1[:, 0]) and torch.equal(seen[1][:, 4:], block1[:, 4:])


def test_hybrid_prompts_are_static_plus_a_linear_map_of_the_frozen_embedding():
    head = untrained().model_.head
    embedding = torch.randn(3, 32)
    visual = head.visual_prompts(embedding)
    weight, bias = head.visual_prompts.generator.weight, head.visual_prompts.generator.bias
    assert len(visual) == 2 and visual[0].shape == (3, 2, 64)
    for block, prompt in enumerate(visual):
        expected = (embedding @ weight.T + bias).reshape(3, 2, 64) + head.visual_prompts.static[block]
        torch.testing.assert_close(prompt, expected)
    static_only = untrained(TINY.replace(prompting_type="S")).model_.head
    assert static_only.visual_prompts.generator is None and torch.equal(static_only.visual_prompts(None)[1],
                                                                      static_only.visual_prompts.static[1])
    dynamic_only = untrained(TINY.replace(prompting_type="D")).model_.head
    assert dynamic_only.text_prompts.static is None and len(dynamic_only.text_prompts(embedding)) == 1
    half = untrained(TINY.replace(prompt_cast="fp16")).model_.head
    assert torch.equal(half.visual_prompts(embedding)[0], half.visual_prompts(embedding)[0].half().float())


# -- HSF ----------------------------------------------------------------------------------------------------------
def test_hsf_takes_the_mean_of_the_cluster_centres_of_the_most_anomalous_patches():
    dim, count = 8, 30
    gen = torch.Generator().manual_seed(0)
    base = [F.normalize(torch.randn(dim, generator=gen), dim=0) for _ in range(3)]
    patches = torch.stack([base[2]] * count) + 0.01 * torch.randn(count, dim, generator=gen)  # background
    patches[:8] = base[0] + 0.01 * torch.randn(8, dim, generator=gen)  # the large anomalous region
    patches[8:10] = base[1] + 0.01 * torch.randn(2, dim, generator=gen)  # the small one
    logits = torch.zeros(1, count, 2)
    logits[0, :10, 1] = torch.linspace(5, 6, 10)  # the ten most anomalous patches: both regions
    fused = fuse([patches[None], patches[None]], [logits, logits], k_clusters=2, tokens_per_cluster=5, seed=0)
    expected = F.normalize((patches[:8].mean(0) + patches[8:10].mean(0)) / 2, dim=0)
    torch.testing.assert_close(fused[0], expected)
    assert not torch.allclose(fused[0], F.normalize(patches[:10].mean(0), dim=0), atol=1e-3)  # not the plain mean
    # the layers are averaged patch by patch, and a grid smaller than the clusters asked for still works
    other = patches.flip(1)
    both = fuse([patches[None], other[None]], [logits, logits], k_clusters=2, tokens_per_cluster=5, seed=0)
    mixed = (patches + other) / 2
    torch.testing.assert_close(both[0], F.normalize((mixed[:8].mean(0) + mixed[8:10].mean(0)) / 2, dim=0))
    few = fuse([patches[None, :3]], [logits[:, :3]], k_clusters=20, tokens_per_cluster=5, seed=0)
    assert few.shape == (1, dim) and torch.isfinite(few).all()


# -- maps and scores against a re-statement ----------------------------------------------------------------------
def test_predict_equals_a_plain_torch_restatement_without_hsf():
    cfg = TINY.replace(use_hsf=False, sigma=2.0)
    method = untrained(cfg)
    model, head = method.model_, method.model_.head
    pictures = images(2, 1)
    with torch.no_grad():
        out = method.predict(Batch(image=pictures, category="bottle"))
        backbone = model.backbone
        embedding = plain_visual(backbone, pictures, [], [4])[1]
        visual_prompts = head.visual_prompts(embedding)
        taps, cls = plain_visual(backbone, pictures, visual_prompts, cfg.layers)
        text = torch.stack([plain_text(backbone, "bottle", [p[b] for p in head.text_prompts(embedding)])
                            for b in range(2)])
        logits = []
        for projection, raw in zip(head.patch_projections, taps):
            logits.append(100 * F.normalize(projection(raw), dim=-1) @ text.transpose(1, 2))
        grid = torch.stack(logits).mean(0).transpose(1, 2).reshape(2, 2, 4, 4)
        probs = F.interpolate(grid, size=S, mode="bilinear", align_corners=True).softmax(dim=1)[:, 1]
        expected_map = np.stack([gaussian_filter(m, sigma=2.0) for m in probs.numpy()])
        image = F.normalize(head.cls_projection(cls), dim=-1)
        expected_score = (100 * (image.unsqueeze(1) @ text.transpose(1, 2))).squeeze(1).softmax(-1)[:, 1]
    np.testing.assert_allclose(out.anomaly_map.numpy(), expected_map, atol=2e-5)
    torch.testing.assert_close(out.pred_score, expected_score, atol=2e-5, rtol=0)
    assert out.anomaly_map.shape == (2, S, S) and out.pred_score.dtype == torch.float32


def test_hsf_changes_the_image_logits_only_and_alpha_zero_switches_it_off():
    pictures = images(2, 1)
    with torch.no_grad():
        with_hsf = untrained().model_(pictures, ["bottle"] * 2)
        without = untrained(TINY.replace(use_hsf=False)).model_(pictures, ["bottle"] * 2)
        weightless = untrained(TINY.replace(hsf_alpha=0.0)).model_(pictures, ["bottle"] * 2)
    for a, b in zip(with_hsf.patch_logits, without.patch_logits):
        assert torch.equal(a, b)
    assert not torch.allclose(with_hsf.image_logits, without.image_logits)
    torch.testing.assert_close(weightless.image_logits, without.image_logits, atol=1e-4, rtol=0)
    assert with_hsf.image_logits.abs().max() <= 100.0 + 1e-4  # logit_scale times cosines


def test_prompting_variants_build_and_score():
    pictures = images(2, 1)
    for branch, kind in (("V", "SD"), ("L", "D"), ("", "SD"), ("VL", "S")):
        method = untrained(TINY.replace(prompting_branch=branch, prompting_type=kind))
        keys = set(method.state_dict())
        assert any(k.startswith("visual_prompts") for k in keys) == ("V" in branch)
        assert any(k.startswith("text_prompts") for k in keys) == ("L" in branch)
        assert any(k.endswith("generator.weight") for k in keys) == ("D" in kind and bool(branch))
        with torch.no_grad():
            out = method.predict(Batch(image=pictures, category="bottle"))
        assert torch.isfinite(out.anomaly_map).all() and out.pred_score.shape == (2,)
    fixed = untrained(TINY.replace(prompting_branch="V"))
    with torch.inference_mode():
        fixed.predict(Batch(image=pictures, category="bottle"))
    assert set(fixed.model_._fixed_text) == {"bottle"}  # without text prompts the text is computed once
    fixed.fit(auxiliary())  # the text kept under inference mode does not enter the training graph
    assert fixed.history_ and math.isfinite(fixed.history_[0]["total"])


# -- state and training -------------------------------------------------------------------------------------------
def test_state_dict_round_trip_restores_the_predictions():
    method = untrained(seed=1)
    pictures = images(2, 5)
    with torch.no_grad():
        first = method.predict(Batch(image=pictures, category="bottle"))
    other = AdaCLIP(TINY, pretrained="none")
    other.load_state_dict(method.state_dict())
    with torch.no_grad():
        second = other.predict(Batch(image=pictures, category="bottle"))
    assert torch.equal(first.anomaly_map, second.anomaly_map) and torch.equal(first.pred_score, second.pred_score)
    with pytest.raises(MethodError, match="adaclip state does not fit"):
        AdaCLIP(TINY.replace(prompting_length=3), pretrained="none").load_state_dict(method.state_dict())
    with pytest.raises(MethodError, match="no trained state"):
        AdaCLIP(TINY, pretrained="none").state_dict()


def test_training_moves_every_head_parameter_and_nothing_of_the_backbone():
    torch.manual_seed(0)
    method = AdaCLIP(TINY, pretrained="none").setup()
    backbone = {k: v.clone() for k, v in method.model_.backbone.state_dict().items()}
    head = {k: v.clone() for k, v in method.state_dict().items()}
    method.fit(auxiliary())
    assert all(torch.equal(v, backbone[k]) for k, v in method.model_.backbone.state_dict().items())
    moved = {k for k, v in method.state_dict().items() if not torch.equal(v, head[k])}
    assert moved == set(head)
    assert len(method.history_) == 1 and set(method.history_[0]) == {"epoch", "total", "image", "segmentation"}
    assert not method.model_.training and all(not p.requires_grad for p in method.model_.backbone.parameters())


# -- the runner ---------------------------------------------------------------------------------------------------
def test_adaclip_runs_through_the_runner_on_the_synthetic_set(tmp_path, monkeypatch):
    monkeypatch.setenv("ZSADBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("ZSADBENCH_SYNTHETIC_SIZE", "small")
    registry.reset()
    out = tmp_path / "out"
    code = main(["run", "--plugin", "zsadbench.methods.adaclip.method:AdaCLIP", "--method", "adaclip",
                 "--datasets", "synthetic", "--pretrained", "none", "--eval-size", "32", "--out", str(out),
                 "--no-table", *TINY_FLAGS])
    registry.reset()
    assert code == 0
    rows = ResultStore(out).rows()
    assert len(rows) == 3 and all(r.status == "ok" for r in rows) and {r.aux for r in rows} == {"synthetic_aux"}
    assert len(list((out / "cache" / "states").glob("*.pt"))) == 1
    frame = ResultStore(out).to_frame()
    assert frame.image_auroc.between(0, 1).all() and frame.pixel_auroc.between(0, 1).all()
    ran = json.loads(frame.config_json.iloc[0])
    assert (ran["backbone"], ran["layers"], ran["prompting_depth"]) == ("zsad-tiny-14-336", [2, 4], 2)
