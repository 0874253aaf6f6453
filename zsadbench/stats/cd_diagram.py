"""Critical-difference diagrams in Demšar's manner (2006, Figs. 1 and 2), as PNG and PDF.

An axis of average ranks (1, the best, on the left) carries every method: the better half is labelled on
the left, the rest on the right. Thick bars join the groups of methods the post-hoc test cannot tell apart:
each bar spans a maximal run of methods, consecutive in rank, of which no pair differs significantly. With
Nemenyi's test the critical difference is drawn above the axis.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np


def cd_groups(mean_ranks: np.ndarray, significant: np.ndarray) -> list[tuple[int, ...]]:
    """Maximal runs (two methods or more, consecutive by average rank) without a significant pair, as method
    indices in rank order."""
    order = [int(i) for i in np.argsort(mean_ranks, kind="stable")]
    runs: list[tuple[int, int]] = []
    for start in range(len(order)):
        end = start
        while end + 1 < len(order) and not any(significant[order[end + 1], order[i]] for i in range(start, end + 1)):
            end += 1
        if end > start and not any(s <= start and end <= e for s, e in runs):
            runs.append((start, end))
    return [tuple(order[start:end + 1]) for start, end in runs]


@dataclass(frozen=True)
class CDDiagram:
    """The files written and the groups joined by bars (method names, in rank order)."""

    paths: list[Path]
    groups: list[tuple[str, ...]]


def draw_cd_diagram(names: Sequence[str], mean_ranks: np.ndarray, significant: np.ndarray, path: str | Path,
                    *, cd: float | None = None, title: str | None = None) -> CDDiagram:
    """Draw the diagram and write it as ``PATH.png`` and ``PATH.pdf`` (a ``.png``/``.pdf`` suffix of ``path`` is
    replaced)."""
    import matplotlib

    matplotlib.use("Agg")  # files only; no display needed
    import matplotlib.pyplot as plt

    mean_ranks = np.asarray(mean_ranks, np.float64)
    k = len(names)
    groups = cd_groups(mean_ranks, significant)
    order = np.argsort(mean_ranks, kind="stable")
    left, right = order[: (k + 1) // 2], order[(k + 1) // 2:][::-1]
    rows = max(len(left), len(right))
    step, bar_step = 0.32, 0.14
    first_row = 0.45 + bar_step * len(groups)
    height = first_row + step * (rows - 1) + 0.2
    top = 0.75 if cd is not None else 0.45
    fig, ax = plt.subplots(figsize=(7.0, top + height + (0.3 if title else 0.0)))
    ax.set_xlim(1 - 0.45 * k - 0.5, k + 0.45 * k + 0.5)
    ax.set_ylim(height, -top)
    ax.axis("off")

    ax.hlines(0, 1, k, color="black", linewidth=1.0)
    for tick in range(1, k + 1):
        ax.vlines(tick, -0.12, 0, color="black", linewidth=1.0)
        ax.text(tick, -0.18, str(tick), ha="center", va="bottom", fontsize=9)
    for tick in np.arange(1.5, k, 1.0):
        ax.vlines(tick, -0.06, 0, color="black", linewidth=0.6)
    if cd is not None:
        y = -top + 0.2
        ax.hlines(y, 1, 1 + cd, color="black", linewidth=1.2)
        ax.vlines([1, 1 + cd], y - 0.05, y + 0.05, color="black", linewidth=1.2)
        ax.text(1 + cd / 2, y - 0.07, f"CD = {cd:.2f}", ha="center", va="bottom", fontsize=9)

    for side, members in (("left", left), ("right", right)):
        edge = 1 - 0.3 if side == "left" else k + 0.3
        for row, index in enumerate(members):
            rank = mean_ranks[index]
            y = first_row + step * row
            ax.vlines(rank, 0, y, color="black", linewidth=0.8)
            ax.hlines(y, min(rank, edge), max(rank, edge), color="black", linewidth=0.8)
            ha = "right" if side == "left" else "left"
            gap = -0.1 if side == "left" else 0.1
            ax.text(edge + gap, y, f"{names[index]} ({rank:.2f})", ha=ha, va="center", fontsize=9)

    for row, group in enumerate(groups):
        y = 0.3 + bar_step * row
        lo, hi = mean_ranks[list(group)].min(), mean_ranks[list(group)].max()
        ax.hlines(y, lo - 0.05, hi + 0.05, color="black", linewidth=3.0)
    if title:
        ax.set_title(title, fontsize=10)

    stem = Path(path)
    if stem.suffix.lower() in (".png", ".pdf"):
        stem = stem.with_suffix("")
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.parent / f"{stem.name}.png", stem.parent / f"{stem.name}.pdf"]
    for target in paths:
        fig.savefig(target, dpi=150, bbox_inches="tight")
    plt.close(fig)
    return CDDiagram(paths, [tuple(names[i] for i in group) for group in groups])
