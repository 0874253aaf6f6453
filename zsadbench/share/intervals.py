"""The intervals of a folder's numbers: bootstrapped from its artifacts, or, for a merged leaderboard folder
(no artifacts), those its results file carries.

A results file gives the interval of a category or dataset together with the ids of the cells behind it; an
interval is used for a number of a table only when that number covers exactly those cells, so a number that
mixes cells of several files (seeds run on two machines) gets none rather than a wrong one. Files hold no interval
of a Mean over datasets, so a merged folder's Mean rows have none.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import ConfigError
from ..tables import Intervals, variant_labels
from ..tables.intervals import bootstrap_intervals, method_text
from .document import MEAN
from .files import read_results

#: the results file of a folder: where ``export`` writes by default and ``merge`` writes the merged file
RESULTS_FILE = "results.json"
COLUMNS = ["variant", "dataset", "category", "metric", "lo", "hi"]


def interval_settings(resamples: int, seed: int, level: float) -> dict[str, Any]:
    """The ``intervals`` record of a results file."""
    from ..stats.resample import SCHEME

    return {"method": "bootstrap-percentile", "level": level, "resamples": resamples, "seed": seed, "scheme": SCHEME}


def document_intervals(docs: Sequence[dict[str, Any]], frame: pd.DataFrame, *, by_aux: bool = False
                       ) -> tuple[Intervals | None, dict[str, Any] | None]:
    """The intervals the ``docs`` give ``frame``'s categories and datasets, and their settings (those of the
    first document that has intervals; documents with other settings are not used). ``None`` when no
    document has intervals."""
    settings = next((d["intervals"] for d in docs if d["intervals"] is not None), None)
    if settings is None:
        return None, None
    index: dict[frozenset, dict[str, tuple[float, float]]] = {}
    for doc in docs:
        if doc["intervals"] == settings:
            _index(doc, index)
    ok = frame[frame["status"].astype(str) == "ok"].assign(_label=variant_labels(frame, by_aux=by_aux))
    records = []
    for (label, dataset), part in ok.groupby(["_label", "dataset"], sort=False):
        groups = [(category, cells) for category, cells in part.groupby("category", sort=False)] + [(MEAN, part)]
        for category, cells in groups:
            found = index.get(frozenset(cells["cell_id"].astype(str)), {})
            records += [(label, dataset, category, metric, *ends) for metric, ends in found.items()]
    level = float(settings["level"])
    method = method_text_of(settings)
    return Intervals(pd.DataFrame.from_records(records, columns=COLUMNS), level, method), settings


def method_text_of(settings: dict[str, Any]) -> str:
    from ..stats.resample import BootstrapSettings

    return method_text(BootstrapSettings(resamples=int(settings["resamples"]), seed=int(settings["seed"])))


def _index(doc: dict[str, Any], index: dict[frozenset, dict[str, tuple[float, float]]]) -> None:
    """Ids of the finished cells behind a number → metric → its interval, for every number of ``doc``."""
    for v in doc["variants"]:
        for d in v["datasets"].values():
            every: set[str] = set()
            for cat in d["categories"].values():
                ids = frozenset(c["cell_id"] for c in cat["cells"] if c["status"] == "ok")
                every |= ids
                _add(index, ids, cat["metrics"])
            _add(index, frozenset(every), d["metrics"])


def _add(index: dict, ids: frozenset, metrics: dict[str, Any]) -> None:
    for name, summary in metrics.items():
        if ids and "ci" in summary:
            index.setdefault(ids, {})[name] = (float(summary["ci"]["lo"]), float(summary["ci"]["hi"]))


def is_merged(out: str | Path, frame: pd.DataFrame) -> bool:
    """Whether ``out`` is a leaderboard folder built by ``merge``: a results file and no artifact of the
    frame's finished cells."""
    from ..store import ResultStore

    store = ResultStore(out)
    ids = frame.loc[frame["status"].astype(str) == "ok", "cell_id"].astype(str)
    return (Path(out) / RESULTS_FILE).is_file() and not any(store.artifact_path(i).is_file() for i in ids)


def folder_intervals(
    out: str | Path,
    frame: pd.DataFrame,
    metrics: Sequence[str],
    *,
    resamples: int,
    seed: int,
    level: float,
    by_aux: bool = False,
    progress: Callable[[float, str], None] | None = None,
    cached_only: bool = False,
) -> tuple[Intervals | None, dict[str, Any] | None, list[str]]:
    """The intervals of ``frame`` (a selection of ``out``'s results) for ``metrics``, their settings and
    notes: bootstrapped (or, ``cached_only``, read from ``OUT/stats``), or from the results file of a merged
    folder (whose level must be ``level``)."""
    from ..stats.resample import BootstrapSettings

    if is_merged(out, frame):
        path = Path(out) / RESULTS_FILE
        intervals, settings = document_intervals([read_results(path)], frame, by_aux=by_aux)
        if intervals is None or settings is None:
            return None, None, [f"{path} holds no intervals and the folder no artifacts to bootstrap: numbers are "
                                "shown without intervals"]
        if abs(float(settings["level"]) - level) > 1e-12:
            raise ConfigError(f"{path} holds {100 * settings['level']:g}% intervals (the folder has no artifacts to "
                              f"bootstrap others): pass --ci-level {settings['level']:g}")
        kept = intervals.frame[intervals.frame["metric"].isin(list(metrics))]
        return (Intervals(kept, intervals.level, intervals.method), settings,
                [f"intervals from {path}: a merged folder holds no artifacts to bootstrap"])
    bootstrap = BootstrapSettings(resamples=resamples, seed=seed)
    intervals, notes = bootstrap_intervals(out, frame, metrics, bootstrap, level, by_aux=by_aux, progress=progress,
                                           cached_only=cached_only)
    return intervals, interval_settings(resamples, seed, level), notes
