"""``zsadbench plot``: figures from the results of an output folder (PNG and PDF)."""
from __future__ import annotations

import argparse
from pathlib import Path

KINDS = ("scale", "experts", "shots")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("runs/default"), metavar="DIR",
                        help="output folder of `zsadbench run` (default: runs/default)")
    parser.add_argument("--kind", choices=KINDS, action="append", default=None,
                        help="scale: metrics per anomaly-size quartile; experts: MoE expert usage; shots: few-shot "
                             "curves over seeds (repeatable; default: every kind the results allow)")
    parser.add_argument("--write", type=Path, default=None, metavar="DIR",
                        help="folder for the figures (default: OUT/plots)")


def execute(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ..plots import write_plots

    console = Console(stderr=True)
    kinds = args.kind or KINDS
    with Progress(TextColumn("drawing {task.description} figures"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=console, transient=True) as bar:
        task = bar.add_task(kinds[0], total=None)
        written = write_plots(args.out, args.write or args.out / "plots", kinds,
                              progress=lambda kind, done, total: bar.update(task, description=kind, completed=done,
                                                                            total=total))
    for path in written:
        console.print(f"wrote {path}", highlight=False)
    if not written:
        console.print("nothing to plot: no cells with masks (scale), expert counts (experts) or shots (shots)")
    return 0
