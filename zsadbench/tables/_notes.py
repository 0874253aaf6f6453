"""The footnotes of a table: one ``(marker, text)`` pair per marker and label it uses, decided once for every
format so that Markdown, LaTeX, rich and CSV explain the same marks the same way."""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from ._ci import ci_notes
from ._model import FAILED, PARTIAL, RECOMPUTED, Row, TableModel, Variant


def footnotes(model: TableModel, rows: Sequence[Row] | None = None, variants: Sequence[int] | None = None,
              metrics: Sequence[str] | None = None, *, intervals: bool = True) -> list[tuple[str, str]]:
    """The notes of the cells of ``rows`` × ``variants`` × ``metrics`` (default: the whole table), sources
    first; a table that shows part of a model (the paper layout's) passes the part it shows, and
    ``intervals=False`` when it explains its intervals itself."""
    rows = model.rows if rows is None else rows
    shown = list(range(len(model.variants))) if variants is None else list(variants)
    specs = [s for s in model.metrics if metrics is None or s.name in metrics]
    chosen = [model.variants[i] for i in shown]
    notes = _sources(chosen)
    for v in chosen:
        if v.protocol:
            notes.append(("", f"{v.label}: {v.protocol} protocol, {_pairing(v.aux_by_dataset)}."))
    random = [v.label for v in chosen if v.random_init]
    if random:
        notes.append((
            "",
            f"{', '.join(random)}: randomly initialised weights (pretrained=none); "
            "these numbers exercise the pipeline and are not results.",
        ))
    for row in rows:
        for i in shown:
            n, m = row.failed.get(i, (0, 0))
            if n:
                notes.append((FAILED, f"{model.variants[i].display}, {row.name}: {model.failed_text(row, n, m)}."))
    notes += _incomplete(model, rows, shown, specs)
    recomputed = [model.variants[i].display for i in shown if any(
        RECOMPUTED in model.markers(row, i, s.name) for row in rows for s in specs)]
    if recomputed:
        whose = ("every reported column" if len(recomputed) == sum(v.reported for v in chosen) > 1
                 else ", ".join(recomputed))
        notes.append((RECOMPUTED, f"{whose}: Mean of the reported dataset scores over the datasets of this table, "
                                  "computed here (the source's own Mean may cover other datasets)."))
    if any(not math.isnan(row.cell(i, s.name).std) for row in rows for i in shown for s in specs):
        notes.append(("", "± is the sample standard deviation (ddof=1) over seeds."))
    if intervals:
        notes += ci_notes(model, rows, shown, specs)
    return notes


def _sources(variants: list[Variant]) -> list[tuple[str, str]]:
    by_paper: dict[str, list[Variant]] = {}
    for v in variants:
        if v.reported:
            by_paper.setdefault(v.paper, []).append(v)
    notes = []
    for paper, group in by_paper.items():
        tables = list(dict.fromkeys(t for v in group for t in v.tables if t))
        where = f"{paper}: {'; '.join(tables)}" if tables else paper
        labels = ", ".join(v.label for v in group)
        notes.append((group[0].dagger, f"{labels}: numbers as reported in {where}; not reproduced here."))
    return notes


def _incomplete(model: TableModel, rows: Sequence[Row], shown: list[int], specs: list[Any]
                ) -> list[tuple[str, str]]:
    """One note per (what is missing, variants), naming the rows: "V on MVTec AD, Mean: covers …; not ranked."."""
    rows_of: dict[tuple[str, str], list[str]] = {}
    for row in rows:
        for i in shown:
            text = _cell_row_text(row, i, specs)
            if text:
                rows_of.setdefault((text, model.variants[i].display), []).append(row.name)
    merged: dict[tuple[str, tuple[str, ...]], list[str]] = {}
    for (text, variant), names in rows_of.items():
        merged.setdefault((text, tuple(names)), []).append(variant)
    return [(PARTIAL, f"{', '.join(variants)} on {', '.join(names)}: covers {text}; not ranked.")
            for (text, names), variants in merged.items()]


def _cell_row_text(row: Row, i: int, specs: list[Any]) -> str:
    """What variant ``i`` misses on ``row``: one text when every metric misses the same, else per metric."""
    texts = {s.label: row.cell(i, s.name).coverage.text() for s in specs if row.cell(i, s.name).incomplete}
    if not texts:
        return ""
    with_value = [s for s in specs if not row.cell(i, s.name).missing]
    if len(set(texts.values())) == 1 and len(texts) == len(with_value):
        return next(iter(texts.values()))
    return "; ".join(f"{label} {text}" for label, text in texts.items())


def _pairing(aux_by_dataset: tuple[tuple[str, str], ...]) -> str:
    """"trained on visa for mvtec; on mvtec for visa, btad"."""
    by_aux: dict[str, list[str]] = {}
    for dataset, aux in aux_by_dataset:
        by_aux.setdefault(aux, []).append(dataset)
    return "trained " + "; ".join(f"on {aux} for {', '.join(ds)}" for aux, ds in by_aux.items())
