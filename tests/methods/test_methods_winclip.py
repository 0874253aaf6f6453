"""WinCLIP / WinCLIP+: prompt ensemble, window arithmetic, scoring rules and the plugin on a tiny backbone."""
from __future__ import annotations

import itertools

import numpy as np
import open_clip
import pytest
import torch
import torch.nn.functional as F
from scipy.spatial.distance import cdist
from scipy.stats import hmean

from zsadbench.errors import ConfigError, MethodError, NotFittedError
from zsadbench.method import FitData
from zsadbench.methods.winclip import prompts, scoring
from zsadbench.methods.winclip.config import WinCLIPConfig
from zsadbench.methods.winclip.method import WinCLIP
from zsadbench.types import Batch

# -- prompts --------------------------------------------------------------------------------------


def test_prompt_counts_keep_the_duplicated_template():
    normal, anomalous = prompts.prompt_ensemble("bottle")
    assert len(prompts.TEMPLATES) == 21
    assert len(set(prompts.TEMPLATES)) == 20  # "a jpeg corrupted photo of the {}." twice, as in the reference
    assert len(normal) == 7 * 21 and len(anomalous) == 4 * 21
    assert normal.count("a jpeg corrupted photo of the bottle.") == 2
    assert "a photo of a flawless bottle for anomaly detection." in normal
    assert "a cropped photo of the bottle with defect." in anomalous
    assert not any("damaged" in p or " with " in p for p in normal)
    assert all(("damaged" in p) or (" with " in p) for p in anomalous)


def test_prompt_name_uses_category_or_object():
    assert prompts.prompt_name("metal_nut") == "metal nut"
    assert prompts.prompt_name("metal_nut", object_agnostic=True) == "object"
    assert prompts.prompt_name("") == "object"
    normal, _ = prompts.prompt_ensemble(prompts.prompt_name("pcb_4"))
    assert normal[0] == "a cropped photo of the pcb 4."


# -- config ---------------------------------------------------------------------------------------


def test_config_defaults_and_json_round_trip():
    cfg = WinCLIPConfig()
    assert (cfg.backbone, cfg.image_size, cfg.scales, cfg.temperature) == ("ViT-B-16-plus-240", 240, (2, 3), 0.07)
    again = WinCLIPConfig.from_json(cfg.to_json())
    assert again == cfg and again.config_hash() == cfg.config_hash()
    other = cfg.replace(scales="2,3,4")
    assert other.scales == (2, 3, 4) and other.config_hash() != cfg.config_hash()


@pytest.mark.parametrize(
    "field,value", [("scales", ()), ("scales", (0, 2)), ("temperature", 0.0), ("window_stride", 0)]
)
def test_config_rejects_bad_values(field, value):
    with pytest.raises(ConfigError, match=field):
        WinCLIPConfig(**{field: value})


# -- windows and aggregation ----------------------------------------------------------------------


@pytest.mark.parametrize("size", [1, 2, 3, 4])
def test_window_count_on_the_15x15_grid(size):
    windows = scoring.window_indices((15, 15), size)
    assert windows.shape == ((15 - size + 1) ** 2, size * size)


def test_window_indices_by_hand():
    # 3x3 grid, 2x2 windows: top-left corners (0,0), (0,1), (1,0), (1,1)
    expected = [[0, 1, 3, 4], [1, 2, 4, 5], [3, 4, 6, 7], [4, 5, 7, 8]]
    assert scoring.window_indices((3, 3), 2).tolist() == expected
    # 4x4 grid, stride 2: four disjoint tiles
    assert scoring.window_indices((4, 4), 2, stride=2).tolist() == [
        [0, 1, 4, 5], [2, 3, 6, 7], [8, 9, 12, 13], [10, 11, 14, 15]
    ]
    # non-square grid: 2x3 grid, 2x2 windows
    assert scoring.window_indices((2, 3), 2).tolist() == [[0, 1, 3, 4], [1, 2, 4, 5]]
    with pytest.raises(ValueError, match="does not fit"):
        scoring.window_indices((3, 3), 4)


def test_harmonic_aggregation_hand_computed():
    scores = torch.tensor([[1.0, 0.75, 0.5, 0.25]])
    out = scoring.harmonic_aggregation(scores, scoring.window_indices((3, 3), 2), 9).reshape(3, 3)
    # corners see one window; edges two; the centre all four: 4 / (1 + 4/3 + 2 + 4) = 0.48
    expected = torch.tensor([
        [1.0, 2 / (1 + 4 / 3), 0.75],
        [2 / (1 + 2), 0.48, 2 / (4 / 3 + 4)],
        [0.5, 2 / (2 + 4), 0.25],
    ])
    torch.testing.assert_close(out, expected)


