"""AnomalyCLIP against a test-side re-statement of the reference formulas on the same tiny random CLIP, plus
its losses on hand-computed cases, training, the feature cache and checkpoint resume."""
from __future__ import annotations

import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F
from scipy.ndimage import gaussian_filter

from zsadbench.backbones import FeatureCache
from zsadbench.errors import ConfigError, MethodError
from zsadbench.methods.anomalyclip.config import AnomalyCLIPConfig
from zsadbench.methods.anomalyclip.losses import global_loss, local_loss
from zsadbench.methods.anomalyclip.method import AnomalyCLIP
from zsadbench.methods.anomalyclip.scoring import two_class_logits
from zsadbench.types import Batch

from clip_reference import SIZE, reference_visual, toy_data
from interrupts import FailingAfter, Interrupted

pytestmark = pytest.mark.usefixtures("one_thread")
CFG = AnomalyCLIPConfig(backbone="zsad-tiny-14-336", image_size=SIZE, layers=(4,), vv_last=3, deep_depth=2,
                        epochs=2, batch_size=4)


def built(cfg: AnomalyCLIPConfig = CFG, seed: int = 0) -> AnomalyCLIP:
    torch.manual_seed(seed)
    return AnomalyCLIP(cfg, pretrained="none").setup()


# -- a re-statement of the reference computations on open_clip's public modules ------------------
def reference_text(method: AnomalyCLIP) -> torch.Tensor:
    """Prompts "X×12 object." / "X×12 damaged object.": ctx at positions 1..12, deep prompt tokens overwriting
    positions 1..4 before text blocks 2.., EOT (highest id) after ln_final, text projection, L2 norm."""
    model = method.model_.backbone.model
    prompts = method.model_.prompts
    tokens = method.model_.backbone.tokenize(["X " * 12 + "object.", "X " * 12 + "damaged object."])
    x = model.token_embedding(tokens).clone()
    x[0, 1:13] = prompts.ctx_pos
    x[1, 1:13] = prompts.ctx_neg
    x = x + model.positional_embedding
    for number, block in enumerate(model.transformer.resblocks, start=1):
        if 2 <= number <= len(prompts.deep) + 1:
            x = x.clone()
            x[:, 1:5] = prompts.deep[number - 2]
        x = block(x, attn_mask=model.attn_mask)
    x = model.ln_final(x)
    pooled = x[torch.arange(2), tokens.argmax(-1)] @ model.text_projection
    return F.normalize(pooled, dim=-1)


def test_text_features_follow_the_reference_prompt_assembly_and_deep_overwriting():
    method = built()
    with torch.no_grad():
        torch.testing.assert_close(method.model_.text_features(), reference_text(method), atol=1e-5, rtol=1e-4)
    # the deep prompt really changes the features (it is not ignored)
    with torch.no_grad():
        before = method.model_.text_features()
        method.model_.prompts.deep[0].add_(1.0)
        assert not torch.allclose(before, method.model_.text_features())


def test_the_official_fp16_cast_of_the_deep_prompts():
    cast = built(dataclasses.replace(CFG, deep_prompt_cast="fp16"))
    exact, rounded = built(), built()  # the same seed: the same parameters
    with torch.no_grad():
        for tensor in rounded.model_.prompts.deep:
            tensor.copy_(tensor.half().float())
        assert torch.equal(cast.model_.text_features(), rounded.model_.text_features())
        assert not torch.equal(cast.model_.text_features(), exact.model_.text_features())
    cast.model_.text_features().sum().backward()  # the cast keeps the deep prompts trainable
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in cast.model_.prompts.deep)
    assert all(p.dtype == torch.float32 for p in cast.model_.prompts.deep)


