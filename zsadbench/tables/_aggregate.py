"""From the store's DataFrame (one row per finished cell) to a :class:`TableModel`.

Aggregation rules:

* per (variant, dataset, category): mean ± sample std (ddof=1) over the seeds that finished;
* dataset score: per seed, the macro mean over the categories that finished, then mean ± std over seeds;
* Mean row: the macro mean of the dataset scores over the datasets where the metric has a value; its std is
  taken over the per-seed means of the seeds that every one of those datasets has.

Every number carries its :class:`~._coverage.Coverage`: the cells it covers against the cells expected (see
``_coverage``). A Mean over fewer datasets than others have, or over fewer categories or seeds than the results
hold, is incomplete (marked, not ranked).

Failed cells are left out of every mean and flagged on the rows they touch. A variant is
(method, shots, pretrained, random_init, precision, config_hash, auxiliary key, eval_size, test limit): two
evaluation resolutions or precisions never share a column, nor do a smoke run's cells (``--limit``) and full ones. The plots group cells into the same variants
(:func:`variant_labels`).

The auxiliary key of a trained zero-shot method is its protocol when a cell's auxiliary set is the one that
protocol pairs with its dataset (the protocol decides which set each dataset trains on, so the cells of one
protocol make one column with a ranked Mean), else the auxiliary set itself (a forced ``--aux``, or a cell with
no recorded protocol). ``by_aux`` keys every cell by its auxiliary set: one column per set.
"""
from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from ..errors import ConfigError
from ._ci import MEAN, Intervals, attach
from ._coverage import Coverage, expected_categories
from ._model import Cell, Row, TableModel, Variant
from ._reported import reported_variants

REQUIRED = (
    "method", "method_label", "config_hash", "dataset", "dataset_label", "domain", "category",
    "shots", "seed", "aux", "eval_size", "pretrained", "precision", "random_init", "status",
)
VARIANT_KEYS = ("method", "shots", "pretrained", "random_init", "precision", "config_hash", "_aux_key", "eval_size",
                "test_limit")
DOMAIN_ORDER = {"industrial": 0, "medical": 1, "synthetic": 2}
_V = "_variant"
_FAMILY = "_family"  # a variant at every shot count


def build_model(
    df: pd.DataFrame,
    specs: list[Any],
    *,
    per_category: bool,
    digits: int,
    reported: pd.DataFrame | None = None,
    by_aux: bool = False,
    categories: Mapping[str, Iterable[str]] | None = None,
    chosen: Collection[str] | None = None,
    intervals: Intervals | None = None,
    ci_labels: pd.Series | None = None,
    ci_mean: str = MEAN,
) -> TableModel:
    """Aggregate ``df`` (fractions) into a ranked :class:`TableModel` of percentages.

    ``categories`` adds expected categories per dataset to those ``df`` holds (pass
    :func:`~._coverage.expected_categories` of the whole results folder when ``df`` is a selection of it).
    ``chosen`` keeps only our variants with these labels, labelled (and expected to cover) as in all of ``df``.
    ``intervals`` adds confidence intervals to our numbers, keyed by our variants' labels, or by ``ci_labels``
    (a label per row of ``df``) when ``df`` is a part of the frame the intervals were labelled on; the Mean row
    takes the interval of category ``ci_mean`` (a domain, for a table of one domain's datasets).
    """
    frame = _prepare(df, [s.name for s in specs], by_aux)
    ours = _our_variants(frame)
    expected = _Expected(frame, categories)
    if chosen is not None:
        frame, ours = _choose(frame, ours, chosen, expected)
    ok, failed = _split_status(frame)
    names = [s.name for s in specs]
    stats = _Stats(ok, names, expected)
    parts = _Failures(frame, failed)

    datasets = _dataset_order(frame)
    rep_variants, rep_values = reported_variants(reported, frame, set(datasets), names)
    variants, index_of = _arrange(ours, rep_variants)

    rows: list[Row] = []
    for ds, (domain, label) in datasets.items():
        categories = sorted(frame.loc[frame["dataset"] == ds, "category"].unique())
        ds_row = Row("dataset", domain, ds, label)
        for v in range(len(ours)):
            _fill(ds_row, index_of[("ours", v)], names, stats.dataset, (v, ds), stats.dataset_coverage)
            ds_row.failed[index_of[("ours", v)]] = parts.of((v, ds))
        for r in range(len(rep_variants)):
            _fill_reported(ds_row, index_of[("rep", r)], names, rep_values, r, ds, "mean")
        if per_category:
            for cat in categories:
                row = Row("category", domain, ds, label, cat)
                for v in range(len(ours)):
                    _fill(row, index_of[("ours", v)], names, stats.category, (v, ds, cat), stats.category_coverage)
                    row.failed[index_of[("ours", v)]] = parts.of((v, ds, cat))
                for r in range(len(rep_variants)):
                    _fill_reported(row, index_of[("rep", r)], names, rep_values, r, ds, cat)
                rows.append(row)
        rows.append(ds_row)

    rows.append(_mean_row(rows, variants, names, stats, index_of))
    shown = {m for row in rows for (_, m), c in row.cells.items() if not c.missing}
    metric_shown = [s for s in specs if s.name in shown]
    if not metric_shown:
        raise ConfigError(
            "none of the selected metrics has a value in these results; choose other metrics or another level"
        )
    model = TableModel(variants, metric_shown, rows, per_category, digits)
    model.rank()
    if intervals is not None:
        first = frame.drop_duplicates(_V).sort_values(_V)
        labels = [v.label for v in ours] if ci_labels is None else [str(ci_labels.loc[i]) for i in first.index]
        attach(model, intervals, {index_of[("ours", v)]: label for v, label in enumerate(labels)}, ci_mean)
    return model


