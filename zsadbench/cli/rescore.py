"""``zsadbench rescore``: recompute every stored metric from the per-image artifacts (no inference)."""
from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="the results folder of a run")
    parser.add_argument("--update", action="store_true", help="store the recomputed metrics where they differ")
    parser.add_argument("--rebuild", action="store_true",
                        help="recreate a lost or corrupted results.sqlite from the rows the artifacts in DIR/cells hold")


def execute(args: argparse.Namespace) -> int:
    from rich.console import Console

    from ..runner.rescore import rebuild, rescore

    console = Console(stderr=True, soft_wrap=True)  # paths and cell ids are never broken across lines
    if args.rebuild:
        rebuilt = rebuild(args.out)
        console.print(f"rebuilt {args.out / 'results.sqlite'} with {rebuilt.cells} cells from {args.out / 'cells'}",
                      highlight=False)
        for path, reason in rebuilt.damaged:
            console.print(f"  [red]not recovered[/] {reason}", highlight=False, soft_wrap=True)
        if rebuilt.damaged:
            console.print(f"  {len(rebuilt.damaged)} damaged artifacts were skipped: move them aside and run the "
                          "same `zsadbench run` command again to recompute their cells", highlight=False)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("rescoring"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console,
                  transient=True) as bar:
        task = bar.add_task("", total=None)
        report = rescore(args.out, update=args.update,
                         progress=lambda done, total: bar.update(task, completed=done, total=total))
    console.print(f"rescored {report.cells} cells: {len(report.changed)} differ from the stored metrics", highlight=False)
    for cell_id, what, diff in report.changed:
        console.print(f"  {what} ({cell_id}): largest difference {diff:.3g}", highlight=False)
    if report.image_only:
        console.print(f"  {len(report.image_only)} cells were stored without every map (--keep-maps gallery/none): "
                      "their image metrics were recomputed, their pixel metrics kept as stored", highlight=False)
    for cell_id in report.missing:
        console.print(f"  [yellow]no artifact[/] for cell {cell_id}: run the same `zsadbench run` command again to "
                      "recompute it", highlight=False)
    for cell_id, reason in report.damaged:
        console.print(f"  [red]damaged[/] cell {cell_id}: {reason}", highlight=False, soft_wrap=True)
    if report.changed and not args.update:
        console.print("run with --update to store the recomputed metrics", highlight=False)
    damaged = args.rebuild and rebuilt.damaged
    return 1 if (report.changed and not args.update) or report.missing or report.damaged or damaged else 0
