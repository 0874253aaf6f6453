"""``zsadbench export``: the results of an output folder as one versioned JSON file to share."""
from __future__ import annotations

import argparse
from pathlib import Path

from .table import add_ci_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, metavar="DIR",
                        help="the results folder of `zsadbench run` (or a folder written by `zsadbench merge`)")
    parser.add_argument("--write", type=Path, default=None, metavar="FILE",
                        help="the results file to write (default: OUT/results.json)")
    add_ci_arguments(parser, "bootstrap the intervals of every category's and dataset's image and pixel AUROC, AP "
                             "and F1-max that OUT/stats lacks (without --ci: those it holds for --resamples and "
                             "--seed)")


def execute(args: argparse.Namespace) -> int:
    from rich.console import Console

    from ..share import folder_document, write_results
    from ..store import ResultStore
    from .stats_common import bootstrap_progress

    console = Console(stderr=True)
    total = len(ResultStore(args.out).finished_ids()) if args.ci else 0
    with bootstrap_progress(total) as progress:
        doc, notes = folder_document(args.out, compute=args.ci, resamples=args.resamples, seed=args.seed,
                                     level=args.ci_level, progress=progress)
    path = write_results(args.write or args.out / "results.json", doc)
    for note in notes:
        console.print(note, highlight=False, markup=False, soft_wrap=True)
    cells = sum(len(cat["cells"]) for v in doc["variants"] for d in v["datasets"].values()
                for cat in d["categories"].values())
    intervals = "with intervals" if doc["intervals"] else "without intervals (--ci computes them)"
    console.print(f"wrote {path}: {_count(len(doc['variants']), 'variant')}, {_count(cells, 'cell')}, {intervals}",
                  highlight=False,
                  markup=False, soft_wrap=True)
    return 0


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'s' if n != 1 else ''}"
