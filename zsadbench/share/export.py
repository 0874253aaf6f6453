"""The results document of a results folder, with the intervals that are cached (or, asked for, bootstrapped)."""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..tables.intervals import DEFAULT_METRICS
from .document import cells_frame, results_document
from .intervals import folder_intervals


def folder_document(out: str | Path, *, compute: bool = False, resamples: int = 1000, seed: int = 0,
                    level: float = 0.95, progress: Callable[[float, str], None] | None = None
                    ) -> tuple[dict[str, Any], list[str]]:
    """The document of every cell of ``out`` and notes on its intervals. Intervals of the image and pixel
    AUROC, AP and F1-max are those ``OUT/stats`` holds for ``resamples``/``seed`` (``compute``: bootstrapped
    where missing), or those of a merged folder's results file."""
    from ..store import ResultStore

    store = ResultStore(out)
    if not store.exists():
        raise ConfigError(f"no results store in {out} ({store.db_path} is missing): pass the --out of a "
                          "`zsadbench run`, or a folder written by `zsadbench merge`")
    cells = store.rows()
    if not cells:
        raise ConfigError(f"{out} holds no cells: run `zsadbench run ... --out {out}` first")
    frame = cells_frame(cells)
    held = {m for c in cells if c.status == "ok" for m in c.metrics}
    metrics = [m for m in DEFAULT_METRICS if m in held]
    intervals, settings, notes = folder_intervals(out, frame, metrics, resamples=resamples, seed=seed, level=level,
                                                  progress=progress, cached_only=not compute)
    found = intervals.lookup() if intervals is not None else {}
    if not compute and intervals is not None and not found:
        notes.append(f"no interval is cached in {Path(out) / 'stats'} for {resamples} resamples and seed {seed}: "
                     "pass --ci to bootstrap them")
    return results_document(cells, intervals=found, interval_settings=settings), notes
