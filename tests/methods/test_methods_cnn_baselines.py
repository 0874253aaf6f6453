"""PatchCore, PaDiM and SPADE as installed plugins: each is found through its entry point and runs its demo
configuration (ResNet-18 at 128 px with random weights) through the runner, zero failures, at 1 and 2 shots."""
from __future__ import annotations

import json

import pytest

from zsadbench import registry
from zsadbench.cli.main import main
from zsadbench.methods.padim.method import PaDiM
from zsadbench.methods.patchcore.method import PatchCore
from zsadbench.methods.spade.method import SPADE
from zsadbench.store import ResultStore


@pytest.mark.parametrize("name,cls,demo", [
    ("patchcore", PatchCore, {"backbone": "resnet18", "image_size": 128}),
    ("padim", PaDiM, {"backbone": "resnet18", "image_size": 128, "n_features": 100}),
    ("spade", SPADE, {"backbone": "resnet18", "image_size": 128}),
])
def test_the_entry_point_and_the_demo_configuration_through_the_runner(name, cls, demo, tmp_path, monkeypatch):
    monkeypatch.setenv("ZSADBENCH_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("ZSADBENCH_SYNTHETIC_SIZE", "small")
    registry.reset()
    assert registry.methods().get(name) is cls and cls.shots == (1, 2, 4)
    out = tmp_path / "out"
    code = main(["run", "--method", name, "--datasets", "synthetic", "--shots", "1,2", "--pretrained", "none",
                 "--eval-size", "64", "--out", str(out), "--no-table"])
    assert code == 0
    frame = ResultStore(out).to_frame()
    assert len(frame) == 6 and (frame.status == "ok").all() and frame.random_init.all()
    assert set(frame.shots) == {1, 2} and frame.category.nunique() == 3
    assert frame.image_auroc.between(0, 1).all() and frame.pixel_auroc.between(0, 1).all()
    ran = json.loads(frame.config_json.iloc[0])
    assert {key: ran[key] for key in demo} == demo  # the demo configuration is what ran
