"""MPA and MPAMA assembled on a tiny random CLIP: the inference rules, both training stages, the feature cache,
expert-usage stats, state round trips and resuming a run killed in either stage."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from scipy.ndimage import gaussian_filter

from zsadbench.backbones import FeatureCache
from zsadbench.errors import MethodError
from zsadbench.method import FitData
from zsadbench.methods.mpama.config import MPAConfig, MPAMAConfig
from zsadbench.methods.mpama.method import MPA, MPAMA
from zsadbench.types import Batch

from clip_reference import SIZE, reference_visual, toy_data
from interrupts import FailingAfter, Interrupted

TINY = dict(backbone="zsad-tiny-14-336", image_size=SIZE, layer=4, vv_last=3, deep_depth=2, batch_size=4)
MPA_CFG = MPAConfig(**TINY, epochs=2)
MPAMA_CFG = MPAMAConfig(**TINY, epochs=2, stage2_epochs=2, stage2_lr=1e-3)
pytestmark = pytest.mark.usefixtures("one_thread")


def built(cls, cfg, seed: int = 0):
    torch.manual_seed(seed)
    return cls(cfg, pretrained="none").setup()


def images(n: int = 2, seed: int = 3) -> torch.Tensor:
    return torch.rand(n, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))


def loop_pool(grid: torch.Tensor, p: int) -> torch.Tensor:
    """``[h, w, C]`` → mean over rows/cols i-(p-1)//2 .. i+p//2 inside the grid."""
    h, w, _ = grid.shape
    out = torch.empty_like(grid)
    for i in range(h):
        for j in range(w):
            rows = slice(max(0, i - (p - 1) // 2), min(h, i + p // 2 + 1))
            cols = slice(max(0, j - (p - 1) // 2), min(w, j + p // 2 + 1))
            out[i, j] = grid[rows, cols].reshape(-1, grid.shape[-1]).mean(0)
    return out


def test_mpa_maps_and_scores_follow_the_inference_rules():
    method = built(MPA, MPA_CFG)
    method.load_state_dict(method.state_dict())
    x = images()
    with torch.no_grad():
        local, global_ = method.model_.text_features()
        image, _ = reference_visual(method, x)  # shares the V-V re-statement of AnomalyCLIP's tower
        backbone = method.model_.backbone
        out = backbone.forward_intermediates(backbone.normalize(x), [4], vv_last=3)
        projected = backbone.visual.ln_post(out.patches[0]) @ backbone.visual.proj  # [B, 16, D]
        level_maps = []
        for i, p in enumerate((1, 2, 3, 4)):
            pooled = torch.stack([loop_pool(t.reshape(4, 4, -1), p).reshape(16, -1) for t in projected])
            probs = (F.normalize(pooled, dim=-1) @ local[i].T / 0.07).softmax(-1)[..., 1]
            level_maps.append(probs.reshape(-1, 4, 4))
        mean = torch.stack(level_maps).mean(0)
        up = F.interpolate(mean[:, None], size=(SIZE, SIZE), mode="bilinear", align_corners=False)[:, 0]
        expected_map = torch.from_numpy(gaussian_filter(up.numpy(), sigma=(0, 4, 4))).float()
        global_prob = (image @ global_.T / 0.07).softmax(-1)[:, 1]
        prediction = method.predict(Batch(image=x, category="x"))
    torch.testing.assert_close(prediction.anomaly_map, expected_map, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(prediction.pred_score, 0.5 * global_prob + 0.5 * expected_map.amax(dim=(1, 2)),
                               atol=1e-5, rtol=1e-4)
    assert prediction.stats == {}


@pytest.mark.parametrize("routing", ["pre", "post"])
def test_an_untrained_moe_without_a_zero_expert_reproduces_mpa(routing):
    """Learnable experts start as the projection; with frozen + learnable only, any gates give x @ proj."""
    cfg = MPAMA_CFG.replace(experts=2, routing=routing, stage2_epochs=1, stage2_lr=1e-12)
    mpama = built(MPAMA, cfg)
    mpama.fit(toy_data())
    mpa = built(MPA, MPA_CFG)
    mpa.load_state_dict({k: v for k, v in mpama.state_dict().items() if k.startswith("prompts.")})
    x = images()
    with torch.no_grad():
        a, b = mpama.predict(Batch(image=x, category="x")), mpa.predict(Batch(image=x, category="x"))
    torch.testing.assert_close(a.anomaly_map, b.anomaly_map, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(a.pred_score, b.pred_score, atol=1e-5, rtol=1e-4)


def test_mpama_stage2_freezes_the_text_trains_the_experts_and_reports_expert_usage():
    mpama = built(MPAMA, MPAMA_CFG)
    stage1_only = built(MPA, MPA_CFG)
    stage1_only.fit(toy_data())
    mpama.fit(toy_data())
    state = mpama.state_dict()
    for key, value in stage1_only.state_dict().items():  # stage 2 left the prompts where stage 1 put them
        torch.testing.assert_close(state[key], value)
    moe = mpama.model_.moe
    assert moe.experts == 5 and int(state["moe_experts"]) == 5  # the paper's rule for a non-VisA auxiliary set
    proj = mpama.model_.backbone.visual.proj
    assert torch.equal(moe.frozen, proj) and not torch.equal(moe.learnable[0], proj)
    assert len(mpama.history_["stage1"]) == 2 and len(mpama.history_["stage2"]) == 2
    with torch.no_grad():
        prediction = mpama.predict(Batch(image=images(3), category="x"))
    usage = prediction.stats["expert_usage"]
    assert usage.dtype == torch.long and usage.shape == (4, 5)
    assert (usage.sum(dim=1) == 3 * 16 * 2).all()  # every token of every level picks two experts
    post = built(MPAMA, MPAMA_CFG.replace(routing="post", experts=4))
    post.fit(toy_data())
    with torch.no_grad():
        assert post.predict(Batch(image=images(3), category="x")).stats["expert_usage"].shape == (1, 4)


def test_stage_losses_compose_as_eq5_and_eq6():
    cfg = MPAMA_CFG.replace(batch_size=8, epochs=1, stage2_epochs=1, balance_weight=0.5)
    mpama = built(MPAMA, cfg)
    mpama.fit(toy_data())  # one batch per epoch: the epoch means are the batch values
    first, second = mpama.history_["stage1"][0], mpama.history_["stage2"][0]
    assert first["total"] == pytest.approx(first["global"] + first["local"] + 5 * first["hinge"], rel=1e-6)
    assert second["total"] == pytest.approx(second["local"] + 5 * second["hinge"] + 0.5 * second["balance"], rel=1e-6)


def test_the_cache_serves_both_stages_so_the_tower_runs_once_per_image(monkeypatch):
    direct = built(MPAMA, MPAMA_CFG)
    direct.fit(toy_data())
    cached = built(MPAMA, MPAMA_CFG)
    calls = []
    original = cached.model_.backbone.forward_intermediates

    def counting(x, *args, **kwargs):
        calls.append(x.shape[0])
        return original(x, *args, **kwargs)

    monkeypatch.setattr(cached.model_.backbone, "forward_intermediates", counting)
    cache = FeatureCache()
    cached.fit(toy_data(features=cache))
    assert sum(calls) == 8 and cache.hits == 3 * 8  # 4 epochs over 8 images, computed in the first only
    for key, value in direct.state_dict().items():
        torch.testing.assert_close(cached.state_dict()[key], value)


@pytest.mark.parametrize("stop", [1, 2, 3])
def test_a_run_killed_in_either_stage_resumes_from_its_last_epoch(tmp_path, stop):
    whole = built(MPAMA, MPAMA_CFG)
    whole.fit(toy_data())
    checkpoints = FailingAfter(tmp_path / "ckpt", stop=stop)  # 1: inside stage 1; 2: its end; 3: stage 2 epoch 1
    with pytest.raises(Interrupted):
        built(MPAMA, MPAMA_CFG).fit(toy_data(checkpoints=checkpoints))
    assert checkpoints.latest()[0] == stop
    resumed = built(MPAMA, MPAMA_CFG)
    with torch.no_grad():
        resumed.model_.prompts.level_normal.add_(1.0)  # must be overwritten from the checkpoint
    resumed.fit(toy_data(checkpoints=checkpoints))
    assert checkpoints.latest()[0] == 4
    for key, value in whole.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[key], value)
    for stage in ("stage1", "stage2"):
        for got, want in zip(resumed.history_[stage], whole.history_[stage]):
            assert got == pytest.approx(want)


def test_state_round_trip_rebuilds_the_moe_and_rejects_foreign_states():
    mpama = built(MPAMA, MPAMA_CFG.replace(experts=3))
    mpama.fit(toy_data())
    x = images()
    restored = built(MPAMA, MPAMA_CFG.replace(experts=3))
    restored.load_state_dict(mpama.state_dict())
    assert restored.model_.moe.experts == 3
    with torch.no_grad():
        a, b = mpama.predict(Batch(image=x, category="x")), restored.predict(Batch(image=x, category="x"))
    torch.testing.assert_close(a.anomaly_map, b.anomaly_map)
    assert torch.equal(a.stats["expert_usage"], b.stats["expert_usage"])
    mpa = built(MPA, MPA_CFG)
    with pytest.raises(MethodError, match="unexpected"):
        mpa.load_state_dict(mpama.state_dict())


def test_moe_off_skips_stage_2():
    mpama = built(MPAMA, MPAMA_CFG.replace(moe=False))
    mpama.fit(toy_data())
    assert mpama.model_.moe is None and "stage2" not in mpama.history_
    assert not any(k.startswith("moe") for k in mpama.state_dict())
