"""The format-free table that every renderer draws: variants (columns), rows and cells.

Aggregation (``_aggregate``) fills it; ranking and markers are decided here once (their footnotes in
``_notes``), so the Markdown, LaTeX, rich and CSV outputs cannot disagree about which cell is best or what a
marker means.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from ..errors import ConfigError
from ._coverage import Coverage

if TYPE_CHECKING:
    from ..metrics import MetricSpec

RowKind = Literal["category", "dataset", "mean"]

FAILED = "*"
PARTIAL = "°"
DAGGER = "†"
#: a Mean of reported dataset scores computed here (the source prints no such number)
RECOMPUTED = "‡"


def metric_specs() -> list[MetricSpec]:
    """The registered metric specs (``name``, ``level``, ``label``, ``higher_is_better``), in table order."""
    from ..metrics import METRICS  # imported on use: it loads the numba kernels

    return list(METRICS.values())


def select_metrics(metrics: Sequence[str] | None, level: str | None) -> list[MetricSpec]:
    """The specs picked by ``metrics=[names]`` (in the order given) and ``level``; raises on unknown names."""
    specs = metric_specs()
    if level not in (None, "image", "pixel"):
        raise ConfigError(f"unknown metric level {level!r}; use 'image', 'pixel' or leave it unset for both")
    if metrics is not None:
        if isinstance(metrics, str):
            metrics = [metrics]
        by_name = {s.name: s for s in specs}
        unknown = [m for m in metrics if m not in by_name]
        if unknown:
            raise ConfigError(f"unknown metric(s) {', '.join(map(repr, unknown))}; choose from {', '.join(by_name)}")
        specs = [by_name[m] for m in metrics]
    return [s for s in specs if level is None or s.level == level]


@dataclass(frozen=True)
class Variant:
    """One column group: a method variant of ours, or a method as a paper reports it (``reported``).

    A trained zero-shot variant has either one auxiliary set (``aux``) or a ``protocol``, under which each
    dataset trained on its own set (``aux_by_dataset``, (dataset, aux) pairs). ``source`` numbers the paper of a
    reported variant when a table quotes several (†1, †2, … with the full source in a footnote). ``test_limit`` is
    the ``--limit`` of a smoke run's cells (0: every test image).
    """

    label: str
    method: str
    method_label: str
    shots: int
    random_init: bool = False
    pretrained: str = ""
    precision: str = ""
    config_hash: str = ""
    aux: str = ""
    eval_size: int = 0
    protocol: str = ""
    aux_by_dataset: tuple[tuple[str, str], ...] = ()
    options: str = ""
    reported: bool = False
    paper: str = ""
    tables: tuple[str, ...] = ()
    source: int = 0
    test_limit: int = 0

    @property
    def dagger(self) -> str:
        """The mark of a reported variant ("†", or "†2" for the second of several sources); "" for ours."""
        return DAGGER + (str(self.source) if self.source else "") if self.reported else ""

    @property
    def display(self) -> str:
        """The label with the dagger that marks reported numbers."""
        return self.label + self.dagger


@dataclass
class Cell:
    """One number of the table, in percent. ``std`` is NaN unless at least two seeds were averaged.

    ``coverage`` says which cells the number covers; an *incomplete* one (fewer cells or datasets than
    expected) is shown with a marker and is not ranked. ``lo``/``hi`` are the ends of its confidence interval
    (NaN: none was given, see :mod:`._ci`).
    """

    mean: float = math.nan
    std: float = math.nan
    n_seeds: int = 0
    coverage: Coverage | None = None
    rank: int | None = None
    lo: float = math.nan
    hi: float = math.nan

    @property
    def missing(self) -> bool:
        return math.isnan(self.mean)

    @property
    def has_interval(self) -> bool:
        return not self.missing and not math.isnan(self.lo) and not math.isnan(self.hi)

    @property
    def incomplete(self) -> bool:
        return not self.missing and self.coverage is not None and not self.coverage.complete


@dataclass
class Row:
    """A table row: one category, one dataset (mean over its categories) or the Mean over datasets.

    ``failed[v] = (n, m)`` says n of the m parts behind variant v's numbers failed (seeds for a category
    row, categories for a dataset row, datasets with failures for the Mean row).
    """

    kind: RowKind
    domain: str
    dataset: str
    dataset_label: str
    category: str = ""
    cells: dict[tuple[int, str], Cell] = field(default_factory=dict)
    failed: dict[int, tuple[int, int]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        if self.kind == "mean":
            return "Mean"
        if self.kind == "category":
            return f"{self.dataset_label} / {self.category}"
        return self.dataset_label

    def cell(self, variant: int, metric: str) -> Cell:
        return self.cells.get((variant, metric)) or Cell()


@dataclass
class TableModel:
    """Everything a renderer needs. ``ci_style`` shows an interval as its half-width (``pm``) or its ends
    (``range``); ``ci_level`` and ``ci_method`` say what the intervals are, for their footnote."""

    variants: list[Variant]
    metrics: list[MetricSpec]
    rows: list[Row]
    per_category: bool
    digits: int = 1
    caption: str | None = None
    label: str | None = None
    ci_style: str = "pm"
    ci_level: float = 0.95
    ci_method: str = ""

    def label_columns(self) -> tuple[str, str]:
        return ("Dataset", "Category") if self.per_category else ("Domain", "Dataset")

    def row_labels(self, row: Row) -> tuple[str, str]:
        """The two label cells of a row (group label, row label)."""
        if row.kind == "mean":
            return ("Mean", "")
        if self.per_category:
            return (row.dataset_label, row.category if row.kind == "category" else "Mean")
        return (row.domain.capitalize(), row.dataset_label)

    def groups(self) -> list[list[Row]]:
        """Consecutive rows sharing a group label (a domain, or a dataset with --per-category); Mean alone."""
        out: list[tuple[str | None, list[Row]]] = []
        for row in self.rows:
            key = None if row.kind == "mean" else (row.dataset if self.per_category else row.domain)
            if out and out[-1][0] == key:
                out[-1][1].append(row)
            else:
                out.append((key, [row]))
        return [rows for _, rows in out]

    def rounded(self, value: float) -> float:
        return float(f"{value:.{self.digits}f}")

    def fmt(self, value: float) -> str:
        return f"{value:.{self.digits}f}"

    def markers(self, row: Row, variant: int, metric: str) -> str:
        """The footnote markers a cell carries (failed parts, incomplete, a reported Mean computed here)."""
        cell = row.cell(variant, metric)
        out = FAILED if row.failed.get(variant, (0, 0))[0] else ""
        if cell.incomplete:
            out += PARTIAL
        if row.kind == "mean" and self.variants[variant].reported and not cell.missing:
            out += RECOMPUTED
        return out

    def rank(self) -> None:
        """Mark best (rank 1) and second (rank 2) per row and metric, competition style (ties share a rank).

        Values are compared as displayed (rounded to ``digits``). Only variants run with real weights compete
        unless the table holds nothing else; incomplete cells never compete. At least two values are needed.
        """
        real = [i for i, v in enumerate(self.variants) if not v.random_init]
        pool = real or list(range(len(self.variants)))
        for row in self.rows:
            for spec in self.metrics:
                sign = 1.0 if spec.higher_is_better else -1.0
                scores = {}
                for i in pool:
                    cell = row.cells.get((i, spec.name))
                    if cell is not None and not cell.missing and not cell.incomplete:
                        scores[i] = sign * self.rounded(cell.mean)
                if len(scores) < 2:
                    continue
                for i, score in scores.items():
                    rank = 1 + sum(other > score for other in scores.values())
                    if rank <= 2:
                        row.cells[(i, spec.name)].rank = rank

    @staticmethod
    def failed_text(row: Row, n: int, m: int) -> str:
        if row.kind == "category":
            return f"{n} of {m} seeds failed (excluded from the mean)"
        if row.kind == "dataset":
            return f"{n} of {m} categories failed (excluded from the mean)"
        return f"{n} of {m} datasets include failed categories"
