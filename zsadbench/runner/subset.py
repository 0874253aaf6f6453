"""Smoke runs on part of a dataset: the categories asked for (``--categories``, ``-d DATASET/CATEGORY``) and at
most ``--limit`` test images per category.

Both act on an adapter's index before any cell is planned, so a limited category's cells have another data digest
(and so another id) than its full cells and are never mixed with them; the limit is also recorded in each cell's
provenance for the tables to mark.
"""
from __future__ import annotations

import difflib

from zsadbench.datasets.base import DatasetAdapter
from zsadbench.errors import ConfigError
from zsadbench.types import Sample


def wanted_categories(dataset: str, entries: tuple[str, ...]) -> set[str]:
    """The categories of ``dataset`` that ``entries`` (``CATEGORY`` for any dataset, ``DATASET/CATEGORY``) ask
    for; empty when they ask for none of this dataset's in particular."""
    wanted = set()
    for entry in entries:
        name, slash, category = entry.partition("/")
        if not slash:
            wanted.add(name)
        elif name == dataset:
            wanted.add(category)
    return wanted


def limited(samples: list[Sample], limit: int) -> list[Sample]:
    """At most ``limit`` test images of one category, in index order, with both labels kept where the category has
    both: the first ``ceil(limit / 2)`` anomalous images and as many normal ones as fill the rest (either side
    fills in for the other when it has too few). Training images are kept."""
    test = [s for s in samples if s.split == "test"]
    anomalous = [s for s in test if s.gt_label == 1]
    normal = [s for s in test if s.gt_label == 0]
    take_anomalous = min(len(anomalous), max((limit + 1) // 2, limit - len(normal)))
    kept = set(map(id, anomalous[:take_anomalous] + normal[: limit - take_anomalous]))
    return [s for s in samples if s.split != "test" or id(s) in kept]


def apply_subset(adapters: dict[str, DatasetAdapter], entries: tuple[str, ...], limit: int | None) -> None:
    """Cut every adapter's index down to the categories ``entries`` ask for and ``limit`` test images per category.

    Raises :class:`ConfigError` naming the category and what the dataset holds when a category is unknown.
    """
    named = {entry.partition("/")[0] for entry in entries if "/" in entry}
    for name in named - set(adapters):
        raise ConfigError(f"--categories {name}/...: {name!r} is not among the datasets of this run "
                          f"({', '.join(adapters)}); add it to --datasets")
    plain = {entry for entry in entries if "/" not in entry}
    for dataset, adapter in adapters.items():
        holds = adapter.categories()
        wanted = wanted_categories(dataset, entries)
        if dataset in named:
            for category in wanted_categories(dataset, tuple(e for e in entries if "/" in e)) - set(holds):
                raise ConfigError(_unknown(category, dataset, holds))
        keep = wanted & set(holds) if wanted else set(holds)
        if wanted and not keep:
            raise ConfigError(f"--categories {', '.join(sorted(wanted))}: none is a category of {dataset} "
                              f"(it has {', '.join(holds)}); name its categories or leave it out of --datasets")
        samples = [s for s in adapter.samples if s.category in keep]
        if limit is not None:
            by_category: dict[str, list[Sample]] = {}
            for sample in samples:
                by_category.setdefault(sample.category, []).append(sample)
            kept = {id(s) for group in by_category.values() for s in limited(group, limit)}
            samples = [s for s in samples if id(s) in kept]
        adapter.samples = samples  # the cached index, replaced
    for category in plain:
        if not any(category in adapter.categories() for adapter in adapters.values()):
            every = sorted({c for adapter in adapters.values() for c in adapter.categories()})
            raise ConfigError(_unknown(category, ", ".join(adapters), every))


def _unknown(category: str, where: str, holds: list[str]) -> str:
    close = difflib.get_close_matches(category, holds, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"--categories {category!r} is not a category of {where}; {hint}it has {', '.join(holds)}"
