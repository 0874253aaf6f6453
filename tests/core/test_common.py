"""Checks every built-in method passes, on tiny random backbones (scikit-learn's common-checks idea)."""
from __future__ import annotations

import dataclasses
import math
import typing
from pathlib import Path

import pytest
import torch

from zsadbench import registry
from zsadbench.config import MethodConfig
from zsadbench.constraints import Interval, Items, Options, cross_checks, parameter_constraints
from zsadbench.errors import ConfigError, NotFittedError
from zsadbench.method import FitData, Method
from zsadbench.runner.loading import ImageSet
from zsadbench.types import Batch

import toy_plugins
from tiny_configs import TINY

BUILTINS = sorted(e.name for e in registry.methods().entries() if e.source == "builtin")
CAPTIONS: Path | None = None  # the toy captions folder (FineGrainedAD reads it), set by _use_toy_captions


@pytest.fixture(scope="module", autouse=True)
def _use_toy_captions(toy_captions):
    global CAPTIONS
    CAPTIONS = toy_captions


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
    """Fitted as a run fits it in its first setting: zero-shot when it has that setting, else few-shot (after its
    auxiliary training when it has one)."""
    method = build(name).setup()
    zero_shot = "zero-shot" in method.settings
    if method.trains_on_auxiliary:
        assert method.fit(fit_data(method, toy, "auxiliary")) is method
        if zero_shot:
            return method
    assert method.fit(fit_data(method, toy, "none" if zero_shot else "support")) is method
    return method


def test_every_builtin_has_a_tiny_configuration():
    assert set(BUILTINS) <= set(TINY), "add the new method's tiny configuration to tiny_configs.TINY"


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


# -- the method contract, for every registered method and the well-behaved toy plugins --------------------------
TOY_PLUGINS = ("toy_plugins:ToyMethod", "toy_plugins:ToyTrainedMethod", "toy_plugins:ProbeMethod",
               "toy_plugins:EpochTrainedMethod")


def contract_methods() -> dict[str, type[Method]]:
    """The methods the registry lists (built-ins, installed plugins) plus the toy plugins, loaded as ``--plugin``
    loads them, in a registry of their own."""
    methods = registry.Registry("method", "zsadbench.methods", Method)
    for path in TOY_PLUGINS:
        methods.register_path(path)
    return {entry.name: methods.get(entry.name) for entry in methods.entries()}


CONTRACT = contract_methods()


@dataclasses.dataclass(frozen=True)
class ForeignConfig(MethodConfig):
    image_size: int = 8


@pytest.mark.parametrize("name", sorted(CONTRACT))
def test_version_is_set_on_the_class_itself(name):
    cls = CONTRACT[name]
    version = cls.__dict__.get("version")
    assert isinstance(version, str) and version, f"{cls.__qualname__} must set its own version, e.g. version = \"1\""


@pytest.mark.parametrize("name", sorted(CONTRACT))
def test_init_only_stores_and_check_params_checks(name):
    cls = CONTRACT[name]
    for config in (cls.config_class(), None, ForeignConfig()):
        method = cls(config, pretrained="none", device="cpu", precision="fp64")
        stored = vars(method)
        assert not [key for key in stored if key.endswith("_")], "learned state set in __init__"
        assert not [key for key, value in stored.items() if isinstance(value, torch.nn.Module)], "model built in __init__"
        assert method.precision == "fp64" and method.pretrained == "none"
    with pytest.raises(ConfigError, match=f"{cls.__name__} takes a {cls.config_class.__name__}, got ForeignConfig"):
        cls(ForeignConfig()).check_params()
    with pytest.raises(ConfigError, match="precision must be one of fp32, bf16, got 'fp64'"):
        cls(precision="fp64").check_params()
    method = cls(pretrained="none", precision="bf16")
    assert method.check_params() is method


def _near(bound: float, kind: type, direction: int) -> float:
    """The value of type ``kind`` next to ``bound`` towards ``direction`` (+1 up, -1 down)."""
    return bound + direction if kind is int else math.nextafter(bound, direction * math.inf)


def _boundary_pairs(interval: Interval, kind: type) -> list[tuple[float, float, int]]:
    """(just outside, just inside, 0 for the left bound or -1 for the right) for each finite bound."""
    pairs = []
    if interval.left is not None:
        left = interval.left
        pairs.append((_near(left, kind, -1), left, 0) if interval.left_closed else (left, _near(left, kind, 1), 0))
    if interval.right is not None:
        right = interval.right
        pairs.append((_near(right, kind, 1), right, -1) if interval.right_closed else (right, _near(right, kind, -1), -1))
    return pairs


def _with_item(items: tuple, at: int, value: object) -> tuple:
    """``items`` with the item at index ``at`` replaced by ``value``."""
    replaced = list(items)
    replaced[at] = value
    return tuple(replaced)


def _cases(config_class: type[MethodConfig]) -> list[tuple[str, object, object | None]]:
    """(field, a value the declaration rejects, a value next to it that it accepts or None) for every declaration."""
    hints = typing.get_type_hints(config_class)
    defaults = config_class()
    cases: list[tuple[str, object, object | None]] = []
    for name, constraint in parameter_constraints(config_class).items():
        default = getattr(defaults, name)
        if isinstance(constraint, Interval):
            cases += [(name, bad, good) for bad, good, _ in _boundary_pairs(constraint, hints[name])]
        elif isinstance(constraint, Options):
            cases.append((name, "not-an-option", None))
        elif isinstance(constraint, Items):
            if isinstance(constraint.each, Interval):
                for bad, good, at in _boundary_pairs(constraint.each, typing.get_args(hints[name])[0]):
                    cases.append((name, _with_item(default, at, bad), _with_item(default, at, good)))
            if constraint.non_empty:
                cases.append((name, (), None))
            if constraint.length is not None:
                cases.append((name, tuple(default)[: constraint.length - 1], None))
            if constraint.distinct:
                cases.append((name, tuple(default) + tuple(default[:1]), None))
            if constraint.increasing and len(set(default)) > 1:
                cases.append((name, tuple(reversed(default)), None))
    return cases


@pytest.mark.parametrize("name", sorted(CONTRACT))
def test_config_enforces_its_declared_constraints(name):
    config_class = CONTRACT[name].config_class
    default = config_class()
    for field, bad, good in _cases(config_class):
        with pytest.raises(ConfigError, match=rf"^{config_class.__name__}\.{field} must be .*, got "):
            default.replace(**{field: bad})
        if good is None:
            continue
        try:
            assert getattr(default.replace(**{field: good}), field) == good
        except ConfigError as exc:  # only a rule between this field and another may reject a value next to a bound
            assert any(field in rule.fields for rule in cross_checks(config_class)), exc
            assert f"{config_class.__name__}.{field} must be" not in str(exc)
    values = dataclasses.asdict(default)
    for rule in cross_checks(config_class):
        assert rule.holds(default) and rule.message.format(**values).startswith(rule.fields[0])



@pytest.mark.parametrize("name", BUILTINS)
def test_weights_provenance_is_the_built_backbones_record(name):
    method = build(name)
    before = method.weights_info()
    assert before["tag"] == "none" and before["random"] is True and before["sha256"] is None
    method.setup()
    after = method.weights_info()
    backbone = getattr(getattr(method, "model_", None), "backbone", None) or getattr(method, "backbone_", None)
    assert after == backbone.weights.as_dict() and after["random"] is True
