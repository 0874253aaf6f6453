"""Few-shot curves: a dataset score against the number of shots, mean ± std over seeds, every seed shown."""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np

from ..store import ResultStore
from ._cells import finished, plt, safe, save, variants

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


def plot_shots(store: ResultStore, dest: Path) -> list[Path]:
    """One figure per dataset with few-shot cells: a panel per metric, a line per variant."""
    few = [c for c in finished(store) if c.shots > 0]
    written = []
    for dataset in dict.fromkeys(c.dataset for c in few):
        cells = [c for c in few if c.dataset == dataset]
        fig, axes = plt.subplots(1, len(METRICS), figsize=(4.2 * len(METRICS), 3.2), layout="constrained")
        drawn = False
        for ax, (metric, name) in zip(axes, METRICS):
            for label, group in variants(cells, across_shots=True).items():
                curves = shot_curves(group, metric)
                if not curves:
                    continue
                drawn = True
                shots = sorted(curves)
                mean = [np.mean(curves[k]) for k in shots]
                std = [np.std(curves[k], ddof=1) if len(curves[k]) > 1 else 0.0 for k in shots]
                line = ax.errorbar(shots, mean, yerr=std, marker="o", capsize=3, label=label)
                for k in shots:
                    ax.scatter([k] * len(curves[k]), curves[k], s=8, alpha=0.5, color=line[0].get_color())
                ax.set_xticks(shots)
            ax.set_xlabel("shots (k normal images)")
            ax.set_ylabel(name)
            ax.grid(alpha=0.3)
        if not drawn:
            plt.close(fig)
            continue
        axes[0].legend(fontsize=7)
        fig.suptitle(f"Few-shot results on {cells[0].dataset_label} (mean ± std over seeds; dots: seeds)")
        written += save(fig, dest, f"shots-{safe(dataset)}")
    return written
