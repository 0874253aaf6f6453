"""Paper-style LaTeX rendering of a :class:`TableModel` (needs ``\\usepackage{booktabs,multirow}``).

Our own renderer, not pandas' ``Styler.to_latex``: every cell carries the model's rank, markers and ± part,
the header spans each variant over its metrics and the label columns use ``\\multirow``, which a Styler would
need re-encoded as per-cell properties; and a Styler cannot split a table into parts that fit the text width.
"""
from __future__ import annotations

import math
import re
from typing import Any

from ._ci import interval_text
from ._fit import Column, part_title, split_columns
from ._model import DAGGER, FAILED, PARTIAL, RECOMPUTED, Cell, Row, TableModel, Variant
from ._notes import footnotes
from ._texwidth import COLUMN_PAD, PT_PER_CM, tex_width

#: the text width tables must fit by default (an A4 page with 1.75 cm margins)
TEXT_WIDTH_CM = 17.5
#: the share of the text width the estimated widths may fill (they are estimates)
FILL = 0.97

_SPECIAL = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
    "±": r"$\pm$", "–": "--", "×": r"$\times$",
}
_MARK = {FAILED: r"$^{*}$", PARTIAL: r"$^{\circ}$", RECOMPUTED: r"$^{\ddagger}$"}


def escape(text: str) -> str:
    """Escape LaTeX's special characters in plain text (a source's "†2" becomes one superscript)."""
    parts = re.split(rf"({DAGGER}\d*)", text)
    return "".join(mark(p) if p.startswith(DAGGER) else "".join(_SPECIAL.get(ch, ch) for ch in p) for p in parts)


def mark(marker: str) -> str:
    """A footnote marker as LaTeX ("†2" becomes a superscript dagger and 2)."""
    if marker.startswith(DAGGER):
        return rf"$^{{\dagger{marker[1:]}}}$"
    return "".join(_MARK[m] for m in marker)


def variant_head(v: Variant) -> str:
    """A variant's label as LaTeX, with its source's dagger."""
    return escape(v.label) + (mark(v.dagger) if v.reported else "")


def to_latex(model: TableModel, text_width_cm: float = TEXT_WIDTH_CM) -> str:
    """Booktabs ``tabular`` s (inside a ``table`` with caption/label when either is given), footnotes after them.

    One tabular when the table fits ``text_width_cm``; otherwise one per metric group, cut further between
    variants where needed (:mod:`._fit`), each with the row labels. A part that cannot fit (a single column
    wider than the page) is said so in a note, with by how much.
    """
    layout = _Layout(model)
    budget = text_width_cm * PT_PER_CM
    parts = split_columns(model, layout.width, budget * FILL)
    lines = ["% requires \\usepackage{booktabs,multirow}"]
    wrapped = bool(model.caption or model.label)
    if wrapped:
        lines += [r"\begin{table}[t]", r"\centering"]
        if model.caption:
            lines.append(rf"\caption{{{escape(model.caption)}}}")
        if model.label:
            lines.append(rf"\label{{{model.label}}}")
    for k, part in enumerate(parts):
        if k:
            lines.append(r"\par\medskip")
        lines += layout.tabular(part, part_title(model, parts, k))
    notes = [f"{mark(m)}{escape(text)}" for m, text in footnotes(model)]
    widest = max(layout.width(part) for part in parts)
    if widest > budget:
        notes.append(overflow_note(widest, budget))
    if notes:
        lines.append(r"\par\smallskip{\footnotesize")
        lines += [f"{note}\\par" for note in notes]
        lines.append("}")
    if wrapped:
        lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


