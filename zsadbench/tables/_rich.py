"""Terminal rendering of a :class:`TableModel` as a ``rich.table.Table``."""
from __future__ import annotations

import math

from rich import box
from rich.table import Table
from rich.text import Text

from ._model import Cell, TableModel
from ._text import DASH


def to_rich(model: TableModel) -> Table:
    """Best in bold, second underlined; a section line between groups; footnotes as the caption."""
    notes = "\n".join(f"{marker} {text}".strip() for marker, text in model.footnotes())
    single = len(model.variants) == 1
    title = model.caption or (model.variants[0].display if single else None)
    table = Table(title=Text(title) if title else None, caption=Text(notes) if notes else None,
                  caption_justify="left", box=box.SIMPLE_HEAD)
    first, second = model.label_columns()
    table.add_column(first, no_wrap=True)
    table.add_column(second, overflow="fold", max_width=24)
    for v in model.variants:
        for k, spec in enumerate(model.metrics):
            arrow = "↑" if spec.higher_is_better else "↓"
            # the variant's name heads only its first metric column, so narrow terminals stay readable
            head = "" if single else (v.display if k == 0 else "")
            table.add_column(Text(f"{head}\n{spec.label} {arrow}".lstrip("\n")), justify="right", min_width=7)
    for n, group in enumerate(model.groups()):
        if n:
            table.add_section()
        for k, row in enumerate(group):
            a, b = model.row_labels(row)
            cells = [Text(a if k == 0 else "", style="bold" if row.kind == "mean" else ""), Text(b)]
            for i in range(len(model.variants)):
                for spec in model.metrics:
                    cells.append(_cell(model, row.cell(i, spec.name), model.markers(row, i, spec.name)))
            table.add_row(*cells)
    return table


def _cell(model: TableModel, cell: Cell, markers: str) -> Text:
    if cell.missing:
        return Text(DASH + markers)
    style = {1: "bold", 2: "underline"}.get(cell.rank or 0, "")
    text = Text(model.fmt(cell.mean), style=style)
    if not math.isnan(cell.std):
        text.append(f" ± {model.fmt(cell.std)}", style="dim")
    text.append(markers)
    return text
