"""Terminal rendering of a :class:`TableModel`: rich tables that fit the console's width."""
from __future__ import annotations

import math
from collections.abc import Iterator

from rich import box
from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, RenderResult
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from ._ci import interval_text
from ._fit import Column, part_title, split_columns
from ._model import Cell, TableModel
from ._notes import footnotes
from ._text import DASH


class FittedTable:
    """A leaderboard that renders at the width it is given (the console's): one table when it fits, else
    parts split by metric group, then between variants (:mod:`._fit`), each repeating the row labels; then
    the footnotes, wrapped at that width. No column is dropped, no value wraps and no label is folded."""

    def __init__(self, model: TableModel) -> None:
        self.model = model
        self.values = {
            (n, i, s.name): _cell(model, row.cell(i, s.name), model.markers(row, i, s.name))
            for n, row in enumerate(model.rows) for i in range(len(model.variants)) for s in model.metrics
        }
        self.heads = {s.name: f"{s.label} {'↑' if s.higher_is_better else '↓'}" for s in model.metrics}
        self.single = len(model.variants) == 1
        labels = [model.row_labels(row) for row in model.rows]
        first, second = model.label_columns()
        self.label_widths = (max(cell_len(t) for t in [first, *(a for a, _ in labels)]),
                             max(cell_len(t) for t in [second, *(b for _, b in labels)]))

    def tables(self, width: int) -> list[Table]:
        """The parts of the leaderboard for a console ``width`` columns wide."""
        parts = split_columns(self.model, self._width, width)
        return [self._table(part, part_title(self.model, parts, k)) for k, part in enumerate(parts)]

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        model = self.model
        title = model.caption or (model.variants[0].display if self.single else None)
        if title:
            yield Text(title, style="bold")
        for k, table in enumerate(self.tables(options.max_width)):
            if k:
                yield Text("")
            yield table
        notes = footnotes(model)
        if notes:
            yield Text("")
            yield Text("\n".join(f"{marker} {text}".strip() for marker, text in notes))

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        every = [(i, s.name) for i in range(len(self.model.variants)) for s in self.model.metrics]
        return Measurement(min(self._width(every), options.max_width), options.max_width)

    def _column_width(self, column: Column, first: bool) -> int:
        i, metric = column
        cells = [cell_len(self.values[(n, i, metric)].plain) for n in range(len(self.model.rows))]
        width = max(cells + [cell_len(self.heads[metric])])
        if first and not self.single:  # the variant's label wraps at its words above its first column
            width = max(width, *(cell_len(w) for w in self.model.variants[i].display.split()))
        return width

    def _widths(self, part: list[Column]) -> Iterator[int]:
        for k, column in enumerate(part):
            yield self._column_width(column, k == 0 or part[k - 1][0] != column[0])

    def _width(self, part: list[Column]) -> int:
        """Characters the table of ``part`` takes: each column with a space of padding on either side, and a
        one-space divider between columns."""
        widths = [*self.label_widths, *self._widths(part)]
        return sum(w + 2 for w in widths) + len(widths) - 1

    def _table(self, part: list[Column], title: str) -> Table:
        model = self.model
        table = Table(title=Text(title, style="italic") if title else None, title_justify="left",
                      box=box.SIMPLE_HEAD, show_edge=False)
        first, second = model.label_columns()
        table.add_column(first, width=self.label_widths[0], no_wrap=True)
        table.add_column(second, width=self.label_widths[1], no_wrap=True)
        for k, ((i, metric), width) in enumerate(zip(part, self._widths(part))):
            head = "" if self.single or (k and part[k - 1][0] == i) else model.variants[i].display
            table.add_column(Text(f"{head}\n{self.heads[metric]}".lstrip("\n")), justify="right", width=width)
        index = {id(row): n for n, row in enumerate(model.rows)}
        for n, group in enumerate(model.groups()):
            if n:
                table.add_section()
            for k, row in enumerate(group):
                a, b = model.row_labels(row)
                cells = [Text(a if k == 0 else "", style="bold" if row.kind == "mean" else ""), Text(b)]
                cells += [self.values[(index[id(row)], i, m)].copy() for i, m in part]
                table.add_row(*cells)
        return table


def _cell(model: TableModel, cell: Cell, markers: str) -> Text:
    if cell.missing:
        return Text(DASH + markers)
    style = {1: "bold", 2: "underline"}.get(cell.rank or 0, "")
    text = Text(model.fmt(cell.mean), style=style)
    if not math.isnan(cell.std):
        text.append(f" ± {model.fmt(cell.std)}", style="dim")
    if cell.has_interval:
        text.append(" " + interval_text(model, cell.lo, cell.hi), style="dim italic")
    text.append(markers)
    return text
