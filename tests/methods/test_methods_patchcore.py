"""PatchCore: the CNN backbone, locally aware features, exact nearest neighbours, the greedy coreset, the re-weighted
image score and the plugin on a seeded ResNet-18 (the runner: test_methods_cnn_baselines.py)."""
from __future__ import annotations

import hashlib
import math

import numpy as np
import pytest
import timm
import torch
import torch.nn.functional as F
from scipy.spatial.distance import cdist

from zsadbench.backbones.cnn import create_cnn
from zsadbench.errors import ConfigError, MethodError, NotFittedError, WeightsError
from zsadbench.method import FitData
from zsadbench.methods.patchcore import common
from zsadbench.methods.patchcore.config import PatchCoreConfig
from zsadbench.methods.patchcore.coreset import coreset_draws, greedy_coreset, projection_dim
from zsadbench.methods.patchcore.method import PatchCore
from zsadbench.methods.patchcore.model import local_features, patch_embedding, reweighted_scores
from zsadbench.types import Batch

from cnn_helpers import smooth_images, support

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = PatchCoreConfig(backbone="resnet18", image_size=96)


def fitted(images: torch.Tensor, seed: int = 0, **overrides) -> PatchCore:
    return PatchCore(TINY.replace(**overrides), pretrained="none").fit(support(images, seed))


# -- the CNN backbone ------------------------------------------------------------------------------


def test_random_cnn_weights_depend_on_the_name_alone_and_stages_come_in_the_order_asked():
    first = create_cnn("resnet18", ("layer1", "layer3"))
    torch.manual_seed(123)  # the caller's generator does not reach the initialisation
    again = create_cnn("resnet18", ("layer3", "layer1", "layer4"))
    for key, value in first.model.state_dict().items():
        assert torch.equal(value, again.model.state_dict()[key]), key
    assert first.channels == (64, 256) and first.reductions == (4, 16) and again.channels == (256, 64, 512)
    images = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        layer1, layer3 = first(images)
        swapped = again(images)
    assert torch.equal(swapped[0], layer3) and torch.equal(swapped[1], layer1)
    assert first.weights.random and first.weights.tag == "none" and not first.model.training
    assert not any(p.requires_grad for p in first.parameters())


def test_cnn_normalises_with_the_imagenet_mean_and_std():
    backbone = create_cnn("resnet18", ("layer2",))
    images = torch.rand(1, 3, 64, 64)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    model = backbone.model
    with torch.no_grad():
        x = model.maxpool(model.act1(model.bn1(model.conv1((images - mean) / std))))
        expected = model.layer2(model.layer1(x))
        (got,) = backbone(images)
    torch.testing.assert_close(got, expected)


def test_cnn_loads_a_local_checkpoint_and_records_its_checksum(tmp_path):
    torch.manual_seed(5)
    source = timm.create_model("resnet18")
    path = tmp_path / "my-resnet18.pth"
    torch.save(source.state_dict(), path)
    backbone = create_cnn("resnet18", ("layer1",), str(path))
    torch.testing.assert_close(backbone.model.state_dict()["layer1.0.conv1.weight"], source.layer1[0].conv1.weight)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert backbone.weights.as_dict() == {"tag": "my-resnet18.pth", "path": str(path), "sha256": digest,
                                          "random": False}
    torch.save(timm.create_model("resnet34").state_dict(), tmp_path / "r34.pth")
    with pytest.raises(WeightsError, match="does not fit resnet18"):
        create_cnn("resnet18", ("layer1",), str(tmp_path / "r34.pth"))


def test_cnn_errors_name_the_fix():
    with pytest.raises(ConfigError, match="choose from act1, layer1, layer2, layer3, layer4"):
        create_cnn("resnet18", ("layer5",))
    with pytest.raises(ConfigError, match="Did you mean 'resnet18'"):
        create_cnn("resnet_18", ("layer1",))
    with pytest.raises(WeightsError, match="tv_in1k"):
        create_cnn("resnet18", ("layer1",), "no-such-tag")


# -- locally aware patch features ------------------------------------------------------------------


def _neighbourhood(feature_map: np.ndarray, y: int, x: int, p: int) -> np.ndarray:
    """The channel-major flattened p×p neighbourhood of one position, zero outside the map."""
    channels, height, width = feature_map.shape
    r = p // 2
    out = np.zeros((channels, p, p))
    for dy in range(p):
        for dx in range(p):
            yy, xx = y + dy - r, x + dx - r
            if 0 <= yy < height and 0 <= xx < width:
                out[:, dy, dx] = feature_map[:, yy, xx]
    return out.reshape(-1)


