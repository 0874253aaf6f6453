"""Shared by the end-to-end tests of AnomalyCLIP, MPA and MPAMA: their tiny configurations and the CLI run
(their ``fake_root`` and ``fresh_registry`` fixtures are in conftest.py)."""
from __future__ import annotations

import json

from zsadbench.cli.main import main
from zsadbench.store import ResultStore

COMMON = ["--set", "backbone=zsad-tiny-14-336", "--set", "image_size=28", "--set", "vv_last=3", "--set", "deep_depth=2",
          "--set", "epochs=1"]
TINY = {
    "anomalyclip": COMMON + ["--set", "layers=4"],
    "mpa": COMMON + ["--set", "layer=4"],
    "mpama": COMMON + ["--set", "layer=4", "--set", "stage2_epochs=1"],
}


def run(method: str, datasets: str, root, out, *extra: str) -> int:
    return main(["run", "--method", method, "--datasets", datasets, "--pretrained", "none", "--data-root", str(root),
                 "--out", str(out), "--eval-size", "32", "--no-table", *TINY[method], *extra])


def provenance(out) -> dict[str, list[dict]]:
    by_dataset: dict[str, list[dict]] = {}
    for cell in ResultStore(out).rows():
        by_dataset.setdefault(cell.dataset, []).append(cell.provenance.to_dict())
    return by_dataset


def assert_grid_ran(method: str, switches: list[str], root, out) -> None:
    """``--set`` switches run as a grid: every cell succeeds, one config per combination of their values (a
    ``|``-separated list of tuple values or a comma list of scalars), all on the tiny backbone."""
    assert run(method, "btad", root, out, *switches) == 0
    frame = ResultStore(out).to_frame()
    assert (frame.status == "ok").all()
    expected = 1
    for flag in switches[1::2]:
        values = flag.split("=", 1)[1]
        expected *= len(values.split("|")) if "|" in values else len(values.split(","))
    assert frame.config_hash.nunique() == expected
    for config in frame.config_json.unique():
        assert json.loads(config)["backbone"] == "zsad-tiny-14-336"