def test_harmonic_aggregation_matches_scipy_on_a_random_grid():
    gen = torch.Generator().manual_seed(0)
    height, width, size = 5, 6, 3
    windows = scoring.window_indices((height, width), size)
    scores = torch.rand(2, windows.shape[0], generator=gen, dtype=torch.float64) + 0.05
    out = scoring.harmonic_aggregation(scores, windows, height * width)
    corners = [(r, c) for r in range(height - size + 1) for c in range(width - size + 1)]
    for b, r, c in itertools.product(range(2), range(height), range(width)):
        covering = [w for w, (r0, c0) in enumerate(corners) if r0 <= r < r0 + size and c0 <= c < c0 + size]
        assert out[b, r * width + c].item() == pytest.approx(hmean(scores[b, covering].numpy()), rel=1e-12)


def test_harmonic_aggregation_zero_window_zeroes_its_patches():
    scores = torch.tensor([[0.0, 0.5, 0.5, 0.5]])
    out = scoring.harmonic_aggregation(scores, scoring.window_indices((3, 3), 2), 9).reshape(3, 3)
    assert out[0, 0] == 0 and out[1, 1] == 0 and out[0, 1] == 0  # covered by window 0
    assert out[2, 2] == pytest.approx(0.5) and torch.isfinite(out).all()


def test_harmonic_aggregation_uncovered_patch_is_zero():
    windows = scoring.window_indices((3, 3), 2, stride=2)  # only the top-left window fits
    out = scoring.harmonic_aggregation(torch.tensor([[0.3]]), windows, 9).reshape(3, 3)
    torch.testing.assert_close(out[:2, :2], torch.full((2, 2), 0.3))
    assert out[2].abs().sum() == 0 and out[:, 2].abs().sum() == 0


# -- scores ---------------------------------------------------------------------------------------


def test_anomaly_probability_by_hand_and_scale_invariance():
    text = torch.tensor([[2.0, 0.0], [0.0, 5.0]])  # unnormalised class embeddings
    emb = torch.tensor([[3.0, 0.0], [1.0, 1.0], [0.0, 0.1]])
    out = scoring.anomaly_probability(emb, text, 0.07)
    expected = torch.tensor([1 / (1 + np.exp(1 / 0.07)), 0.5, 1 / (1 + np.exp(-1 / 0.07))], dtype=torch.float32)
    torch.testing.assert_close(out, expected)
    torch.testing.assert_close(scoring.anomaly_probability(emb[None] * 7, text * 0.3, 0.07), expected[None])


def test_visual_association_matches_scipy_cosine_distance():
    gen = torch.Generator().manual_seed(1)
    emb = torch.randn(2, 7, 5, generator=gen, dtype=torch.float64)
    ref = torch.randn(3, 4, 5, generator=gen, dtype=torch.float64)
    out = scoring.visual_association(emb, ref)
    for b in range(2):
        expected = cdist(emb[b].numpy(), ref.reshape(-1, 5).numpy(), metric="cosine").min(axis=1) / 2
        np.testing.assert_allclose(out[b].numpy(), expected, rtol=1e-12, atol=1e-12)
    assert scoring.visual_association(ref[:1, :2], ref).abs().max() < 1e-12  # members of the memory score 0


def test_combination_rules():
    gen = torch.Generator().manual_seed(2)
    image = torch.rand(3, generator=gen, dtype=torch.float64) + 0.1
    maps = [torch.rand(3, 6, generator=gen, dtype=torch.float64) + 0.1 for _ in range(2)]
    out = scoring.combine_zero_shot(image, maps)
    for b, p in itertools.product(range(3), range(6)):
        assert out[b, p].item() == pytest.approx(hmean([image[b].item(), maps[0][b, p].item(), maps[1][b, p].item()]))
    few = scoring.combine_few_shot(maps[0], maps)
    torch.testing.assert_close(few, (2 * maps[0] + maps[1]) / 3)


# -- the model on the tiny random backbone ---------------------------------------------------------

TINY = WinCLIPConfig(backbone="zsad-tiny-16-240")


def _tiny_method(seed: int = 0, **overrides) -> WinCLIP:
    torch.manual_seed(seed)
    return WinCLIP(TINY.replace(**overrides) if overrides else TINY, pretrained="none").setup()


def _smooth_images(count: int, seed: int) -> torch.Tensor:
    low = torch.rand(count, 3, 8, 8, generator=torch.Generator().manual_seed(seed))
    return F.interpolate(low, size=240, mode="bilinear", align_corners=False)


