"""Which cells each aggregate of a table covers, against the cells it should cover.

The store records the cells that ran, not the cells a run planned, so the expected cells are derived from what
the results folder holds:

* a dataset's expected categories are the union of the categories stored for it in any cell of the results
  (any method, variant, shot count or status);
* a variant's expected seeds are the union of the seeds stored for it at any shot count (a shots sweep runs every
  seed at every k, so a k that lacks a seed the others have was interrupted).

A category row expects its seeds, a dataset row its categories × seeds, and the Mean over datasets the cells of
every dataset the metric applies to. An aggregate over fewer cells than expected (an interrupted sweep, a failed
cell, seeds that covered different categories) is *incomplete*: marked in every format and never ranked.
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd


@dataclass(frozen=True)
class Coverage:
    """The cells behind one number.

    ``cells`` is (cells with a value, expected cells) over ``categories`` × ``seeds``; ``None`` for a number
    quoted from a paper. ``datasets`` is (datasets with a value, datasets the metric applies to) on Mean rows.
    """

    cells: tuple[int, int] | None = None
    categories: int = 0
    seeds: int = 0
    datasets: tuple[int, int] | None = None

    @property
    def complete(self) -> bool:
        return all(part is None or part[0] >= part[1] for part in (self.cells, self.datasets))

    def text(self) -> str:
        """What is missing, e.g. "1 of 3 categories" or "2 of 3 datasets, 4 of 9 cells (…)"; "" if complete."""
        parts = []
        if self.datasets is not None and self.datasets[0] < self.datasets[1]:
            parts.append(f"{self.datasets[0]} of {self.datasets[1]} datasets")
        if self.cells is not None and self.cells[0] < self.cells[1]:
            done, expected = self.cells
            if self.categories == 1:
                parts.append(f"{done} of {expected} seeds")
            elif self.seeds == 1:
                parts.append(f"{done} of {expected} categories")
            else:
                parts.append(f"{done} of {expected} cells ({self.categories} categories × {self.seeds} seeds)")
        return ", ".join(parts)


def expected_categories(df: pd.DataFrame) -> dict[str, tuple[str, ...]]:
    """Dataset → the categories stored for it in any cell of ``df`` (the store's frame), sorted."""
    pairs = df[["dataset", "category"]].astype(str).drop_duplicates()
    return {str(ds): tuple(sorted(group["category"])) for ds, group in pairs.groupby("dataset", sort=False)}
