"""Few-shot curves: a dataset score against the number of shots, mean ± std over seeds, every seed shown.

A point is complete when it covers every expected cell: the dataset's categories × the variant's seeds, both as
the tables derive them (:mod:`zsadbench.tables._coverage`). Only complete points make the line; an incomplete
one (an interrupted sweep) is drawn hollow, off the line, with the cells it covers.
"""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np
import pandas as pd

from ..store import ResultStore
from ..tables import expected_categories
from ._cells import plt, safe, save, variants

METRICS = (("image_auroc", "Image AUROC (%)"), ("pixel_auroc", "Pixel AUROC (%)"))


def shot_curves(cells, metric: str) -> dict[int, list[float]]:
    """shots → the per-seed dataset scores (macro mean over categories, in percent) of one variant on one dataset."""
    by: dict[tuple[int, int], list[float]] = defaultdict(list)
    for cell in cells:
        value = cell.metrics.get(metric, np.nan)
        if cell.shots > 0 and np.isfinite(value):
            by[(cell.shots, cell.seed)].append(100 * value)
    curves: dict[int, list[float]] = defaultdict(list)
    for (shots, _seed), values in sorted(by.items()):
        curves[shots].append(float(np.mean(values)))
    return dict(curves)


def incomplete_shots(cells, metric: str, expected: int) -> dict[int, tuple[int, int]]:
    """shots → (cells with a value, ``expected``) for each shot count of ``cells`` that covers fewer cells."""
    covered: dict[int, int] = defaultdict(int)
    for cell in cells:
        if cell.shots > 0 and np.isfinite(cell.metrics.get(metric, np.nan)):
            covered[cell.shots] += 1
    return {k: (n, expected) for k, n in sorted(covered.items()) if n < expected}


def plot_shots(store: ResultStore, dest: Path) -> list[Path]:
    """One figure per dataset with few-shot cells: a panel per metric, a line per variant."""
    rows = store.rows()
    few = [c for c in rows if c.shots > 0 and c.status == "ok"]
    if not few:
        return []
    categories = expected_categories(pd.DataFrame({"dataset": [c.dataset for c in rows],
                                                   "category": [c.category for c in rows]}))
    families = variants(rows, across_shots=True)  # every status, dataset and k: the seeds each variant expects
    labels = {c.dataset: c.dataset_label for c in few}
    written = []
    for dataset in labels:
        fig, axes = plt.subplots(1, len(METRICS), figsize=(4.2 * len(METRICS), 3.2), layout="constrained")
        drawn = hollow = False
        for ax, (metric, name) in zip(axes, METRICS):
            for label, family in families.items():
                cells = [c for c in family if c.dataset == dataset]
                curves = shot_curves(cells, metric)
                if not curves:
                    continue
                drawn = True
                expected = len(categories[dataset]) * len({c.seed for c in family})
                partial = incomplete_shots(cells, metric, expected)
                hollow |= bool(partial)
                _draw(ax, label, curves, partial)
            ax.set_xlabel("shots (k normal images)")
            ax.set_ylabel(name)
            ax.grid(alpha=0.3)
        if not drawn:
            plt.close(fig)
            continue
        axes[0].legend(fontsize=7)
        note = "; hollow: incomplete (cells covered/expected), not on the line" if hollow else ""
        fig.suptitle(f"Few-shot results on {labels[dataset]} (mean ± std over seeds; dots: seeds{note})", fontsize=9)
        written += save(fig, dest, f"shots-{safe(dataset)}")
    return written


def _draw(ax, label: str, curves: dict[int, list[float]], partial: dict[int, tuple[int, int]]) -> None:
    shots = sorted(curves)
    whole = [k for k in shots if k not in partial]
    mean = {k: float(np.mean(curves[k])) for k in shots}
    std = [np.std(curves[k], ddof=1) if len(curves[k]) > 1 else 0.0 for k in whole]
    line = ax.errorbar(whole, [mean[k] for k in whole], yerr=std, marker="o", capsize=3, label=label)
    color = line[0].get_color()
    for k in shots:
        ax.scatter([k] * len(curves[k]), curves[k], s=8, alpha=0.5, color=color)
    for k, (covered, expected) in partial.items():
        ax.scatter([k], [mean[k]], s=40, facecolors="none", edgecolors=color)
        ax.annotate(f"{covered}/{expected}", (k, mean[k]), textcoords="offset points", xytext=(4, 4), fontsize=7,
                    color=color)
    ax.set_xticks(shots)