def _adaptive_mean(values: np.ndarray, dim: int) -> np.ndarray:
    """Adaptive average pooling of a vector: bin j averages [floor(j·n/d), ceil((j+1)·n/d))."""
    n = len(values)
    return np.array([values[(j * n) // dim : -((-(j + 1) * n) // dim)].mean() for j in range(dim)])


def test_local_features_pool_each_flattened_neighbourhood():
    feature_map = torch.randn(1, 2, 4, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    out = local_features(feature_map, 3, 4)  # 18 values into 4 bins of 4.5: bins mix the two channels
    assert out.shape == (1, 4, 4, 5)
    for y in range(4):
        for x in range(5):
            expected = _adaptive_mean(_neighbourhood(feature_map[0].numpy(), y, x, 3), 4)
            np.testing.assert_allclose(out[0, :, y, x].numpy(), expected, rtol=1e-12)
    # to C values, each channel's own 3x3 mean with zero padding: average pooling
    plain = local_features(feature_map, 3, 0)
    torch.testing.assert_close(plain, F.avg_pool2d(feature_map, 3, 1, 1, count_include_pad=True))
    torch.testing.assert_close(local_features(feature_map, 3, 2), plain)
    torch.testing.assert_close(plain[0, 1, 0, 0], feature_map[0, 1, :2, :2].sum() / 9)


def test_patch_embedding_equals_the_official_order_of_operations():
    # the reference resizes the unfolded neighbourhoods of the deeper layer, then pools; pooling first is the same
    gen = torch.Generator().manual_seed(1)
    shallow = torch.randn(2, 3, 6, 6, generator=gen, dtype=torch.float64)
    deep = torch.randn(2, 5, 3, 3, generator=gen, dtype=torch.float64)
    ours = patch_embedding([shallow, deep], 3, 8, 6)
    unfolded = [F.unfold(m, 3, padding=1).reshape(2, m.shape[1] * 9, *m.shape[-2:]) for m in (shallow, deep)]
    unfolded[1] = F.interpolate(unfolded[1], size=(6, 6), mode="bilinear", align_corners=False)
    for b in range(2):
        for y in range(6):
            for x in range(6):
                per_layer = [_adaptive_mean(u[b, :, y, x].numpy(), 8) for u in unfolded]
                expected = _adaptive_mean(np.concatenate(per_layer), 6)
                np.testing.assert_allclose(ours[b, :, y, x].numpy(), expected, rtol=1e-10, atol=1e-12)


def test_patch_embedding_without_projection_is_anomalibs_concatenation():
    gen = torch.Generator().manual_seed(2)
    shallow, deep = torch.randn(1, 4, 8, 8, generator=gen), torch.randn(1, 6, 4, 4, generator=gen)
    ours = patch_embedding([shallow, deep], 3, 0, 0)
    pool = torch.nn.AvgPool2d(3, 1, 1)
    expected = torch.cat([pool(shallow), F.interpolate(pool(deep), size=(8, 8), mode="bilinear")], dim=1)
    torch.testing.assert_close(ours, expected)


# -- nearest neighbours ----------------------------------------------------------------------------


def test_nearest_neighbours_match_scipy_and_are_exact_on_bank_rows(monkeypatch):
    monkeypatch.setattr(common, "DISTANCE_ENTRIES", 7 * 40)  # chunks of 7 queries
    gen = torch.Generator().manual_seed(3)
    bank = torch.randn(40, 16, generator=gen) * 30 + 100  # large norms: the expanded form leaves residues
    queries = torch.cat([torch.randn(20, 16, generator=gen) * 30 + 100, bank[:5]])
    distances, rows = common.nearest_neighbours(queries, bank, 3)
    expected = cdist(queries.double().numpy(), bank.double().numpy())
    order = np.argsort(expected, axis=1)[:, :3]
    np.testing.assert_array_equal(rows.numpy(), order)
    np.testing.assert_allclose(distances.numpy(), np.take_along_axis(expected, order, 1), rtol=1e-5)
    assert torch.equal(distances[20:, 0], torch.zeros(5)) and torch.equal(rows[20:, 0], torch.arange(5))
    with pytest.raises(ValueError, match="k=41"):
        common.nearest_neighbours(queries, bank, 41)


def test_smooth_is_a_normalised_gaussian_with_mirrored_borders():
    from scipy.ndimage import gaussian_filter

    maps = torch.rand(2, 40, 50, generator=torch.Generator().manual_seed(4))
    expected = gaussian_filter(maps.double().numpy(), sigma=(0, 4, 4), mode="mirror", truncate=4.0)
    np.testing.assert_allclose(common.smooth(maps, 4.0).numpy(), expected, atol=1e-6)
    assert torch.equal(common.smooth(maps, 0.0), maps)
    assert common.gaussian_kernel(4.0).shape == (33,)
    torch.testing.assert_close(common.gaussian_kernel(4.0).sum(), torch.tensor(1.0))


# -- the coreset -----------------------------------------------------------------------------------


def test_projection_dimension_by_hand():
    assert projection_dim(784, 0.9) == math.floor(4 * math.log(784) / (0.81 / 2 - 0.729 / 3)) == 164
    assert projection_dim(1, 0.9) == 1


def _brute_force_k_center(points: np.ndarray, start: int, size: int) -> list[int]:
    chosen = [start]
    while len(chosen) < size:
        gaps = [min(np.linalg.norm(p - points[c]) for c in chosen) for p in points]
        chosen.append(int(np.argmax(gaps)))
    return chosen


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_greedy_coreset_matches_brute_force_k_center_on_the_projected_rows(seed):
    features = torch.randn(30, 12, generator=torch.Generator().manual_seed(10 + seed), dtype=torch.float64)
    chosen = greedy_coreset(features, 8, 0.9, torch.Generator().manual_seed(seed))
    matrix, start = coreset_draws(30, 12, 0.9, torch.Generator().manual_seed(seed))
    projected = (features @ matrix.double().T).numpy()
    assert chosen.tolist() == _brute_force_k_center(projected, start, 8)
    assert len(set(chosen.tolist())) == 8
    assert torch.equal(chosen, greedy_coreset(features, 8, 0.9, torch.Generator().manual_seed(seed)))


def test_sparse_projection_entries_and_density():
    matrix, start = coreset_draws(1000, 400, 0.9, torch.Generator().manual_seed(0))
    k = projection_dim(1000, 0.9)
    scale = math.sqrt(math.sqrt(400)) / math.sqrt(k)  # sqrt(1/density)/sqrt(k), density 1/sqrt(400)
    assert matrix.shape == (k, 400) and 0 <= start < 1000
    values = torch.unique(matrix)
    torch.testing.assert_close(values, torch.tensor([-scale, 0.0, scale]))
    assert abs((matrix != 0).float().mean().item() - 1 / 20) < 0.01


def test_coreset_keeps_one_row_per_planted_cluster():
    gen = torch.Generator().manual_seed(6)
    centres = torch.tensor([[0.0] * 8, [50.0] * 8, [-50.0] + [50.0] * 7])
    features = torch.cat([c + 0.1 * torch.randn(10, 8, generator=gen) for c in centres])
    chosen = greedy_coreset(features, 3, 0.5, torch.Generator().manual_seed(0))
    assert sorted(int(i) // 10 for i in chosen) == [0, 1, 2]


# -- the image score -------------------------------------------------------------------------------


def test_reweighted_image_score_by_hand():
    bank = torch.tensor([[0.0, 0.0], [1.0, 0.0], [0.0, 2.0]], dtype=torch.float64)
    embedding = torch.tensor([[[3.0, 0.0], [0.2, 0.0]]], dtype=torch.float64)
    scores, rows = common.nearest_neighbours(embedding[0], bank, 1)
    assert scores[:, 0].tolist() == pytest.approx([2.0, 0.2]) and rows[:, 0].tolist() == [1, 0]
    args = (scores[:, 0][None], rows[:, 0][None], embedding, bank)
    assert reweighted_scores(*args, 1).item() == pytest.approx(2.0)
    # N_2(m*) = {(1,0), (0,0)}: the worst patch (3,0) is 2 and 3 away from them
    assert reweighted_scores(*args, 2).item() == pytest.approx(2 * (1 - math.e**2 / (math.e**2 + math.e**3)))
    far = math.exp(math.sqrt(13))
    assert reweighted_scores(*args, 3).item() == pytest.approx(2 * (1 - math.e**2 / (math.e**2 + math.e**3 + far)))
    assert reweighted_scores(*args, 9).item() == reweighted_scores(*args, 3).item()  # b clamps to the bank


# -- the plugin ------------------------------------------------------------------------------------


def _with_block(image: torch.Tensor, top: int, left: int, side: int = 24) -> torch.Tensor:
    out = image.clone()
    yy, xx = torch.meshgrid(torch.arange(side), torch.arange(side), indexing="ij")
    out[:, top : top + side, left : left + side] = ((yy // 4 + xx // 4) % 2).float()
    return out


def test_a_support_image_scores_zero_and_a_planted_block_scores_highest_where_it_is():
    images = smooth_images(2, 20)
    method = fitted(images, coreset_ratio=1.0)
    query = torch.stack([images[0], _with_block(images[1], 48, 16)])
    out = method.predict(Batch(image=query, category="bottle"))
    assert out.pred_score.shape == (2,) and out.anomaly_map.shape == (2, 96, 96)
    assert out.pred_score[0] < 1e-3 and out.anomaly_map[0].abs().max() < 1e-3
    assert out.pred_score[1] > 0.1
    peak = divmod(int(out.anomaly_map[1].argmax()), 96)
    assert 40 <= peak[0] < 80 and 8 <= peak[1] < 48, peak
    with torch.no_grad():
        patch, _ = method.model_.patch_scores(method.model_.embed(query[1:]))
    assert patch[0, 5:10, 1:6].max() == patch.max()  # the block covers the 8-px cells 6..8 x 2..4 (and 3x3 pools)


def test_fit_takes_the_first_k_images_across_batches_and_a_seeded_coreset():
    images = smooth_images(5, 21)
    in_pairs = lambda **kw: support(images).batches(batch_size=2)  # noqa: E731
    method = PatchCore(TINY, pretrained="none").fit(FitData("support", in_pairs, 5, "synthetic", "bottle", 3, 7))
    again = fitted(images[:3], seed=7)
    assert method.model_.memory_bank.shape == (int(3 * 144 * 0.1), TINY.feature_dim)
    assert torch.equal(method.model_.memory_bank, again.model_.memory_bank)
    assert not torch.equal(fitted(images[:3], seed=8).model_.memory_bank, again.model_.memory_bank)
    full = fitted(images[:3], coreset_ratio=1.0)
    with torch.no_grad():
        rows = full.model_.embed(images[:3]).permute(0, 2, 3, 1).reshape(-1, TINY.feature_dim)
    torch.testing.assert_close(full.model_.memory_bank, rows)


def test_state_dict_round_trip_restores_the_memory_bank(tmp_path):
    method = fitted(smooth_images(2, 22))
    batch = Batch(image=smooth_images(2, 23), category="bottle")
    expected = method.predict(batch)
    torch.save(method.state_dict(), tmp_path / "patchcore.pt")
    restored = PatchCore(TINY, pretrained="none")
    restored.load_state_dict(torch.load(tmp_path / "patchcore.pt", weights_only=True))
    got = restored.predict(batch)
    assert torch.equal(got.anomaly_map, expected.anomaly_map) and torch.equal(got.pred_score, expected.pred_score)
    assert PatchCore(TINY, pretrained="none").setup().state_dict() == {}
    with pytest.raises(MethodError, match="feature_dim"):
        PatchCore(TINY.replace(feature_dim=64), pretrained="none").load_state_dict(method.state_dict())


def test_bf16_runs_the_backbone_in_bf16_and_returns_float32():
    images, queries = smooth_images(2, 24), smooth_images(2, 25)
    maps = {}
    for precision in ("fp32", "bf16"):
        method = PatchCore(TINY.replace(coreset_ratio=1.0), pretrained="none", precision=precision).fit(support(images))
        maps[precision] = method.predict(Batch(image=queries, category="bottle")).anomaly_map
    assert maps["bf16"].dtype == torch.float32 and not torch.equal(maps["fp32"], maps["bf16"])
    assert (maps["fp32"] - maps["bf16"]).abs().max() < 0.1 * maps["fp32"].abs().max()


def test_config_defaults_are_the_papers_and_bad_values_are_named():
    cfg = PatchCoreConfig()
    assert (cfg.backbone, cfg.layers, cfg.image_size, cfg.patch_size) == (
        "wide_resnet50_2", ("layer2", "layer3"), 224, 3)
    assert (cfg.layer_dim, cfg.feature_dim, cfg.coreset_ratio, cfg.num_neighbors, cfg.blur_sigma) == (
        1024, 1024, 0.1, 9, 4.0)
    assert cfg.upsample == "bilinear" and PatchCore.default_pretrained == "tv_in1k"
    with pytest.raises(ConfigError, match="patch_size=4 must be odd"):
        cfg.replace(patch_size=4)
    with pytest.raises(ConfigError, match="image_size=32 must be larger than the smoothing kernel"):
        cfg.replace(image_size=32, blur_sigma=8.0)
    with pytest.raises(ConfigError, match="coreset_ratio must be in \\(0, 1\\]"):
        cfg.replace(coreset_ratio=0.0)


def test_user_errors_are_named():
    method = fitted(smooth_images(1, 26))
    with pytest.raises(ConfigError, match="image_size"):
        method.predict(Batch(image=torch.rand(1, 3, 64, 64), category="bottle"))
    with pytest.raises(NotFittedError):
        PatchCore(TINY, pretrained="none").setup().predict(Batch(image=smooth_images(1, 0), category="bottle"))
    with pytest.raises(MethodError, match="no images"):
        PatchCore(TINY, pretrained="none").fit(FitData("support", lambda **kw: iter(()), 0, "synthetic", "bottle", 1))
