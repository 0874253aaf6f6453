"""Expert usage (the MPAMA paper's Fig. 5) from the routing counts a method stores per cell.

A cell's ``provenance.method_stats["expert_usage"]`` holds, for one category, how often each expert was among
the top-k choices of a token, one row per routing level ``[levels, experts]``. The figure sums them per dataset
(never over datasets: a zero-shot method trained on another auxiliary set may have another pool) and shows, per
level, each dataset's share of the choices going to each expert, the experts named by their kind where the
method's config describes its pool.
"""
from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import registry
from ..errors import DataError, ZsadError
from ..store import ResultStore, StoredCell
from ._cells import finished, plt, safe, save, variants


def expert_usage(cells: Iterable[StoredCell]) -> np.ndarray | None:
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


def expert_names(config: Mapping, experts: int) -> list[str]:
    """The names of a pool of ``experts``. A config with ``single_expert`` describes MPAMA's pool (the rule of
    ``zsadbench.methods.mpama.moe.expert_kinds``, which imports torch): one expert of that kind; frozen and
    learnable; or frozen, learnable ones and zero. Other pools are numbered."""
    single = config.get("single_expert")
    if single is None:
        return [f"expert {e + 1}" for e in range(experts)]
    if experts == 1:
        return [str(single)]
    if experts == 2:
        return ["frozen", "learnable"]
    return ["frozen", *(f"learnable {i + 1}" for i in range(experts - 2)), "zero"]


def level_names(cell: StoredCell, levels: int) -> list[str]:
    """The names of the ``levels`` routing rows of ``cell``'s counts: MPAMA routes once for every perception level
    with ``routing="post"``, and per perception level (pooling size p) with ``routing="pre"``."""
    config = json.loads(cell.config_json or "{}")
    if config.get("routing") == "post" and levels == 1:
        return ["all levels (routed once)"]
    perceptions = _perception_levels(cell)
    if perceptions is not None and len(perceptions) == levels:
        return [f"perception p = {p}" for p in perceptions]
    return [f"level {lv + 1}" for lv in range(levels)]


def _perception_levels(cell: StoredCell) -> tuple[int, ...] | None:
    """The pooling sizes of a method config with a prompt ``layout()`` (MPA, MPAMA); None for other methods."""
    try:
        config = registry.methods().get(cell.method).config_class.from_json(cell.config_json)
    except ZsadError:  # a method not installed here, or a config it no longer reads
        return None
    layout = getattr(config, "layout", None)
    return tuple(layout().levels) if callable(layout) else None


@dataclass(frozen=True)
class DatasetUsage:
    """One dataset's summed counts in a variant: ``usage`` ``[levels, experts]``, named by ``levels`` and
    ``experts``; ``title`` names the dataset (and the auxiliary set a zero-shot method trained on)."""

    title: str
    usage: np.ndarray
    levels: list[str]
    experts: list[str]


def dataset_usage(cells: list[StoredCell]) -> list[DatasetUsage]:
    """The counts of ``cells`` (one variant) summed per dataset and auxiliary set, in order of appearance."""
    groups: dict[tuple[str, str], list[StoredCell]] = {}
    for cell in cells:
        groups.setdefault((cell.dataset, cell.aux), []).append(cell)
    out = []
    for (_, aux), group in groups.items():
        usage = expert_usage(group)
        if usage is None or usage.sum() == 0:
            continue
        first = group[0]
        title = first.dataset_label + (f" (trained on {aux})" if aux else "")
        names = expert_names(json.loads(first.config_json or "{}"), usage.shape[1])
        out.append(DatasetUsage(title, usage, level_names(first, usage.shape[0]), names))
    return out


def experts_figure(label: str, rows: list[DatasetUsage]):
    """A heat map per routing level: datasets as rows, experts as columns (an expert missing from a dataset's pool
    is a grey cell marked "–"), each cell the dataset's share of that level's top-k choices, in percent."""
    experts = list(max(rows, key=lambda r: len(r.experts)).experts)
    experts += [name for r in rows for name in r.experts if name not in experts]
    levels = max(rows, key=lambda r: len(r.levels)).levels
    fig, axes = plt.subplots(1, len(levels), squeeze=False, layout="constrained",
                             figsize=(1.8 + len(levels) * (0.6 * len(experts) + 0.4), 1.4 + 0.4 * len(rows)))
    cmap = plt.get_cmap("Blues").with_extremes(bad="0.88")
    for lv, (ax, level) in enumerate(zip(axes[0], levels)):
        share = np.full((len(rows), len(experts)), np.nan)
        for r, row in enumerate(rows):
            if lv < len(row.usage):
                counts = row.usage[lv]
                for e, name in enumerate(row.experts):
                    share[r, experts.index(name)] = 100 * counts[e] / max(counts.sum(), 1)
        image = ax.imshow(np.ma.masked_invalid(share), cmap=cmap, vmin=0, vmax=100, aspect="auto")
        for (r, e), value in np.ndenumerate(share):
            text = "–" if np.isnan(value) else f"{value:.1f}"
            ax.text(e, r, text, ha="center", va="center", fontsize=7,
                    color="white" if np.isfinite(value) and value > 60 else "black")
        ax.set_xticks(range(len(experts)), experts, rotation=35, ha="right", fontsize=8)
        ax.set_yticks(range(len(rows)), [r.title for r in rows] if lv == 0 else [], fontsize=8)
        ax.set_title(level, fontsize=9)
    fig.colorbar(image, ax=axes[0].tolist(), label="share of top-k choices (%)", shrink=0.9)
    fig.suptitle(f"Expert usage of {label}", fontsize=10)
    return fig


def plot_experts(store: ResultStore, dest: Path,
                 progress: Callable[[int, int], None] = lambda done, total: None) -> list[Path]:
    """One figure per variant with counts (see :func:`experts_figure`); ``progress(done, total)`` is called
    before each variant, then at the end."""
    groups = variants(finished(store))
    written = []
    for done, (label, cells) in enumerate(groups.items()):
        progress(done, len(groups))
        rows = dataset_usage(cells)
        if rows:
            written += save(experts_figure(label, rows), dest, f"experts-{safe(label)}")
    progress(len(groups), len(groups))
    return written
