"""The confidence intervals of a table's numbers, bootstrapped from a results folder (:mod:`zsadbench.stats`).

Every cell is bootstrapped by :class:`~zsadbench.stats.results.Bootstrapper` (exact metric kernels, replicates
kept in ``OUT/stats``, so a second table reads them back); the table's numbers are then formed from the
replicates as :mod:`._aggregate` forms them from the stored values, resample by resample
(:func:`~zsadbench.stats.results.dataset_replicates`): a category's value is the mean over its seeds, a
dataset's the mean over seeds of the per-seed mean over categories, the Mean over datasets the mean of the
dataset values it covers. Seeds share each resample of their (common) test images and are averaged within it,
as ``docs/statistics.md`` describes. An aggregate gets an interval only when every cell behind it has one.
"""
from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from ._aggregate import variant_labels
from ._ci import MEAN, Intervals

if TYPE_CHECKING:
    from ..stats.bootstrap import Replicates
    from ..stats.resample import BootstrapSettings
    from ..stats.results import CellResult
    from ..store import StoredCell

#: the metrics a table's intervals cover by default (AUPRO only when named: each resample is a full metric pass)
DEFAULT_METRICS = ("image_auroc", "image_ap", "image_f1_max", "pixel_auroc", "pixel_ap", "pixel_f1_max")


def interval_metrics(shown: Sequence[str], named: bool) -> list[str]:
    """Of the metrics a table shows, those that get intervals: the bootstrapped ones, AUPRO only when the
    metrics were ``named`` (``--metrics``)."""
    from ..stats.bootstrap import RESAMPLED

    return [m for m in shown if m in RESAMPLED and (m in DEFAULT_METRICS or named)]


def method_text(settings: BootstrapSettings) -> str:
    """How the intervals were computed, for the table's footnote."""
    return (f"bootstrap percentile intervals, {settings.resamples} resamples of the test images stratified by "
            f"label, seed {settings.seed}; seeds averaged within each resample")


def bootstrap_intervals(
    out: str | Path,
    frame: pd.DataFrame,
    metrics: Sequence[str],
    settings: BootstrapSettings,
    level: float,
    *,
    by_aux: bool = False,
    progress: Callable[[float, str], None] | None = None,
    cached_only: bool = False,
) -> tuple[Intervals, list[str]]:
    """The intervals of ``frame``'s numbers (a selection of ``out``'s results, labelled as a table of it
    labels them), and notes on how they were obtained. ``cached_only`` reads ``OUT/stats`` and computes
    nothing: numbers whose cells are not all cached get no interval."""
    from ..metrics import METRICS
    from ..store import ResultStore

    ok = frame[frame["status"].astype(str) == "ok"]
    wanted = set(ok["cell_id"].astype(str))
    cells = [c for c in ResultStore(out).rows() if c.cell_id in wanted]
    with_maps = [c for c in cells if (c.provenance.keep_maps or "all") == "all"]
    without = [c for c in cells if (c.provenance.keep_maps or "all") != "all"]
    image_only = [m for m in metrics if METRICS[m].level == "image"]
    notes: list[str] = []
    if cached_only:
        results = _cached(out, with_maps, metrics, settings) + _cached(out, without, image_only, settings)
    else:
        results, notes = _bootstrapped(out, with_maps, without, metrics, image_only, settings, progress)
    if without and len(image_only) < len(metrics):
        notes.append(f"{len(without)} cells were stored without every map (--keep-maps gallery/none): their pixel "
                     "metrics, and the numbers over them, have no interval")
    by_id = {r.cell.cell_id: r for r in results}
    table = interval_frame(frame, by_id, metrics, level, by_aux=by_aux)
    return Intervals(table, level, method_text(settings)), notes


def _bootstrapped(out: str | Path, with_maps: list[StoredCell], without: list[StoredCell], metrics: Sequence[str],
                  image_only: list[str], settings: BootstrapSettings,
                  progress: Callable[[float, str], None] | None) -> tuple[list[CellResult], list[str]]:
    from ..stats.results import Bootstrapper

    boot = Bootstrapper(out, settings, progress)
    results = boot.run(with_maps, metrics) + (boot.run(without, image_only) if without and image_only else [])
    total = len(with_maps) + (len(without) if image_only else 0)
    notes = [f"bootstrapped {boot.computed} cells in {boot.seconds:.1f} s, {total - boot.computed} read from "
             f"{Path(out) / 'stats'}"]
    if not boot.cache.writable:
        notes.append(f"{boot.cache.path} could not be written (a read-only folder?): nothing was kept for the next "
                     "table")
    if boot.differs:
        notes.append(f"{len(boot.differs)} cells store metrics their artifacts do not give (e.g. {boot.differs[0]}): "
                     f"the intervals are around the artifacts' values; run `zsadbench rescore --out {out} --update`")
    return results, notes


