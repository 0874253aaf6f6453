"""Expert usage (the MPAMA paper's Fig. 5) from the routing counts a method stores per cell."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DataError
from ..store import ResultStore
from ._cells import finished, plt, safe, save, variants


def expert_usage(cells) -> np.ndarray | None:
    """The summed ``provenance.method_stats["expert_usage"]`` counts ``[levels, experts]`` of ``cells``
    (None when no cell has them); raises :class:`DataError` on counts of mismatched shapes."""
    total = None
    for cell in cells:
        counts = (cell.provenance.method_stats or {}).get("expert_usage")
        if counts is None:
            continue
        counts = np.asarray(counts, dtype=np.float64)
        if counts.ndim == 1:
            counts = counts[None]
        if total is not None and counts.shape != total.shape:
            raise DataError(
                f"cell {cell.cell_id}: expert_usage has shape {counts.shape}, other cells {total.shape}; "
                "plot variants with one expert count separately"
            )
        total = counts if total is None else total + counts
    return total


def plot_experts(store: ResultStore, dest: Path) -> list[Path]:
    """One figure per variant with counts: the share of tokens routed to each expert, a bar group per level."""
    written = []
    for label, cells in variants(finished(store)).items():
        usage = expert_usage(cells)
        if usage is None or usage.sum() == 0:
            continue
        share = 100 * usage / np.maximum(usage.sum(axis=1, keepdims=True), 1)
        levels, experts = share.shape
        fig, ax = plt.subplots(figsize=(max(4, 1.1 * experts + 1.5), 3.2))
        width = 0.8 / levels
        for lv in range(levels):
            x = np.arange(experts) + (lv - (levels - 1) / 2) * width
            ax.bar(x, share[lv], width, label=f"level {lv + 1}" if levels > 1 else None)
        ax.set_xticks(range(experts), [f"expert {e}" for e in range(experts)], fontsize=8)
        ax.set_ylabel("tokens routed (%)")
        ax.grid(axis="y", alpha=0.3)
        if levels > 1:
            ax.legend(fontsize=7)
        datasets = ", ".join(dict.fromkeys(c.dataset_label for c in cells))
        ax.set_title(f"Expert usage of {label} on {datasets}", fontsize=9)
        written += save(fig, dest, f"experts-{safe(label)}")
    return written
