"""zsadbench's methods agree, stage by stage, with their official code's outputs stored in
``tests/reference_outputs/official/<method>.npz`` (same tiny random weights, learnable parameters and inputs).

Each stored file comes from ``scripts/compare_official/<method>.py``, which runs the official code (see that
folder's README); these tests need only the files. They rebuild zsadbench's side with
``scripts/compare_official/<method>_ours.py``.
"""
from __future__ import annotations

import importlib
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from zsadbench.types import Batch

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS = ROOT / "scripts" / "compare_official"
STORED = ROOT / "tests" / "reference_outputs" / "official"
#: Absolute tolerance on every stage; the stored runs measured at most 1.5e-5 (each method's README has its table).
ATOL = 1e-4
METHODS = ("anomalyclip", "visualad", "promptad", "finegrainedad", "winclip", "patchcore", "padim", "vand", "inctrl", "adaclip",
           "faprompt")

pytestmark = pytest.mark.usefixtures("one_thread")


def _ours(method: str):
    if str(SCRIPTS) not in sys.path:
        sys.path.insert(0, str(SCRIPTS))
    return importlib.import_module(f"{method}_ours")


@pytest.fixture(scope="module", params=METHODS)
def case(request):
    """``(ours module, stored official stages, our model, our stages)`` of one method."""
    ours = _ours(request.param)
    with np.load(STORED / f"{request.param}.npz") as data:
        stored = {key: data[key] for key in data.files}
    model = ours.build_ours()
    return request.param, ours, stored, model, ours.our_stages(model, ours.query_images())


def test_stored_outputs_were_made_with_this_configuration(case):
    name, ours, stored, *_ = case
    rerun = f"python scripts/compare_official/{name}.py --official /path/to/the/official/code (see its README)"
    assert str(stored["config"]) == ours.config_json(), f"configuration changed; rerun {rerun}"
    assert {key: stored[key].item() for key in ours.RECORD} == ours.RECORD, f"seeds or inputs changed; rerun {rerun}"
    assert len(str(stored["official_commit"])) == 40


def test_every_stage_agrees_with_the_official_code(case):
    name, ours, stored, _, mine = case
    for stage in ours.STAGES:
        assert mine[stage].shape == stored[stage].shape, f"{name} {stage}"
        np.testing.assert_allclose(mine[stage], stored[stage], rtol=0, atol=ATOL,
                                   err_msg=f"{name}: {stage} drifted from the official code")


def test_predict_gives_the_official_map_and_score(case):
    name, ours, stored, model, _ = case
    with torch.no_grad():
        out = model.predict(Batch(image=ours.query_images(), category=ours.CATEGORY))
    np.testing.assert_allclose(out.anomaly_map.numpy(), stored["smoothed_map"], rtol=0, atol=ATOL, err_msg=name)
    np.testing.assert_allclose(out.pred_score.numpy(), stored["image_score"], rtol=0, atol=ATOL, err_msg=name)
