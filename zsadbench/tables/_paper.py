"""The layout of the MPAMA paper's tables, in LaTeX: methods as columns, datasets as rows, pair cells.

* main tables (its Tables 1 and 2): an image-level group of "(AUROC, AP)" cells and a pixel-level group of
  "(AUROC, PRO)" cells, one row per dataset and a Mean row per group;
* per-category tables (its Tables 9-20): one metric on one dataset, one row per category and the Mean;
* ablation tables (its Tables 3-5): one row per variant of one method, a (pixel, image) pair per dataset.

Best is red bold, second-best blue; numbers exactly as a paper prints them carry a dagger (a Mean of reported
dataset scores computed here carries ‡ instead); our column may be followed by a Δ column (ours minus the reported
number of the same method and shots). A reported method without a number in a table gets no column there. Every
name is escaped. A table wider than the text width is scaled down to it and says by how much in its notes.

Confidence intervals (a model with intervals, see :mod:`._ci`) go into the table's notes, not its cells: each of
our columns (ablation rows) with intervals carries a § and one note lists, per column and row, the interval of
every number in both ends (or ± half-width). The pair cells stay as the paper prints them, so the table keeps
the width, the scaling and the look of the paper's (inline intervals would roughly double every pair cell and
shrink the whole table to fit), and the reader compares the pairs at a glance with the intervals one look
below, as a ``threeparttable``'s ``\\tnote`` would place them but without needing that package.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

from ._ci import level_text
from ._latex import FILL, TEXT_WIDTH_CM, escape, mark, overflow_note, variant_head
from ._model import Cell, Row, TableModel, Variant
from ._notes import footnotes
from ._texwidth import COLUMN_PAD, PT_PER_CM, tex_width

PREAMBLE = r"\usepackage{booktabs,multirow,makecell,graphicx,xcolor}"
#: PRO as the papers compute it (AnomalyCLIP's variant), or the standard AUPRO
PRO_METRICS = ("aupro_anomalyclip", "aupro")
#: the mark of a column (or ablation row) whose intervals the notes list
CI_MARK = r"$^{\S}$"


@dataclass(frozen=True)
class Level:
    """A row group of the main table: its title and the two metrics of its pair cells."""

    title: str
    metrics: tuple[str, str]
    heads: str


def levels(pro: str) -> tuple[Level, Level]:
    return (Level("Image-level", ("image_auroc", "image_ap"), "(AUROC, AP)"),
            Level("Pixel-level", ("pixel_auroc", pro), "(AUROC, PRO)"))


def main_table(model: TableModel, pro: str, *, delta: bool = False, text_width_cm: float = TEXT_WIDTH_CM) -> str:
    """Tables 1/2: ``model`` holds dataset rows and the Mean row, over the metrics of :func:`levels`."""
    columns = _columns(model, delta, model.rows, [m for level in levels(pro) for m in level.metrics])
    scope = _scope(columns, model.rows, pro)
    lines = [rf"\begin{{tabular}}{{ll{'c' * len(columns)}}}", r"\toprule"]
    lines.append(" & ".join(["Task", "Dataset", *(_head(model, c, scope) for c in columns)]) + r" \\")
    data = [r for r in model.rows if r.kind == "dataset"]
    mean = next(r for r in model.rows if r.kind == "mean")
    for level in levels(pro):
        rows = [r for r in data if _has(model, r, level.metrics)]
        if not rows:
            continue
        lines.append(r"\midrule")
        body = rows + [mean]
        title = rf"\makecell[l]{{{level.title}\\{level.heads}}}"
        for k, row in enumerate(body):
            if row is mean:
                lines.append(rf"\cmidrule(lr){{2-{2 + len(columns)}}}")
            first = rf"\multirow{{{len(body)}}}{{*}}{{{title}}}" if k == 0 else ""
            name = "Mean" if row is mean else escape(row.dataset_label)
            cells = [_pair(model, row, c, level.metrics) for c in columns]
            lines.append(" & ".join([first, name, *cells]) + r" \\")
    return _finish(model, lines, pro, text_width_cm, scope)


def category_table(model: TableModel, dataset: str, metric: str, *, text_width_cm: float = TEXT_WIDTH_CM) -> str:
    """Tables 9-20: the categories of ``dataset`` and their Mean for one metric (``model`` is per category)."""
    rows = [r for r in model.rows if r.dataset == dataset and r.kind in ("category", "dataset")]
    columns = _columns(model, False, rows, [metric])
    scope = ([i for i, _ in columns], rows, [metric])
    lines = [rf"\begin{{tabular}}{{l{'c' * len(columns)}}}", r"\toprule"]
    lines.append(" & ".join(["Category", *(_head(model, c, scope) for c in columns)]) + r" \\")
    lines.append(r"\midrule")
    for row in rows:
        if row.kind == "dataset":
            lines.append(r"\midrule")
        name = "Mean" if row.kind == "dataset" else escape(row.category)
        cells = [_single(model, row, c, metric) for c in columns]
        lines.append(" & ".join([name, *cells]) + r" \\")
    return _finish(model, lines, metric if metric in PRO_METRICS else "", text_width_cm, scope)


def ablation_table(model: TableModel, pro: str, *, text_width_cm: float = TEXT_WIDTH_CM) -> str:
    """Tables 3-5: one row per variant; per dataset a pixel (AUROC, PRO) and an image (AUROC, AP) pair."""
    image, pixel = levels(pro)
    data = [r for r in model.rows if r.kind == "dataset"]
    groups = [(row, level) for row in data for level in (pixel, image) if _has(model, row, level.metrics)]
    lines = [rf"\begin{{tabular}}{{l{'c' * len(groups)}}}", r"\toprule"]
    spans, k = [], 0
    heads = []
    for row in data:
        n = sum(1 for r, _ in groups if r is row)
        if n:
            heads.append(rf"\multicolumn{{{n}}}{{c}}{{{escape(row.dataset_label)}}}")
            spans.append(rf"\cmidrule(lr){{{2 + k}-{1 + k + n}}}")
            k += n
    lines.append(" & ".join(["Variant", *heads]) + r" \\")
    lines.append(" ".join(spans))
    lines.append(" & ".join(["", *(rf"\makecell{{{lv.title}\\{lv.heads}}}" for _, lv in groups)]) + r" \\")
    lines.append(r"\midrule")
    metrics = [m for level in (image, pixel) for m in level.metrics]
    scope = (list(range(len(model.variants))), data, metrics)
    for i, variant in enumerate(model.variants):
        name = escape(variant.options or variant.label) + (mark(variant.dagger) if variant.reported else "")
        name += CI_MARK if _with_intervals(model, i, scope) else ""
        cells = [_pair(model, row, (i, None), level.metrics, dagger=False) for row, level in groups]
        lines.append(" & ".join([name, *cells]) + r" \\")
    return _finish(model, lines, pro, text_width_cm, scope)


def document(tables: list[str]) -> str:
    """A standalone document holding ``tables`` (what the tests compile)."""
    return "\n".join([r"\documentclass{article}", r"\usepackage[margin=1.5cm,landscape]{geometry}", PREAMBLE,
                      r"\begin{document}", *tables, r"\end{document}", ""])


# -- columns ------------------------------------------------------------------------------------------
Column = tuple[int, int | None]  # (variant, reported variant it is compared with, for a Δ column)


def _columns(model: TableModel, delta: bool, rows: list[Row], metrics: list[str]) -> list[Column]:
    """Our variants, and the reported ones with a number in ``rows`` × ``metrics``; Δ columns after ours."""
    out: list[Column] = []
    for i, v in enumerate(model.variants):
        if v.reported and all(row.cell(i, m).missing for row in rows for m in metrics):
            continue
        out.append((i, None))
        if delta and not v.reported:
            ref = _counterpart(model.variants, i)
            if ref is not None:
                out.append((i, ref))
    return out


def _counterpart(variants: list[Variant], i: int) -> int | None:
    v = variants[i]
    for j, w in enumerate(variants):
        if w.reported and w.method == v.method and w.shots == v.shots and w.options == v.options:
            return j
    return None


def _head(model: TableModel, column: Column, scope: Scope) -> str:
    """A column head (with :data:`CI_MARK` when the notes list its intervals); a label with options or
    qualifiers ("MPAMA [experts=3]") breaks before them, so the head is no wider than the pair cells under it."""
    i, ref = column
    if ref is not None:
        return r"$\Delta$"
    v = model.variants[i]
    ci = CI_MARK if _with_intervals(model, i, scope) else ""
    name, sep, rest = v.label.partition(" [") if " [" in v.label else v.label.partition(" (")
    if not sep:
        return variant_head(v) + ci
    # "{}" keeps "\\" from reading a following "[" as its optional argument
    return rf"\makecell{{{escape(name)}\\{{}}{escape(sep.strip() + rest)}{mark(v.dagger) if v.reported else ''}{ci}}}"


# -- cells --------------------------------------------------------------------------------------------
def _has(model: TableModel, row: Row, metrics: tuple[str, ...]) -> bool:
    return any(not row.cell(i, m).missing for i in range(len(model.variants)) for m in metrics)


def _number(model: TableModel, cell: Cell) -> str:
    if cell.missing:
        return "-"
    text = model.fmt(cell.mean)
    if cell.rank == 1:
        text = rf"\textcolor{{red}}{{\textbf{{{text}}}}}"
    elif cell.rank == 2:
        text = rf"\textcolor{{blue}}{{{text}}}"
    if not math.isnan(cell.std):
        text += rf"{{\scriptsize$\pm${model.fmt(cell.std)}}}"
    return text


def _delta(model: TableModel, ours: Cell, theirs: Cell) -> str:
    if ours.missing or theirs.missing:
        return "-"
    d = model.rounded(ours.mean) - model.rounded(theirs.mean)
    return f"{d:+.{model.digits}f}".replace("-", "$-$")


def _marks(model: TableModel, row: Row, i: int, metrics: tuple[str, ...], dagger: bool) -> str:
    """The cell's markers; a dagger on reported numbers as printed (a Mean row's are computed here: ‡)."""
    out = mark("".join(dict.fromkeys("".join(model.markers(row, i, m) for m in metrics))))
    as_printed = row.kind != "mean" and any(not row.cell(i, m).missing for m in metrics)
    if dagger and model.variants[i].reported and as_printed:
        out += r"$^{\dagger}$"
    return out


def _pair(model: TableModel, row: Row, column: Column, metrics: tuple[str, str], *, dagger: bool = True) -> str:
    i, ref = column
    if ref is not None:
        return "(" + ", ".join(_delta(model, row.cell(i, m), row.cell(ref, m)) for m in metrics) + ")"
    return "(" + ", ".join(_number(model, row.cell(i, m)) for m in metrics) + ")" + _marks(model, row, i, metrics, dagger)


def _single(model: TableModel, row: Row, column: Column, metric: str) -> str:
    i, _ = column
    return _number(model, row.cell(i, metric)) + _marks(model, row, i, (metric,), True)


# -- frame ------------------------------------------------------------------------------------------
Scope = tuple[list[int], list[Row], list[str]]  # the variants, rows and metrics a table shows


def _scope(columns: list[Column], rows: list[Row], pro: str) -> Scope:
    return list(dict.fromkeys(i for i, _ in columns)), rows, [m for lv in levels(pro) for m in lv.metrics]


def _finish(model: TableModel, tabular: list[str], pro: str, text_width_cm: float, scope: Scope) -> str:
    """The ``table`` float around ``tabular`` (scaled to the text width only when wider), and its notes."""
    budget = text_width_cm * PT_PER_CM
    width = natural_width(tabular)
    scaled = width > budget * FILL
    lines = [f"% requires {PREAMBLE}", r"\begin{table}[t]", r"\centering"]
    if model.caption:
        lines.append(rf"\caption{{{escape(model.caption)}}}")
    if model.label:
        lines.append(rf"\label{{{model.label}}}")
    lines += [r"\resizebox{\linewidth}{!}{%"] if scaled else []
    lines += tabular + [r"\bottomrule", r"\end{tabular}" + ("}" if scaled else "")]
    notes = [r"Best: \textcolor{red}{\textbf{red}}; second-best: \textcolor{blue}{blue}."]
    if pro:
        notes.append(
            "PRO is AnomalyCLIP's variant (thresholded curve, FPR rescaled), as the papers compute it."
            if pro == "aupro_anomalyclip" else "PRO is the standard AUPRO (integrated to FPR 0.3, divided by 0.3)."
        )
    variants, rows, metrics = scope
    notes += [f"{mark(m)}{escape(text)}" for m, text in footnotes(model, rows, variants, metrics, intervals=False)]
    listed = interval_note(model, scope)
    if listed:
        notes.append(CI_MARK + escape(listed))
    if width > budget:  # within the estimate's margin below it, the scaling is no news
        notes.append(overflow_note(width, budget, scaled=True))
    lines.append(r"\par\smallskip{\footnotesize " + r"\par ".join(notes) + "}")
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


def _with_intervals(model: TableModel, i: int, scope: Scope) -> bool:
    _, rows, metrics = scope
    return any(row.cell(i, m).has_interval for row in rows for m in metrics)


def interval_note(model: TableModel, scope: Scope) -> str:
    """The intervals of the numbers in ``scope``, per column (variant) and row: "MPAMA: MVTec AD: I-AUROC
    [90.1, 92.3], I-AP [95.0, 97.1]; VisA: …"; "" when none has one."""
    variants, rows, metrics = scope
    labels = {s.name: s.label for s in model.metrics}
    by_category = any(row.kind == "category" for row in rows)
    parts = []
    for i in variants:
        listed = []
        for row in rows:
            ends = [(labels[m], row.cell(i, m)) for m in metrics if row.cell(i, m).has_interval]
            if not ends:
                continue
            name = row.category if row.kind == "category" else "Mean" if row.kind == "mean" or by_category \
                else row.dataset_label
            listed.append(f"{name}: " + ", ".join(f"{label} {_ends(model, c)}" for label, c in ends))
        if listed:
            parts.append(f"{model.variants[i].label}: " + "; ".join(listed))
    if not parts:
        return ""
    return (f"{level_text(model.ci_level)} confidence intervals of our numbers ({model.ci_method}): "
            + ". ".join(parts) + ".")


def _ends(model: TableModel, cell: Cell) -> str:
    if model.ci_style == "range":
        return f"[{model.fmt(cell.lo)}, {model.fmt(cell.hi)}]"
    return f"±{model.fmt((cell.hi - cell.lo) / 2.0)}"


def natural_width(tabular: list[str]) -> float:
    """The estimated width, in pt, of a tabular's rows (cells spanning several columns are left out)."""
    widths: dict[int, float] = {}
    for line in tabular:
        if not line.endswith(r"\\") or r"\multicolumn" in line:
            continue
        for k, cell in enumerate(re.split(r"(?<!\\)&", line[:-2])):
            widths[k] = max(widths.get(k, 0.0), tex_width(cell.strip()))
    return sum(w + COLUMN_PAD for w in widths.values())
