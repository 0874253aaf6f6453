"""VAND / APRIL-GAN: the official prompt ensemble, the tower as the official loader builds it, maps and scores
against a plain-torch re-statement of the formulas on the tiny random backbone, hand-computed losses, the few-shot
memory, state round trips, and zero-shot and 1-shot runs through the runner."""
from __future__ import annotations

import json
import math

import open_clip
import pytest
import torch
import torch.nn.functional as F

from zsadbench import registry
from zsadbench.backbones import create_clip
from zsadbench.cli.main import main
from zsadbench.errors import ConfigError, MethodError
from zsadbench.method import FitData
from zsadbench.methods.vand.config import VANDConfig
from zsadbench.methods.vand.method import VAND
from zsadbench.methods.vand.prompts import ANOMALOUS_STATES, NORMAL_STATES, TEMPLATES, object_word, prompt_ensemble
from zsadbench.methods.vand.scoring import memory_distance
from zsadbench.methods.vand.training import segmentation_loss
from zsadbench.store import ResultStore
from zsadbench.types import Batch

pytestmark = pytest.mark.usefixtures("one_thread")

S = 56
TINY = VANDConfig(backbone="zsad-tiny-14-336", image_size=S, layers=(2, 4), memory_layers=(1, 3), epochs=1)
TINY_FLAGS = ["--set", "backbone=zsad-tiny-14-336", "--set", f"image_size={S}", "--set", "layers=2,4",
              "--set", "memory_layers=1,3", "--set", "epochs=1"]
MEAN = torch.tensor(open_clip.OPENAI_DATASET_MEAN).view(1, 3, 1, 1)
STD = torch.tensor(open_clip.OPENAI_DATASET_STD).view(1, 3, 1, 1)

# The official lists (``prompt_ensemble.py`` at f13b8a6), in their order.
OFFICIAL_NORMAL = ("{}", "flawless {}", "perfect {}", "unblemished {}", "{} without flaw", "{} without defect",
                   "{} without damage")
OFFICIAL_ABNORMAL = ("damaged {}", "broken {}", "{} with flaw", "{} with defect", "{} with damage")
OFFICIAL_TEMPLATES = (
    "a bad photo of a {}.", "a low resolution photo of the {}.", "a bad photo of the {}.", "a cropped photo of the {}.",
    "a bright photo of a {}.", "a dark photo of the {}.", "a photo of my {}.", "a photo of the cool {}.",
    "a close-up photo of a {}.", "a black and white photo of the {}.", "a bright photo of the {}.",
    "a cropped photo of a {}.", "a jpeg corrupted photo of a {}.", "a blurry photo of the {}.", "a photo of the {}.",
    "a good photo of the {}.", "a photo of one {}.", "a close-up photo of the {}.", "a photo of a {}.",
    "a low resolution photo of a {}.", "a photo of a large {}.", "a blurry photo of a {}.",
    "a jpeg corrupted photo of the {}.", "a good photo of a {}.", "a photo of the small {}.",
    "a photo of the large {}.", "a black and white photo of a {}.", "a dark photo of a {}.", "a photo of a cool {}.",
    "a photo of a small {}.", "there is a {} in the scene.", "there is the {} in the scene.",
    "this is a {} in the scene.", "this is the {} in the scene.", "this is one {} in the scene.",
)


def images(count: int, seed: int) -> torch.Tensor:
    low = torch.rand(count, 3, 8, 8, generator=torch.Generator().manual_seed(seed))
    return F.interpolate(low, size=S, mode="bilinear", align_corners=False)


def untrained(config: VANDConfig = TINY) -> VAND:
    """The tiny VAND with its initial linear layers, counted as fitted (zero-shot)."""
    torch.manual_seed(0)
    method = VAND(config, pretrained="none").setup()
    method.load_state_dict(method.state_dict())
    return method


def auxiliary(count: int = 4, seed: int = 3) -> FitData:
    pictures = images(count, seed)
    masks = torch.zeros(count, S, S, dtype=torch.bool)
    masks[::2, 10:30, 20:40] = True
    labels = torch.tensor([1 - i % 2 for i in range(count)])
    names = tuple("bottle" if i % 2 else "metal_nut" for i in range(count))

    def batches(batch_size: int = 8, shuffle: bool = False, seed: int = 0):
        for start in range(0, count, batch_size):
            part = slice(start, start + batch_size)
            yield Batch(image=pictures[part], category="object", gt_label=labels[part], gt_mask=masks[part],
                        categories=names[part])

    return FitData("auxiliary", batches, count, "synthetic_aux")


def support(pictures: torch.Tensor) -> FitData:
    def batches(batch_size: int = 8, shuffle: bool = False, seed: int = 0):
        for start in range(0, len(pictures), batch_size):
            yield Batch(image=pictures[start:start + batch_size], category="bottle")

    return FitData("support", batches, len(pictures), "synthetic", "bottle", len(pictures))


