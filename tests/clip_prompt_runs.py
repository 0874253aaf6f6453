"""Shared by the end-to-end tests of AnomalyCLIP, MPA and MPAMA: their tiny configurations and the CLI run
(their ``fake_root`` and ``fresh_registry`` fixtures are in conftest.py)."""
from __future__ import annotations

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
