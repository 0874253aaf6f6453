"""Paper-style LaTeX rendering of a :class:`TableModel` (needs ``\\usepackage{booktabs,multirow}``)."""
from __future__ import annotations

import math
from typing import Any

from ._model import DAGGER, FAILED, PARTIAL, Cell, TableModel

_SPECIAL = {
    "\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
    "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
    DAGGER: r"$^{\dagger}$", "±": r"$\pm$", "–": "--",
}
_MARK = {FAILED: r"$^{*}$", PARTIAL: r"$^{\circ}$", DAGGER: r"$^{\dagger}$", "": ""}


def escape(text: str) -> str:
    """Escape LaTeX's special characters in plain text."""
    return "".join(_SPECIAL.get(ch, ch) for ch in text)


def to_latex(model: TableModel) -> str:
    """A booktabs ``tabular`` (inside a ``table`` with caption/label when either is given), footnotes after it."""
    n_metrics = len(model.metrics)
    n_cols = 2 + n_metrics * len(model.variants)
    lines = ["% requires \\usepackage{booktabs,multirow}"]
    wrapped = bool(model.caption or model.label)
    if wrapped:
        lines += [r"\begin{table}[t]", r"\centering"]
        if model.caption:
            lines.append(rf"\caption{{{escape(model.caption)}}}")
        if model.label:
            lines.append(rf"\label{{{model.label}}}")
    lines.append(r"\begin{tabular}{ll" + "c" * (n_metrics * len(model.variants)) + "}")
    lines.append(r"\toprule")
    groups = [rf"\multicolumn{{{n_metrics}}}{{c}}{{{escape(v.display)}}}" for v in model.variants]
    lines.append(" & ".join(["", "", *groups]) + r" \\")
    lines.append(" ".join(
        rf"\cmidrule(lr){{{3 + k * n_metrics}-{2 + (k + 1) * n_metrics}}}" for k in range(len(model.variants))
    ))
    first, second = model.label_columns()
    metric_heads = [f"{escape(s.label)}{_arrow(s)}" for _ in model.variants for s in model.metrics]
    lines.append(" & ".join([first, second, *metric_heads]) + r" \\")
    for group in model.groups():
        lines.append(r"\midrule")
        for k, row in enumerate(group):
            a, b = model.row_labels(row)
            if row.kind == "mean":
                labels = [rf"\multicolumn{{2}}{{l}}{{{escape(a)}}}"]
            else:
                if model.per_category and row.kind == "dataset" and len(group) > 1:
                    lines.append(rf"\cmidrule(lr){{2-{n_cols}}}")
                head = rf"\multirow{{{len(group)}}}{{*}}{{{escape(a)}}}" if k == 0 and len(group) > 1 else escape(a)
                labels = [head if k == 0 else "", escape(b)]
            cells = [
                _cell(model, row.cell(i, s.name), model.markers(row, i, s.name))
                for i in range(len(model.variants))
                for s in model.metrics
            ]
            lines.append(" & ".join([*labels, *cells]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    notes = model.footnotes()
    if notes:
        lines.append(r"\par\smallskip{\footnotesize")
        lines += [f"{_MARK[marker]}{escape(text)}\\par" for marker, text in notes]
        lines.append("}")
    if wrapped:
        lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


def _cell(model: TableModel, cell: Cell, markers: str) -> str:
    marks = "".join(_MARK[m] for m in markers)
    if cell.missing:
        return "--" + marks
    text = model.fmt(cell.mean)
    if cell.rank == 1:
        text = rf"\textbf{{{text}}}"
    elif cell.rank == 2:
        text = rf"\underline{{{text}}}"
    if not math.isnan(cell.std):
        text += rf"{{\scriptsize$\pm${model.fmt(cell.std)}}}"
    return text + marks


def _arrow(spec: Any) -> str:
    return r"$\uparrow$" if spec.higher_is_better else r"$\downarrow$"
