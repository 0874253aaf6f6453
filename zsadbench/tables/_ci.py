"""Confidence intervals of a table's numbers: the data the tables take, and how every format shows them.

The tables compute no interval: :class:`Intervals` carries the ends of intervals computed elsewhere (the CLI
bootstraps them with :mod:`zsadbench.stats`, see :mod:`.intervals`), keyed by the variant's column label, the
dataset and the category, and :func:`attach` puts them on the model's cells. The point estimates stay the
table's own; only the interval's ends come from here.

A cell shows its interval after the value (and after its ``± std`` over seeds, if any) as ``(±h)``, half the
interval's width (``pm``), or as ``[lo, hi]`` (``range``); the parentheses keep the half-width apart from the
standard deviation over seeds that ``±`` already means in these tables.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from ..errors import ConfigError
from ._model import Row, TableModel

COLUMNS = ("variant", "dataset", "category", "metric", "lo", "hi")
#: the ``category`` of a dataset's value, and the ``dataset`` (and category) of the Mean over datasets
MEAN = "mean"
STYLES = ("pm", "range")

Key = tuple[str, str, str, str]


@dataclass(frozen=True)
class Intervals:
    """Intervals of a table's numbers, as fractions (like the results frame).

    ``frame`` has one row per number: ``variant`` (the column label the table gives our variant), ``dataset``,
    ``category`` (``mean`` for the dataset's value; dataset and category ``mean`` for the Mean over datasets,
    dataset ``mean`` and a domain for the Mean over that domain's datasets), ``metric``, ``lo`` and ``hi``.
    ``level`` is their confidence level; ``method`` says how they were computed (it ends the footnote that
    explains them).
    """

    frame: pd.DataFrame
    level: float = 0.95
    method: str = "bootstrap percentile intervals"

    def __post_init__(self) -> None:
        if not isinstance(self.frame, pd.DataFrame):
            raise ConfigError(f"Intervals.frame must be a pandas DataFrame, got {type(self.frame).__name__}")
        missing = [c for c in COLUMNS if c not in self.frame.columns]
        if missing:
            raise ConfigError(f"the intervals frame lacks column(s) {', '.join(missing)}; it needs "
                              f"{', '.join(COLUMNS)} (lo and hi as fractions)")
        if isinstance(self.level, bool) or not isinstance(self.level, (int, float)) or not 0 < self.level < 1:
            raise ConfigError(f"interval level {self.level!r} must lie strictly between 0 and 1 (e.g. 0.95)")

    def lookup(self) -> dict[Key, tuple[float, float]]:
        """(variant, dataset, category, metric) → (lo, hi), as fractions."""
        f = self.frame
        keys = zip(f["variant"].astype(str), f["dataset"].astype(str), f["category"].astype(str),
                   f["metric"].astype(str))
        return {k: (float(lo), float(hi)) for k, lo, hi in zip(keys, f["lo"], f["hi"])}


def check_style(style: str) -> None:
    if style not in STYLES:
        raise ConfigError(f"unknown interval style {style!r}; choose 'pm' (± half-width) or 'range' ([lo, hi])")


def attach(model: TableModel, intervals: Intervals, columns: Mapping[int, str], mean: str = MEAN) -> None:
    """Put the intervals on the model's cells: ``columns`` maps a column of ours to its label in
    ``intervals``, ``mean`` is the category of the Mean row's intervals. Reported columns and missing values
    get none."""
    found = intervals.lookup()
    model.ci_level, model.ci_method = float(intervals.level), intervals.method
    for row in model.rows:
        dataset, category = (MEAN, mean) if row.kind == "mean" else _where(row)
        for col, label in columns.items():
            for spec in model.metrics:
                cell = row.cells.get((col, spec.name))
                ends = found.get((label, dataset, category, spec.name))
                if cell is not None and not cell.missing and ends is not None:
                    cell.lo, cell.hi = 100.0 * ends[0], 100.0 * ends[1]


def _where(row: Row) -> tuple[str, str]:
    return row.dataset, row.category if row.kind == "category" else MEAN


def interval_text(model: TableModel, lo: float, hi: float) -> str:
    """``(±h)`` or ``[lo, hi]`` in the table's digits."""
    if model.ci_style == "range":
        return f"[{model.fmt(lo)}, {model.fmt(hi)}]"
    return f"(±{model.fmt((hi - lo) / 2.0)})"


def level_text(level: float) -> str:
    """0.95 → "95%"."""
    return f"{100.0 * level:g}%"


def ci_notes(model: TableModel, rows: Sequence[Row], shown: Iterable[int], specs: Sequence[Any]
             ) -> list[tuple[str, str]]:
    """What the intervals shown are, and which metrics shown have none; nothing when none is shown."""
    shown = list(shown)
    cells = [(s, row.cell(i, s.name)) for row in rows for i in shown for s in specs
             if not model.variants[i].reported]
    if not any(c.has_interval for _, c in cells):
        return []
    what = f"the {level_text(model.ci_level)} confidence interval ({model.ci_method})"
    if model.ci_style == "range":
        notes = [("", f"[lo, hi]: {what}.")]
    else:
        notes = [("", f"(±h): half the width of {what}, which need not be symmetric about the value.")]
    without = [s.label for s in specs if any(not c.missing for t, c in cells if t is s)
               and not any(c.has_interval for t, c in cells if t is s)]
    if without:
        notes.append(("", f"{', '.join(without)}: no interval."))
    return notes
