"""MethodConfig: JSON round trip, canonical hash, typed overrides."""
from __future__ import annotations

import dataclasses
import hashlib
import json
from typing import Literal

import pytest

from zsadbench.config import MethodConfig
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
    ],
)
def test_bad_values_name_the_field(overrides, message):
    with pytest.raises(ConfigError, match=message):
        Example().replace(**overrides)
