"""MethodConfig: JSON round trip, canonical hash, typed overrides, declared constraints."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from typing import ClassVar, Literal

import pytest

from zsadbench.config import FieldInfo, MethodConfig
from zsadbench.constraints import (
    AT_LEAST_ONE, NON_NEGATIVE, POSITIVE, Constraints, CrossCheck, CrossChecks, Interval, Items, Options,
)
from zsadbench.errors import ConfigError


@dataclasses.dataclass(frozen=True)
class Example(MethodConfig):
    image_size: int = 240
    scales: tuple[int, ...] = (2, 3)
    temperature: float = 0.07
    backbone: str = "ViT-B-16-plus-240"
    smooth: bool = True
    mode: Literal["a", "b"] = "a"
    note: str | None = None


def test_round_trip_and_hash_of_canonical_json():
    config = Example(scales=(1, 2, 3), note="x")
    assert Example.from_json(config.to_json()) == config
    canonical = json.dumps(config.to_dict(), sort_keys=True, separators=(",", ":"))
    assert config.config_hash() == hashlib.sha256(canonical.encode()).hexdigest()[:12]
    assert Example().config_hash() != config.config_hash()


def test_replace_converts_command_line_strings():
    config = Example().replace(image_size="336", scales="2,3,4", temperature="0.1", smooth="false", mode="b")
    assert config == Example(image_size=336, scales=(2, 3, 4), temperature=0.1, smooth=False, mode="b")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"image_size": "big"}, "Example.image_size must be int"),
        ({"image_size": 2.5}, "must be an integer"),
        ({"smooth": "maybe"}, "must be true or false"),
        ({"mode": "c"}, r"must be one of \['a', 'b'\]"),
        ({"colour": 1}, "unknown option"),
        ({"temperature": "inf"}, r"Example.temperature holds inf, which makes every number .* \(default: 0.07\)"),
        ({"temperature": "-inf"}, "Example.temperature holds -inf"),
        ({"temperature": float("nan")}, "Example.temperature holds nan"),
    ],
)
def test_bad_values_name_the_field(overrides, message):
    with pytest.raises(ConfigError, match=message):
        Example().replace(**overrides)


@pytest.mark.parametrize(
    ("closed", "text", "accepted", "rejected"),
    [
        ("left", "in [0, 1)", [0, 0.5, math.nextafter(1, 0)], [math.nextafter(0, -1), 1, 2]),
        ("right", "in (0, 1]", [math.nextafter(0, 1), 1], [0, math.nextafter(1, 2)]),
        ("both", "in [0, 1]", [0, 1], [-1e-12, 1 + 1e-12]),
        ("neither", "in (0, 1)", [1e-12, 0.5], [0, 1]),
    ],
)
def test_interval_bounds_are_open_or_closed_as_declared(closed, text, accepted, rejected):
    interval = Interval(0, 1, closed=closed)
    assert interval.describe() == text
    assert all(interval.holds(v) for v in accepted)
    assert not any(interval.holds(v) for v in rejected + [float("nan"), "0.5", None])


def test_half_bounded_intervals_read_as_comparisons():
    assert [c.describe() for c in (POSITIVE, NON_NEGATIVE, AT_LEAST_ONE)] == ["> 0", ">= 0", ">= 1"]
    assert Interval(None, 2, closed="right").describe() == "<= 2" and Interval(None, 2, closed="neither").describe() == "< 2"
    assert POSITIVE.holds(math.inf) and not POSITIVE.holds(0) and NON_NEGATIVE.holds(0)
    assert Interval(0, None, closed="left", note="0 turns it off").text() == ">= 0 (0 turns it off)"
    with pytest.raises(ValueError, match="closed must be one of left, right, both, neither"):
        Interval(0, 1, closed="open")
    with pytest.raises(ValueError, match="at least one bound"):
        Interval(None, None, closed="both")


def test_options_and_items():
    assert Options("pre", "post").describe() == "one of 'pre', 'post'"
    assert Options("pre", "post").holds("post") and not Options("pre", "post").holds("mid")
    betas = Items(Interval(0, 1, closed="left"), length=2)
    assert betas.describe() == "2 values in [0, 1)"
    assert betas.holds((0.0, 0.999)) and betas.holds([0.5, 0.5])
    assert not any(betas.holds(v) for v in [(0.5,), (0.5, 0.9, 0.99), (0.5, 1.0), (-0.1, 0.5), 0.5, "0.5,0.9"])
    layers = Items(AT_LEAST_ONE, distinct=True, increasing=True, note="1-based block numbers")
    assert layers.text() == "one or more distinct values >= 1, in increasing order (1-based block numbers)"
    assert layers.holds((1,)) and layers.holds((6, 12, 18, 24))
    assert not any(layers.holds(v) for v in [(), (0, 1), (2, 2), (12, 6), (1, "a")])
    assert Items(non_empty=False).holds(()) and Items(non_empty=False).describe() == "any number of values"


@dataclasses.dataclass(frozen=True)
class Limited(MethodConfig):
    rate: float = 0.5
    low: int = 1
    high: int = 2
    layers: tuple[int, ...] = (3, 8)
    mode: Literal["a", "b"] = "a"

    _parameter_constraints: ClassVar[Constraints] = {
        "rate": Interval(0, 1, closed="left"),
        "low": NON_NEGATIVE,
        "layers": Items(AT_LEAST_ONE, distinct=True, note="1-based block numbers"),
    }
    _cross_checks: ClassVar[CrossChecks] = (
        CrossCheck(("low", "high"), lambda c: c.low <= c.high, "low={low} cannot exceed high={high}"),
    )


@dataclasses.dataclass(frozen=True)
class Stricter(Limited):
    extra: float = 1.0

    _parameter_constraints: ClassVar[Constraints] = {"rate": Interval(0, 0.5, closed="both"), "extra": POSITIVE}


@pytest.mark.parametrize(
    ("config_class", "overrides", "message"),
    [
        (Limited, {"rate": 1.0}, "Limited.rate must be in [0, 1), got 1.0 (default: 0.5)"),
        (Limited, {"rate": -0.25}, "Limited.rate must be in [0, 1), got -0.25 (default: 0.5)"),
        (Limited, {"low": -1}, "Limited.low must be >= 0, got -1 (default: 1)"),
        (Limited, {"layers": (3, 3)},
         "Limited.layers must be one or more distinct values >= 1 (1-based block numbers), got (3, 3) (default: 3,8)"),
        (Limited, {"layers": (0, 8)},
         "Limited.layers must be one or more distinct values >= 1 (1-based block numbers), got (0, 8) (default: 3,8)"),
        (Limited, {"mode": "c"}, "Limited.mode must be one of 'a', 'b', got 'c' (default: a)"),
        (Limited, {"low": 3}, "Limited.low=3 cannot exceed high=2"),
        (Limited, {"low": -1, "high": -2}, "Limited.low must be >= 0, got -1"),  # fields before cross checks
        (Stricter, {"rate": 0.75}, "Stricter.rate must be in [0, 0.5], got 0.75 (default: 0.5)"),
        (Stricter, {"extra": 0.0}, "Stricter.extra must be > 0, got 0.0 (default: 1.0)"),
        (Stricter, {"low": 5}, "Stricter.low=5 cannot exceed high=2"),
    ],
)
def test_declared_constraints_reject_with_one_message_form(config_class, overrides, message):
    with pytest.raises(ConfigError) as raised:
        config_class(**overrides)
    assert str(raised.value).startswith(message)


def test_values_on_the_bounds_pass_and_constraints_stay_out_of_the_hash():
    assert Limited(rate=0.0, low=0, high=0, layers=(1,), mode="b").rate == 0.0
    assert Stricter(rate=0.5).rate == 0.5
    plain = dataclasses.make_dataclass("Limited", [("rate", float, 0.5), ("low", int, 1), ("high", int, 2),
                                                   ("layers", tuple[int, ...], (3, 8)), ("mode", str, "a")],
                                       bases=(MethodConfig,), frozen=True)
    assert Limited().config_hash() == plain().config_hash()


def test_constraints_on_unknown_fields_are_refused():
    @dataclasses.dataclass(frozen=True)
    class Misspelt(MethodConfig):
        rate: float = 0.5
        _parameter_constraints: ClassVar[Constraints] = {"rte": POSITIVE}

    with pytest.raises(TypeError, match="Misspelt declares constraints on unknown field"):
        Misspelt()


def test_describe_fields_lists_type_default_and_allowed_values():
    fields = {f.name: f for f in Stricter.describe_fields()}
    assert fields["rate"] == FieldInfo("rate", "float", "0.5", "in [0, 0.5]")
    assert fields["layers"] == FieldInfo("layers", "tuple[int, ...]", "3,8",
                                         "one or more distinct values >= 1 (1-based block numbers)")
    assert fields["high"] == FieldInfo("high", "int", "2", "")
    assert fields["mode"].allowed == "one of 'a', 'b'"