def _support(images: torch.Tensor, category: str = "metal_nut") -> FitData:
    def batches(batch_size: int = 8, shuffle: bool = False, seed: int = 0):
        for start in range(0, len(images), batch_size):
            yield Batch(image=images[start : start + batch_size], category=category)

    return FitData("support", batches, len(images), "synthetic", category, len(images))


@pytest.fixture(scope="module")
def tiny() -> WinCLIP:
    return _tiny_method()


def test_encoded_shapes_and_window_counts(tiny):
    model = tiny.model_
    encoded = model.encode(_smooth_images(2, 0))
    assert encoded.image.shape == (2, 32)
    assert [w.shape for w in encoded.windows] == [(2, 14 * 14, 32), (2, 13 * 13, 32)]
    assert encoded.patches.shape == (2, 225, 64)  # visual width, not projected


def test_image_and_patch_features_match_open_clip(tiny):
    backbone = tiny.model_.backbone
    images = _smooth_images(2, 1)
    encoded = tiny.model_.encode(images)
    with torch.no_grad():
        expected_image = backbone.model.encode_image(backbone.normalize(images))
        expected_patches = backbone.visual.forward_intermediates(
            backbone.normalize(images), indices=1, normalize_intermediates=True, output_fmt="NLC"
        )["image_intermediates"][-1]
    torch.testing.assert_close(encoded.image, expected_image, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(encoded.patches, expected_patches, rtol=1e-4, atol=1e-5)


def test_window_embedding_equals_masked_attention_over_the_full_sequence(tiny):
    # Letting every token attend only to CLS and the window's patches makes CLS see exactly that subset.
    backbone = tiny.model_.backbone
    visual = backbone.visual
    images = _smooth_images(1, 2)
    encoded = tiny.model_.encode(images)
    with torch.no_grad():
        tokens = visual.ln_pre(backbone.embed_tokens(backbone.normalize(images)))
        for scale_index, row, col, size in [(0, 0, 0, 2), (0, 7, 12, 2), (1, 12, 5, 3)]:
            keep = [0] + [1 + (row + r) * 15 + col + c for r in range(size) for c in range(size)]
            mask = torch.full((226, 226), float("-inf"))
            mask[:, keep] = 0.0
            cls = visual.ln_post(visual.transformer(tokens, attn_mask=mask)[:, 0]) @ visual.proj
            window = row * (15 - size + 1) + col
            torch.testing.assert_close(encoded.windows[scale_index][0, window], cls[0], rtol=1e-4, atol=1e-5)


def test_each_window_embedding_depends_on_its_own_patches_only(tiny):
    # Repaint one 16-px patch: only the windows that contain it may change (the patch embedding does not
    # overlap patches, and no window attends outside its own tokens).
    images = _smooth_images(1, 3)
    changed = images.clone()
    row, col = 6, 9
    patch = (slice(None), slice(None), slice(row * 16, (row + 1) * 16), slice(col * 16, (col + 1) * 16))
    changed[patch] = 1.0 - changed[patch]
    before, after = tiny.model_.encode(images), tiny.model_.encode(changed)
    for size, old, new in zip((2, 3), before.windows, after.windows):
        side = 15 - size + 1
        for window in range(side * side):
            top, left = divmod(window, side)
            contains = top <= row < top + size and left <= col < left + size
            difference = (old[0, window] - new[0, window]).abs().max().item()
            if contains:
                assert difference > 1e-4, (size, window)
            else:
                assert difference <= 1e-6, (size, window, difference)


def test_text_embeddings_are_means_of_unnormalised_prompt_embeddings(tiny):
    backbone = tiny.model_.backbone
    text = tiny.model_.text_embeddings("metal nut")
    normal, anomalous = prompts.prompt_ensemble("metal nut")
    tokenizer = open_clip.get_tokenizer("zsad-tiny-16-240")
    with torch.no_grad():
        expected = [backbone.model.encode_text(tokenizer(group)).mean(0) for group in (normal, anomalous)]
    torch.testing.assert_close(text, torch.stack(expected), rtol=1e-4, atol=1e-5)
    assert tiny.model_.text_embeddings("metal nut") is text  # cached per name
    with torch.no_grad():  # the trimmed context gives open_clip's full 77-token result for every prompt
        full = backbone.model.encode_text(tokenizer(normal))
    torch.testing.assert_close(tiny.model_._encode_prompts(tokenizer(normal)), full, rtol=1e-4, atol=1e-5)


def test_zero_shot_prediction_shapes_dtypes_and_determinism(tiny):
    tiny.fit(FitData("none"))
    batch = Batch(image=_smooth_images(3, 3), category="metal_nut")
    first, second = tiny.predict(batch), tiny.predict(batch)
    assert first.pred_score.shape == (3,) and first.anomaly_map.shape == (3, 240, 240)
    assert first.pred_score.dtype == torch.float32 and first.anomaly_map.dtype == torch.float32
    assert first.anomaly_map.device.type == "cpu"
    assert ((first.pred_score > 0) & (first.pred_score < 1)).all()
    assert ((first.anomaly_map > 0) & (first.anomaly_map < 1)).all()
    torch.testing.assert_close(first.pred_score, second.pred_score, rtol=0, atol=0)
    torch.testing.assert_close(first.anomaly_map, second.anomaly_map, rtol=0, atol=0)
    again = _tiny_method().fit(FitData("none")).predict(batch)  # a second instance built with the same seed
    torch.testing.assert_close(again.anomaly_map, first.anomaly_map)
    # each image is scored on its own: a batch of one gives the same result
    alone = tiny.predict(Batch(image=batch.image[1:2], category="metal_nut"))
    torch.testing.assert_close(alone.anomaly_map[0], first.anomaly_map[1], rtol=1e-4, atol=1e-5)


def test_zero_shot_map_combines_image_and_window_scores(tiny):
    model = tiny.model_
    images = _smooth_images(2, 4)
    tiny.fit(FitData("none"))
    prediction = tiny.predict(Batch(image=images, category="screw"))
    encoded = model.encode(images)
    text = model.text_embeddings("screw")
    image_score = scoring.anomaly_probability(encoded.image, text, 0.07)
    torch.testing.assert_close(prediction.pred_score, image_score)
    grid_map = scoring.combine_zero_shot(image_score, [
        scoring.harmonic_aggregation(scoring.anomaly_probability(w, text, 0.07), idx, 225)
        for w, idx in zip(encoded.windows, model.windows)
    ])
    upsampled = F.interpolate(grid_map.reshape(2, 1, 15, 15), size=240, mode="bilinear", align_corners=False)
    torch.testing.assert_close(prediction.anomaly_map, upsampled[:, 0])
    # bilinear upsampling by 16 with half-pixel centres puts each patch value between pixels 7 and 8
    centres = (prediction.anomaly_map[:, 7::16, 7::16] + prediction.anomaly_map[:, 8::16, 8::16]) / 2
    torch.testing.assert_close(centres, grid_map.reshape(2, 15, 15), rtol=0.05, atol=0.02)


def test_category_name_and_object_agnostic_prompts():
    method = _tiny_method().fit(FitData("none"))
    images = _smooth_images(1, 5)
    a = method.predict(Batch(image=images, category="metal_nut")).pred_score
    b = method.predict(Batch(image=images, category="hazelnut")).pred_score
    assert not torch.equal(a, b)
    torch.testing.assert_close(a, method.predict(Batch(image=images, category="metal nut")).pred_score)
    agnostic = _tiny_method(object_agnostic=True).fit(FitData("none"))
    c = agnostic.predict(Batch(image=images, category="metal_nut")).pred_score
    torch.testing.assert_close(c, agnostic.predict(Batch(image=images, category="hazelnut")).pred_score)
    torch.testing.assert_close(c, method.predict(Batch(image=images, category="object")).pred_score)


# -- few-shot (WinCLIP+) ---------------------------------------------------------------------------


def _with_foreign_patch(image: torch.Tensor) -> torch.Tensor:
    out = image.clone()
    yy, xx = torch.meshgrid(torch.arange(48), torch.arange(48), indexing="ij")
    out[:, 96:144, 96:144] = ((yy // 8 + xx // 8) % 2).float()  # patches (6..8, 6..8)
    return out


@pytest.mark.parametrize("seed", [0, 1])
def test_few_shot_map_is_low_on_a_support_image_and_high_on_a_pasted_patch(seed):
    method = _tiny_method(seed)
    support = _smooth_images(2, 10 + seed)
    method.fit(_support(support))
    model = method.model_
    assert model.shots == 2
    queries = torch.stack([support[0], _with_foreign_patch(support[0])])
    few = model.few_shot_map(model.encode(queries)).reshape(2, 15, 15)
    assert few[0].abs().max() < 1e-5  # every token of a support image is in the memory
    assert (few[1, 6:9, 6:9] > few[0, 6:9, 6:9] + 0.01).all()
    outside = few[1].clone()
    outside[5:10, 5:10] = float("-inf")  # the pasted patches and their window neighbours
    assert few[1, 6:9, 6:9].min() > outside.max()


def test_few_shot_prediction_averages_zero_shot_and_association(tiny):
    support, queries = _smooth_images(2, 20), _smooth_images(2, 21)
    batch = Batch(image=queries, category="metal_nut")
    zero = tiny.fit(FitData("none")).predict(batch)
    few = tiny.fit(_support(support)).predict(batch)
    grid = tiny.model_.few_shot_map(tiny.model_.encode(queries))
    upsampled = F.interpolate(grid.reshape(2, 1, 15, 15), size=240, mode="bilinear", align_corners=False)[:, 0]
    torch.testing.assert_close(few.anomaly_map, (zero.anomaly_map + upsampled) / 2)
    torch.testing.assert_close(few.pred_score, (zero.pred_score + grid.amax(dim=1)) / 2)
    # fitting zero-shot again forgets the memory
    torch.testing.assert_close(tiny.fit(FitData("none")).predict(batch).anomaly_map, zero.anomaly_map)


def test_support_takes_the_first_k_images_across_batches():
    method = _tiny_method()
    images = _smooth_images(5, 30)
    in_pairs = lambda **kw: _support(images).batches(batch_size=2)  # noqa: E731
    method.fit(FitData("support", in_pairs, 5, "synthetic", "metal_nut", 3))
    expected = method.model_.encode(images[:3]).patches
    torch.testing.assert_close(method.model_.reference_patches, expected)


def test_state_dict_round_trip_restores_the_memory_bank(tmp_path):
    support, queries = _smooth_images(2, 40), _smooth_images(2, 41)
    batch = Batch(image=queries, category="metal_nut")
    method = _tiny_method(3).fit(_support(support))
    expected = method.predict(batch)
    path = tmp_path / "winclip.pt"
    torch.save(method.state_dict(), path)
    restored = _tiny_method(3)
    restored.load_state_dict(torch.load(path, weights_only=True))
    got = restored.predict(batch)
    torch.testing.assert_close(got.anomaly_map, expected.anomaly_map, rtol=0, atol=0)
    torch.testing.assert_close(got.pred_score, expected.pred_score, rtol=0, atol=0)
    assert _tiny_method(3).fit(FitData("none")).state_dict() == {}
    with pytest.raises(MethodError, match="scales"):
        _tiny_method(3, scales=(2,)).load_state_dict(method.state_dict())


# -- errors and plugin metadata -----------------------------------------------------------------------


def test_predict_before_fit_raises_not_fitted():
    with pytest.raises(NotFittedError):
        _tiny_method().predict(Batch(image=_smooth_images(1, 0), category="bottle"))


def test_user_errors_are_named():
    method = _tiny_method().fit(FitData("none"))
    with pytest.raises(ConfigError, match="image_size"):
        method.predict(Batch(image=torch.rand(1, 3, 224, 224), category="bottle"))
    with pytest.raises(MethodError, match="no images"):
        method.fit(FitData("support", lambda **kw: iter(()), 0, "synthetic", "bottle", 1))
    with pytest.raises(ConfigError, match="do not fit"):
        WinCLIP(TINY.replace(scales=(2, 16)), pretrained="none").setup()


def test_plugin_declaration_and_registry():
    from zsadbench.registry import methods

    assert methods().get("winclip") is WinCLIP
    assert WinCLIP.settings == frozenset({"zero-shot", "few-shot"}) and WinCLIP.shots == (1, 2, 4)
    assert WinCLIP.default_pretrained == "laion400m_e31" and not WinCLIP.trains_on_auxiliary
    assert WinCLIP().config == WinCLIPConfig() and WinCLIP().input_size == 240
    info = _tiny_method().weights_info()
    assert info["random"] is True and info["sha256"] is None and info["tag"] == "none"


@pytest.mark.slow
def test_full_size_backbone_shapes():
    torch.manual_seed(0)
    method = WinCLIP(pretrained="none").setup().fit(_support(_smooth_images(1, 0), "bottle"))
    model = method.model_
    assert model.reference_patches.shape == (1, 225, 896)  # ViT-B-16-plus-240 width, not projected
    assert [tuple(w.shape) for w in model.reference_windows] == [(1, 196, 640), (1, 169, 640)]
    prediction = method.predict(Batch(image=_smooth_images(1, 1), category="bottle"))
    assert prediction.anomaly_map.shape == (1, 240, 240) and torch.isfinite(prediction.anomaly_map).all()
    assert model.text_embeddings("bottle").shape == (2, 640)