def variant_labels(df: pd.DataFrame, *, across_shots: bool = False, by_aux: bool = False) -> pd.Series:
    """The column label of each row's variant, as :func:`build_model` groups and labels them; ``across_shots``
    makes one variant of every shot count (the rows' shots are not told apart)."""
    frame = _prepare(df.assign(shots=0) if across_shots else df, [], by_aux)
    labels = {i: v.label for i, v in enumerate(_our_variants(frame))}
    return frame[_V].map(labels)


def _choose(frame: pd.DataFrame, ours: list[Variant], chosen: Collection[str], expected: _Expected
            ) -> tuple[pd.DataFrame, list[Variant]]:
    """The rows and variants of the ``chosen`` labels, renumbered."""
    held = [v.label for v in ours]
    unknown = [label for label in chosen if label not in held]
    if unknown:
        raise ConfigError(f"variant {unknown[0]!r} is not in these results; they hold {', '.join(held)}")
    keep = [v for v, label in enumerate(held) if label in chosen]
    new = {old: k for k, old in enumerate(keep)}
    expected.seeds = {new[v]: n for v, n in expected.seeds.items() if v in new}
    frame = frame[frame[_V].isin(keep)].copy()
    frame[_V] = frame[_V].map(new)
    return frame, [ours[v] for v in keep]


def _prepare(df: pd.DataFrame, names: list[str], by_aux: bool) -> pd.DataFrame:
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise ConfigError(
            f"results table lacks column(s) {', '.join(missing)}; pass the frame of ResultStore.to_frame()"
        )
    if df.empty:
        raise ConfigError("results table is empty: nothing to tabulate; run `zsadbench run` first")
    frame = df.copy()
    bad = sorted(set(frame["status"].astype(str)) - {"ok", "failed"})
    if bad:
        raise ConfigError(
            f"results column 'status' has value(s) {', '.join(map(repr, bad))}; expected 'ok' or 'failed'"
        )
    for name in names:
        frame[name] = pd.to_numeric(frame[name], errors="coerce") * 100.0 if name in frame else np.nan
    for col in ("config_hash", "aux", "pretrained", "precision", "method", "method_label", "dataset", "category",
                "domain"):
        frame[col] = frame[col].fillna("").astype(str)
    protocol = frame["protocol"] if "protocol" in frame else pd.Series("", index=frame.index)
    frame["protocol"] = protocol.fillna("").astype(str)
    frame["_aux_key"] = _aux_keys(frame, by_aux)
    frame["random_init"] = frame["random_init"].astype(bool)
    limit = frame["test_limit"] if "test_limit" in frame else pd.Series(0, index=frame.index)
    frame["test_limit"] = pd.to_numeric(limit, errors="coerce").fillna(0).astype(int)
    frame[_V] = frame.groupby(list(VARIANT_KEYS), sort=False, dropna=False).ngroup()
    frame[_FAMILY] = frame.groupby([k for k in VARIANT_KEYS if k != "shots"], sort=False, dropna=False).ngroup()
    return frame


