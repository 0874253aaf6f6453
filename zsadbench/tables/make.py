"""``make_table``: results DataFrame in, table out (pure); ``write_tables``: the same, written to files."""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import ConfigError
from ..store.files import atomic_write_bytes
from ._aggregate import build_model
from ._ci import Intervals, check_style
from ._latex import TEXT_WIDTH_CM, to_latex
from ._model import select_metrics
from ._rich import FittedTable
from ._text import to_csv, to_markdown

FORMATS = ("rich", "md", "csv", "latex")
FILE_SUFFIX = {"md": ".md", "csv": ".csv", "latex": ".tex"}


def make_table(
    df: pd.DataFrame,
    fmt: str = "rich",
    *,
    per_category: bool = False,
    metrics: Sequence[str] | None = None,
    level: str | None = None,
    digits: int = 1,
    reported: pd.DataFrame | None = None,
    caption: str | None = None,
    label: str | None = None,
    csv_layout: str = "wide",
    by_aux: bool = False,
    categories: Mapping[str, Iterable[str]] | None = None,
    variants: Sequence[str] | None = None,
    text_width_cm: float = TEXT_WIDTH_CM,
    intervals: Intervals | None = None,
    ci_style: str = "pm",
) -> str | FittedTable:
    """Render the results store's frame (one row per cell, metric values as fractions) as a table.

    Rows are datasets (or, with ``per_category``, each dataset's categories then its mean) and a final Mean
    over datasets; columns are method variants × metrics, shown in percent with ``digits`` decimals as
    mean ± sample std over seeds. Per row and metric the best value is bold and the second underlined;
    a number over fewer cells than expected (``categories`` adds expected categories per dataset to those of
    ``df``, see :mod:`._coverage`) is marked ° and not ranked. ``reported`` (from :func:`load_reported`) adds
    the numbers papers print, marked †. ``fmt`` is ``rich`` (returns a :class:`FittedTable`, a rich renderable
    that splits itself to the console's width), ``md``, ``csv`` (``csv_layout`` ``wide`` mirrors the table,
    ``long`` is tidy and always per category) or ``latex`` (split to fit ``text_width_cm``); the text formats
    return a string. A trained zero-shot method gets one column per protocol (each dataset with the auxiliary
    set its protocol pairs it with); ``by_aux`` gives it one column per auxiliary set instead. ``variants``
    keeps only the columns of ours with these labels (as the table of all of ``df`` labels them).
    ``intervals`` (:class:`~._ci.Intervals`, keyed by those labels) shows a confidence interval after each of our
    numbers that has one, as ``(±half-width)`` or, with ``ci_style="range"``, ``[lo, hi]``; the long CSV adds
    ``ci_lo``/``ci_hi`` columns. The values themselves never change.
    """
    if fmt not in FORMATS:
        raise ConfigError(f"unknown table format {fmt!r}; choose one of {', '.join(FORMATS)}")
    if csv_layout not in ("wide", "long"):
        raise ConfigError(f"unknown csv_layout {csv_layout!r}; choose 'wide' or 'long'")
    if isinstance(digits, bool) or not isinstance(digits, int) or not 0 <= digits <= 6:
        raise ConfigError(f"digits must be an integer from 0 to 6, got {digits!r}")
    if not isinstance(df, pd.DataFrame):
        raise ConfigError(f"make_table needs a pandas DataFrame of results, got {type(df).__name__}")
    if isinstance(text_width_cm, bool) or not isinstance(text_width_cm, (int, float)) or not text_width_cm > 0:
        raise ConfigError(f"text_width_cm must be a positive number of cm, got {text_width_cm!r}")
    check_style(ci_style)
    if intervals is not None and not isinstance(intervals, Intervals):
        raise ConfigError(f"intervals must be an Intervals object, got {type(intervals).__name__}")
    specs = select_metrics(metrics, level)
    if not specs:
        raise ConfigError(f"no selected metric has level {level!r}; choose other metrics or another level")
    if fmt == "csv" and csv_layout == "long":
        per_category = True
    model = build_model(df, specs, per_category=per_category, digits=digits, reported=reported, by_aux=by_aux,
                        categories=categories, chosen=variants, intervals=intervals)
    model.caption, model.label, model.ci_style = caption, label, ci_style
    if fmt == "rich":
        return FittedTable(model)
    if fmt == "md":
        return to_markdown(model)
    if fmt == "latex":
        return to_latex(model, text_width_cm)
    return to_csv(model, csv_layout)


def write_tables(
    df: pd.DataFrame,
    directory: str | Path,
    basename: str,
    formats: Sequence[str] = ("md", "csv", "latex"),
    **kw: Any,
) -> list[Path]:
    """Render ``df`` in each of ``formats`` and write ``directory/basename.{md,csv,tex}`` atomically.

    Every format is rendered before any file is written, so a bad option leaves no partial set behind.
    ``kw`` goes to :func:`make_table`.
    """
    unknown = [f for f in formats if f not in FILE_SUFFIX]
    if unknown:
        raise ConfigError(f"cannot write table format(s) {', '.join(map(repr, unknown))}; choose from md, csv, latex")
    if not basename or Path(basename).name != basename:
        raise ConfigError(f"table basename {basename!r} must be a plain file name without folders")
    rendered = {fmt: make_table(df, fmt, **kw) for fmt in dict.fromkeys(formats)}
    out = []
    for fmt, text in rendered.items():
        path = Path(directory) / f"{basename}{FILE_SUFFIX[fmt]}"
        atomic_write_bytes(path, str(text).encode("utf-8"))
        out.append(path)
    return out
