"""Small results folders for the sharing tests, written through the store's own API without a model (as
``tests/stats/stats_store.py`` writes them): cells of any variant (shots, weights, protocol, evaluation size), on
datasets of any domain, each with its artifact and the metrics the run's scoring rule gives."""
from __future__ import annotations

import sys
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from zsadbench.runner.scoring import score_arrays
from zsadbench.store import Cell, Provenance, ResultStore, StoredCell
from zsadbench.store.artifacts import encode, quantize

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "stats"))
from stats_store import ToyMethod, category_images, cell_arrays  # noqa: E402

LEVELS = ("image", "pixel")
DOMAINS = {"mvtec": ("MVTec AD", "industrial"), "visa": ("VisA", "industrial"), "headct": ("HeadCT", "medical"),
           "synthetic": ("Synthetic", "synthetic")}
ENVIRONMENT = {"python": "3.11.7", "platform": "Linux", "packages": {"zsadbench": "0.1.0", "torch": "2.4.0"},
               "git_sha": "abc123"}


@dataclass(frozen=True)
class Variant:
    """A method variant as a run stores it; ``quality`` shapes its maps and scores (see ``stats_store``)."""

    method: str
    label: str
    quality: float
    seeds: tuple[int, ...] = (0,)
    shots: int = 0
    pretrained: str = "openai"
    random_init: bool = False
    aux: str = ""
    protocol: str = ""
    config: str = '{"scale":2}'
    config_hash: str = "a1b2c3d4e5f6"
    salt: int = 0


def write_folder(out: Path, variants: list[Variant], datasets: dict[str, tuple[str, ...]], *,
                 size: int = 16, normal: int = 6, anomalous: int = 6) -> ResultStore:
    """A results folder of ``variants`` on ``datasets`` (name, as in :data:`DOMAINS` → categories)."""
    store = ResultStore(out)
    for dataset, categories in datasets.items():
        for c_index, category in enumerate(categories):
            keys, labels, masks = category_images(dataset, category, normal=normal, anomalous=anomalous, size=size)
            for v in variants:
                toy = ToyMethod(v.method, v.quality, v.label)
                for seed in v.seeds:
                    maps, scores = cell_arrays(toy, masks, labels, seed, salt=c_index + 100 * v.salt)
                    put_cell(store, v, dataset, category, seed, keys, labels, masks, maps, scores)
    return store


def put_cell(store: ResultStore, v: Variant, dataset: str, category: str, seed: int, keys: list[str],
             labels: np.ndarray, masks: np.ndarray, maps: np.ndarray, scores: np.ndarray) -> StoredCell:
    """Store one finished cell of ``v`` and its artifact, as a run does."""
    levels, low, high = quantize(maps)
    metrics = score_arrays(LEVELS, scores, labels, levels, low, high, masks)
    cell = Cell(method=v.method, config_hash=v.config_hash, dataset=dataset, category=category, shots=v.shots,
                seed=seed, aux=v.aux, eval_size=masks.shape[-1], pretrained=v.pretrained,
                weights_id="none" if v.random_init else "sha-of-weights", data_digest="d1g35t")
    label, domain = DOMAINS[dataset]
    weights = {"tag": v.pretrained, "path": None if v.random_init else "/home/someone/weights.pt",
               "sha256": None if v.random_init else "f" * 64, "random": v.random_init}
    provenance = Provenance(environment=ENVIRONMENT, device="cpu", threads=2, batch_size=8, keep_maps="all",
                            metric_levels=list(LEVELS), weights=weights, protocol=v.protocol or "anomalyclip",
                            data_root="/home/someone/data", worker={"host": "secret-host"}, wall_seconds=1.5,
                            images=len(labels))
    row = StoredCell.of(cell, method_label=v.label, config_json=v.config, dataset_label=label, domain=domain,
                        random_init=v.random_init, status="ok", artifact=f"cells/{cell.cell_id}.npz",
                        metrics=metrics, provenance=provenance)
    encoded = encode(image_keys=keys, pred_score=scores, gt_label=labels, levels=levels, map_min=low, map_max=high,
                     gt_mask=masks, record=row.record(), keep=None, keep_maps="all")
    store.save_artifact(cell.cell_id, encoded)
    size = store.artifact_path(cell.cell_id).stat().st_size
    recorded = replace(row.provenance, artifact_bytes=size, artifact_checksum=str(encoded["checksum"]))
    row = replace(row, provenance=recorded)
    store.put(row)
    return row


def put_failed(store: ResultStore, v: Variant, dataset: str, category: str, seed: int) -> StoredCell:
    """Store a failed cell of ``v`` (no metrics, no artifact)."""
    cell = Cell(method=v.method, config_hash=v.config_hash, dataset=dataset, category=category, shots=v.shots,
                seed=seed, aux=v.aux, eval_size=16, pretrained=v.pretrained)
    label, domain = DOMAINS[dataset]
    row = StoredCell.of(cell, method_label=v.label, config_json=v.config, dataset_label=label, domain=domain,
                        random_init=v.random_init, status="failed", error="MethodError: NaN in the maps",
                        provenance=Provenance(environment=ENVIRONMENT, protocol=v.protocol or "anomalyclip"))
    store.put(row)
    return row
