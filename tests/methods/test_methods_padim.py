"""PaDiM: the reference implementation's channel draw, the stacked embedding, the per-position Gaussians against
NumPy and SciPy and the plugin on a seeded ResNet-18 (the runner: test_methods_cnn_baselines.py)."""
from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from scipy.spatial.distance import mahalanobis

from zsadbench.errors import ConfigError, MethodError
from zsadbench.methods.padim.config import PaDiMConfig
from zsadbench.methods.padim.method import PaDiM
from zsadbench.methods.padim.model import Gaussians, channel_indices, stacked_embedding
from zsadbench.types import Batch

from cnn_helpers import smooth_images, support

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = PaDiMConfig(backbone="resnet18", image_size=96, n_features=100)


def fitted(images: torch.Tensor, **overrides) -> PaDiM:
    return PaDiM(TINY.replace(**overrides), pretrained="none").fit(support(images))


def test_channels_are_the_reference_implementations_draw():
    state = random.getstate()
    try:
        random.seed(1024)  # what the reference script does before drawing
        reference = random.sample(range(0, 1792), 550)
    finally:
        random.setstate(state)
    assert channel_indices(1792, 550, 1024).tolist() == reference
    assert len(set(channel_indices(448, 100, 1024).tolist())) == 100


def test_stacked_embedding_replicates_the_deeper_cells_and_keeps_the_chosen_channels():
    gen = torch.Generator().manual_seed(0)
    maps = [torch.randn(2, 3, 8, 8, generator=gen), torch.randn(2, 2, 4, 4, generator=gen),
            torch.randn(2, 4, 2, 2, generator=gen)]
    channels = torch.tensor([8, 0, 4, 3])
    out = stacked_embedding(maps, channels)
    full = torch.cat([maps[0], maps[1].repeat_interleave(2, 2).repeat_interleave(2, 3),
                      maps[2].repeat_interleave(4, 2).repeat_interleave(4, 3)], dim=1)
    assert torch.equal(out, full[:, channels])
    # the layout the CNN hands over does not matter
    channels_last = [m.contiguous(memory_format=torch.channels_last) for m in maps]
    assert torch.equal(stacked_embedding(channels_last, channels), out)


@pytest.mark.parametrize("count,dim", [(5, 4), (7, 3), (2, 6)])
def test_gaussians_give_scipys_mahalanobis_with_numpys_covariance(count, dim):
    gen = torch.Generator().manual_seed(count)
    support_features = torch.randn(count, dim, 3, generator=gen, dtype=torch.float64) * 2 + 1
    queries = torch.randn(4, dim, 3, generator=gen, dtype=torch.float64) * 2 + 1
    gaussians = Gaussians.fit(support_features, 0.01)
    got = gaussians.distances(queries)
    for p in range(3):
        x = support_features[:, :, p].numpy()
        inverse = np.linalg.inv(np.cov(x, rowvar=False) + 0.01 * np.identity(dim))
        for b in range(4):
            expected = mahalanobis(queries[b, :, p].numpy(), x.mean(axis=0), inverse)
            assert got[b, p].item() == pytest.approx(expected, rel=1e-9)
    np.testing.assert_allclose(gaussians.mean.numpy(), support_features.mean(0).T.numpy(), rtol=1e-12)


def test_one_support_image_leaves_the_regulariser_alone():
    features = torch.randn(1, 5, 2, dtype=torch.float64)
    queries = torch.randn(3, 5, 2, dtype=torch.float64)
    got = Gaussians.fit(features, 0.04).distances(queries)
    expected = (queries - features).norm(dim=1) / 0.2
    torch.testing.assert_close(got, expected)


