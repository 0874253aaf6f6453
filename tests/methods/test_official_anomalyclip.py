"""zsadbench's AnomalyCLIP agrees, stage by stage, with the official code's outputs stored in
``tests/reference_outputs/official/anomalyclip.npz`` (same tiny random weights, prompts and images).

The stored file comes from ``scripts/compare_official/anomalyclip.py``, which runs the official code; this test
needs only the file. It rebuilds zsadbench's model with ``scripts/compare_official/anomalyclip_ours.py``.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch

from zsadbench.types import Batch

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "scripts" / "compare_official"
STORED = ROOT / "tests" / "reference_outputs" / "official" / "anomalyclip.npz"
REGENERATE = "python scripts/compare_official/anomalyclip.py --official /path/to/AnomalyCLIP (see its README)"
#: Absolute tolerance on every stage; the stored run measured at most 1.4e-6.
ATOL = 1e-4

pytestmark = pytest.mark.usefixtures("one_thread")


def _load_builder() -> ModuleType:
    spec = importlib.util.spec_from_file_location("anomalyclip_ours", SCRIPTS / "anomalyclip_ours.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ours = _load_builder()


@pytest.fixture(scope="module")
def stored() -> dict[str, np.ndarray]:
    with np.load(STORED) as data:
        return {key: data[key] for key in data.files}


@pytest.fixture(scope="module")
def method():
    return ours.build_ours()


@pytest.fixture(scope="module")
def mine(method) -> dict[str, np.ndarray]:
    return ours.our_stages(method, ours.input_images())


def test_stored_outputs_were_made_with_this_configuration(stored):
    assert str(stored["config"]) == ours.config_json(), f"configuration changed; rerun {REGENERATE}"
    assert int(stored["prompt_seed"]) == ours.PROMPT_SEED and int(stored["image_seed"]) == ours.IMAGE_SEED
    assert int(stored["num_images"]) == ours.NUM_IMAGES
    assert len(str(stored["official_commit"])) == 40


@pytest.mark.parametrize("stage", ours.STAGES)
def test_stage_agrees_with_the_official_code(stage, stored, mine):
    assert mine[stage].shape == stored[stage].shape, stage
    np.testing.assert_allclose(mine[stage], stored[stage], rtol=0, atol=ATOL, err_msg=f"{stage} drifted from the official code")


def test_predict_gives_the_official_map_and_score(method, stored):
    with torch.no_grad():
        out = method.predict(Batch(image=ours.input_images(), category="object"))
    np.testing.assert_allclose(out.anomaly_map.numpy(), stored["smoothed_map"], rtol=0, atol=ATOL)
    np.testing.assert_allclose(out.pred_score.numpy(), stored["image_score"], rtol=0, atol=ATOL)
