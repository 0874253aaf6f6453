"""``make_paper_tables``: every table of a results folder in the MPAMA paper's layout, as LaTeX (pure)."""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

import pandas as pd

from ..errors import ConfigError
from ._aggregate import build_model, variant_labels
from ._ci import MEAN, Intervals, check_style
from ._coverage import expected_categories
from ._latex import TEXT_WIDTH_CM
from ._model import select_metrics
from ._reported import check_reported
from ._paper import PRO_METRICS, ablation_table, category_table, levels, main_table

_LABEL = re.compile(r"^[A-Za-z0-9:._-]+$")


def make_paper_tables(
    df: pd.DataFrame,
    *,
    reported: pd.DataFrame | None = None,
    pro: str = "aupro_anomalyclip",
    delta: bool = False,
    per_category: bool = True,
    digits: int = 1,
    caption: str | None = None,
    label: str | None = None,
    by_aux: bool = False,
    categories: Mapping[str, Iterable[str]] | None = None,
    variants: Sequence[str] | None = None,
    text_width_cm: float = TEXT_WIDTH_CM,
    intervals: Intervals | None = None,
    ci_style: str = "pm",
) -> dict[str, str]:
    """Name → LaTeX table: ``main`` (or ``main-<domain>`` per domain when there are several), with
    ``per_category`` one ``<dataset>-<metric>`` table per dataset and metric, and ``ablation-<method>`` for each
    method run in several configurations (or reported with ablation variants). Reported numbers are shown for
    the shot counts of our results only. ``pro`` picks the PRO of the
    pixel pairs; ``delta`` adds Δ columns (ours minus the reported number); ``caption``/``label`` apply to the
    main table(s), suffixed per domain. ``intervals`` (keyed by the labels the table of all of ``df`` gives our
    variants) are listed in each table's notes, per column and row, and marked § on the columns they belong to
    (see :mod:`._paper`); ``ci_style`` lists them as ``±half-width`` or ``[lo, hi]``."""
    if pro not in PRO_METRICS:
        raise ConfigError(f"unknown PRO metric {pro!r}; choose {' or '.join(PRO_METRICS)}")
    if label is not None and not _LABEL.match(label):
        raise ConfigError(f"LaTeX label {label!r} may hold only letters, digits and : . _ -; e.g. tab:zsad")
    if isinstance(digits, bool) or not isinstance(digits, int) or not 0 <= digits <= 6:
        raise ConfigError(f"digits must be an integer from 0 to 6, got {digits!r}")
    if isinstance(text_width_cm, bool) or not isinstance(text_width_cm, (int, float)) or not text_width_cm > 0:
        raise ConfigError(f"text_width_cm must be a positive number of cm, got {text_width_cm!r}")
    check_style(ci_style)
    if reported is not None and "source" not in reported.columns:
        reported = check_reported(reported)
    if reported is not None:  # only the settings of our results: a zero-shot table gets no few-shot columns
        reported = reported[reported["shots"].isin(set(df["shots"].astype(int)))]
    main_rep = None if reported is None else reported[reported["variant"] == ""]
    names = [m for level in levels(pro) for m in level.metrics]
    specs = select_metrics(names, None)
    expected = {ds: set(cats) | set((categories or {}).get(ds, ())) for ds, cats in expected_categories(df).items()}
    if variants is not None:
        held = list(dict.fromkeys(variant_labels(df, by_aux=by_aux)))
        unknown = [v for v in variants if v not in held]
        if unknown:
            raise ConfigError(f"variant {unknown[0]!r} is not in these results; they hold {', '.join(held)}")
    common: dict = dict(digits=digits, by_aux=by_aux, categories=expected)
    if intervals is not None:  # keyed by the whole frame's labels, whichever part a table shows
        common.update(intervals=intervals, ci_labels=variant_labels(df, by_aux=by_aux))
    width = dict(text_width_cm=text_width_cm)
    out: dict[str, str] = {}
    domains = list(dict.fromkeys(df["domain"].astype(str)))
    for domain in domains:
        part = df[df["domain"].astype(str) == domain]
        suffix = f"-{domain}" if len(domains) > 1 else ""
        keep = _chosen(part, variants, by_aux)
        if keep is None:
            continue
        model = build_model(part, specs, reported=main_rep, per_category=False, ci_mean=domain if suffix else MEAN,
                            **common, **keep)
        model.ci_style = ci_style
        model.caption = (caption + (f" ({domain})" if suffix else "")) if caption else (
            f"Results on the {domain} datasets." if domain else "Results.")
        model.label = (label + suffix) if label else f"tab:main{suffix}"
        out[f"main{suffix}"] = main_table(model, pro, delta=delta, **width)
    if per_category:
        model = build_model(df, specs, reported=main_rep, per_category=True, **common, **_chosen(df, variants, by_aux))
        model.ci_style = ci_style
        for row in (r for r in model.rows if r.kind == "dataset"):
            for spec in model.metrics:
                if any(not c.missing for r in model.rows if r.dataset == row.dataset and r.kind == "category"
                       for (_, m), c in r.cells.items() if m == spec.name):
                    model.caption = f"Per-category {spec.label} on {row.dataset_label}."
                    model.label = f"tab:{row.dataset}-{spec.name}"
                    out[f"{row.dataset}-{spec.name}"] = category_table(model, row.dataset, spec.name, **width)
    for method in dict.fromkeys(df["method"].astype(str)):
        part = df[df["method"].astype(str) == method]
        keep = _chosen(part, variants, by_aux)
        if keep is None:
            continue
        rep = None if reported is None else reported[(reported["method"] == method) & (reported["variant"] != "")]
        model = build_model(part, specs, reported=rep, per_category=False, **common, **keep)
        model.ci_style = ci_style
        if len(model.variants) < 2 or len({(v.shots, v.random_init) for v in model.variants}) > 1:
            continue
        model.caption = f"Ablation of {model.variants[0].method_label}: one row per configuration."
        model.label = f"tab:ablation-{method}"
        out[f"ablation-{method}"] = ablation_table(model, pro, **width)
    return out


def _chosen(part: pd.DataFrame, variants: Sequence[str] | None, by_aux: bool) -> dict | None:
    """``build_model``'s ``chosen`` for ``part``: {} for every variant, ``None`` when it has none of them."""
    if variants is None:
        return {}
    present = [v for v in dict.fromkeys(variant_labels(part, by_aux=by_aux)) if v in variants]
    return {"chosen": present} if present else None
