"""AnomalyCLIP end to end through the CLI over every fake dataset layout."""
from __future__ import annotations

import pytest

from zsadbench.datasets.groups import expand_datasets
from zsadbench.store import ResultStore

from clip_prompt_runs import provenance, run

pytestmark = pytest.mark.usefixtures("fresh_registry")


def test_anomalyclip_runs_every_dataset_with_one_trained_state_per_auxiliary_set(fake_root, tmp_path, capsys):
    out = tmp_path / "out"
    assert run("anomalyclip", "all", fake_root, out) == 0, capsys.readouterr().err
    frame = ResultStore(out).to_frame()
    assert set(frame.dataset) == set(expand_datasets("all")) and (frame.status == "ok").all()
    assert len(list((out / "cache" / "states").glob("*.pt"))) == 2
    reused = {d: {p["state_reused"] for p in cells} for d, cells in provenance(out).items()}
    assert all(len(flags) == 1 for flags in reused.values())
