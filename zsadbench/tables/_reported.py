"""Numbers quoted from papers, kept as data and shown beside ours (marked †).

A reported-numbers CSV follows the schema of :mod:`._reported_schema`: ``method,dataset,category,shots,metric,
value,paper,table`` and optionally ``method_label,variant,setting,note``. ``value`` is as printed (percent for
metrics), ``category`` is ``mean`` for a dataset mean, and method, dataset and category names resolve (a
registered method or a known baseline; a registered dataset and one of its categories) so that the numbers line
up with our rows. Reported dataset scores come from their ``mean`` rows only (never re-derived from categories);
the Mean over datasets is computed over the datasets of the table.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

import pandas as pd

from ..errors import ConfigError, DataError
from ._model import Variant, metric_specs
from ._reported_schema import (
    COSTS, OPTIONAL, REQUIRED, check_names, check_variant, method_label, parse_shots, parse_value, shots_text,
)

COLUMNS = REQUIRED
TEXT = ("method", "dataset", "category", "metric", "paper", "table", *OPTIONAL)
IDENTITY = ["method", "method_label", "variant", "dataset", "category", "shots", "metric", "paper", "table"]
#: one number of one configuration, whichever of the paper's tables prints it
NUMBER = ["method", "method_label", "variant", "dataset", "category", "shots", "metric", "paper"]


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
    missing = [c for c in REQUIRED if c not in raw.columns]
    if missing:
        raise DataError(f"{source}: missing column(s) {', '.join(missing)}; expected {','.join(REQUIRED)}")
    unknown = [c for c in raw.columns if c not in REQUIRED and c not in OPTIONAL]
    if unknown:
        raise DataError(f"{source}: unknown column(s) {', '.join(unknown)}; optional ones are {','.join(OPTIONAL)}")
    df = raw.copy()
    for col in OPTIONAL:
        if col not in df:
            df[col] = ""
    known = {s.name for s in metric_specs()} | set(COSTS)
    for col in TEXT:
        df[col] = df[col].fillna("").astype(str).str.strip()
    shots, values = [], []
    for i, row in enumerate(df.itertuples(index=False)):
        where = f"{source}, line {i + 2}"
        for col in ("method", "category", "metric", "paper", "table"):
            if not getattr(row, col):
                raise DataError(f"{where}: empty {col!r}; every number needs its {col}")
        if row.metric not in known:
            raise DataError(f"{where}: unknown metric {row.metric!r}; use one of {', '.join(sorted(known))}")
        check_names(row.method, row.dataset, row.category, row.metric, where)
        check_variant(row.variant, where)
        shots.append(parse_shots(str(row.shots).strip(), where))
        values.append(parse_value(str(row.value).strip(), row.metric, where))
    df["decimals"] = [len(str(v).strip().partition(".")[2]) for v in df["value"]]
    df["shots"] = pd.Series(shots, index=df.index, dtype=int)
    df["value"] = pd.Series(values, index=df.index, dtype=float)
    percent = df[~df["metric"].isin(list(COSTS))]["value"]
    if len(percent) and percent.max() <= 1.0:
        raise DataError(f"{source}: every value is <= 1, which looks like fractions; write percent as printed (91.6)")
    df["method_label"] = [label or method_label(m) for m, label in zip(df["method"], df["method_label"])]
    df["source"] = source
    return df[[*REQUIRED, *OPTIONAL, "decimals", "source"]]


def _check_duplicates(df: pd.DataFrame) -> None:
    dup = df[df.duplicated(IDENTITY, keep=False)]
    if not dup.empty:
        first = dup.iloc[0]
        raise DataError(
            f"{first['source']}: {first['method']} {first['metric']} on {first['dataset']}/{first['category']} "
            f"({shots_text(first['shots'])}, {first['paper']}, {first['table']}) is given more than once; keep one value"
        )
    # one number printed in two tables agrees when both round to the coarser of the two precisions
    coarse = df.groupby(NUMBER, dropna=False)["decimals"].transform("min")
    rounded = pd.Series([round(v, int(d)) for v, d in zip(df["value"], coarse)], index=df.index)
    clash = df[rounded.groupby([df[c] for c in NUMBER], dropna=False).transform("nunique") > 1]
    if not clash.empty:
        first = clash.iloc[0]
        same = clash[(clash[NUMBER] == first[NUMBER]).all(axis=1)]
        where = ", ".join(f"{t}: {v:g}" for t, v in zip(same["table"], same["value"]))
        files = ", ".join(dict.fromkeys(same["source"]))
        raise DataError(
            f"{files}: {first['paper']} prints {first['method']} {first['metric']} on {first['dataset']}/{first['category']} "
            f"with different values ({where}); give them different variants or load one table"
        )


def reported_variants(
    reported: pd.DataFrame | None, frame: pd.DataFrame, datasets: set[str], metrics: list[str]
) -> tuple[list[Variant], dict[tuple[int, str, str, str], float]]:
    """Reported variants with a number on the table's datasets and metrics, and their values by
    (variant, dataset, category, metric). With several papers, each variant's ``source`` numbers its paper."""
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
    for (method, label, options, shots, paper), group in rep.groupby(
        ["method", "method_label", "variant", "shots", "paper"], sort=False
    ):
        label = label or our_labels.get(method) or method
        variants.append(
            Variant(
                label=label + (f" [{options}]" if options else "") + (f" ({shots_text(shots)})" if shots else ""),
                method=method, method_label=label, shots=int(shots), reported=True, paper=paper,
                tables=tuple(dict.fromkeys(group["table"])), options=options,
            )
        )
        r = len(variants) - 1
        for row in group.sort_values("decimals").itertuples(index=False):  # the most precise print wins
            values[(r, row.dataset, row.category, row.metric)] = float(row.value)
    papers = list(dict.fromkeys(v.paper for v in variants))
    if len(papers) > 1:  # short marks (†1, †2) instead of whole source strings in the headers
        variants = [replace(v, source=papers.index(v.paper) + 1) for v in variants]
    return variants, values
