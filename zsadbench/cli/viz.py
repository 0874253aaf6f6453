"""``zsadbench viz``: galleries of the best and worst cases per category, and one self-contained HTML page."""
from __future__ import annotations

import argparse
from pathlib import Path

from .options import positive_int


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("runs/default"), metavar="DIR",
                        help="output folder of `zsadbench run` (default: runs/default)")
    parser.add_argument("--write", type=Path, default=None, metavar="DIR",
                        help="folder for the PNGs and gallery.html (default: OUT/viz)")
    parser.add_argument("--per-kind", type=positive_int, default=2,
                        help="images per kind of case (detected, missed, false alarm) and category (default: 2)")


def execute(args: argparse.Namespace) -> int:
    from rich.console import Console

    from ..viz import write_galleries

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    with Progress(TextColumn("drawing galleries"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as bar:
        task = bar.add_task("", total=None)
        written = write_galleries(args.out, args.write, args.per_kind,
                                  progress=lambda done, total: bar.update(task, completed=done, total=total))
    console.print(f"wrote {len(written) - 1} gallery files and {written[-1]}", highlight=False)
    return 0
