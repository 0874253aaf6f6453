"""The finished cells of a results folder, grouped into the tables' variants, and their bootstrap replicates.

Variants are the tables' columns (:func:`zsadbench.tables.variant_labels`): one method at one shot count,
configuration, weights, precision, auxiliary protocol and evaluation size. A variant is named on the command
line as ``METHOD`` (when the method has one variant), as ``METHOD/VARIANT`` where ``VARIANT`` is a part of the
column label that singles one out (``winclip/1-shot``, ``mpama/experts=3``), or by its full column label.
"""
from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import ConfigError, StoreError
from ..metrics import METRICS
from ..store import ResultStore, StoredCell
from .bootstrap import CellData, Replicates, bootstrap_cell
from .cache import BootstrapCache
from .resample import BootstrapSettings, cell_weights, image_digest

#: ``progress(advance, what)``: ``advance`` cells more are done (fractions while a cell's AUPRO runs)
Progress = Callable[[float, str], None]


def finished_cells(out: str | Path) -> list[StoredCell]:
    """The successful cells of ``out``; one line naming the fix when there are none."""
    store = ResultStore(out)
    if not store.exists():
        raise StoreError(f"no results store in {out} ({store.db_path} is missing): run `zsadbench run ... --out {out}` "
                         "first")
    cells = [c for c in store.rows() if c.status == "ok"]
    if not cells:
        raise ConfigError(f"{out} holds no finished cell: run `zsadbench run ... --out {out}` first")
    return cells


def variants(cells: Sequence[StoredCell]) -> dict[str, list[StoredCell]]:
    """Column label → cells, as the tables group them."""
    from ..tables import variant_labels

    labels = variant_labels(pd.DataFrame([c.frame_record() for c in cells]))
    out: dict[str, list[StoredCell]] = {}
    for label, cell in zip(labels, cells):
        out.setdefault(str(label), []).append(cell)
    return out


def resolve_variant(spec: str, found: dict[str, list[StoredCell]], option: str) -> str:
    """The column label that ``spec`` (``METHOD``, ``METHOD/VARIANT`` or a column label) names."""
    if spec in found:
        return spec
    method, _, part = spec.partition("/")
    method = method.strip().lower()
    of_method = [label for label, cells in found.items() if cells[0].method.lower() == method]
    of_method = of_method or [label for label, cells in found.items() if cells[0].method_label.lower() == method]
    if not of_method:
        methods = sorted({c.method for cells in found.values() for c in cells})
        raise ConfigError(f"{option} {spec}: no method {method!r} in these results; they hold {', '.join(methods)} "
                          f"(variants: {'; '.join(found)})")
    picked = [label for label in of_method if part.strip().lower() in label.lower()] if part else of_method
    if len(picked) == 1:
        return picked[0]
    if not picked:
        raise ConfigError(f"{option} {spec}: no variant of {method} matches {part!r}; its variants are "
                          f"{'; '.join(of_method)}")
    raise ConfigError(f"{option} {spec}: {len(picked)} variants match ({'; '.join(picked)}); name one as "
                      f"{method}/PART with a part of its label that only it has, or give the whole label")


@dataclass
class CellResult:
    """A cell, its test images (digest and count) and the replicates of each metric asked for."""

    cell: StoredCell
    digest: str
    images: int
    metrics: dict[str, Replicates] = field(default_factory=dict)


def needs_maps(metrics: Sequence[str]) -> bool:
    return any(METRICS[m].level == "pixel" for m in metrics)


