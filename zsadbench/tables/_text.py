"""Markdown and CSV renderings of a :class:`TableModel`."""
from __future__ import annotations

import math
from typing import Any

import pandas as pd

from ._ci import interval_text
from ._model import RECOMPUTED, Cell, TableModel
from ._notes import footnotes

DASH = "–"


def to_markdown(model: TableModel) -> str:
    """A GitHub-flavoured pipe table: best **bold**, second <u>underlined</u>, footnotes below."""
    first, second = model.label_columns()
    header = [first, second] + [
        f"{_md(v.display)}<br>{_md(spec.label)} {_arrow(spec)}" for v in model.variants for spec in model.metrics
    ]
    lines = []
    if model.caption:
        lines += [f"**{_md(model.caption)}**", ""]
    lines.append(_md_line(header))
    lines.append(_md_line([":--", ":--"] + ["--:"] * (len(header) - 2)))
    for group in model.groups():
        for k, row in enumerate(group):
            a, b = model.row_labels(row)
            cells = [_md(a) if k == 0 else "", _md(b)]
            for i in range(len(model.variants)):
                for spec in model.metrics:
                    cells.append(_md_cell(model, row.cell(i, spec.name), model.markers(row, i, spec.name)))
            lines.append(_md_line(cells))
    for marker, text in footnotes(model):
        lines += ["", f"{_md(marker)} {_md(text)}".strip()]
    return "\n".join(lines) + "\n"


def _md_cell(model: TableModel, cell: Cell, markers: str) -> str:
    if cell.missing:
        return DASH + _md(markers)
    text = model.fmt(cell.mean)
    if cell.rank == 1:
        text = f"**{text}**"
    elif cell.rank == 2:
        text = f"<u>{text}</u>"
    if not math.isnan(cell.std):
        text += f" ± {model.fmt(cell.std)}"
    if cell.has_interval:
        text += " " + interval_text(model, cell.lo, cell.hi)
    return text + _md(markers)


def _md(text: str) -> str:
    """Escape what Markdown would read as table syntax or emphasis."""
    return text.replace("|", "&#124;").replace("*", "\\*").replace("_", "\\_")


def _md_line(cells: list[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def _arrow(spec: Any) -> str:
    return "↑" if spec.higher_is_better else "↓"


def to_csv(model: TableModel, layout: str) -> str:
    """``wide``: the table's rows and one column per variant × metric (plus ``std`` columns, ``ci_lo``/``ci_hi``
    columns where intervals are shown, a ``covers`` column for each variant × metric with an incomplete number,
    and ``notes``); ``long``: one tidy row per variant × dataset × category × metric with mean, std, n_seeds,
    the cells it covers and, when the table has intervals, ``ci_lo``, ``ci_hi`` and ``ci_level``."""
    frame = _wide(model) if layout == "wide" else _long(model)
    return frame.to_csv(index=False, lineterminator="\n")


def _wide(model: TableModel) -> pd.DataFrame:
    records = []
    notes_by_row = _row_notes(model)
    for n, row in enumerate(model.rows):
        rec: dict[str, object] = {
            "domain": row.domain,
            "dataset": row.dataset_label,
            "category": row.category if row.kind == "category" else "mean",
        }
        for i, v in enumerate(model.variants):
            for spec in model.metrics:
                cell = row.cell(i, spec.name)
                rec[f"{v.display} {spec.label}"] = math.nan if cell.missing else model.rounded(cell.mean)
                rec[f"{v.display} {spec.label} std"] = math.nan if math.isnan(cell.std) else model.rounded(cell.std)
                for end, value in (("ci_lo", cell.lo), ("ci_hi", cell.hi)):
                    rec[f"{v.display} {spec.label} {end}"] = model.rounded(value) if cell.has_interval else math.nan
                rec[f"{v.display} {spec.label} covers"] = (
                    "" if cell.missing else cell.coverage.text() if cell.incomplete else "complete")
        rec["notes"] = "; ".join(notes_by_row[n])
        records.append(rec)
    frame = pd.DataFrame.from_records(records)
    empty_std = [c for c in frame.columns if c.endswith((" std", " ci_lo", " ci_hi")) and frame[c].isna().all()]
    complete = [c for c in frame.columns if c.endswith(" covers") and frame[c].isin(["", "complete"]).all()]
    return frame.drop(columns=empty_std + complete)


def _row_notes(model: TableModel) -> list[list[str]]:
    out = []
    for row in model.rows:
        notes = [
            f"{model.variants[i].display}: {model.failed_text(row, n, m)}" for i, (n, m) in row.failed.items() if n
        ]
        for i, v in enumerate(model.variants):
            cov = [f"{s.label} covers {c.coverage.text()}" for s in model.metrics
                   if (c := row.cell(i, s.name)).incomplete]
            if cov:
                notes.append(f"{v.display}: {', '.join(cov)} (not ranked)")
        out.append(notes)
    return out


def _long(model: TableModel) -> pd.DataFrame:
    records = []
    with_ci = any(c.has_interval for row in model.rows for c in row.cells.values())
    for row in model.rows:
        for i, v in enumerate(model.variants):
            n_failed, n_total = row.failed.get(i, (0, 0))
            for spec in model.metrics:
                cell = row.cell(i, spec.name)
                if cell.missing:
                    continue
                cov = cell.coverage
                cells = None if cov is None else cov.cells
                records.append({
                    "variant": v.display, "method": v.method, "method_label": v.method_label, "shots": v.shots,
                    "pretrained": v.pretrained, "random_init": v.random_init, "config_hash": v.config_hash,
                    "aux": dict(v.aux_by_dataset).get(row.dataset, v.aux), "protocol": v.protocol,
                    "eval_size": v.eval_size if not v.reported else None,
                    "source": f"reported: {v.paper}" if v.reported else "zsadbench",
                    "domain": row.domain, "dataset": row.dataset, "dataset_label": row.dataset_label,
                    "category": row.category if row.kind == "category" else "mean",
                    "metric": spec.name, "metric_label": spec.label,
                    "mean": cell.mean, "std": cell.std,
                    "n_seeds": None if v.reported else cell.n_seeds,
                    "n_failed": n_failed, "n_total": n_total,
                    "n_datasets": None if cov is None or cov.datasets is None else cov.datasets[0],
                    "covered_cells": None if cells is None else cells[0],
                    "expected_cells": None if cells is None else cells[1],
                    "complete": not cell.incomplete,
                    "recomputed": RECOMPUTED in model.markers(row, i, spec.name),
                })
                if with_ci:
                    records[-1].update(ci_lo=cell.lo if cell.has_interval else math.nan,
                                       ci_hi=cell.hi if cell.has_interval else math.nan, ci_level=model.ci_level)
    frame = pd.DataFrame.from_records(records)
    for col in ("eval_size", "n_seeds", "n_datasets", "covered_cells", "expected_cells"):
        if col in frame:
            frame[col] = frame[col].astype("Int64")
    return frame
