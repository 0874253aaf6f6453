"""Numbers quoted from papers, kept as data and shown beside ours (marked †).

A reported-numbers CSV has the columns ``method,dataset,category,shots,metric,value,paper,table`` and may add
``method_label`` (the display name, e.g. ``VisualAD (DINOv2)``). ``value`` is in percent as printed,
``category`` is ``mean`` for a dataset mean, ``metric`` is a name from ``zsadbench.metrics.METRICS`` and
``dataset`` a zsadbench dataset name, so that the numbers line up with our rows. Reported dataset scores come
from their ``mean`` rows only (never re-derived from categories); the Mean over datasets is computed over the
datasets of the table.
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

import pandas as pd

from ..errors import ConfigError, DataError
from ._model import Variant, metric_specs

COLUMNS = ("method", "dataset", "category", "shots", "metric", "value", "paper", "table")
TEXT = ("method", "method_label", "dataset", "category", "metric", "paper", "table")
IDENTITY = ["method", "method_label", "dataset", "category", "shots", "metric", "paper"]


def load_reported(paths: str | Path | Iterable[str | Path]) -> pd.DataFrame:
    """Read and check reported-number CSVs (files, or folders whose ``*.csv`` are read in name order).

    Returns one row per number with the columns above plus ``method_label`` ("" when absent) and
    ``source`` (the file). Raises :class:`DataError` naming the file and line of a bad value.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    files: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            files.extend(sorted(p.glob("*.csv")))
        elif p.is_file():
            files.append(p)
        else:
            raise DataError(f"reported-numbers file {p} does not exist; pass a CSV file or a folder of them")
    if not files:
        raise DataError(f"no reported-numbers CSV found in {', '.join(map(str, paths))}")
    frames = []
    for f in files:
        try:
            raw = pd.read_csv(f, dtype=str, keep_default_na=False)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
            raise DataError(f"{f}: not a readable CSV ({exc}); expected the columns {','.join(COLUMNS)}") from exc
        frames.append(check_reported(raw, str(f)))
    out = pd.concat(frames, ignore_index=True)
    _check_duplicates(out)
    return out


def check_reported(raw: pd.DataFrame, source: str = "reported") -> pd.DataFrame:
    """Validate and normalise one table of reported numbers; ``source`` names it in errors."""
    missing = [c for c in COLUMNS if c not in raw.columns]
    if missing:
        raise DataError(f"{source}: missing column(s) {', '.join(missing)}; expected {','.join(COLUMNS)}")
    df = raw.copy()
    if "method_label" not in df:
        df["method_label"] = ""
    known = {s.name for s in metric_specs()}
    for col in TEXT:
        df[col] = df[col].fillna("").astype(str).str.strip()
    shots, values = [], []
    for i, row in enumerate(df.itertuples(index=False)):
        where = f"{source}, line {i + 2}"
        for col in ("method", "dataset", "category", "metric", "paper"):
            if not getattr(row, col):
                raise DataError(f"{where}: empty {col!r}; every number needs its {col}")
        if row.metric not in known:
            raise DataError(f"{where}: unknown metric {row.metric!r}; use one of {', '.join(sorted(known))}")
        try:
            k = int(str(row.shots))
        except ValueError:
            raise DataError(f"{where}: shots {row.shots!r} is not an integer; write 0 for zero-shot") from None
        try:
            value = float(str(row.value))
        except ValueError:
            raise DataError(f"{where}: value {row.value!r} is not a number; write it in percent as printed") from None
        if k < 0 or not math.isfinite(value) or not 0.0 <= value <= 100.0:
            raise DataError(f"{where}: shots {k} / value {value} out of range; shots >= 0 and value in percent, 0-100")
        shots.append(k)
        values.append(value)
    df["shots"] = pd.Series(shots, index=df.index, dtype=int)
    df["value"] = pd.Series(values, index=df.index, dtype=float)
    if len(df) and df["value"].max() <= 1.0:
        raise DataError(f"{source}: every value is <= 1, which looks like fractions; write percent as printed (91.6)")
    df["source"] = source
    return df[[*COLUMNS, "method_label", "source"]]


def _check_duplicates(df: pd.DataFrame) -> None:
    dup = df[df.duplicated(IDENTITY, keep=False)]
    if not dup.empty:
        first = dup.iloc[0]
        raise DataError(
            f"{first['source']}: {first['method']} {first['metric']} on {first['dataset']}/{first['category']} "
            f"({first['shots']}-shot, {first['paper']}) is given more than once; keep one value"
        )


def reported_variants(
    reported: pd.DataFrame | None, frame: pd.DataFrame, datasets: set[str], metrics: list[str]
) -> tuple[list[Variant], dict[tuple[int, str, str, str], float]]:
    """Reported variants with a number on the table's datasets and metrics, and their values by
    (variant, dataset, category, metric)."""
    if reported is None:
        return [], {}
    if not isinstance(reported, pd.DataFrame):
        raise ConfigError(f"reported must be a DataFrame from load_reported(), got {type(reported).__name__}")
    rep = reported if "source" in reported.columns else check_reported(reported)
    _check_duplicates(rep)
    rep = rep[rep["dataset"].isin(datasets) & rep["metric"].isin(metrics)]
    our_labels = dict(zip(frame["method"], frame["method_label"]))
    variants: list[Variant] = []
    values: dict[tuple[int, str, str, str], float] = {}
    for (method, method_label, shots, paper), group in rep.groupby(
        ["method", "method_label", "shots", "paper"], sort=False
    ):
        label = method_label or our_labels.get(method) or method
        variants.append(
            Variant(
                label=label + (f" ({shots}-shot)" if shots > 0 else ""),
                method=method, method_label=label, shots=int(shots), reported=True, paper=paper,
                tables=tuple(dict.fromkeys(group["table"])),
            )
        )
        r = len(variants) - 1
        for row in group.itertuples(index=False):
            values[(r, row.dataset, row.category, row.metric)] = float(row.value)
    labels = [v.label for v in variants]
    variants = [
        replace(v, label=f"{v.label} ({v.paper})") if labels.count(v.label) > 1 else v
        for v in variants
    ]
    return variants, values
