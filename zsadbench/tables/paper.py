"""``make_paper_tables``: every table of a results folder in the MPAMA paper's layout, as LaTeX (pure)."""
from __future__ import annotations

import re

import pandas as pd

from ..errors import ConfigError
from ._aggregate import build_model
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
) -> dict[str, str]:
    """Name → LaTeX table: ``main`` (or ``main-<domain>`` per domain when there are several), with
    ``per_category`` one ``<dataset>-<metric>`` table per dataset and metric, and ``ablation-<method>`` for each
    method run in several configurations (or reported with ablation variants). Reported numbers are shown for
    the shot counts of our results only. ``pro`` picks the PRO of the
    pixel pairs; ``delta`` adds Δ columns (ours minus the reported number); ``caption``/``label`` apply to the
    main table(s), suffixed per domain."""
    if pro not in PRO_METRICS:
        raise ConfigError(f"unknown PRO metric {pro!r}; choose {' or '.join(PRO_METRICS)}")
    if label is not None and not _LABEL.match(label):
        raise ConfigError(f"LaTeX label {label!r} may hold only letters, digits and : . _ -; e.g. tab:zsad")
    if isinstance(digits, bool) or not isinstance(digits, int) or not 0 <= digits <= 6:
        raise ConfigError(f"digits must be an integer from 0 to 6, got {digits!r}")
    if reported is not None and "source" not in reported.columns:
        reported = check_reported(reported)
    if reported is not None:  # only the settings of our results: a zero-shot table gets no few-shot columns
        reported = reported[reported["shots"].isin(set(df["shots"].astype(int)))]
    main_rep = None if reported is None else reported[reported["variant"] == ""]
    names = [m for level in levels(pro) for m in level.metrics]
    specs = select_metrics(names, None)
    common = dict(digits=digits, by_aux=by_aux)
    out: dict[str, str] = {}
    domains = list(dict.fromkeys(df["domain"].astype(str)))
    for domain in domains:
        part = df[df["domain"].astype(str) == domain]
        suffix = f"-{domain}" if len(domains) > 1 else ""
        model = build_model(part, specs, reported=main_rep, per_category=False, **common)
        model.caption = (caption + (f" ({domain})" if suffix else "")) if caption else (
            f"Results on the {domain} datasets." if domain else "Results.")
        model.label = (label + suffix) if label else f"tab:main{suffix}"
        out[f"main{suffix}"] = main_table(model, pro, delta=delta)
    if per_category:
        model = build_model(df, specs, reported=main_rep, per_category=True, **common)
        for row in (r for r in model.rows if r.kind == "dataset"):
            for spec in model.metrics:
                if any(not c.missing for r in model.rows if r.dataset == row.dataset and r.kind == "category"
                       for (_, m), c in r.cells.items() if m == spec.name):
                    model.caption = f"Per-category {spec.label} on {row.dataset_label}."
                    model.label = f"tab:{row.dataset}-{spec.name}"
                    out[f"{row.dataset}-{spec.name}"] = category_table(model, row.dataset, spec.name)
    for method in dict.fromkeys(df["method"].astype(str)):
        part = df[df["method"].astype(str) == method]
        rep = None if reported is None else reported[(reported["method"] == method) & (reported["variant"] != "")]
        model = build_model(part, specs, reported=rep, per_category=False, **common)
        if len(model.variants) < 2 or len({(v.shots, v.random_init) for v in model.variants}) > 1:
            continue
        model.caption = f"Ablation of {model.variants[0].method_label}: one row per configuration."
        model.label = f"tab:ablation-{method}"
        out[f"ablation-{method}"] = ablation_table(model, pro)
    return out
