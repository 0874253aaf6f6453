"""``zsadbench viz``: an HTML gallery of the best and worst cases per category, one variant per section or
several side by side."""
from __future__ import annotations

import argparse
from pathlib import Path

from .options import name_list, positive_int


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, default=Path("runs/default"), metavar="DIR",
                        help="output folder of `zsadbench run` (default: runs/default)")
    parser.add_argument("--write", type=Path, default=None, metavar="DIR",
                        help="folder for gallery.html and the image files it links (default: OUT/viz)")
    parser.add_argument("--per-kind", type=positive_int, default=2,
                        help="images per kind of case (detected, missed, false alarm) and category (default: 2)")
    parser.add_argument("--methods", type=name_list, default=None, metavar="NAME[,NAME]",
                        help="show these methods side by side on the same images, a map column each (names as in "
                             "`zsadbench list`, each of its variants, or variant labels such as 'MPAMA [experts=3]'); "
                             "default: every variant in a section of its own")
    parser.add_argument("--figures", action="store_true",
                        help="also write a PNG and a PDF figure per variant and category (slower)")


def execute(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ..viz import write_galleries

    console = Console(stderr=True)
    with Progress(TextColumn("drawing galleries"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as bar:
        task = bar.add_task("", total=None)
        written = write_galleries(args.out, args.write, args.per_kind,
                                  progress=lambda done, total: bar.update(task, completed=done, total=total),
                                  methods=args.methods, figures=args.figures)
    console.print(f"wrote {written[-1]} and the {len(written) - 1} files it links or that go with it", highlight=False)
    return 0
