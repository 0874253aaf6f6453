"""SPADE: the image kNN and the per-layer pixel kNN against brute force, the plugin on a seeded ResNet-18 (the
runner: test_methods_cnn_baselines.py)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.ndimage import gaussian_filter
from scipy.spatial.distance import cdist

from zsadbench.errors import ConfigError, MethodError, NotFittedError
from zsadbench.methods.spade.config import SPADEConfig
from zsadbench.methods.spade.method import SPADE
from zsadbench.methods.spade.model import pixel_distances
from zsadbench.types import Batch

from cnn_helpers import smooth_images, support

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = SPADEConfig(backbone="resnet18", image_size=96)


def fitted(images: torch.Tensor, **overrides) -> SPADE:
    return SPADE(TINY.replace(**overrides), pretrained="none").fit(support(images))


def test_pixel_distances_are_the_brute_force_nearest_gallery_features():
    gen = torch.Generator().manual_seed(0)
    query = torch.randn(5, 3, 4, generator=gen, dtype=torch.float64)
    gallery = torch.randn(2, 5, 2, 3, generator=gen, dtype=torch.float64)
    every = cdist(query.reshape(5, -1).T.numpy(), gallery.permute(0, 2, 3, 1).reshape(-1, 5).numpy())
    for k in (1, 3):
        expected = np.sort(every, axis=1)[:, :k].mean(axis=1).reshape(3, 4)
        np.testing.assert_allclose(pixel_distances(query, gallery, k).numpy(), expected, rtol=1e-10)
    np.testing.assert_allclose(pixel_distances(query, gallery, 50).numpy(), every.mean(axis=1).reshape(3, 4),
                               rtol=1e-10)  # κ clamps to the gallery


@pytest.mark.parametrize("top_k", [1, 2, 50])
def test_image_score_and_map_against_brute_force(top_k):
    images, queries = smooth_images(3, 1), smooth_images(2, 2)
    method = fitted(images, top_k=top_k)
    backbone = method.model_.backbone
    with torch.no_grad():
        *support_maps, support_top = backbone(images)
        *query_maps, query_top = backbone(queries)
    global_distances = cdist(query_top.mean(dim=(2, 3)).numpy(), support_top.mean(dim=(2, 3)).numpy())
    k = min(top_k, 3)
    nearest = np.argsort(global_distances, axis=1)[:, :k]
    out = method.predict(Batch(image=queries, category="bottle"))
    np.testing.assert_allclose(out.pred_score.numpy(), np.sort(global_distances, axis=1)[:, :k].mean(axis=1),
                               rtol=1e-5)
    for b in range(2):
        layers = []
        for query, gallery in zip(query_maps, support_maps):
            chosen = gallery[torch.from_numpy(nearest[b])]
            rows = chosen.permute(0, 2, 3, 1).reshape(-1, chosen.shape[1]).numpy()
            grid = cdist(query[b].reshape(query.shape[1], -1).T.numpy(), rows).min(axis=1)
            grid = torch.from_numpy(grid.reshape(query.shape[-2:])).float()
            layers.append(F.interpolate(grid[None, None], size=96, mode="bilinear", align_corners=False)[0, 0])
        expected = gaussian_filter(torch.stack(layers).mean(dim=0).numpy(), sigma=4, mode="mirror")
        np.testing.assert_allclose(out.anomaly_map[b].numpy(), expected, rtol=1e-4, atol=1e-4)


def test_a_support_image_scores_zero_and_a_planted_block_scores_highest_where_it_is():
    images = smooth_images(3, 3)
    nearest_only = fitted(images, top_k=1)
    same = nearest_only.predict(Batch(image=images[1:2], category="bottle"))
    assert same.pred_score.abs().max() < 1e-3 and same.anomaly_map.abs().max() < 1e-3
    blocked = images[1].clone()
    yy, xx = torch.meshgrid(torch.arange(24), torch.arange(24), indexing="ij")
    blocked[:, 48:72, 16:40] = ((yy // 4 + xx // 4) % 2).float()
    out = fitted(images).predict(Batch(image=torch.stack([images[1], blocked]), category="bottle"))
    assert out.pred_score[1] > out.pred_score[0]
    top, left = divmod(int(out.anomaly_map[1].argmax()), 96)
    assert 40 <= top < 80 and 8 <= left < 48, (top, left)
    assert out.anomaly_map[1].max() > 3 * out.anomaly_map[0].max()


def test_state_dict_round_trip_restores_the_support_features(tmp_path):
    method = fitted(smooth_images(2, 4))
    batch = Batch(image=smooth_images(2, 5), category="bottle")
    expected = method.predict(batch)
    torch.save(method.state_dict(), tmp_path / "spade.pt")
    restored = SPADE(TINY, pretrained="none")
    restored.load_state_dict(torch.load(tmp_path / "spade.pt", weights_only=True))
    got = restored.predict(batch)
    assert torch.equal(got.anomaly_map, expected.anomaly_map) and torch.equal(got.pred_score, expected.pred_score)
    assert SPADE(TINY, pretrained="none").setup().state_dict() == {}
    with pytest.raises(MethodError, match="global_layer"):
        SPADE(TINY.replace(global_layer="layer3"), pretrained="none").load_state_dict(method.state_dict())


def test_config_defaults_are_the_papers_and_errors_are_named():
    cfg = SPADEConfig()
    assert (cfg.backbone, cfg.layers, cfg.global_layer, cfg.image_size) == (
        "wide_resnet50_2", ("layer1", "layer2", "layer3"), "layer4", 224)
    assert (cfg.top_k, cfg.pixel_k, cfg.blur_sigma) == (50, 1, 4.0)
    with pytest.raises(ConfigError, match="top_k must be >= 1"):
        cfg.replace(top_k=0)
    with pytest.raises(ConfigError, match="layers"):
        SPADE(TINY.replace(layers=("layer9",)), pretrained="none").setup()
    with pytest.raises(NotFittedError):
        SPADE(TINY, pretrained="none").setup().predict(Batch(image=smooth_images(1, 0), category="bottle"))
    with pytest.raises(ConfigError, match="image_size"):
        fitted(smooth_images(1, 6)).predict(Batch(image=torch.rand(1, 3, 64, 64), category="bottle"))
