"""Splitting a table's value columns into parts that each fit a width (terminal characters or LaTeX points).

A table that fits stays one part. Otherwise it is split by metric group (image-level, pixel-level), each part
keeping the row labels; a group still too wide is cut between variants, and a variant too wide on its own
between its metrics. No column is ever dropped: every (variant, metric) column is in exactly one part.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._model import TableModel

#: a value column: (variant index, metric name)
Column = tuple[int, str]


def metric_groups(metrics: list[Any]) -> list[list[Any]]:
    """The metrics by level, in the order their levels first appear (order within a level kept)."""
    groups: dict[str, list[Any]] = {}
    for spec in metrics:
        groups.setdefault(spec.level, []).append(spec)
    return list(groups.values())


def split_columns(model: TableModel, width_of: Callable[[list[Column]], float], budget: float) -> list[list[Column]]:
    """Parts of the table's columns, in table order, each with ``width_of(part) <= budget`` where possible
    (a single column wider than ``budget`` is a part of its own)."""
    n = len(model.variants)
    every = [(i, s.name) for i in range(n) for s in model.metrics]
    if width_of(every) <= budget:
        return [every]
    parts: list[list[Column]] = []
    for group in metric_groups(model.metrics):
        current: list[Column] = []
        for i in range(n):
            columns = [(i, s.name) for s in group]
            if width_of(current + columns) <= budget:
                current += columns
                continue
            if current:
                parts.append(current)
                current = []
            if width_of(columns) <= budget:
                current = columns
                continue
            for column in columns:
                if current and width_of(current + [column]) > budget:
                    parts.append(current)
                    current = []
                current.append(column)
        if current:
            parts.append(current)
    return parts


def part_title(model: TableModel, parts: list[list[Column]], k: int) -> str:
    """"Image-level metrics", or "Pixel-level metrics (2 of 3)" when a group spans several parts; "" for one."""
    if len(parts) == 1:
        return ""
    level_of = {s.name: s.level for s in model.metrics}
    levels = [tuple(dict.fromkeys(level_of[m] for _, m in part)) for part in parts]
    title = " and ".join(f"{level.capitalize()}-level" for level in levels[k]) + " metrics"
    same = [j for j, lv in enumerate(levels) if lv == levels[k]]
    return title + (f" ({same.index(k) + 1} of {len(same)})" if len(same) > 1 else "")