def test_a_support_image_scores_its_two_image_distance_and_a_planted_block_scores_highest_where_it_is():
    images = smooth_images(2, 10)
    method = fitted(images, blur_sigma=0.0)
    model = method.model_
    with torch.no_grad():
        embedding = model.embed(images).double()
        distances = model.distance_maps(model.embed(images[:1]))
    # two support points: x₀ is δ = (x₀ − x₁)/2 from the mean and Σ = εI + 2δδᵀ, so m² = |δ|²/(ε + 2|δ|²)
    delta_sq = ((embedding[0] - embedding[1]) / 2).pow(2).sum(dim=0)
    torch.testing.assert_close(distances[0].double(), (delta_sq / (0.01 + 2 * delta_sq)).sqrt(), rtol=1e-4,
                               atol=1e-5)
    blocked = images[0].clone()
    yy, xx = torch.meshgrid(torch.arange(24), torch.arange(24), indexing="ij")
    blocked[:, 48:72, 16:40] = ((yy // 4 + xx // 4) % 2).float()
    many = smooth_images(4, 11)
    method = fitted(many)
    out = method.predict(Batch(image=torch.stack([many[0], blocked]), category="bottle"))
    assert out.pred_score[1] > 2 * out.pred_score[0]
    assert out.pred_score[1] == out.anomaly_map[1].max()
    top, left = divmod(int(out.anomaly_map[1].argmax()), 96)
    assert 40 <= top < 80 and 8 <= left < 48, (top, left)


def test_fit_with_one_image_is_finite():
    out = fitted(smooth_images(1, 12)).predict(Batch(image=smooth_images(2, 13), category="bottle"))
    assert torch.isfinite(out.anomaly_map).all() and (out.pred_score > 0).all()


def test_state_dict_round_trip_restores_the_gaussians(tmp_path):
    method = fitted(smooth_images(3, 14))
    batch = Batch(image=smooth_images(2, 15), category="bottle")
    expected = method.predict(batch)
    torch.save(method.state_dict(), tmp_path / "padim.pt")
    restored = PaDiM(TINY, pretrained="none")
    restored.load_state_dict(torch.load(tmp_path / "padim.pt", weights_only=True))
    got = restored.predict(batch)
    assert torch.equal(got.anomaly_map, expected.anomaly_map) and torch.equal(got.pred_score, expected.pred_score)
    assert PaDiM(TINY, pretrained="none").setup().state_dict() == {}
    with pytest.raises(MethodError, match="channel_seed"):
        PaDiM(TINY.replace(channel_seed=1), pretrained="none").load_state_dict(method.state_dict())
    small = PaDiM(TINY.replace(image_size=64), pretrained="none")
    small.load_state_dict(method.state_dict())
    with pytest.raises(MethodError, match="set image_size to the size it was fitted at"):
        small.predict(Batch(image=smooth_images(1, 15, 64), category="bottle"))
    with pytest.raises(MethodError, match="lacks basis"):
        PaDiM(TINY, pretrained="none").load_state_dict({"channels": torch.zeros(1), "mean": torch.zeros(1)})


def test_config_defaults_are_the_papers_and_errors_name_the_fix():
    cfg = PaDiMConfig()
    assert (cfg.backbone, cfg.layers, cfg.image_size) == ("wide_resnet50_2", ("layer1", "layer2", "layer3"), 224)
    assert (cfg.n_features, cfg.channel_seed, cfg.covariance_eps, cfg.blur_sigma) == (550, 1024, 0.01, 4.0)
    assert PaDiM.random_init_overrides == {"backbone": "resnet18", "image_size": 128, "n_features": 100}
    with pytest.raises(ConfigError, match="n_features=550 exceeds the 448 channels of resnet18"):
        PaDiM(TINY.replace(n_features=550), pretrained="none").setup()
    with pytest.raises(ConfigError, match="covariance_eps must be > 0"):
        cfg.replace(covariance_eps=0.0)
    method = fitted(smooth_images(2, 16))
    with pytest.raises(ConfigError, match="image_size"):
        method.predict(Batch(image=torch.rand(1, 3, 64, 64), category="bottle"))
