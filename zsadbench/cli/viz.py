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

    written = write_galleries(args.out, args.write, args.per_kind)
    console = Console(stderr=True)
    console.print(f"wrote {len(written) - 1} gallery files and {written[-1]}", highlight=False)
    return 0
