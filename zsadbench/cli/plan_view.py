"""Printing a run plan for ``zsadbench run --dry-run``."""
from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ..runner import Plan
from ..store import ResultStore


def show_plan(plan: Plan, console: Console) -> None:
    """One row per (method, dataset, shots, seed, aux): categories, cells, and how many are already stored."""
    finished = set() if plan.config.force else ResultStore(plan.config.out).finished_ids()
    table = Table(title=f"plan: {len(plan.cells)} cells → {plan.config.out}")
    for column in ("method", "dataset", "shots", "seed", "aux", "categories", "cached", "to run"):
        table.add_column(column)
    rows: dict[tuple, list] = {}
    for group in plan.groups:  # variants of one method (a --set grid) get rows of their own
        for cell in group.cells:
            key = (group.spec_key, cell.dataset, cell.shots, cell.seed, cell.aux)
            rows.setdefault(key, []).append(cell)
    for (method, dataset, shots, seed, aux), cells in rows.items():
        cached = sum(c.cell_id in finished for c in cells)
        table.add_row(escape(method), dataset, str(shots), str(seed), aux or "–", str(len(cells)), str(cached), str(len(cells) - cached))
    console.print(table)