def test_maps_and_scores_follow_the_reference_formulas():
    method = built()
    method.load_state_dict(method.state_dict())
    images = torch.rand(2, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        text = reference_text(method)
        image, patches = reference_visual(method, images)
        patch_probs = (patches @ text.T / 0.07).softmax(-1)[..., 1].reshape(2, 1, 4, 4)
        expected_score = (image @ text.T / 0.07).softmax(-1)[:, 1]
        up = F.interpolate(patch_probs, size=(SIZE, SIZE), mode="bilinear", align_corners=False)[:, 0]
        expected_map = torch.from_numpy(gaussian_filter(up.numpy(), sigma=(0, 4, 4))).float()
        out = method.predict(Batch(image=images, category="x"))
    torch.testing.assert_close(out.pred_score, expected_score, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(out.anomaly_map, expected_map, atol=1e-5, rtol=1e-4)
    assert out.anomaly_map.shape == (2, SIZE, SIZE) and out.anomaly_map.dtype == torch.float32


def test_two_class_logits_on_hand_made_vectors():
    text = torch.tensor([[1.0, 0.0], [0.0, 2.0]])  # normal along x, anomaly along y (normalised inside)
    feats = torch.tensor([[3.0, 0.0], [1.0, 1.0]])
    logits = two_class_logits(feats, text, 0.5)
    torch.testing.assert_close(logits, torch.tensor([[2.0, 0.0], [2**-0.5 * 2, 2**-0.5 * 2]]))


def test_local_loss_on_a_hand_computed_case():
    # one 1x2 image: pixel 0 anomalous predicted 0.8, pixel 1 normal predicted 0.3
    s_a = torch.tensor([[[0.8, 0.3]]])
    probs = torch.stack([1 - s_a, s_a], dim=1)
    mask = torch.tensor([[[1.0, 0.0]]])
    eps = 1e-5
    pt = torch.tensor([(1 - eps) * 0.8 + eps * 0.2 + eps, (1 - eps) * 0.7 + eps * 0.3 + eps])
    focal = (-(1 - pt) ** 2 * pt.log()).mean()
    dice_a = 1 - (2 * 0.8 + 1) / (1.1 + 1 + 1)
    dice_n = 1 - (2 * 0.7 + 1) / (0.9 + 1 + 1)
    torch.testing.assert_close(local_loss(probs, mask), focal + dice_a + dice_n)


def test_global_loss_is_cross_entropy_of_the_scaled_cosines():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0]])
    expected = -(torch.log(torch.tensor(math.exp(2) / (math.exp(2) + 1))) + torch.log(torch.tensor(math.e / (math.e + 1)))) / 2
    torch.testing.assert_close(global_loss(logits, torch.tensor([0, 1])), expected)


def test_training_updates_only_the_prompts_with_adam_betas_and_lowers_the_loss():
    method = built(CFG.replace(epochs=6))
    backbone_before = {k: v.clone() for k, v in method.model_.backbone.state_dict().items()}
    prompts_before = {k: v.clone() for k, v in method.state_dict().items()}
    method.fit(toy_data())
    assert method.history_[-1]["total"] < method.history_[0]["total"]
    for key, value in method.model_.backbone.state_dict().items():
        assert torch.equal(value, backbone_before[key]), key
    assert all(not torch.equal(prompts_before[k], v) for k, v in method.state_dict().items())
    assert set(method.state_dict()) == {"ctx_pos", "ctx_neg", "deep.0"}


def test_feature_cache_runs_the_tower_once_per_image_and_gives_the_same_training(monkeypatch):
    calls = []
    direct = built()
    direct.fit(toy_data())
    cached = built()
    original = cached.model_.backbone.forward_intermediates

    def counting(images, *args, **kwargs):
        calls.append(images.shape[0])
        return original(images, *args, **kwargs)

    monkeypatch.setattr(cached.model_.backbone, "forward_intermediates", counting)
    cache = FeatureCache()
    cached.fit(toy_data(features=cache))
    assert sum(calls) == 8 and cache.hits == 8  # 2 epochs of 8 images: computed once, read once
    for key, value in direct.state_dict().items():
        torch.testing.assert_close(cached.state_dict()[key], value)


def test_an_interrupted_fit_resumes_from_its_last_epoch_and_ends_in_the_same_state(tmp_path):
    cfg = CFG.replace(epochs=3)
    whole = built(cfg)
    whole.fit(toy_data())
    checkpoints = FailingAfter(tmp_path / "ckpt", stop=2)
    with pytest.raises(Interrupted):
        built(cfg).fit(toy_data(checkpoints=checkpoints))
    assert checkpoints.latest()[0] == 2
    resumed = built(cfg)
    with torch.no_grad():  # a different starting point: the prompts must come from the checkpoint
        resumed.model_.prompts.ctx_pos.add_(1.0)
    resumed.fit(toy_data(checkpoints=checkpoints))
    assert len(resumed.history_) == 3 and checkpoints.latest()[0] == 3
    for key, value in whole.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[key], value)
    for got, want in zip(resumed.history_, whole.history_):
        assert got == pytest.approx(want)


def test_bad_configurations_name_the_field():
    with pytest.raises(ConfigError, match="deep_tokens"):
        AnomalyCLIPConfig(n_ctx=2, deep_tokens=4)
    with pytest.raises(ConfigError, match="betas"):
        AnomalyCLIPConfig(betas=(0.5,))
    with pytest.raises(ConfigError, match="deep_depth"):
        built(CFG.replace(deep_depth=9))
    with pytest.raises(ConfigError, match="vv_last"):
        built(CFG.replace(vv_last=19))
    with pytest.raises(ConfigError, match="layer"):
        built(CFG.replace(layers=(24,)))
    method = built()
    with pytest.raises(MethodError, match="missing"):
        method.load_state_dict({"ctx_pos": torch.zeros(12, 32)})
