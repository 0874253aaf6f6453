"""Scale-wise analysis (the MPAMA paper's Fig. 4): metrics per anomaly-size quartile.

The anomalous test images of a dataset (pooled over its categories) are binned by the quartiles of their anomaly
area (mask pixels at the evaluation size): tiny, small, medium, large. Each bin's pixel AUROC and AUPRO are
computed with :mod:`zsadbench.metrics` over the bin's anomalous images together with every normal test image of
the dataset, so each bin is scored against the same normal pixels.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
from matplotlib.patches import Patch

from ..metrics import aupro, pixel_auroc
from ..store import ResultStore, StoredCell
from ._cells import finished, plt, safe, save, variants

BINS = ("tiny", "small", "medium", "large")
METRICS = (("pixel_auroc", "Pixel AUROC (%)"), ("aupro", "AUPRO (%)"))
EMPTY = "no images"


def scale_bins(maps: np.ndarray, masks: np.ndarray, labels: np.ndarray) -> list[dict]:
    """Per quartile bin of anomaly area: ``name``, ``area`` range (pixels), ``images`` and the metrics; a bin
    that holds no image (ties at a quartile put them all in the bin above) has ``images`` 0, ``area`` None and
    NaN metrics. Empty when there are fewer anomalous images than bins."""
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
            out.append({"name": name, "area": None, "images": 0, "pixel_auroc": np.nan, "aupro": np.nan})
            continue
        idx = np.concatenate([members, normal])
        out.append({
            "name": name, "area": (int(areas[members].min()), int(areas[members].max())), "images": len(members),
            "pixel_auroc": pixel_auroc(maps[idx], masks[idx]), "aupro": aupro(maps[idx], masks[idx]),
        })
    return out


def scale_cells(store: ResultStore) -> dict[str, dict[str, list[StoredCell]]]:
    """dataset → variant label → the cells its scale figure pools: each variant's first seed, cells with a pixel
    AUROC whose artifacts keep every map."""
    by_dataset: dict[str, dict[str, list[StoredCell]]] = {}
    for label, cells in variants(finished(store)).items():
        seed = min(c.seed for c in cells)
        for cell in cells:
            if (cell.seed == seed and np.isfinite(cell.metrics.get("pixel_auroc", np.nan))
                    and cell.provenance.keep_maps in (None, "all")):  # the other policies keep too few maps
                by_dataset.setdefault(cell.dataset, {}).setdefault(label, []).append(cell)
    return by_dataset


def scale_figure(results: dict[str, list[dict]], title: str):
    """Pixel AUROC (left) and AUPRO (right) per bin, a bar per variant (``results``: label → :func:`scale_bins`),
    each bar labelled with its number of anomalous images; a bin without images or a score is a hatched box
    saying so, and the legend is a row below the panels."""
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.8), layout="constrained")
    width = 0.8 / len(results)
    for k, (label, bins) in enumerate(results.items()):
        for ax, (metric, _) in zip(axes, METRICS):
            for b, entry in enumerate(bins):
                x = BINS.index(entry["name"]) + (k - (len(results) - 1) / 2) * width
                value = 100 * entry[metric]
                if not np.isfinite(value):
                    ax.bar(x, 100, width, fill=False, hatch="//", edgecolor="0.65", linewidth=0.6)
                    ax.text(x, 50, EMPTY if entry["images"] == 0 else f"n={entry['images']}, no score",
                            rotation=90, ha="center", va="center", fontsize=7, color="0.35")
                    continue
                ax.bar(x, value, width, color=f"C{k}")
                ax.text(x, value + 1, f"n={entry['images']}", ha="center", va="bottom", fontsize=6)
    for ax, (_, name) in zip(axes, METRICS):
        ax.set_xticks(range(len(BINS)), BINS)
        ax.set_ylim(0, 108)  # room for the counts above bars near 100
        ax.set_ylabel(name)
        ax.set_xlabel("anomaly size (area quartile)")
        ax.grid(axis="y", alpha=0.3)
    handles = [Patch(color=f"C{k}", label=label) for k, label in enumerate(results)]
    fig.legend(handles=handles, loc="outside lower center", ncols=min(len(handles), 3), fontsize=7, frameon=False)
    fig.suptitle(f"Scale-wise results on {title} (n: the bin's anomalous images)", fontsize=10)
    return fig


def plot_scale(store: ResultStore, dest: Path,
               progress: Callable[[int, int], None] = lambda done, total: None) -> list[Path]:
    """One figure per dataset with masks (see :func:`scale_figure`), a bar per variant (a table column: one
    shot count; its first seed). ``progress(done, total)`` is called before each cell read, then at the end."""
    groups = scale_cells(store)
    total, done = sum(len(cells) for by_variant in groups.values() for cells in by_variant.values()), 0
    written = []
    for dataset, by_variant in groups.items():
        results = {}
        for label, cells in by_variant.items():
            parts = []
            for cell in cells:
                progress(done, total)
                done += 1
                parts.append(store.load_cell_arrays(cell.cell_id))
            bins = scale_bins(*(np.concatenate([p[k] for p in parts]) for k in ("anomaly_map", "gt_mask", "gt_label")))
            if bins:
                results[label] = bins
        if results:
            fig = scale_figure(results, next(iter(by_variant.values()))[0].dataset_label)
            written += save(fig, dest, f"scale-{safe(dataset)}")
    progress(total, total)
    return written
