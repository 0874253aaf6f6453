"""A static HTML leaderboard of a results document: one self-contained file (inline CSS and JS, no network).

One row per method variant and dataset, and per reported method and dataset (marked †) when reported numbers
are given; one column per metric. Any column sorts on a click on its head (numbers best first, again to
reverse; missing values last), the selects filter the rows by dataset group (industrial, medical, synthetic),
setting (zero-shot, few-shot, a k) and dataset, and hovering a number shows its interval, its spread over seeds
or its source (``title`` attributes). Random-init variants are labelled in their row and explained above.
"""
from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from .. import __version__
from .intervals import method_text_of

#: metric → column head, in the tables' order (every one is better higher)
METRICS = {
    "image_auroc": "I-AUROC", "image_ap": "I-AP", "image_f1_max": "I-F1max", "pixel_auroc": "P-AUROC",
    "pixel_ap": "P-AP", "pixel_f1_max": "P-F1max", "aupro": "AUPRO", "aupro_anomalyclip": "AUPRO-AC",
}
GROUPS = ("industrial", "medical", "synthetic")

_CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.4em;margin:0 0 .3em}
.note{color:#555;margin:.2em 0;max-width:70em}
.warn{background:#fff4d6;border:1px solid #e6c35c;padding:.4em .6em;max-width:70em}
.filters{margin:1em 0;display:flex;gap:1.2em;flex-wrap:wrap;align-items:center}
table{border-collapse:collapse}
th,td{padding:.25em .6em;border-bottom:1px solid #ddd;white-space:nowrap}
th{cursor:pointer;user-select:none;background:#f4f4f4;position:sticky;top:0}
th[aria-sort=ascending]::after{content:" \\25B2"}
th[aria-sort=descending]::after{content:" \\25BC"}
td.num{text-align:right;font-variant-numeric:tabular-nums}
td.num[title]{text-decoration:underline dotted #999}
tr.reported td{color:#555;font-style:italic}
tr.random td{background:#fafafa;color:#777}
.tag{font-size:.8em;border:1px solid #c77;color:#a33;border-radius:3px;padding:0 .3em;margin-left:.4em}
"""

_JS = """
(function () {
  const table = document.getElementById('board');
  const body = table.tBodies[0];
  const heads = Array.from(table.tHead.rows[0].cells);
  let state = {col: -1, dir: 1};
  function key(row, col) {
    const cell = row.cells[col];
    if (heads[col].dataset.type === 'number') {
      return cell.dataset.v === '' ? null : parseFloat(cell.dataset.v);
    }
    return cell.textContent.trim().toLowerCase();
  }
  function sortBy(col) {
    const numeric = heads[col].dataset.type === 'number';
    const dir = state.col === col ? -state.dir : (numeric ? -1 : 1);
    state = {col: col, dir: dir};
    const rows = Array.from(body.rows);
    rows.sort(function (a, b) {
      const x = key(a, col), y = key(b, col);
      if (x === null || y === null) { return (x === null) - (y === null); }
      return (x < y ? -1 : x > y ? 1 : 0) * dir;
    });
    rows.forEach(function (r) { body.appendChild(r); });
    heads.forEach(function (h, i) {
      h.setAttribute('aria-sort', i === col ? (dir > 0 ? 'ascending' : 'descending') : 'none');
    });
  }
  heads.forEach(function (h, i) { h.addEventListener('click', function () { sortBy(i); }); });
  const filters = Array.from(document.querySelectorAll('select[data-filter]'));
  function apply() {
    let shown = 0;
    Array.from(body.rows).forEach(function (row) {
      const ok = filters.every(function (f) {
        return f.value === '' || (row.dataset[f.dataset.filter] || '').split(' ').indexOf(f.value) >= 0;
      });
      row.hidden = !ok;
      shown += ok ? 1 : 0;
    });
    document.getElementById('count').textContent = shown + ' of ' + body.rows.length + ' rows';
  }
  filters.forEach(function (f) { f.addEventListener('change', apply); });
  apply();
})();
"""


@dataclass
class _Row:
    method: str
    setting: str
    shots: int
    group: str
    dataset: str
    dataset_label: str
    reported: bool = False
    random_init: bool = False
    source: str = ""  # a reported row's paper, and its mark
    mark: str = ""
    values: dict[str, tuple[float, str]] = field(default_factory=dict)  # metric → (percent, hover text)


def leaderboard_page(doc: dict[str, Any], reported: pd.DataFrame | None = None, *, digits: int = 1,
                     title: str = "Anomaly detection leaderboard") -> str:
    """The page of ``doc`` (a results document), with ``reported`` (from
    :func:`~zsadbench.tables.load_reported`) beside ours."""
    rows = _our_rows(doc, digits)
    datasets = {r.dataset: (r.group, r.dataset_label) for r in rows}
    rows += _reported_rows(reported, datasets)
    rows.sort(key=lambda r: (_group_order(r.group), r.dataset_label, r.shots, r.reported, r.method))
    metrics = [m for m in METRICS if any(m in r.values for r in rows)]
    notes = _notes(doc, rows)
    return "\n".join([
        "<!DOCTYPE html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
        f"<title>{_e(title)}</title>", f"<style>{_CSS}</style>", "</head>", "<body>",
        f"<h1>{_e(title)}</h1>",
        *notes,
        _filters(rows),
        '<table id="board">',
        "<thead><tr>" + "".join(_head(text, kind) for text, kind in
                                (("Method", "text"), ("Setting", "text"), ("Group", "text"), ("Dataset", "text")))
        + "".join(_head(METRICS[m], "number") for m in metrics) + "</tr></thead>",
        "<tbody>", *(_row(r, metrics, digits) for r in rows), "</tbody>", "</table>",
        f'<p class="note">Written by zsadbench {_e(__version__)}. Click a column head to sort (again to reverse); '
        "hover a number for its interval or source.</p>",
        f"<script>{_JS}</script>", "</body>", "</html>", "",
    ])


def _our_rows(doc: dict[str, Any], digits: int) -> list[_Row]:
    level = f"{_percent(doc['intervals']['level'])} CI" if doc["intervals"] else ""
    rows = []
    for v in doc["variants"]:
        for dataset, d in v["datasets"].items():
            row = _Row(v["label"], _setting(v["shots"]), v["shots"], d["domain"], dataset, d["label"],
                       random_init=v["weights"]["random_init"])
            for metric, s in d["metrics"].items():
                if metric in METRICS:
                    row.values[metric] = (100.0 * s["mean"], _hover(s, level, digits))
            rows.append(row)
    return rows


def _hover(summary: dict[str, Any], level: str, digits: int) -> str:
    parts = []
    if "ci" in summary:
        parts.append(f"{level} [{100 * summary['ci']['lo']:.{digits}f}, {100 * summary['ci']['hi']:.{digits}f}]")
    n = summary["n_seeds"]
    if summary["std"] is not None:
        parts.append(f"± {100 * summary['std']:.{digits}f} std over {n} seeds")
    else:
        parts.append(f"{n} seed" + ("s" if n != 1 else ""))
    return "; ".join(parts)


def _reported_rows(reported: pd.DataFrame | None, datasets: dict[str, tuple[str, str]]) -> list[_Row]:
    """A row per reported method and dataset of ours (the papers' dataset means only)."""
    if reported is None or reported.empty:
        return []
    rep = reported[(reported["category"] == "mean") & reported["dataset"].isin(list(datasets))
                   & reported["metric"].isin(list(METRICS))]
    rows = []
    papers = list(dict.fromkeys(rep["paper"]))  # several: marked †1, †2, … and named in the notes
    keys = ["method", "method_label", "variant", "shots", "paper", "dataset"]
    for (method, label, variant, shots, paper, dataset), group in rep.groupby(keys, sort=False):
        mark = "†" + (str(papers.index(paper) + 1) if len(papers) > 1 else "")
        name = (label or method) + (f" [{variant}]" if variant else "") + " " + mark
        row = _Row(name, _setting(int(shots)), int(shots), datasets[dataset][0], dataset, datasets[dataset][1],
                   reported=True, source=paper, mark=mark)
        for r in group.sort_values("decimals").itertuples(index=False):  # the most precise print wins
            row.values[r.metric] = (float(r.value), f"as reported in {paper}, {r.table}")
        rows.append(row)
    return rows


def _setting(shots: int) -> str:
    if shots == 0:
        return "zero-shot"
    return "full-shot" if shots < 0 else f"{shots}-shot"


def _setting_tokens(row: _Row) -> str:
    return row.setting if row.shots <= 0 else f"few-shot {row.setting}"


def _group_order(group: str) -> tuple[int, str]:
    return (GROUPS.index(group) if group in GROUPS else len(GROUPS), group)


def _notes(doc: dict[str, Any], rows: Sequence[_Row]) -> list[str]:
    out = []
    random = sorted({r.method for r in rows if r.random_init})
    if random:
        out.append(f'<p class="warn">Rows tagged <span class="tag">random init</span> ({_e(", ".join(random))}) come '
                   "from randomly initialised backbones (pretrained=none): they exercise the pipeline and are not "
                   "results.</p>")
    if doc["intervals"]:
        s = doc["intervals"]
        out.append(f'<p class="note">Hover one of our numbers for its {_percent(s["level"])} confidence interval '
                   f"({_e(method_text_of(s))}).</p>")
    marks = {r.mark: r.source for r in rows if r.reported}
    if marks:
        ordered = sorted(marks.items(), key=lambda m: int(m[0][1:] or 0))
        sources = "; ".join(f"{mark} {paper}" for mark, paper in ordered)
        out.append(f'<p class="note">Numbers as reported ({_e(sources)}), not reproduced here; hover one for its '
                   "table.</p>")
    out.append('<p class="note">Values in percent: a dataset\'s value is the mean over its categories (per seed), '
               "then over seeds.</p>")
    return out


def _filters(rows: Sequence[_Row]) -> str:
    groups = sorted({r.group for r in rows}, key=_group_order)
    shots = sorted({r.shots for r in rows if r.shots != 0}, key=lambda k: (k < 0, k))
    settings = (["zero-shot"] if any(r.shots == 0 for r in rows) else []) \
        + (["few-shot"] if any(k > 0 for k in shots) else []) + [_setting(k) for k in shots]
    datasets = sorted({(_group_order(r.group), r.dataset_label, r.dataset) for r in rows})
    return "\n".join([
        '<div class="filters">',
        _select("group", "Group", [(g, g) for g in groups]),
        _select("setting", "Setting", [(s, s) for s in settings]),
        _select("dataset", "Dataset", [(d, label) for _, label, d in datasets]),
        '<span id="count"></span>',
        "</div>",
    ])


def _select(name: str, label: str, options: list[tuple[str, str]]) -> str:
    items = "".join(f'<option value="{_e(v)}">{_e(text)}</option>' for v, text in options)
    return (f'<label>{_e(label)} <select id="filter-{name}" data-filter="{name}"><option value="">all</option>'
            f"{items}</select></label>")


def _head(text: str, kind: str) -> str:
    return f'<th data-type="{kind}" aria-sort="none">{_e(text)}</th>'


def _row(row: _Row, metrics: Sequence[str], digits: int) -> str:
    classes = " ".join(c for c, on in (("reported", row.reported), ("random", row.random_init)) if on)
    tag = '<span class="tag">random init</span>' if row.random_init else ""
    cells = [f"<td>{_e(row.method)}{tag}</td>", f"<td>{_e(row.setting)}</td>", f"<td>{_e(row.group)}</td>",
             f"<td>{_e(row.dataset_label)}</td>"]
    for metric in metrics:
        if metric in row.values and not math.isnan(row.values[metric][0]):
            value, hover = row.values[metric]
            cells.append(f'<td class="num" data-v="{value!r}" title="{_e(hover)}">{value:.{digits}f}</td>')
        else:
            cells.append('<td class="num" data-v="">–</td>')
    attrs = (f' class="{classes}"' if classes else "") + f' data-group="{_e(row.group)}" ' \
        f'data-setting="{_e(_setting_tokens(row))}" data-dataset="{_e(row.dataset)}"'
    return f"<tr{attrs}>{''.join(cells)}</tr>"


def _percent(level: float) -> str:
    return f"{100.0 * level:g}%"


def _e(text: str) -> str:
    return html.escape(str(text), quote=True)