def _cached(out: str | Path, cells: list[StoredCell], metrics: Sequence[str],
            settings: BootstrapSettings) -> list[CellResult]:
    """The cached replicates of ``cells`` (those of a level the cell's method does not produce are undefined,
    as the bootstrap makes them)."""
    from ..metrics import METRICS
    from ..stats.bootstrap import Replicates
    from ..stats.cache import BootstrapCache
    from ..stats.results import CellResult

    if not metrics:
        return []
    cache = BootstrapCache(out)
    results = []
    for cell in cells:
        checksum = cell.provenance.artifact_checksum or f"row:{cell.cell_id}"
        found, image = cache.get(cell.cell_id, checksum, settings.key(), tuple(metrics))
        levels = cell.provenance.metric_levels
        found.update({m: Replicates(math.nan, np.full(settings.resamples, np.nan)) for m in metrics
                      if levels is not None and METRICS[m].level not in levels})
        results.append(CellResult(cell, image[0] if image else "", image[1] if image else 0, found))
    return results


def interval_frame(frame: pd.DataFrame, results: Mapping[str, CellResult], metrics: Sequence[str], level: float,
                   *, by_aux: bool = False) -> pd.DataFrame:
    """The :class:`~._ci.Intervals` frame of ``frame``'s categories, datasets, Mean over datasets and Mean over
    each domain's datasets (the paper layout's tables per domain), from the replicates of its cells
    (``results`` by cell id)."""
    from ..stats.results import mean_replicates

    ok = frame[frame["status"].astype(str) == "ok"].assign(_label=variant_labels(frame, by_aux=by_aux))
    datasets = frame.drop_duplicates("dataset")
    domain_of = dict(zip(datasets["dataset"], datasets["domain"].astype(str)))
    real = [d for d, dom in domain_of.items() if dom != "synthetic"]
    means = {MEAN: real or list(domain_of)}  # the tables' rule for the Mean over datasets
    means.update({dom: [d for d, o in domain_of.items() if o == dom] for dom in dict.fromkeys(domain_of.values())})
    records: list[tuple] = []

    def add(label: str, dataset: str, category: str, metric: str, value: Replicates | None) -> None:
        if value is not None:
            lo, hi = value.interval(level)
            if not (math.isnan(lo) or math.isnan(hi)):
                records.append((label, dataset, category, metric, lo, hi))

    for label, variant in ok.groupby("_label", sort=False):
        for metric in metrics:
            if metric not in variant:
                continue
            per_dataset = {}
            for dataset, part in variant.groupby("dataset", sort=False):
                for category, cells in part.groupby("category", sort=False):
                    add(label, dataset, category, metric, _replicates(cells, results, metric))
                per_dataset[dataset] = _replicates(part, results, metric)
                add(label, dataset, MEAN, metric, per_dataset[dataset])
            valued = pd.to_numeric(variant[metric], errors="coerce").notna().groupby(variant["dataset"]).any()
            for key, members in means.items():
                have = [d for d in members if valued.get(d, False)]
                values = [per_dataset.get(d) for d in have]
                if have and all(v is not None and not math.isnan(v.point) for v in values):
                    add(label, MEAN, key, metric, mean_replicates(values))
    return pd.DataFrame.from_records(records, columns=["variant", "dataset", "category", "metric", "lo", "hi"])


def _replicates(cells: pd.DataFrame, results: Mapping[str, CellResult], metric: str) -> Replicates | None:
    """The aggregate of ``cells`` as the tables form it, resample by resample; ``None`` unless every cell has
    replicates of ``metric``."""
    from ..stats.results import dataset_replicates

    members = [results.get(str(cid)) for cid in cells["cell_id"]]
    if any(r is None or metric not in r.metrics for r in members):
        return None
    return dataset_replicates(members, metric)
