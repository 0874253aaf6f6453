"""``zsadbench merge``: results files from several machines or authors into one leaderboard folder."""
from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", type=Path, nargs="+", metavar="FILE",
                        help="results files written by `zsadbench export` (a folder stands for its *.json files)")
    parser.add_argument("--write", type=Path, required=True, metavar="DIR",
                        help="the leaderboard folder to write: a results store of every cell and the merged "
                             "results.json, for `zsadbench table --out DIR` and `zsadbench leaderboard --out DIR` "
                             "(a new folder, or one an earlier merge wrote)")


def execute(args: argparse.Namespace) -> int:
    from rich.console import Console

    from ..share import Source, merged_document, write_leaderboard
    from ..share.merge import input_files

    console = Console(stderr=True)
    sources = [Source.read(path) for path in input_files(args.files)]
    cells, doc, notes = merged_document(sources)
    path = write_leaderboard(args.write, cells, doc)
    for note in notes:
        console.print(note, highlight=False, markup=False, soft_wrap=True)
    console.print(f"merged {_count(len(sources), 'file')}: {_count(len(doc['variants']), 'variant')}, "
                  f"{_count(len(cells), 'cell')} into "
                  f"{args.write} ({path.name} and results.sqlite); render it with `zsadbench table --out {args.write}`",
                  highlight=False, markup=False, soft_wrap=True)
    return 0


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'s' if n != 1 else ''}"
