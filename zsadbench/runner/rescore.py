"""Recomputing stored metrics from the per-image artifacts, without inference.

``rescore`` reads every successful cell's artifact (exact scores, 16-bit maps and masks at the evaluation
size; either artifact format), recomputes its metrics the way the run did, and reports (and with ``update``
stores) any difference. A cell stored with ``--keep-maps gallery`` or ``none`` has its image metrics
recomputed and its pixel metrics kept as stored.
``rebuild`` recreates ``results.sqlite`` from the rows the artifacts embed, for a store file that was lost or
corrupted.
"""
from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..errors import StoreError
from ..metrics import METRICS
from ..store import ResultStore, StoredCell
from ..store.artifacts import kept_maps, stored_levels, unpack_masks
from .scoring import score_arrays


@dataclass
class RescoreReport:
    """Cells rescored, cells whose metrics changed (with the largest difference), cells without artifacts."""

    cells: int = 0
    changed: list[tuple[str, str, float]] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    image_only: list[str] = field(default_factory=list)
    damaged: list[tuple[str, str]] = field(default_factory=list)


def metrics_from_artifact(arrays: dict[str, np.ndarray], declared: list[str] | tuple[str, ...]) -> dict[str, float]:
    """The metrics of one cell from its raw artifact arrays, scored as the run scored them (image metrics
    only when the artifact does not hold every map)."""
    return score_arrays(declared, arrays["pred_score"], arrays["gt_label"], stored_levels(arrays), arrays["map_min"],
                        arrays["map_max"], unpack_masks(arrays))


def rescore(out: str | Path, *, update: bool = False,
            progress: Callable[[int, int], None] = lambda done, total: None) -> RescoreReport:
    """Recompute the metrics of every successful cell in ``out``; store the new values when ``update``.
    ``progress(done, total)`` is called after each cell."""
    store = ResultStore(out)
    if not store.exists():
        raise StoreError(f"no results store in {out} ({store.db_path} is missing): run `zsadbench run ... --out {out}` "
                         f"first, or add --rebuild if {Path(out) / 'cells'} holds the artifacts of a run")
    report = RescoreReport()
    cells = [cell for cell in store.rows() if cell.status == "ok"]
    for number, cell in enumerate(cells, 1):
        progress(number - 1, len(cells))
        try:
            arrays = store.load_artifact(cell.cell_id)
        except StoreError as exc:
            if store.artifact_path(cell.cell_id).exists():
                report.damaged.append((cell.cell_id, str(exc)))
            else:
                report.missing.append(cell.cell_id)
            continue
        declared = cell.provenance.metric_levels or sorted({METRICS[m].level for m in cell.metrics})
        try:
            metrics = metrics_from_artifact(arrays, declared)
        except Exception as exc:  # noqa: BLE001 - a damaged artifact is reported, the other cells are rescored
            path = store.artifact_path(cell.cell_id)
            report.damaged.append((cell.cell_id, f"{path} cannot be decoded ({type(exc).__name__}: {exc})"))
            continue
        if len(kept_maps(arrays)) < len(arrays["pred_score"]):
            report.image_only.append(cell.cell_id)
            metrics = {**{k: v for k, v in cell.metrics.items() if k in METRICS and METRICS[k].level == "pixel"},
                       **metrics}
        report.cells += 1
        diff = _largest_difference(cell.metrics, metrics)
        if diff != 0.0:
            report.changed.append((cell.cell_id, f"{cell.method} {cell.dataset}/{cell.category}", diff))
            if update:
                store.put(replace(cell, metrics=metrics))
    progress(len(cells), len(cells))
    return report


@dataclass
class RebuildReport:
    """Cells recovered from their artifacts, and the artifacts that could not be read (path, why)."""

    cells: int = 0
    damaged: list[tuple[Path, str]] = field(default_factory=list)


def rebuild(out: str | Path) -> RebuildReport:
    """Recreate ``OUT/results.sqlite`` from the rows embedded in ``OUT/cells/*.npz``. A damaged artifact is
    listed and skipped; every intact one is recovered."""
    store = ResultStore(out)
    if store.exists():
        raise StoreError(f"{store.db_path} exists; move it aside first (mv {store.db_path} {store.db_path}.broken)")
    paths = sorted((store.out / "cells").glob("*.npz"))
    if not paths:
        raise StoreError(f"{store.out / 'cells'} holds no artifacts (*.npz) to rebuild {store.db_path} from; "
                         "check the --out folder")
    report = RebuildReport()
    for path in paths:
        try:
            arrays = store.load_artifact(path.stem)
            if "record" not in arrays:
                raise StoreError(f"{path} holds no row (record) to rebuild the cell from")
            cell = StoredCell.from_record(json.loads(str(arrays["record"])))
            if cell.cell_id != path.stem:
                raise StoreError(f"{path} holds the row of cell {cell.cell_id}, not of {path.stem}")
        except Exception as exc:  # noqa: BLE001 - one damaged artifact must not stop the others' recovery
            report.damaged.append((path, str(exc)))
            continue
        if "checksum" in arrays:
            cell = replace(cell, provenance=replace(cell.provenance, artifact_bytes=path.stat().st_size,
                                                    artifact_checksum=str(arrays["checksum"])))
        store.put(cell)
        report.cells += 1
    return report


def _largest_difference(old: dict[str, float], new: dict[str, float]) -> float:
    if set(old) != set(new):
        return math.inf
    diffs = [abs(old[k] - new[k]) for k in old if not (math.isnan(old[k]) and math.isnan(new[k]))]
    return max(diffs, default=0.0)
