"""VisualAD assembled: token insertion and taps on both backbones, training, state, prediction rules, errors."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn

from zsadbench.errors import ConfigError, MethodError, NotFittedError
from zsadbench.maps import smooth, topk_mean, upsample
from zsadbench.method import FitData
from zsadbench.methods.visualad.config import VisualADConfig
from zsadbench.methods.visualad.maps import layer_map
from zsadbench.methods.visualad.method import VisualAD
from zsadbench.methods.visualad.model import VisualADHead, final_norm_of
from zsadbench.methods.visualad.training import make_optimizer, make_schedule
from zsadbench.types import Batch

SIZE = 56
CLIP_CFG = VisualADConfig(backbone="zsad-tiny-14-336", image_size=SIZE, layers=(2, 4), epochs=1, batch_size=4)
DINO_CFG = VisualADConfig(backbone="zsad-tiny-dinov2", image_size=SIZE, layers=(1, 3), epochs=1, batch_size=4)
pytestmark = pytest.mark.usefixtures("one_thread")


def built(cfg: VisualADConfig, seed: int = 0) -> VisualAD:
    torch.manual_seed(seed)
    return VisualAD(cfg, pretrained="none").setup()


def toy_fit_data(num: int = 8, size: int = SIZE) -> FitData:
    """Flat noisy images; odd ones carry a bright square that the mask marks."""

    def batches(batch_size: int = 8, shuffle: bool = False, seed: int = 0):
        gen = torch.Generator().manual_seed(seed)
        order = torch.randperm(num, generator=gen) if shuffle else torch.arange(num)
        for start in range(0, num, batch_size):
            idx = order[start : start + batch_size]
            images = 0.4 + 0.05 * torch.rand(len(idx), 3, size, size, generator=gen)
            masks = torch.zeros(len(idx), size, size, dtype=torch.bool)
            for row, i in enumerate(idx.tolist()):
                if i % 2:
                    masks[row, 10 + i : 24 + i, 8 : 22] = True
            images[masks.unsqueeze(1).expand(-1, 3, -1, -1)] = 0.95
            yield Batch(image=images, category="toy", gt_label=(idx % 2).long(), gt_mask=masks)

    return FitData("auxiliary", batches, num, "toy", seed=0)


def clip_reference_maps(method: VisualAD, images01: torch.Tensor) -> torch.Tensor:
    """The layer maps rebuilt from open_clip's public modules: [anomaly, normal, CLS, patches], each extra token
    with CLS's positional embedding, ln_pre, the blocks, then the head's ln_post on taps and final tokens."""
    model = method.model_
    visual, head = model.backbone.visual, model.head
    x = visual.conv1(model.backbone.normalize(images01)).flatten(2).transpose(1, 2)
    pos = visual.positional_embedding
    batch = x.shape[0]
    first = [t.expand(batch, 1, -1) + pos[0] for t in (head.anomaly_token, head.normal_token, visual.class_embedding)]
    seq = visual.ln_pre(torch.cat(first + [x + pos[1:]], dim=1))
    taps = []
    for number, block in enumerate(visual.transformer.resblocks, start=1):
        seq = block(seq)
        if number in method.config.layers:
            taps.append(head.ln_post(seq[:, 3:]))
    final = head.ln_post(seq[:, :2])
    maps = []
    for i, patches in enumerate(taps):
        enhanced = head.sca[i](final, patches)
        maps.append(layer_map(head.saf[i](patches), enhanced[:, 0], enhanced[:, 1], model.grid))
    return torch.stack(maps, 1)


def test_clip_tokens_are_inserted_before_cls_with_cls_position_and_taps_use_the_trained_ln_post():
    method = built(CLIP_CFG)
    images = torch.rand(2, 3, SIZE, SIZE)
    with torch.no_grad():
        got = method.model_(images).maps
        assert got.shape == (2, 2, 4, 4)
        assert torch.allclose(got, clip_reference_maps(method, images), atol=1e-5)
        # the head's ln_post is a trainable copy: changing it changes the maps, the backbone's own is untouched
        head_norm, own_norm = method.model_.head.ln_post, method.model_.backbone.visual.ln_post
        assert head_norm is not own_norm and torch.equal(head_norm.weight, own_norm.weight)
        head_norm.weight.mul_(1.5).add_(0.3)
        assert not torch.allclose(method.model_(images).maps, got)
    assert head_norm.weight.requires_grad and not own_norm.weight.requires_grad


def test_dinov2_tokens_go_before_cls_with_its_position_and_the_norm_is_copied():
    method = built(DINO_CFG)
    assert VisualAD(DINO_CFG).pretrained_tag == "lvd142m" and VisualAD(CLIP_CFG).pretrained_tag == "openai"
    model = method.model_
    timm_model, head = model.backbone.model, model.head
    assert torch.equal(head.ln_post.weight, timm_model.norm.weight) and head.ln_post is not timm_model.norm
    images = torch.rand(2, 3, SIZE, SIZE)
    with torch.no_grad():
        x = timm_model._pos_embed(timm_model.patch_embed(model.backbone.normalize(images)))  # [CLS, patches]
        extra = head.tokens().unsqueeze(0).expand(2, -1, -1) + timm_model.pos_embed[:, :1]
        seq = torch.cat([extra, x], dim=1)
        taps = []
        for number, block in enumerate(timm_model.blocks, start=1):
            seq = block(seq)
            if number in DINO_CFG.layers:
                taps.append(head.ln_post(seq[:, 3:]))
        final = head.ln_post(seq[:, :2])
        expected = []
        for i, patches in enumerate(taps):
            enhanced = head.sca[i](final, patches)
            expected.append(layer_map(head.saf[i](patches), enhanced[:, 0], enhanced[:, 1], (4, 4)))
        assert torch.allclose(model(images).maps, torch.stack(expected, 1), atol=1e-5)


def test_head_parameter_count_at_vit_l_matches_the_reference():
    # per layer: SCA 5,780,485 + SAF 2·(1024² + 1024); plus two tokens and ln_post (2·1024 each)
    head = VisualADHead(1024, 4, nn.LayerNorm(1024))
    expected = 4 * (5_780_485 + 2 * (1024**2 + 1024)) + 2 * 1024 + 2 * 1024
    assert sum(p.numel() for p in head.parameters()) == expected == 31_522_836  # ≈ 31.5 M, as stated for the reference


def test_token_init_scale_and_optimiser_groups_and_schedule():
    method = built(CLIP_CFG.replace(epochs=2))
    head = method.model_.head
    width = method.model_.backbone.width
    # tokens ~ 0.1 · width^-½ · N(0, 1): the std over both tokens is close to that value
    std = head.tokens().std().item()
    assert 0.5 * 0.1 * width**-0.5 < std < 1.5 * 0.1 * width**-0.5
    optimizer = make_optimizer(method.model_, method.config)
    schedule = make_schedule(optimizer, method.config)
    lrs = [g["lr"] for g in optimizer.param_groups]
    assert lrs == [1e-3, 1e-3, 1e-4, 1e-4, 1e-4]
    assert all(g["weight_decay"] == 0.01 and g["betas"] == (0.9, 0.999) for g in optimizer.param_groups)
    grouped = sum(p.numel() for g in optimizer.param_groups for p in g["params"])
    assert grouped == sum(p.numel() for p in head.parameters())
    optimizer.step()
    schedule.step()
    # after epoch 1 of 2: eta_min + (lr − eta_min)·(1 + cos(π/2))/2
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1e-4 + 9e-4 * (1 + math.cos(math.pi / 2)) / 2)
    assert optimizer.param_groups[2]["lr"] == pytest.approx(1e-4)


def test_fit_trains_every_head_part_and_leaves_the_backbone_frozen():
    method = built(CLIP_CFG.replace(epochs=2))
    backbone_before = {k: v.clone() for k, v in method.model_.backbone.state_dict().items()}
    head_before = {k: v.clone() for k, v in method.model_.head.state_dict().items()}
    reports = []
    data = toy_fit_data()
    data.progress = lambda message, fraction: reports.append(fraction)
    assert method.fit(data) is method
    assert len(method.history_) == 2 and all(math.isfinite(h["total"]) for h in method.history_)
    assert reports[-1] == pytest.approx(1.0) and reports == sorted(reports)
    for key, value in method.model_.backbone.state_dict().items():
        assert torch.equal(value, backbone_before[key]), key
    after = method.model_.head.state_dict()
    for prefix in ("anomaly_token", "normal_token", "ln_post.weight", "sca.0.anchors", "sca.1.out_proj.weight",
                   "saf.0.mlp.0.weight", "saf.1.mlp.3.bias"):
        assert not torch.equal(after[prefix], head_before[prefix]), prefix
    assert not any(p.requires_grad for p in method.model_.backbone.parameters())
    assert not method.model_.training and not method.model_.backbone.training


def test_state_dict_holds_only_the_head_and_round_trips(tmp_path):
    method = built(CLIP_CFG).fit(toy_fit_data())
    state = method.state_dict()
    assert {k.split(".")[0] for k in state} == {"anomaly_token", "normal_token", "ln_post", "sca", "saf"}
    torch.save(state, tmp_path / "state.pt")
    reloaded = built(CLIP_CFG)  # same random backbone (same seed), untrained head
    assert not torch.equal(reloaded.model_.head.anomaly_token, method.model_.head.anomaly_token)
    reloaded.load_state_dict(torch.load(tmp_path / "state.pt", weights_only=True))
    batch = Batch(image=torch.rand(2, 3, SIZE, SIZE), category="toy")
    first, second = method.predict(batch), reloaded.predict(batch)
    assert torch.equal(first.anomaly_map, second.anomaly_map) and torch.equal(first.pred_score, second.pred_score)
    wrong = dict(state, anomaly_token=torch.zeros(3))
    with pytest.raises(MethodError, match="mis-shaped"):
        built(CLIP_CFG).load_state_dict(wrong)


def test_predict_returns_the_smoothed_summed_map_and_its_top_k_mean():
    method = built(CLIP_CFG.replace(sigma=2.0, topk_ratio=0.05)).fit(toy_fit_data())
    images = torch.rand(3, 3, SIZE, SIZE)
    prediction = method.predict(Batch(image=images, category="toy"))
    assert prediction.anomaly_map.shape == (3, SIZE, SIZE) and prediction.pred_score.shape == (3,)
    assert prediction.anomaly_map.dtype == torch.float32 and prediction.anomaly_map.device.type == "cpu"
    with torch.no_grad():
        raw = upsample(method.model_(images).maps, SIZE).sum(1)
    expected = smooth(raw, 2.0)
    assert torch.allclose(prediction.anomaly_map, expected, atol=1e-5)
    assert torch.allclose(prediction.pred_score, topk_mean(expected, 0.05), atol=1e-6)
    assert torch.equal(method.predict(Batch(image=images, category="toy")).anomaly_map, prediction.anomaly_map)


@pytest.mark.parametrize("cfg", [CLIP_CFG, DINO_CFG], ids=["clip", "dinov2"])
def test_original_test_norm_scores_with_the_backbones_own_final_norm(cfg):
    """``test_ln_post="original"`` is the release's test script: the trained head with the backbone's untrained
    final norm, i.e. the same as putting that norm's weights back into the head."""
    state = built(cfg).fit(toy_fit_data()).state_dict()
    trained, original, restored = (built(cfg.replace(test_ln_post=mode)) for mode in ("trained", "original", "trained"))
    for method in (trained, original, restored):
        method.load_state_dict(state)
    backbone_norm = final_norm_of(restored.model_.backbone)
    restored.model_.head.ln_post.load_state_dict(backbone_norm.state_dict())
    assert not torch.equal(state["ln_post.weight"], backbone_norm.weight)  # training moved the copy
    batch = Batch(image=torch.rand(2, 3, SIZE, SIZE), category="toy")
    got = original.predict(batch)
    assert torch.equal(got.anomaly_map, restored.predict(batch).anomaly_map)
    assert not torch.equal(got.anomaly_map, trained.predict(batch).anomaly_map)


def test_user_errors_raise_named_errors():
    method = built(CLIP_CFG)
    with pytest.raises(NotFittedError):
        method.predict(Batch(image=torch.rand(1, 3, SIZE, SIZE), category="toy"))
    with pytest.raises(ConfigError, match="layers"):
        built(CLIP_CFG.replace(layers=(6, 12)))
    with pytest.raises(ConfigError, match="max_patches"):
        built(CLIP_CFG.replace(max_patches=8))
    method.load_state_dict(method.state_dict())
    with pytest.raises(ConfigError, match="px"):
        method.predict(Batch(image=torch.rand(1, 3, 42, 42), category="toy"))