def plain_taps(backbone, pictures: torch.Tensor, blocks) -> dict[int, torch.Tensor]:
    """The raw patch tokens after ``blocks``, by running open_clip's visual modules one by one."""
    visual = backbone.visual
    x = visual.conv1((pictures - MEAN) / STD).flatten(2).transpose(1, 2)
    x = torch.cat([visual.class_embedding.expand(len(x), 1, -1), x], dim=1) + visual.positional_embedding
    x = visual.ln_pre(x)
    taps = {}
    for number, block in enumerate(visual.transformer.resblocks, start=1):
        x = block(x)
        if number in blocks:
            taps[number] = x[:, 1:]
    return taps


def plain_text(backbone, name: str) -> torch.Tensor:
    """``[2, D]`` state features through open_clip's own ``encode_text`` on the full 77-token context."""
    rows = []
    for states in (OFFICIAL_NORMAL, OFFICIAL_ABNORMAL):
        texts = [t.format(s.format(name)) for s in states for t in OFFICIAL_TEMPLATES]
        embedded = F.normalize(backbone.model.encode_text(backbone.tokenize(texts)), dim=-1)
        rows.append(F.normalize(embedded.mean(dim=0), dim=-1))
    return torch.stack(rows)


def plain_zero_shot(method: VAND, pictures: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(map [B, S, S], score [B])`` from the formulas: per layer, ``softmax(100 cos)`` of the linear layer's output
    against the text, both logits upsampled (bilinear, corners aligned) before the softmax, summed."""
    backbone, cfg = method.model_.backbone, method.config
    text = plain_text(backbone, "bottle")
    taps = plain_taps(backbone, pictures, cfg.layers)
    total = 0
    for layer, adapter in zip(cfg.layers, method.model_.adapters):
        z = F.normalize(adapter(taps[layer]), dim=-1)
        logits = (100 * z @ text.T).transpose(1, 2).reshape(len(pictures), 2, 4, 4)
        total = total + F.interpolate(logits, size=S, mode="bilinear", align_corners=True).softmax(dim=1)[:, 1]
    image = F.normalize(backbone.model.encode_image((pictures - MEAN) / STD), dim=-1)
    return total, (100 * image @ text.T).softmax(dim=-1)[:, 1]


def test_defaults_are_the_official_values_and_errors_name_the_field():
    cfg = VANDConfig()
    assert (cfg.backbone, cfg.activation, cfg.pos_interpolation, cfg.image_size) == ("ViT-L-14-336", "gelu", "bicubic", 518)
    assert cfg.layers == cfg.memory_layers == (6, 12, 18, 24)
    assert (cfg.logit_scale, cfg.sigma, cfg.prompt_name) == (100.0, 0.0, "category")
    assert (cfg.batch_size, cfg.lr, cfg.betas) == (8, 1e-3, (0.5, 0.999))
    assert (cfg.focal_gamma, cfg.focal_smooth, cfg.dice_smooth) == (2.0, 1e-5, 1.0)
    assert (cfg.epochs_for("mvtec"), cfg.epochs_for("visa"), cfg.epochs_for("synthetic_aux")) == (3, 15, 3)
    assert cfg.replace(epochs=2).epochs_for("visa") == 2
    with pytest.raises(ConfigError, match=r"^VANDConfig\.fewshot_map_range must be > 0"):
        cfg.replace(fewshot_map_range=0.0)
    with pytest.raises(ConfigError, match=r"VANDConfig\.layers \[2, 9\]: \[9\] outside 1\.\.4.*--set layers=1,2,3,4"):
        VAND(TINY.replace(layers=(2, 9)), pretrained="none").setup()
    with pytest.raises(ConfigError, match=r"image_size=50 must be a positive multiple of the patch size 14"):
        VAND(TINY.replace(image_size=50), pretrained="none").setup()
    assert (VAND.name, VAND.version, VAND.label, VAND.default_pretrained) == ("vand", "1", "VAND", "openai")
    assert VAND.settings == {"zero-shot", "few-shot"} and VAND.shots == (1, 2, 4) and VAND.trains_on_auxiliary
    demo = cfg.replace(**VAND.random_init_overrides)
    assert (demo.backbone, demo.epochs) == ("ViT-B-16", 1)


def test_prompt_ensemble_is_the_official_list():
    assert (NORMAL_STATES, ANOMALOUS_STATES, TEMPLATES) == (OFFICIAL_NORMAL, OFFICIAL_ABNORMAL, OFFICIAL_TEMPLATES)
    normal, anomalous = prompt_ensemble("metal_nut")
    assert (len(normal), len(anomalous)) == (7 * 35, 5 * 35)
    assert normal[:2] == ["a bad photo of a metal_nut.", "a low resolution photo of the metal_nut."]
    assert normal[35] == "a bad photo of a flawless metal_nut."
    assert anomalous[35] == "a bad photo of a broken metal_nut."
    assert anomalous[-1] == "this is one metal_nut with damage in the scene."
    assert (object_word("metal_nut", "category"), object_word("metal_nut", "spaces")) == ("metal_nut", "metal nut")


def test_tower_is_built_as_the_official_loader_builds_it():
    method = untrained()
    backbone = method.model_.backbone
    assert backbone.grid_size == (4, 4) and "(gelu, bicubic positions)" in backbone.name
    kinds = {type(m).__name__ for name, m in backbone.named_modules() if name.endswith("mlp.gelu")}
    assert kinds == {"GELU"}
    native = create_clip("zsad-tiny-14-336", "none").visual.positional_embedding.detach()
    grid = native[1:].reshape(1, 24, 24, -1).permute(0, 3, 1, 2)
    grid = F.interpolate(grid, size=(4, 4), mode="bicubic", antialias=True, align_corners=False)
    expected = torch.cat([native[:1], grid.permute(0, 2, 3, 1).reshape(16, -1)])
    torch.testing.assert_close(backbone.visual.positional_embedding.detach(), expected, rtol=0, atol=0)
    quick = untrained(TINY.replace(activation="quickgelu", pos_interpolation="bilinear")).model_.backbone
    assert {type(m).__name__ for name, m in quick.named_modules() if name.endswith("mlp.gelu")} == {"QuickGELU"}
    assert not torch.equal(quick.visual.positional_embedding, backbone.visual.positional_embedding)


def test_text_maps_and_score_agree_with_a_plain_restatement():
    method = untrained()
    pictures = images(2, 1)
    with torch.no_grad():
        torch.testing.assert_close(method.model_.text_features("bottle"), plain_text(method.model_.backbone, "bottle"),
                                   rtol=0, atol=1e-6)
        expected_map, expected_score = plain_zero_shot(method, pictures)
    with torch.inference_mode():
        out = method.predict(Batch(image=pictures, category="bottle"))
    assert out.anomaly_map.shape == (2, S, S) and out.anomaly_map.dtype == torch.float32
    torch.testing.assert_close(out.anomaly_map, expected_map, rtol=0, atol=1e-5)
    torch.testing.assert_close(out.pred_score, expected_score, rtol=0, atol=1e-6)
    smoothed = untrained(TINY.replace(sigma=2.0))
    with torch.inference_mode():
        assert not torch.allclose(smoothed.predict(Batch(image=pictures, category="bottle")).anomaly_map, out.anomaly_map)


def test_losses_by_hand():
    # focal: p_t = s·p + (1 − s)(1 − p) + 1e-5 with s the target clamped to [1e-5, 1 − 1e-5]; loss (1 − p_t)² · −ln p_t
    # layer 1, p = (0.8, 0.3), gt = (1, 0): p_t = 0.800004, 0.700006 → (0.0399984 · 0.2231386 + 0.0899964 · 0.3566664) / 2
    # layer 2, p = (0.5, 0.5): p_t = 0.50001 twice → 0.49999² · 0.6931272
    # Dice: 1 − (2·0.8 + 1) / (1.1 + 1 + 1) = 0.5 / 3.1 and 1 − (2·0.5 + 1) / (1 + 1 + 1) = 1 / 3
    masks = torch.tensor([[[1.0, 0.0]]])
    losses = segmentation_loss([torch.tensor([[[0.8, 0.3]]]), torch.tensor([[[0.5, 0.5]]])], masks, VANDConfig())
    focal = (0.0399984 * 0.2231386 + 0.0899964 * 0.3566664) / 2 + 0.49999 ** 2 * 0.6931272
    assert losses["focal"].item() == pytest.approx(focal, abs=1e-6)
    assert losses["dice"].item() == pytest.approx(0.5 / 3.1 + 1 / 3, abs=1e-6)
    assert losses["total"].item() == pytest.approx(focal + 0.5 / 3.1 + 1 / 3, abs=1e-6)


def test_memory_distance_on_planted_vectors():
    memory = torch.tensor([[1.0, 0.0, 0.0], [0.0, 3.0, 0.0]])
    patches = torch.tensor([[[2.0, 0.0, 0.0], [1.0, 1.0, 0.0], [0.0, 0.0, 1.0], [-1.0, 0.0, 0.0], [0.0, -1.0, 1.0]]])
    expected = torch.tensor([[0.0, 1 - 1 / math.sqrt(2), 1.0, 1.0, 1.0]])
    torch.testing.assert_close(memory_distance(patches, memory), expected, rtol=0, atol=1e-6)


def test_few_shot_adds_the_memory_map_and_rescores():
    method = untrained(TINY.replace(fewshot_map_range=2.0))
    shots, queries = images(2, 5), images(3, 6)
    with torch.inference_mode():
        zero = method.predict(Batch(image=queries, category="bottle"))
    method.fit(support(shots))
    with torch.inference_mode():
        few = method.predict(Batch(image=queries, category="bottle"))
        itself = method.predict(Batch(image=shots[:1], category="bottle"))
        alone = untrained(TINY).predict(Batch(image=shots[:1], category="bottle"))
    backbone = method.model_.backbone
    with torch.no_grad():
        query, memory = plain_taps(backbone, queries, (1, 3)), plain_taps(backbone, shots, (1, 3))
    added = 0
    for layer in (1, 3):
        bank = F.normalize(memory[layer].reshape(-1, memory[layer].shape[-1]), dim=-1)
        nearest = (F.normalize(query[layer], dim=-1) @ bank.T).amax(dim=-1)
        added = added + F.interpolate((1 - nearest).reshape(3, 1, 4, 4), size=S, mode="bilinear", align_corners=True)[:, 0]
    torch.testing.assert_close(few.anomaly_map, zero.anomaly_map + added, rtol=0, atol=1e-5)
    expected = 0.5 * (zero.pred_score + few.anomaly_map.flatten(1).amax(dim=1) / 2.0)
    torch.testing.assert_close(few.pred_score, expected, rtol=0, atol=1e-6)
    # a support image scored against a memory that holds it: the memory adds nothing
    torch.testing.assert_close(itself.anomaly_map, alone.anomaly_map, rtol=0, atol=1e-5)


def test_state_round_trips_and_the_support_fit_keeps_the_trained_layers():
    torch.manual_seed(0)
    method = VAND(TINY.replace(epochs=3), pretrained="none").setup()
    before = {k: v.clone() for k, v in method.model_.adapters.state_dict().items()}
    method.fit(auxiliary())
    assert len(method.history_) == 3 and method.history_[-1]["total"] < method.history_[0]["total"]
    trained = method.state_dict()
    assert set(trained) == {f"adapters.{i}.{p}" for i in (0, 1) for p in ("weight", "bias")}
    assert not torch.equal(trained["adapters.0.weight"], before["0.weight"])
    queries = Batch(image=images(2, 7), category="bottle")

    restored = VAND(TINY.replace(epochs=3), pretrained="none")
    restored.load_state_dict(trained)
    with torch.inference_mode():
        torch.testing.assert_close(restored.predict(queries).anomaly_map, method.predict(queries).anomaly_map)

    restored.fit(support(images(1, 8)))
    adapted = restored.state_dict()
    assert all(torch.equal(adapted[key], trained[key]) for key in trained)
    assert adapted["memory.1"].shape == adapted["memory.3"].shape == (16, 64)
    again = VAND(TINY.replace(epochs=3), pretrained="none")
    again.load_state_dict(adapted)
    with torch.inference_mode():
        first, second = restored.predict(queries), again.predict(queries)
    torch.testing.assert_close(second.anomaly_map, first.anomaly_map)
    torch.testing.assert_close(second.pred_score, first.pred_score)
    with pytest.raises(MethodError, match=r"memory of \['memory.1', 'memory.3'\].*memory_layers are \[2\]"):
        VAND(TINY.replace(memory_layers=(2,)), pretrained="none").load_state_dict(adapted)
    restored.fit(auxiliary())
    assert restored.memory_ is None


def test_zero_shot_and_one_shot_run_through_the_runner(tmp_path, monkeypatch):
    monkeypatch.setenv("ZSADBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("ZSADBENCH_SYNTHETIC_SIZE", "small")
    registry.reset()
    out = tmp_path / "out"
    code = main(["run", "--plugin", "zsadbench.methods.vand.method:VAND", "--method", "vand", "--datasets", "synthetic",
                 "--shots", "0,1", "--pretrained", "none", "--eval-size", "32", "--out", str(out), "--no-table",
                 *TINY_FLAGS])
    registry.reset()
    assert code == 0
    rows = ResultStore(out).rows()
    assert len(rows) == 6 and {r.shots for r in rows} == {0, 1} and {r.aux for r in rows} == {"synthetic_aux"}
    assert all(r.status == "ok" for r in rows)
    assert len(list((out / "cache" / "states").glob("*.pt"))) == 1
    assert len({r.provenance.state for r in rows}) == 1
    assert all(bool(r.provenance.support) == (r.shots == 1) for r in rows)
    frame = ResultStore(out).to_frame()
    assert frame.image_auroc.between(0, 1).all() and frame.pixel_auroc.between(0, 1).all()
    ran = json.loads(frame.config_json.iloc[0])
    assert (ran["backbone"], ran["layers"], ran["memory_layers"]) == ("zsad-tiny-14-336", [2, 4], [1, 3])
