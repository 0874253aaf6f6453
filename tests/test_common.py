"""Checks every built-in method passes, on tiny random backbones (scikit-learn's common-checks idea)."""
from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
import torch

from zsadbench import registry
from zsadbench.errors import NotFittedError
from zsadbench.method import FitData, Method
from zsadbench.methods.finegrainedad import mfsc
from zsadbench.runner.loading import ImageSet
from zsadbench.types import Batch

import toy_plugins

# The smallest configuration of each built-in method; a new built-in must be added here.
_CLIP_PROMPTS = {"backbone": "zsad-tiny-14-336", "image_size": 56, "vv_last": 3, "deep_depth": 2, "epochs": 1}
_FEW_SHOT = {"backbone": "zsad-tiny-16-240", "image_size": 64, "memory_layers": (1, 2), "epochs_seg": 1,
             "epochs_cls": 1, "map_size": 64}
TINY = {
    "winclip": {"backbone": "zsad-tiny-16-240"},
    "visualad": {"backbone": "zsad-tiny-14-336", "image_size": 56, "layers": (2, 4), "epochs": 1},
    "anomalyclip": {**_CLIP_PROMPTS, "layers": (4,)},
    "mpa": {**_CLIP_PROMPTS, "layer": 4},
    "mpama": {**_CLIP_PROMPTS, "layer": 4, "stage2_epochs": 1},
    "promptad": _FEW_SHOT,
    "finegrainedad": {**_FEW_SHOT, "cluster_size": 128, "query_heads": 2, "captions_dir": "CAPTIONS"},
}
BUILTINS = sorted(e.name for e in registry.methods().entries() if e.source == "builtin")
CAPTIONS = Path(tempfile.mkdtemp(prefix="zsad-toy-captions-"))


def _toy_captions() -> None:
    """Captions for the toy categories (FineGrainedAD reads them), from a shipped synthetic file."""
    shipped = json.loads((Path(mfsc.__file__).parent / "data" / "synthetic" / "button.json").read_text())
    for category in toy_plugins.CATEGORIES:
        (CAPTIONS / "toy").mkdir(parents=True, exist_ok=True)
        (CAPTIONS / "toy" / f"{category}.json").write_text(json.dumps({**shipped, "dataset": "toy", "category": category}))


_toy_captions()


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    root = toy_plugins.write_toy_tree(tmp_path_factory.mktemp("toy") / "toy", size=48)
    return toy_plugins.ToyDataset(root)


def tiny(name: str) -> dict:
    return {k: (str(CAPTIONS) if v == "CAPTIONS" else v) for k, v in TINY[name].items()}


def build(name: str) -> Method:
    cls = registry.methods().get(name)
    torch.manual_seed(0)
    return cls(cls.config_class().replace(**tiny(name)), pretrained="none", device="cpu")


def fit_data(method: Method, toy, kind: str) -> FitData:
    samples = toy.select("train", "alpha", 0)[:1] if kind == "support" else toy.select("test")
    images = ImageSet(toy, samples, method.input_size, method.input_size, workers=1)
    return FitData(kind, images.batches, len(images), "toy", "alpha" if kind == "support" else None, len(samples) if kind == "support" else 0, 0)


def fitted(name: str, toy) -> Method:
    method = build(name).setup()
    if method.trains_on_auxiliary:
        kind = "auxiliary"
    else:
        kind = "none" if "zero-shot" in method.settings else "support"
    assert method.fit(fit_data(method, toy, kind)) is method
    return method


def test_every_builtin_has_a_tiny_configuration():
    assert set(BUILTINS) <= set(TINY), "add the new method's tiny configuration to TINY"


@pytest.mark.parametrize("name", BUILTINS)
def test_config_round_trip_and_declared_capabilities(name):
    cls = registry.methods().get(name)
    config = cls.config_class().replace(**tiny(name))
    assert type(config).from_json(config.to_json()) == config
    assert config.config_hash() != cls.config_class().config_hash()
    assert cls.settings <= {"zero-shot", "few-shot"} and cls.settings
    assert ("few-shot" in cls.settings) == bool(cls.shots)
    method = cls(config, pretrained="none")
    assert method.config is config and method.pretrained == "none"


@pytest.mark.parametrize("name", BUILTINS)
def test_predict_before_fit_raises(name, toy):
    method = build(name).setup()
    with pytest.raises(NotFittedError):
        method.predict(Batch(image=torch.rand(1, 3, method.input_size, method.input_size), category="alpha"))


@pytest.mark.parametrize("name", BUILTINS)
def test_predictions_are_float32_finite_deterministic_and_survive_a_state_round_trip(name, toy):
    method = fitted(name, toy)
    images = ImageSet(toy, toy.select("test", "alpha"), method.input_size, method.input_size, workers=1)
    batch = next(images.batches(4))
    batch = Batch(image=batch.image, category="alpha")
    with torch.inference_mode():
        first, second = method.predict(batch), method.predict(batch)
    assert first.pred_score.dtype == torch.float32 and first.anomaly_map.dtype == torch.float32
    assert first.pred_score.shape == (4,) and first.anomaly_map.ndim == 3 and first.anomaly_map.shape[0] == 4
    assert torch.isfinite(first.anomaly_map).all() and torch.isfinite(first.pred_score).all()
    assert torch.equal(first.anomaly_map, second.anomaly_map)

    state = method.state_dict()
    restored = build(name).setup()
    restored.load_state_dict(state)
    with torch.inference_mode():
        again = restored.predict(batch)
    torch.testing.assert_close(again.anomaly_map, first.anomaly_map)
    torch.testing.assert_close(again.pred_score, first.pred_score)


@pytest.mark.parametrize("name", [n for n in BUILTINS if {"zero-shot", "few-shot"} <= registry.methods().get(n).settings])
def test_few_shot_fit_returns_self_and_changes_the_maps(name, toy):
    zero = fitted(name, toy)
    few = build(name).setup()
    assert few.fit(fit_data(few, toy, "support")) is few
    images = ImageSet(toy, toy.select("test", "alpha"), few.input_size, few.input_size, workers=1)
    batch = Batch(image=next(images.batches(2)).image, category="alpha")
    with torch.inference_mode():
        assert not torch.equal(zero.predict(batch).anomaly_map, few.predict(batch).anomaly_map)
