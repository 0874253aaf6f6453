"""``zsadbench intervals``: bootstrap confidence intervals of every cell and of every dataset mean."""
from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .options import name_list
from .stats_common import (DASH, add_bootstrap_arguments, add_output_arguments, add_selection_arguments,
                           bootstrap_notes, bootstrap_progress, check_metrics, emit, interval, percent, settings_of)

if TYPE_CHECKING:
    from ..stats.bootstrap import Replicates
    from ..stats.results import CellResult
    from ..store import StoredCell

DEFAULT = ("image_auroc", "image_ap", "image_f1_max", "pixel_auroc", "pixel_ap", "pixel_f1_max")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="the results folder of a run")
    parser.add_argument("--metrics", type=name_list, default=None, metavar="NAME[,NAME]",
                        help="metrics to bootstrap (default: the image and pixel AUROC, AP and F1-max the cells have; "
                             "aupro only when named, as each of its resamples is a full metric pass)")
    parser.add_argument("--per-cell", action=argparse.BooleanOptionalAction, default=True,
                        help="also print the interval of every cell (default: on)")
    add_selection_arguments(parser)
    add_bootstrap_arguments(parser)
    add_output_arguments(parser)


def execute(args: argparse.Namespace) -> int:
    from rich.console import Console

    from ..metrics import METRICS
    from ..stats.results import Bootstrapper, finished_cells
    from .stats_common import select_variants

    settings = settings_of(args)
    found = select_variants(finished_cells(args.out), args.methods, args.datasets)
    cells = [c for group in found.values() for c in group]
    metrics = _metrics(args.metrics, cells, Console(stderr=True))
    with bootstrap_progress(len(cells)) as progress:
        bootstrapper = Bootstrapper(args.out, settings, progress)
        results = {r.cell.cell_id: r for r in bootstrapper.run(cells, metrics)}

    level = f"{int(round(100 * args.confidence))}% CI"
    labels = [f"{METRICS[m].label} [{level}]" for m in metrics]
    notes = [f"{settings.resamples} resamples of the test images (stratified by label, bootstrap seed {settings.seed}); "
             "percentile intervals; a dataset mean resamples each category and averages seeds within each resample.",
             *bootstrap_notes(bootstrapper, len(cells), args.out)]
    records: list[dict[str, Any]] = []
    cell_rows: list[list[str]] = []
    dataset_rows: list[list[str]] = []
    for label, group in found.items():
        ordered = sorted(group, key=lambda c: (c.dataset, c.category, c.seed))
        for cell in ordered:
            values = results[cell.cell_id].metrics
            cell_rows.append([label, cell.dataset_label or cell.dataset, cell.category, str(cell.seed)]
                             + [_shown(values[m], args) for m in metrics])
            records += [_record("cell", label, cell.dataset, m, values[m], args, cell) for m in metrics]
        rows, more = _dataset_rows(label, [results[c.cell_id] for c in ordered], metrics, args)
        dataset_rows += rows
        records += more
    if args.format == "csv":
        emit("", [], [], [], "csv", records)
        return 0
    if args.per_cell:
        emit("Per cell", ["Variant", "Dataset", "Category", "Seed"] + labels, cell_rows, [], args.format,
             text_columns=3)
    emit("Per dataset (mean over categories, seeds averaged)", ["Variant", "Dataset"] + labels, dataset_rows, notes,
         args.format, text_columns=2)
    return 0


def _metrics(asked: tuple[str, ...] | None, cells: list[StoredCell], console) -> list[str]:
    """The metrics to bootstrap: those asked for (checked), else the defaults the cells have; pixel metrics are
    left out of the defaults, with a line saying so, when some cell kept only part of its maps."""
    from ..errors import ConfigError
    from ..metrics import METRICS
    from ..stats.bootstrap import RESAMPLED

    if asked:
        check_metrics(asked, "--metrics", RESAMPLED)
        return [m for m in RESAMPLED if m in asked]
    stored = {m for c in cells for m in c.metrics}
    metrics = [m for m in DEFAULT if m in stored]
    without_maps = [c for c in cells if (c.provenance.keep_maps or "all") != "all"]
    if without_maps and any(METRICS[m].level == "pixel" for m in metrics):
        metrics = [m for m in metrics if METRICS[m].level == "image"]
        console.print(f"pixel metrics left out: {len(without_maps)} cells were stored without every map "
                      "(--keep-maps gallery/none)", highlight=False)
    if not metrics:
        raise ConfigError("these cells have none of the metrics a bootstrap resamples; name some with --metrics")
    return metrics


def _dataset_rows(label: str, results: list[CellResult], metrics: list[str],
                  args: argparse.Namespace) -> tuple[list[list[str]], list[dict[str, Any]]]:
    """One variant's rows per dataset and its Mean over datasets (the tables' rule: generated sets only
    when no real dataset is there), as display rows and CSV records."""
    from ..stats.results import dataset_replicates, mean_replicates

    rows, records, per_dataset, domains = [], [], {}, {}
    for dataset in dict.fromkeys(r.cell.dataset for r in results):
        members = [r for r in results if r.cell.dataset == dataset]
        per_dataset[dataset] = {m: dataset_replicates(members, m) for m in metrics}
        domains[dataset] = members[0].cell.domain
        rows.append([label, members[0].cell.dataset_label or dataset]
                    + [_shown(per_dataset[dataset][m], args) for m in metrics])
        records += [_record("dataset", label, dataset, m, per_dataset[dataset][m], args) for m in metrics]
    if len(per_dataset) < 2:
        return rows, records
    real = [d for d in per_dataset if domains[d] != "synthetic"] or list(per_dataset)
    mean_row = [label, f"Mean ({len(real)} datasets)"]
    for m in metrics:
        defined = [per_dataset[d][m] for d in real if not math.isnan(per_dataset[d][m].point)]
        if not defined:
            mean_row.append(DASH)
            continue
        value = mean_replicates(defined)
        mean_row.append(_shown(value, args))
        records.append(_record("mean", label, "mean", m, value, args))
    return rows + [mean_row], records


def _shown(value: Replicates, args: argparse.Namespace) -> str:
    low, high = value.interval(args.confidence)
    return f"{percent(value.point, args.digits)} {interval(low, high, args.digits)}"


def _record(level: str, variant: str, dataset: str, metric: str, value: Replicates, args: argparse.Namespace,
            cell: StoredCell | None = None) -> dict[str, Any]:
    low, high = value.interval(args.confidence)
    return {"level": level, "variant": variant, "dataset": dataset, "category": cell.category if cell else "",
            "seed": cell.seed if cell else "", "cell_id": cell.cell_id if cell else "", "metric": metric,
            "point": value.point, "low": low, "high": high, "undefined_resamples": value.undefined}
