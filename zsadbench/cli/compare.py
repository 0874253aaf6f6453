"""``zsadbench compare``: is method A better than method B on the same images? Per dataset, paired."""
from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import TYPE_CHECKING

from .stats_common import (add_bootstrap_arguments, add_output_arguments, add_selection_arguments, bootstrap_notes,
                           bootstrap_progress, check_metrics, emit, interval, p_value, percent, settings_of,
                           signed_percent)

if TYPE_CHECKING:
    from ..stats.paired import DeLongResult, PairedDifference


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="the results folder of a run")
    parser.add_argument("--a", required=True, metavar="METHOD[/VARIANT]",
                        help="method A: a method name, METHOD/PART with a part of its column label (winclip/1-shot), "
                             "or a column label of `zsadbench table`")
    parser.add_argument("--b", required=True, metavar="METHOD[/VARIANT]", help="method B, named as --a")
    parser.add_argument("--metric", default="pixel_auroc",
                        help="the metric compared (default: pixel_auroc); image_auroc adds DeLong's test")
    add_selection_arguments(parser, methods=False)
    add_bootstrap_arguments(parser)
    add_output_arguments(parser)


def execute(args: argparse.Namespace) -> int:
    from rich.console import Console

    from ..errors import ConfigError
    from ..metrics import METRICS
    from ..stats.bootstrap import RESAMPLED
    from ..stats.paired import compare_dataset, delong_cells, delong_combine, paired_difference
    from ..stats.results import Bootstrapper, dataset_replicates, finished_cells, mean_replicates, resolve_variant
    from .stats_common import select_variants

    check_metrics([args.metric], "--metric", RESAMPLED)
    settings = settings_of(args)
    found = select_variants(finished_cells(args.out), None, args.datasets)
    cells = [c for group in found.values() for c in group]
    a, b = resolve_variant(args.a, found, "--a"), resolve_variant(args.b, found, "--b")
    if a == b:
        raise ConfigError(f"--a {args.a} and --b {args.b} name the same variant ({a}); name two different ones")
    console = Console(stderr=True)
    a_sets = {c.dataset for c in found[a]}
    b_sets = {c.dataset for c in found[b]}
    datasets = [d for d in dict.fromkeys(c.dataset for c in cells) if d in a_sets & b_sets]
    if not datasets:
        raise ConfigError(f"{a} and {b} share no dataset ({a}: {', '.join(sorted(a_sets))}; {b}: "
                          f"{', '.join(sorted(b_sets))}): run both on the same datasets")
    for name, only in ((a, a_sets - b_sets), (b, b_sets - a_sets)):
        if only:
            console.print(f"left out: {', '.join(sorted(only))} (only {name} has it)", highlight=False)
    chosen = [c for c in found[a] + found[b] if c.dataset in datasets]
    with bootstrap_progress(len(chosen)) as progress:
        bootstrapper = Bootstrapper(args.out, settings, progress)
        results = bootstrapper.run(chosen, [args.metric])
    by_cell = {r.cell.cell_id: r for r in results}
    image_auroc = args.metric == "image_auroc"
    rows, records, a_means, b_means, delongs = [], [], [], [], []
    domains = {c.dataset: c.domain for c in cells}
    labels = {c.dataset: c.dataset_label or c.dataset for c in cells}
    for dataset in datasets:
        a_res = [by_cell[c.cell_id] for c in found[a] if c.dataset == dataset]
        b_res = [by_cell[c.cell_id] for c in found[b] if c.dataset == dataset]
        diff = compare_dataset(a_res, b_res, args.metric, dataset, (a, b), args.confidence)
        delong = None
        if image_auroc and not math.isnan(diff.difference.point):
            delong = delong_cells(bootstrapper.store, [r.cell for r in a_res], [r.cell for r in b_res])
        if not math.isnan(diff.difference.point):
            a_means.append((domains[dataset], dataset_replicates(a_res, args.metric)))
            b_means.append((domains[dataset], dataset_replicates(b_res, args.metric)))
            if delong is not None:
                delongs.append((domains[dataset], delong))
        seeds = f"{len({r.cell.seed for r in a_res})}/{len({r.cell.seed for r in b_res})}"
        categories = len({r.cell.category for r in a_res})
        rows.append(_row(labels[dataset], diff, delong, str(categories), seeds, args.digits, image_auroc))
        records.append(_record(dataset, diff, delong, str(categories), seeds, image_auroc))
    real = [i for i, (domain, _) in enumerate(a_means) if domain != "synthetic"]
    keep = real or list(range(len(a_means)))  # the tables' Mean leaves generated sets out when real ones are there
    if len(keep) > 1:
        diff = paired_difference(mean_replicates([a_means[i][1] for i in keep]),
                                 mean_replicates([b_means[i][1] for i in keep]), args.confidence)
        delong = None
        if image_auroc:
            parts = [(d.difference, d.std_error**2) for domain, d in delongs if domain != "synthetic" or not real]
            delong = delong_combine(parts)
        rows.append(_row(f"Mean ({len(keep)} datasets)", diff, delong, "", "", args.digits, image_auroc))
        records.append(_record("mean", diff, delong, "", "", image_auroc))
    spec = METRICS[args.metric]
    headers = ["Dataset", f"A {spec.label}", f"B {spec.label}", "Δ (A−B)",
               f"{int(round(100 * args.confidence))}% CI", "p (bootstrap)"]
    headers += ["DeLong z", "p (DeLong)"] if image_auroc else []
    headers += ["categories", "seeds A/B"]
    notes = [f"A = {a}; B = {b}. {settings.resamples} paired resamples of the test images (stratified by label, "
             f"bootstrap seed {settings.seed}); percentile intervals; seeds averaged within each resample.",
             *bootstrap_notes(bootstrapper, len(chosen), args.out)]
    emit(f"{spec.label}: {a} vs {b}", headers, rows, notes, args.format, records)
    return 0


def _row(name: str, diff: PairedDifference, delong: DeLongResult | None, categories: str, seeds: str, digits: int,
         image_auroc: bool) -> list[str]:
    row = [name, percent(diff.a, digits), percent(diff.b, digits), signed_percent(diff.difference.point, digits),
           interval(diff.low, diff.high, digits), p_value(diff.p_value)]
    if image_auroc:
        row += [("–" if delong is None or math.isnan(delong.z) else f"{delong.z:.2f}"),
                p_value(math.nan if delong is None else delong.p_value)]
    return row + [categories, seeds]


def _record(name: str, diff: PairedDifference, delong: DeLongResult | None, categories: str, seeds: str,
            image_auroc: bool) -> dict:
    record = {"dataset": name, "a": diff.a, "b": diff.b, "difference": diff.difference.point, "low": diff.low,
              "high": diff.high, "p_bootstrap": diff.p_value, "undefined_resamples": diff.difference.undefined}
    if image_auroc:
        record.update(delong_z=math.nan if delong is None else delong.z,
                      p_delong=math.nan if delong is None else delong.p_value)
    return {**record, "categories": categories, "seeds": seeds}
