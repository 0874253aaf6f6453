"""Scale-wise analysis (the MPAMA paper's Fig. 4): metrics per anomaly-size quartile.

The anomalous test images of a dataset (pooled over its categories) are binned by the quartiles of their anomaly
area (mask pixels at the evaluation size): tiny, small, medium, large. Each bin's pixel AUROC and AUPRO are
computed with :mod:`zsadbench.metrics` over the bin's anomalous images together with every normal test image of
the dataset, so each bin is scored against the same normal pixels.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..metrics import aupro, pixel_auroc
from ..store import ResultStore
from ._cells import finished, plt, safe, save, variants

BINS = ("tiny", "small", "medium", "large")


def scale_bins(maps: np.ndarray, masks: np.ndarray, labels: np.ndarray) -> list[dict]:
    """Per quartile bin of anomaly area: ``name``, ``area`` range (pixels), ``images`` and the metrics."""
    areas = masks.reshape(len(masks), -1).sum(axis=1)
    anomalous = np.flatnonzero((labels == 1) & (areas > 0))
    normal = np.flatnonzero(labels == 0)
    if len(anomalous) < len(BINS):
        return []
    edges = np.quantile(areas[anomalous], [0.25, 0.5, 0.75])
    which = np.searchsorted(edges, areas[anomalous], side="right")
    out = []
    for b, name in enumerate(BINS):
        members = anomalous[which == b]
        if len(members) == 0:
            continue
        idx = np.concatenate([members, normal])
        out.append({
            "name": name, "area": (int(areas[members].min()), int(areas[members].max())), "images": len(members),
            "pixel_auroc": pixel_auroc(maps[idx], masks[idx]), "aupro": aupro(maps[idx], masks[idx]),
        })
    return out


def _pooled(store: ResultStore, cells) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    parts = [store.load_cell_arrays(c.cell_id) for c in cells]
    return tuple(np.concatenate([p[k] for p in parts]) for k in ("anomaly_map", "gt_mask", "gt_label"))


def plot_scale(store: ResultStore, dest: Path) -> list[Path]:
    """One figure per dataset with masks: pixel AUROC (left) and AUPRO (right) per bin, a bar per variant
    (a table column: one shot count; its first seed)."""
    by_dataset: dict[str, dict[str, list]] = {}
    for label, cells in variants(finished(store)).items():
        seed = min(c.seed for c in cells)
        for cell in cells:
            if (cell.seed == seed and np.isfinite(cell.metrics.get("pixel_auroc", np.nan))
                    and cell.provenance.keep_maps in (None, "all")):  # the other policies keep too few maps
                by_dataset.setdefault(cell.dataset, {}).setdefault(label, []).append(cell)
    written = []
    for dataset, by_variant in by_dataset.items():
        results = {label: scale_bins(*_pooled(store, cells)) for label, cells in by_variant.items()}
        results = {k: v for k, v in results.items() if v}
        if not results:
            continue
        title = next(iter(by_variant.values()))[0].dataset_label
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), layout="constrained")
        width = 0.8 / len(results)
        for k, (label, bins) in enumerate(results.items()):
            x = np.array([BINS.index(b["name"]) for b in bins]) + (k - (len(results) - 1) / 2) * width
            for ax, metric in zip(axes, ("pixel_auroc", "aupro")):
                ax.bar(x, [100 * b[metric] for b in bins], width, label=label)
        for ax, name in zip(axes, ("Pixel AUROC (%)", "AUPRO (%)")):
            ax.set_xticks(range(len(BINS)), BINS)
            ax.set_ylabel(name)
            ax.set_xlabel("anomaly size (area quartile)")
            ax.grid(axis="y", alpha=0.3)
        axes[0].legend(fontsize=7)
        fig.suptitle(f"Scale-wise results on {title}")
        written += save(fig, dest, f"scale-{safe(dataset)}")
    return written