def _aux_keys(frame: pd.DataFrame, by_aux: bool) -> pd.Series:
    """``protocol:P`` for cells to merge under their protocol, ``aux:A`` for a column of one auxiliary set."""
    keys = pd.Series(
        ["" if not a else f"aux:{a}" if by_aux or not p else f"protocol:{p}"
         for a, p in zip(frame["aux"], frame["protocol"])],
        index=frame.index, dtype=object,
    )
    merged = keys.str.startswith("protocol:")
    if merged.any():
        # a dataset seen with two auxiliary sets under one protocol: the cells off the protocol's pairing
        # (a forced --aux) get their own column
        group = [c for c in VARIANT_KEYS if c != "_aux_key"] + ["dataset"]
        sets = frame[merged].assign(_aux_key=keys[merged]).groupby(group + ["_aux_key"], dropna=False)["aux"]
        mixed = sets.transform("nunique") > 1
        if mixed.any():
            from ..runner.plan import auxiliary_for  # imported on use: the runner package loads torch

            for i in mixed[mixed].index:
                if frame.at[i, "aux"] != auxiliary_for(frame.at[i, "dataset"], frame.at[i, "protocol"]):
                    keys.at[i] = f"aux:{frame.at[i, 'aux']}"
    return keys


def _split_status(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Finished cells (unique per variant/dataset/category/seed) and failures not superseded by a success."""
    cell = [_V, "dataset", "category", "seed"]
    ok = frame[frame["status"] == "ok"]
    dup = ok[ok.duplicated(cell, keep=False)]
    if not dup.empty:
        first = dup.iloc[0]
        raise ConfigError(
            f"results hold {int(ok.duplicated(cell).sum())} duplicate finished cell(s), e.g. {first['method']} on "
            f"{first['dataset']}/{first['category']} seed {first['seed']}; keep one row per cell"
        )
    failed = frame[frame["status"] == "failed"]
    done = set(map(tuple, ok[cell].to_numpy().tolist()))
    keep = [tuple(r) not in done for r in failed[cell].to_numpy().tolist()]
    return ok, failed[np.array(keep, dtype=bool)]


class _Expected:
    """How many categories each dataset and how many seeds each variant should have (see ``_coverage``)."""

    def __init__(self, frame: pd.DataFrame, extra: Mapping[str, Iterable[str]] | None) -> None:
        extra = extra or {}
        self.categories = {ds: len(set(cats) | set(extra.get(ds, ())))
                           for ds, cats in expected_categories(frame).items()}
        family_seeds = frame.groupby(_FAMILY)["seed"].nunique()
        first = frame.drop_duplicates(_V)
        self.seeds = {int(v): int(family_seeds[f]) for v, f in zip(first[_V], first[_FAMILY])}

    def cells(self, v: int, datasets: Iterable[str]) -> int:
        return sum(self.categories[ds] for ds in datasets) * self.seeds[v]


class _Stats:
    """Means, stds and seed counts per category and per dataset, as dicts keyed by (variant, dataset[, cat]),
    and the cells each covers."""

    def __init__(self, ok: pd.DataFrame, names: list[str], expected: _Expected) -> None:
        self.expected = expected
        self.category = _moments(ok.groupby([_V, "dataset", "category"])[names])
        per_seed = ok.groupby([_V, "dataset", "seed"])[names].mean()
        self.dataset = _moments(per_seed.groupby(level=[0, 1]))
        self.dataset_seeds: dict[tuple[int, str], pd.DataFrame] = {
            (int(v), str(ds)): g.droplevel([0, 1]) for (v, ds), g in per_seed.groupby(level=[0, 1])
        }
        self.cells = ok.groupby([_V, "dataset"])[names].count().to_dict(orient="index")

    def category_coverage(self, key: tuple, name: str) -> Coverage:
        seeds = self.expected.seeds[key[0]]
        return Coverage((int(self.category[key][2][name]), seeds), 1, seeds)

    def dataset_coverage(self, key: tuple, name: str) -> Coverage:
        v, ds = key
        return Coverage((int(self.cells[key][name]), self.expected.cells(v, [ds])), self.expected.categories[ds],
                        self.expected.seeds[v])

    def mean_coverage(self, v: int, have: list[str], applicable: list[str], name: str) -> Coverage:
        done = sum(int(self.cells[(v, ds)][name]) for ds in have)
        return Coverage((done, self.expected.cells(v, applicable)),
                        sum(self.expected.categories[ds] for ds in applicable), self.expected.seeds[v],
                        (len(have), len(applicable)))


def _moments(grouped: Any) -> dict[tuple, tuple[dict, dict, dict]]:
    mean, std, count = (t.to_dict(orient="index") for t in (grouped.mean(), grouped.std(ddof=1), grouped.count()))
    return {k: (mean[k], std[k], count[k]) for k in mean}


def _fill(row: Row, col: int, names: list[str], table: dict, key: tuple,
          coverage: Callable[[tuple, str], Coverage]) -> None:
    found = table.get(key)
    for name in names:
        if found is None or math.isnan(float(found[0][name])):
            row.cells[(col, name)] = Cell()
            continue
        mean, std, count = (float(found[0][name]), float(found[1][name]), int(found[2][name]))
        row.cells[(col, name)] = Cell(mean, std if count >= 2 else math.nan, count, coverage(key, name))


def _fill_reported(row: Row, col: int, names: list[str], values: dict, r: int, ds: str, cat: str) -> None:
    for name in names:
        row.cells[(col, name)] = Cell(values.get((r, ds, cat, name), math.nan))


class _Failures:
    """(failed, total) categories per (variant, dataset) and seeds per (variant, dataset, category)."""

    def __init__(self, frame: pd.DataFrame, failed: pd.DataFrame) -> None:
        self.counts: dict[tuple, tuple[int, int]] = {}
        for keys, part in (([_V, "dataset"], "category"), ([_V, "dataset", "category"], "seed")):
            total = frame.groupby(keys)[part].nunique().to_dict()
            bad = failed.groupby(keys)[part].nunique().to_dict()
            self.counts.update({k: (int(bad.get(k, 0)), int(n)) for k, n in total.items()})

    def of(self, key: tuple) -> tuple[int, int]:
        return self.counts.get(key, (0, 0))


def _mean_row(
    rows: list[Row], variants: list[Variant], names: list[str], stats: _Stats, index_of: dict[tuple[str, int], int]
) -> Row:
    ds_rows = [r for r in rows if r.kind == "dataset"]
    real = [r for r in ds_rows if r.domain != "synthetic"]
    ds_rows = real or ds_rows  # generated test sets never enter the Mean of real datasets
    out = Row("mean", "", "mean", "Mean", "")
    ours_of = {col: v for (kind, v), col in index_of.items() if kind == "ours"}
    for name in names:
        applicable = [r for r in ds_rows if any(not r.cell(i, name).missing for i in range(len(variants)))]
        for col in range(len(variants)):
            have = [r for r in applicable if not r.cell(col, name).missing]
            if not have:
                out.cells[(col, name)] = Cell()
                continue
            mean = float(np.mean([r.cell(col, name).mean for r in have]))
            std, n_seeds = math.nan, 0
            coverage = Coverage(datasets=(len(have), len(applicable)))
            if col in ours_of:
                v, used = ours_of[col], [r.dataset for r in have]
                std, n_seeds = _mean_std(stats, v, used, name)
                coverage = stats.mean_coverage(v, used, [r.dataset for r in applicable], name)
            out.cells[(col, name)] = Cell(mean, std, n_seeds, coverage)
    for col in ours_of:
        flagged = sum(1 for r in ds_rows if r.failed.get(col, (0, 0))[0])
        out.failed[col] = (flagged, sum(1 for r in ds_rows if r.failed.get(col, (0, 0))[1]))
    return out


def _mean_std(stats: _Stats, v: int, datasets: list[str], name: str) -> tuple[float, int]:
    """Std over seeds of the per-seed macro mean over ``datasets`` (seeds common to all of them)."""
    columns = [stats.dataset_seeds[(v, ds)][name].rename(ds) for ds in datasets]
    per_seed = pd.concat(columns, axis=1).dropna()
    n = len(per_seed)
    return (float(per_seed.mean(axis=1).std(ddof=1)) if n >= 2 else math.nan), n


def _dataset_order(frame: pd.DataFrame) -> dict[str, tuple[str, str]]:
    """dataset -> (domain, label), by domain (industrial, medical, synthetic, other) then first appearance."""
    first = frame.drop_duplicates("dataset")
    order = sorted(range(len(first)), key=lambda i: (DOMAIN_ORDER.get(first["domain"].iloc[i], len(DOMAIN_ORDER)), i))
    names, domains, labels = (first[c].tolist() for c in ("dataset", "domain", "dataset_label"))
    return {names[i]: (domains[i], labels[i] or names[i]) for i in order}


def _our_variants(frame: pd.DataFrame) -> list[Variant]:
    """Our variants in order of first appearance, labelled so that every label is unique."""
    first = frame.drop_duplicates(_V).sort_values(_V)
    raw = []
    for r in first.to_dict("records"):
        kind, _, key = r["_aux_key"].partition(":")
        own = frame[frame[_V] == r[_V]].drop_duplicates("dataset")
        raw.append(dict(
            method=r["method"], method_label=r["method_label"] or r["method"], shots=int(r["shots"]),
            random_init=bool(r["random_init"]), pretrained=r["pretrained"], precision=r["precision"],
            config_hash=r["config_hash"],
            aux=key if kind == "aux" else "", protocol=key if kind == "protocol" else "",
            eval_size=int(r["eval_size"]), test_limit=int(r["test_limit"]),
            aux_by_dataset=tuple(zip(own["dataset"], own["aux"])) if kind == "protocol" else (),
            config=_config_of(r.get("config_json", "")),
        ))
    bases = [_base_qualifiers(v["shots"], v["random_init"], v["test_limit"]) for v in raw]
    out = []
    for v, quals in zip(raw, bases):
        group = [w for w, q in zip(raw, bases) if w["method_label"] == v["method_label"] and q == quals]
        extra = list(quals)
        for field, show in (
            ("method", lambda x: str(x)),
            ("pretrained", lambda x: str(x)),
            ("precision", lambda x: str(x)),
            ("protocol", lambda x: f"{x} protocol" if x else ""),
            ("aux", lambda x: f"aux {x}" if x else ""),
            ("eval_size", lambda x: f"{x} px"),
        ):
            if len({w[field] for w in group}) > 1 and show(v[field]):
                extra.append(show(v[field]))
        options = _differing_options(v, [w for w in group if w["config_hash"] != v["config_hash"]])
        label = v["method_label"] + (f" [{options}]" if options else "") + (f" ({', '.join(extra)})" if extra else "")
        own = re.search(r"\[([^\]]+)\]", v["method_label"])
        out.append(Variant(label=label, options=options or (own.group(1) if own else ""),
                           **{k: x for k, x in v.items() if k != "config"}))
    return out


def _config_of(text: Any) -> dict | None:
    try:
        config = json.loads(text) if isinstance(text, str) and text else None
    except json.JSONDecodeError:
        return None
    return config if isinstance(config, dict) and config else None


def _differing_options(v: dict, others: list[dict]) -> str:
    """``key=value`` for each config option where ``v`` differs from a variant of another config hash; the
    short hash when the configs were not stored or do not tell them apart."""
    if not others:
        return ""
    configs = [w["config"] for w in others]
    if v["config"] is None or any(c is None for c in configs):
        return str(v["config_hash"])[:7]
    keys = sorted({k for c in configs for k in set(c) | set(v["config"]) if c.get(k) != v["config"].get(k)})
    if not keys:
        return str(v["config_hash"])[:7]
    return "; ".join(f"{k}={_option_text(v['config'].get(k))}" for k in keys)


def _option_text(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(map(_option_text, value))
    return "none" if value is None else str(value)


def _base_qualifiers(shots: int, random_init: bool, test_limit: int = 0) -> tuple[str, ...]:
    quals = [f"{shots}-shot"] if shots > 0 else []
    if random_init:
        quals.append("random init")
    if test_limit:
        quals.append(f"smoke: ≤{test_limit} test images")
    return tuple(quals)


def _arrange(ours: list[Variant], reported: list[Variant]) -> tuple[list[Variant], dict[tuple[str, int], int]]:
    """Column order: each reported variant just before our variant of the same method and shots, others first."""
    placed: set[int] = set()
    order: list[tuple[str, int]] = []
    for v, var in enumerate(ours):
        for r, rep in enumerate(reported):
            if r not in placed and rep.method == var.method and rep.shots == var.shots:
                order.append(("rep", r))
                placed.add(r)
        order.append(("ours", v))
    order = [("rep", r) for r in range(len(reported)) if r not in placed] + order
    variants = [ours[i] if kind == "ours" else reported[i] for kind, i in order]
    return variants, {key: col for col, key in enumerate(order)}
