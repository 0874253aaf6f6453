"""``zsadbench leaderboard``: a static, self-contained HTML leaderboard of a results folder or results files."""
from __future__ import annotations

import argparse
from pathlib import Path

from .options import positive_int
from .table import add_ci_arguments


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--out", type=Path, default=None, metavar="DIR",
                        help="a results folder (of `zsadbench run`, or written by `zsadbench merge`)")
    source.add_argument("--results", type=Path, nargs="+", default=None, metavar="FILE",
                        help="results files written by `zsadbench export`, merged as `zsadbench merge` merges them")
    parser.add_argument("--write", type=Path, required=True, metavar="PAGE.html", help="the page to write")
    parser.add_argument("--reported", type=Path, action="append", default=[], metavar="CSV",
                        help="CSV (or folder) of paper-reported numbers to show beside ours, marked † (repeatable)")
    parser.add_argument("--title", default="Anomaly detection leaderboard", help="the page's title")
    parser.add_argument("--digits", type=positive_int, default=1, help="decimals of the percentages (default: 1)")
    add_ci_arguments(parser, "--out: bootstrap the intervals shown on hover that OUT/stats lacks (without --ci: "
                             "those it holds for --resamples and --seed, or those of a merged folder's results.json)")


def execute(args: argparse.Namespace) -> int:
    from rich.console import Console

    from ..errors import ConfigError
    from ..share import Source, folder_document, leaderboard_page, merged_document
    from ..share.merge import input_files
    from ..store import ResultStore
    from ..store.files import atomic_write_bytes
    from ..tables import load_reported
    from .stats_common import bootstrap_progress

    if args.write.is_dir():
        raise ConfigError(f"--write {args.write}: that is a folder; name the page to write, e.g. "
                          f"{args.write / 'leaderboard.html'}")
    console = Console(stderr=True)
    if args.out is not None:
        total = len(ResultStore(args.out).finished_ids()) if args.ci else 0
        with bootstrap_progress(total) as progress:
            doc, notes = folder_document(args.out, compute=args.ci, resamples=args.resamples, seed=args.seed,
                                         level=args.ci_level, progress=progress)
    else:
        _, doc, notes = merged_document([Source.read(path) for path in input_files(args.results)])
    reported = load_reported(args.reported) if args.reported else None
    page = leaderboard_page(doc, reported, digits=args.digits, title=args.title)
    atomic_write_bytes(args.write, page.encode("utf-8"))
    for note in notes:
        console.print(note, highlight=False, markup=False, soft_wrap=True)
    console.print(f"wrote {args.write}", highlight=False, markup=False, soft_wrap=True)
    return 0
