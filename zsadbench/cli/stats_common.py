"""What ``compare``, ``intervals`` and ``rank`` share: bootstrap options, the progress bar and the output."""
from __future__ import annotations

import argparse
import csv
import io
import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from .options import name_list, positive_int

FORMATS = ("rich", "md", "csv")
DASH = "–"


def add_bootstrap_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--resamples", type=positive_int, default=1000,
                        help="bootstrap resamples of the test images (default: 1000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the bootstrap draws (default: 0)")
    parser.add_argument("--confidence", type=float, default=0.95,
                        help="level of the percentile intervals (default: 0.95)")


def add_selection_arguments(parser: argparse.ArgumentParser, *, methods: bool = True) -> None:
    if methods:
        parser.add_argument("--methods", type=name_list, default=None, metavar="NAME[,NAME]",
                            help="only these methods (names as in `zsadbench list`, or column labels of `zsadbench "
                                 "table`)")
    parser.add_argument("--datasets", type=name_list, default=None, metavar="NAME[,NAME]",
                        help="only these datasets (their names, e.g. mvtec,visa)")


def add_output_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", "-f", choices=FORMATS, default="rich",
                        help="rich terminal table, Markdown, or CSV with full-precision fractions (default: rich)")
    parser.add_argument("--digits", type=positive_int, default=1, help="decimals of the percentages (default: 1)")


def settings_of(args: argparse.Namespace):
    """The bootstrap settings of the parsed options."""
    from ..errors import ConfigError
    from ..stats.resample import BootstrapSettings

    if not 0.0 < args.confidence < 1.0:
        raise ConfigError(f"--confidence {args.confidence} must lie strictly between 0 and 1 (e.g. 0.95)")
    return BootstrapSettings(resamples=args.resamples, seed=args.seed)


def check_metrics(names: Sequence[str], option: str, allowed: Sequence[str]) -> None:
    from ..errors import ConfigError

    for name in names:
        if name not in allowed:
            raise ConfigError(f"{option}: {name!r} has no bootstrap here; choose from {', '.join(allowed)}")


def select_variants(cells: list, methods: Sequence[str] | None, datasets: Sequence[str] | None) -> dict[str, list]:
    """Column label → cells of the chosen methods (name or column label) and datasets, labelled as the tables
    label the whole folder; an unknown name is one line."""
    from ..errors import ConfigError
    from ..stats.results import variants

    found = variants(cells)
    if datasets:
        held = sorted({c.dataset for c in cells})
        unknown = [d for d in datasets if d not in held]
        if unknown:
            raise ConfigError(f"--datasets: {unknown[0]!r} is not in these results; they hold {', '.join(held)}")
        found = {label: [c for c in group if c.dataset in datasets] for label, group in found.items()}
    if methods:
        held = sorted({c.method for c in cells} | set(found))
        unknown = [m for m in methods if m not in held]
        if unknown:
            raise ConfigError(f"--methods: {unknown[0]!r} is not in these results; they hold {', '.join(held)}")
        found = {label: group for label, group in found.items() if label in methods or group[0].method in methods}
    return {label: group for label, group in found.items() if group}


@contextmanager
def bootstrap_progress(total: int) -> Iterator[Any]:
    """A rich progress bar over ``total`` cells on stderr; yields the ``progress(advance, what)`` callback."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    console = Console(stderr=True)
    with Progress(TextColumn("bootstrap"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TimeRemainingColumn(), TextColumn("{task.description}"), console=console, transient=True) as bar:
        task = bar.add_task("", total=total)
        yield lambda advance, what: bar.update(task, advance=advance, description=what)


def bootstrap_notes(bootstrapper, total: int, out) -> list[str]:
    """What the run of ``bootstrapper`` over ``total`` cells computed, kept and found."""
    notes = [f"bootstrapped {bootstrapper.computed} cells in {bootstrapper.seconds:.1f} s, "
             f"{total - bootstrapper.computed} from {out / 'stats'}"]
    if not bootstrapper.cache.writable:
        notes.append(f"{bootstrapper.cache.path} could not be written (a read-only folder?): nothing was kept for "
                     "the next request")
    if bootstrapper.differs:
        notes.append(f"{len(bootstrapper.differs)} cells store metrics their artifacts do not give (e.g. "
                     f"{bootstrapper.differs[0]}): the intervals are around the artifacts' values; run `zsadbench "
                     f"rescore --out {out} --update` to store those")
    return notes


def percent(value: float, digits: int) -> str:
    return DASH if value is None or math.isnan(value) else f"{100.0 * value:.{digits}f}"


def signed_percent(value: float, digits: int) -> str:
    return DASH if math.isnan(value) else f"{100.0 * value:+.{digits}f}"


def interval(low: float, high: float, digits: int) -> str:
    if math.isnan(low) or math.isnan(high):
        return DASH
    return f"[{100.0 * low:.{digits}f}, {100.0 * high:.{digits}f}]"


def p_value(value: float) -> str:
    if math.isnan(value):
        return DASH
    return f"{value:.3f}" if value >= 0.001 else f"{value:.1e}"


def emit(title: str, headers: Sequence[str], rows: Sequence[Sequence[str]], notes: Sequence[str], fmt: str,
         records: Sequence[dict[str, Any]] | None = None, text_columns: int = 1) -> None:
    """Print one table in ``fmt``: rich or Markdown from the display ``rows`` (the first ``text_columns``
    left-aligned, the numbers right-aligned), CSV from ``records``."""
    if fmt == "csv":
        buffer = io.StringIO()
        records = list(records or [])
        if records:
            writer = csv.DictWriter(buffer, fieldnames=list(records[0]), lineterminator="\n")
            writer.writeheader()
            writer.writerows(records)
        print(buffer.getvalue(), end="")
    elif fmt == "md":
        def line(cells: Sequence[str]) -> str:
            return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

        text = [f"**{title}**", "", line(headers),
                line([":--"] * text_columns + ["--:"] * (len(headers) - text_columns))]
        text += [line(row) for row in rows]
        text += [""] + [f"{note}  " for note in notes] if notes else []
        print("\n".join(text).rstrip() + "\n")
    else:
        from rich.markup import escape
        from rich.table import Table

        from .options import table_console

        table = Table(title=escape(title), title_justify="left")
        for k, head in enumerate(headers):
            table.add_column(escape(head), justify="left" if k < text_columns else "right", no_wrap=k >= text_columns)
        for row in rows:
            table.add_row(*[escape(str(c)) for c in row])
        console = table_console()
        console.print(table)
        for note in notes:
            console.print(escape(note), highlight=False)