class _Layout:
    """The cells of a model as LaTeX, their estimated widths, and tabulars of any subset of its columns."""

    def __init__(self, model: TableModel) -> None:
        self.model = model
        self.cells = {
            (n, i, s.name): _cell(model, row.cell(i, s.name), model.markers(row, i, s.name))
            for n, row in enumerate(model.rows) for i in range(len(model.variants)) for s in model.metrics
        }
        self.heads = {s.name: f"{escape(s.label)}{_arrow(s)}" for s in model.metrics}
        self.column = {
            (i, s.name): max([tex_width(self.heads[s.name])]
                             + [tex_width(self.cells[(n, i, s.name)]) for n in range(len(model.rows))])
            for i in range(len(model.variants)) for s in model.metrics
        }
        first, second = model.label_columns()
        labels = [model.row_labels(row) for row in model.rows if row.kind != "mean"]
        self.labels = (max(tex_width(escape(t)) for t in [first, *(a for a, _ in labels)]),
                       max(tex_width(escape(t)) for t in [second, *(b for _, b in labels)]))

    def width(self, part: list[Column]) -> float:
        """The estimated natural width, in pt, of the tabular of ``part``."""
        total = sum(self.labels) + 2 * COLUMN_PAD
        for i, columns in _runs(part):
            inner = sum(self.column[c] + COLUMN_PAD for c in columns)
            total += max(inner, tex_width(variant_head(self.model.variants[i])) + COLUMN_PAD)
        return total

    def tabular(self, part: list[Column], title: str) -> list[str]:
        model = self.model
        n_cols = 2 + len(part)
        lines = [rf"\textit{{{escape(title)}}}\par\smallskip"] if title else []
        lines += [r"\begin{tabular}{ll" + "c" * len(part) + "}", r"\toprule"]
        runs = _runs(part)
        heads = [rf"\multicolumn{{{len(cols)}}}{{c}}{{{variant_head(model.variants[i])}}}" for i, cols in runs]
        lines.append(" & ".join(["", "", *heads]) + r" \\")
        rules, start = [], 3
        for _, cols in runs:
            rules.append(rf"\cmidrule(lr){{{start}-{start + len(cols) - 1}}}")
            start += len(cols)
        lines.append(" ".join(rules))
        first, second = model.label_columns()
        lines.append(" & ".join([first, second, *(self.heads[m] for _, m in part)]) + r" \\")
        index = {id(row): n for n, row in enumerate(model.rows)}
        for group in model.groups():
            lines.append(r"\midrule")
            for k, row in enumerate(group):
                if model.per_category and row.kind == "dataset" and len(group) > 1:
                    lines.append(rf"\cmidrule(lr){{2-{n_cols}}}")
                cells = [self.cells[(index[id(row)], i, m)] for i, m in part]
                lines.append(" & ".join([*_row_labels(model, row, k, len(group)), *cells]) + r" \\")
        return lines + [r"\bottomrule", r"\end{tabular}"]


def overflow_note(width: float, budget: float, *, scaled: bool = False) -> str:
    """The note of a table wider than the text width: by how much, and what to do (``scaled``: the paper
    layout, which shrinks to the text width and has fixed metrics)."""
    size = f"At its natural size this table is about {width / PT_PER_CM:.1f} cm wide, " \
           f"{(width - budget) / PT_PER_CM:.1f} cm more than the {budget / PT_PER_CM:.1f} cm text width"
    options = ["methods", "variants"] + ([] if scaled else ["metrics"])
    fix = "show fewer columns (" + ", ".join(rf"\texttt{{-{{}}-{o}}}" for o in options) \
        + r" or one \texttt{-{}-reported} file)"
    if scaled:
        return f"{size}; it is scaled to {100 * budget / width:.0f}\\%. For a larger print, {fix}."
    return f"{size}. To fit, {fix}."


def _runs(part: list[Column]) -> list[tuple[int, list[Column]]]:
    """Consecutive columns of one variant: (variant, its columns)."""
    runs: list[tuple[int, list[Column]]] = []
    for column in part:
        if runs and runs[-1][0] == column[0]:
            runs[-1][1].append(column)
        else:
            runs.append((column[0], [column]))
    return runs


def _row_labels(model: TableModel, row: Row, k: int, size: int) -> list[str]:
    a, b = model.row_labels(row)
    if row.kind == "mean":
        return [rf"\multicolumn{{2}}{{l}}{{{escape(a)}}}"]
    head = rf"\multirow{{{size}}}{{*}}{{{escape(a)}}}" if k == 0 and size > 1 else escape(a)
    return [head if k == 0 else "", escape(b)]


def _cell(model: TableModel, cell: Cell, markers: str) -> str:
    marks = mark(markers)
    if cell.missing:
        return "--" + marks
    text = model.fmt(cell.mean)
    if cell.rank == 1:
        text = rf"\textbf{{{text}}}"
    elif cell.rank == 2:
        text = rf"\underline{{{text}}}"
    if not math.isnan(cell.std):
        text += rf"{{\scriptsize$\pm${model.fmt(cell.std)}}}"
    if cell.has_interval:
        text += rf"{{\scriptsize\,{escape(interval_text(model, cell.lo, cell.hi))}}}"
    return text + marks


def _arrow(spec: Any) -> str:
    return r"$\uparrow$" if spec.higher_is_better else r"$\downarrow$"
