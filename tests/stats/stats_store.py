"""Small results folders for the statistics tests, written through the store's own API without a model.

Each cell's maps are noise plus ``quality`` times its defect masks (so a larger ``quality`` localises
better), its image scores the maps' maxima plus noise; the stored metrics are computed by the run's scoring
rule, and the artifacts are encoded as a run encodes them.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from zsadbench.runner.scoring import score_arrays
from zsadbench.store import Cell, Provenance, ResultStore, StoredCell
from zsadbench.store.artifacts import encode, quantize

LEVELS = ("image", "pixel")


@dataclass(frozen=True)
class ToyMethod:
    name: str
    quality: float
    label: str = ""
    shots: int = 0
    seeds: tuple[int, ...] = (0,)


def category_images(dataset: str, category: str, *, normal: int = 6, anomalous: int = 6, size: int = 16,
                    seed: int = 0) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Image keys, labels and defect masks of one toy category (fixed by its name and ``seed``)."""
    rng = np.random.default_rng([seed, sum(map(ord, dataset)), sum(map(ord, category))])
    labels = np.array([0] * normal + [1] * anomalous)
    masks = np.zeros((len(labels), size, size), bool)
    for i in np.flatnonzero(labels):
        top, left = rng.integers(0, size - 5, 2)
        masks[i, top:top + int(rng.integers(2, 6)), left:left + int(rng.integers(2, 6))] = True
    keys = [f"{dataset}/{category}/{'bad' if y else 'good'}/{i:03d}.png" for i, y in enumerate(labels)]
    return keys, labels, masks


def cell_arrays(method: ToyMethod, masks: np.ndarray, labels: np.ndarray, seed: int,
                salt: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A method's float32 maps and image scores on one category (noise plus ``quality`` on the defects)."""
    rng = np.random.default_rng([seed, salt, int(1000 * method.quality), len(method.name)])
    maps = rng.normal(0.0, 1.0, masks.shape).astype(np.float32) + np.float32(method.quality) * masks
    scores = (maps.reshape(len(maps), -1).max(axis=1) + rng.normal(0.0, 0.5, len(maps)) + method.quality * labels)
    return maps.astype(np.float32), scores.astype(np.float32)


def write_store(out: Path, methods: list[ToyMethod], datasets: dict[str, tuple[str, ...]], *,
                keep_maps: str = "all", size: int = 16, normal: int = 6, anomalous: int = 6) -> ResultStore:
    """A results folder of ``methods`` on ``datasets`` (name → categories), every cell finished."""
    store = ResultStore(out)
    for dataset, categories in datasets.items():
        for c_index, category in enumerate(categories):
            keys, labels, masks = category_images(dataset, category, normal=normal, anomalous=anomalous, size=size)
            for method in methods:
                for seed in method.seeds:
                    maps, scores = cell_arrays(method, masks, labels, seed, salt=c_index)
                    put_cell(store, method, dataset, category, seed, keys, labels, masks, maps, scores, keep_maps)
    return store


def put_cell(store: ResultStore, method: ToyMethod, dataset: str, category: str, seed: int, keys: list[str],
             labels: np.ndarray, masks: np.ndarray, maps: np.ndarray, scores: np.ndarray,
             keep_maps: str = "all") -> StoredCell:
    """Store one finished cell and its artifact, as a run does."""
    levels, low, high = quantize(maps)
    metrics = score_arrays(LEVELS, scores, labels, levels, low, high, masks)
    cell = Cell(method=method.name, config_hash="0" * 16, dataset=dataset, category=category, shots=method.shots,
                seed=seed, aux="", eval_size=masks.shape[-1], pretrained="toy")
    row = StoredCell.of(cell, method_label=method.label or method.name.upper(), config_json="{}",
                        dataset_label=dataset.title(), domain="industrial", random_init=False, status="ok",
                        artifact=f"cells/{cell.cell_id}.npz", metrics=metrics,
                        provenance=Provenance(keep_maps=keep_maps, metric_levels=list(LEVELS)))
    keep = None if keep_maps == "all" else np.zeros(0, np.int64)
    encoded = encode(image_keys=keys, pred_score=scores, gt_label=labels, levels=levels, map_min=low, map_max=high,
                     gt_mask=masks, record=row.record(), keep=keep, keep_maps=keep_maps)
    store.save_artifact(cell.cell_id, encoded)
    size = store.artifact_path(cell.cell_id).stat().st_size
    row = replace(row, provenance=replace(row.provenance, artifact_bytes=size, artifact_checksum=str(encoded["checksum"])))
    store.put(row)
    return row
