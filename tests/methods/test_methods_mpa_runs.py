"""MPA end to end through the CLI: every fake dataset layout, one trained state per auxiliary set, and the
ablation switches of the paper as --set grids."""
from __future__ import annotations

import pytest

from zsadbench.datasets.groups import expand_datasets
from zsadbench.store import ResultStore

from clip_prompt_runs import assert_grid_ran, provenance, run

pytestmark = pytest.mark.usefixtures("fresh_registry")


def test_mpa_runs_every_dataset(fake_root, tmp_path, capsys):
    out = tmp_path / "out"
    assert run("mpa", "all", fake_root, out) == 0, capsys.readouterr().err
    frame = ResultStore(out).to_frame()
    assert set(frame.dataset) == set(expand_datasets("all")) and (frame.status == "ok").all()
    assert len(list((out / "cache" / "states").glob("*.pt"))) == 2  # one per auxiliary set (MVTec AD, VisA)
    assert all("method_stats" not in p or not p["method_stats"] for cells in provenance(out).values() for p in cells)


ABLATIONS = [
    ["--set", "mpa.prompt_strategy=cp,dp,mpdp,mpdpb"],  # Fig. 6
    ["--set", "mpa.perceptions=1|2,3,4,5", "--set", "mpa.multi_perception=true,false"],  # Tables 3, 4, 8
    ["--set", "mpa.decoupled=false", "--set", "mpa.bridge=false", "--set", "mpa.hinge_weight=3,7"],  # Table 3, Fig. 8
]


@pytest.mark.parametrize("switches", ABLATIONS)
def test_ablation_switches_run_from_the_cli_as_grids(switches, fake_root, tmp_path):
    assert_grid_ran("mpa", switches, fake_root, tmp_path / "out")