class Bootstrapper:
    """Bootstraps cells of a results folder, reading and filling the cache (``OUT/stats``)."""

    def __init__(self, out: str | Path, settings: BootstrapSettings, progress: Progress | None = None) -> None:
        self.store = ResultStore(out)
        self.settings = settings
        self.cache = BootstrapCache(out)
        self.progress = progress or (lambda advance, what: None)
        self.computed = 0
        self.seconds = 0.0
        self.differs: list[str] = []  # cells whose stored metrics are not what their artifacts give

    def run(self, cells: Sequence[StoredCell], metrics: Sequence[str]) -> list[CellResult]:
        """The replicates of ``metrics`` for every cell (from the cache where it has them)."""
        metrics = tuple(metrics)
        self._check_maps(cells, metrics)
        self._check_artifacts(cells)
        return [self._one(cell, metrics) for cell in cells]

    def _check_maps(self, cells: Sequence[StoredCell], metrics: tuple[str, ...]) -> None:
        for cell in cells:
            kept = cell.provenance.keep_maps or "all"
            if kept != "all" and needs_maps(_declared(cell, metrics)):
                pixel = next(m for m in metrics if METRICS[m].level == "pixel")
                raise ConfigError(f"{pixel} needs every image's map, but {cell.describe()} was stored with --keep-maps "
                                  f"{kept}: run it again with --keep-maps all --force, or choose an image metric")

    def _check_artifacts(self, cells: Sequence[StoredCell]) -> None:
        if cells and not any(self.store.artifact_path(c.cell_id).is_file() for c in cells):
            folder = self.store.out / "cells"
            raise StoreError(f"{folder} holds none of these cells' artifacts (the per-image scores and maps that a "
                             "bootstrap resamples): run the same `zsadbench run` command again to recompute them")

    def _one(self, cell: StoredCell, metrics: tuple[str, ...]) -> CellResult:
        what = f"{cell.method_label} {cell.dataset}/{cell.category} seed={cell.seed}"
        checksum = cell.provenance.artifact_checksum or f"row:{cell.cell_id}"
        found, image = self.cache.get(cell.cell_id, checksum, self.settings.key(), metrics)
        # a level the method does not produce is shown as missing, as the tables show it
        found.update({m: Replicates(math.nan, np.full(self.settings.resamples, np.nan))
                      for m in metrics if m not in _declared(cell, metrics)})
        if image is not None and set(found) == set(metrics):
            self.progress(1.0, what)
            return self._result(cell, image[0], image[1], found, metrics)
        started = time.perf_counter()
        data = CellData.from_artifact(self.store.load_artifact(cell.cell_id))
        if needs_maps(_declared(cell, metrics)) and data.levels is None:
            raise ConfigError(f"pixel metrics need every image's map, but the artifact of {cell.describe()} keeps "
                              f"them for some images only (--keep-maps {data.keep_maps}): run it again with "
                              "--keep-maps all --force, or choose an image metric")
        digest = image_digest(data.image_keys, data.labels)
        missing = tuple(m for m in metrics if m not in found)
        weights = cell_weights(data.image_keys, data.labels, self.settings)
        share = 1.0 / (1 + len(weights)) if "aupro" in missing else 1.0
        computed = bootstrap_cell(data, missing, weights,
                                  progress=lambda done: self.progress(share, f"{what} aupro {done}/{len(weights)}"))
        self.cache.put(cell.cell_id, checksum, self.settings.key(), computed, digest, len(data.scores))
        self.computed += 1
        self.seconds += time.perf_counter() - started
        self.progress(share, what)
        return self._result(cell, digest, len(data.scores), {**found, **computed}, metrics)

    def _result(self, cell: StoredCell, digest: str, images: int, values: dict[str, Replicates],
                metrics: tuple[str, ...]) -> CellResult:
        stored = [(cell.metrics[m], values[m].point) for m in metrics if m in cell.metrics]
        if any(not (a == b or (math.isnan(a) and math.isnan(b))) for a, b in stored):
            self.differs.append(cell.describe())
        return CellResult(cell, digest, images, {m: values[m] for m in metrics})


def _declared(cell: StoredCell, metrics: Sequence[str]) -> tuple[str, ...]:
    """The ``metrics`` of the levels the cell's method produces (all where the row does not record them)."""
    levels = cell.provenance.metric_levels
    return tuple(m for m in metrics if levels is None or METRICS[m].level in levels)


def dataset_replicates(results: Sequence[CellResult], metric: str) -> Replicates:
    """The dataset value as the tables compute it (per seed the mean over categories, then the mean over
    seeds; categories where the metric is undefined left out), with the same mean taken of every resample:
    a resample of a dataset is one resample of each of its categories, drawn independently."""
    by_seed: dict[int, list[Replicates]] = {}
    for result in results:
        value = result.metrics[metric]
        if not np.isnan(value.point):
            by_seed.setdefault(result.cell.seed, []).append(value)
    if not by_seed:
        return Replicates(float("nan"), np.full(len(results[0].metrics[metric].values) if results else 0, np.nan))
    seeds = [mean_replicates(group) for _, group in sorted(by_seed.items())]
    return mean_replicates(seeds)


def mean_replicates(items: Sequence[Replicates]) -> Replicates:
    """The mean of several estimates, point and every replicate alike."""
    return Replicates(float(np.mean([r.point for r in items])), np.mean([r.values for r in items], axis=0))


def stored_dataset_values(found: dict[str, list[StoredCell]], metric: str) -> pd.DataFrame:
    """``[dataset × variant]`` of the stored metric, aggregated as the tables do (per seed the mean over
    categories, then the mean over seeds); NaN where a variant has no value on a dataset."""
    columns = {}
    for label, cells in found.items():
        frame = pd.DataFrame([{"dataset": c.dataset, "seed": c.seed, "value": c.metrics.get(metric, np.nan)}
                              for c in cells])
        per_seed = frame.groupby(["dataset", "seed"], sort=False)["value"].mean()
        columns[label] = per_seed.groupby(level=0, sort=False).mean()
    return pd.DataFrame(columns)
