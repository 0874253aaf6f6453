"""Rendering of leaderboard tables: highlighting, Markdown/LaTeX/CSV/rich structure, random-init labels, files."""
from __future__ import annotations

import io
import math
import re
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from rich.console import Console
from rich.table import Table
from rich.text import Text
from scipy.stats import rankdata

from zsadbench.errors import ConfigError
from zsadbench.tables import make_table, write_tables
from zsadbench.tables._model import Cell, Row, TableModel, Variant

from rows import frame_row

METRICS = ["image_auroc", "image_ap", "image_f1_max", "pixel_auroc", "pixel_ap", "pixel_f1_max", "aupro",
           "aupro_anomalyclip"]
DATASETS = [("mvtec", "MVTec AD", "industrial"), ("visa", "VisA", "industrial"), ("headct", "HeadCT", "medical")]


def cell(method, label, dataset, dataset_label, domain, *, seed=0, category="c", random_init=False, **values):
    return frame_row(method=method, method_label=label, config_hash="abc", dataset=dataset,
                     dataset_label=dataset_label, domain=domain, category=category, seed=seed,
                     pretrained="none" if random_init else "openai", random_init=random_init,
                     metrics={m: values.get(m, math.nan) for m in METRICS})


def grid(values: np.ndarray, random_init: tuple[bool, ...] | None = None) -> pd.DataFrame:
    """values[v, d] is variant v's image AUROC (fraction) on dataset d, one category, one seed."""
    random_init = random_init or (False,) * values.shape[0]
    return pd.DataFrame([
        cell(f"m{v}", f"M{v}", ds, label, dom, random_init=random_init[v], image_auroc=values[v, d])
        for v in range(values.shape[0]) for d, (ds, label, dom) in enumerate(DATASETS)
    ])


def md_body(md: str) -> list[list[str]]:
    rows = [line for line in md.splitlines() if line.startswith("| ")][2:]
    return [[c.strip() for c in line.strip().strip("|").split("|")] for line in rows]


def expected_marks(row_values: np.ndarray) -> list[str]:
    """'b' for bold, 'u' for underline, '' otherwise, from scipy's competition ranking of the rounded values."""
    ranks = rankdata(-np.round(row_values, 1), method="min")
    return ["b" if r == 1 else "u" if r == 2 else "" for r in ranks]


def md_mark(text: str) -> str:
    return "b" if text.startswith("**") else "u" if text.startswith("<u>") else ""


def test_best_bold_second_underlined_like_scipy_ranking_with_ties():
    values = np.array([[.912, .50, .70], [.914, .60, .70], [.80, .60, .65], [.70, .55, .72]])
    md = make_table(grid(values), "md")
    body = md_body(md)
    percent = values * 100
    table_rows = [percent[:, d] for d in range(3)] + [percent.mean(axis=1)]
    assert len(body) == 4
    for row, vals in zip(body, table_rows):
        assert [md_mark(c) for c in row[2:]] == expected_marks(vals)
    # VisA ties for best (60.0, 60.0): both bold, and the next value (55.0) is third, not second
    assert [md_mark(c) for c in body[1][2:]] == ["", "b", "b", ""]
    # HeadCT: 70, 70, 65, 72 -> 72 best, both 70s second
    assert [md_mark(c) for c in body[2][2:]] == ["u", "u", "", "b"]


def test_no_highlight_with_a_single_competitor_and_random_init_not_ranked_against_real():
    one = make_table(grid(np.array([[.9, .8, .7]])), "md")
    assert "**" not in one and "<u>" not in one
    values = np.array([[.8, .8, .8], [.7, .7, .7], [.99, .99, .99]])
    md = make_table(grid(values, (False, False, True)), "md")
    for row in md_body(md):
        assert [md_mark(c) for c in row[2:]] == ["b", "u", ""]
    # a table of random-init variants only still ranks them among themselves
    only_random = make_table(grid(values[:2], (True, True)), "md")
    assert [md_mark(c) for c in md_body(only_random)[0][2:]] == ["b", "u"]


def test_lower_is_better_metric_ranks_the_smallest_first():
    spec = SimpleNamespace(name="err", label="Err", level="image", higher_is_better=False)
    row = Row("dataset", "industrial", "d", "D")
    for i, v in enumerate([3.0, 1.0, 2.0]):
        row.cells[(i, "err")] = Cell(v)
    model = TableModel([Variant(f"V{i}", f"v{i}", f"V{i}", 0) for i in range(3)], [spec], [row], False)
    model.rank()
    assert [row.cells[(i, "err")].rank for i in range(3)] == [None, 1, 2]


def random_init_frame() -> pd.DataFrame:
    return pd.DataFrame([
        cell("winclip", "WinCLIP", "mvtec", "MVTec AD", "industrial", random_init=True, image_auroc=.6, pixel_auroc=.7),
        cell("visualad", "VisualAD", "mvtec", "MVTec AD", "industrial", image_auroc=.9, pixel_auroc=.8),
    ])


def render_rich(table: Table) -> str:
    console = Console(record=True, width=240, file=io.StringIO())
    console.print(table)
    return console.export_text()


def test_random_init_is_labelled_in_every_format():
    df = random_init_frame()
    for fmt in ("md", "latex", "csv"):
        assert "WinCLIP (random init)" in make_table(df, fmt), fmt
    long = make_table(df, "csv", csv_layout="long")
    assert "WinCLIP (random init)" in long and ",True," in long
    assert "WinCLIP (random init)" in render_rich(make_table(df, "rich"))
    for fmt in ("md", "latex"):
        assert "randomly initialised weights" in make_table(df, fmt)
    assert "not results" in render_rich(make_table(df, "rich"))


def latex_rows(tex: str) -> tuple[int, list[str]]:
    n_cols = len(re.search(r"\\begin\{tabular\}\{([lc]+)\}", tex).group(1))
    body = tex.split(r"\toprule")[1].split(r"\bottomrule")[0]
    return n_cols, [line for line in body.splitlines() if line.endswith(r"\\")]


def latex_width(line: str) -> int:
    cells = re.split(r"(?<!\\)&", line[: -2])
    return sum(int(m.group(1)) if (m := re.match(r"\s*\\multicolumn\{(\d+)\}", c)) else 1 for c in cells)


def test_latex_is_a_booktabs_tabular_with_consistent_columns():
    df = pd.DataFrame([
        cell(m, lab, ds, dl, dom, seed=s, image_auroc=v + s / 100, pixel_auroc=v - .1)
        for m, lab, v in (("a", "A", .9), ("b", "B", .8)) for ds, dl, dom in DATASETS for s in (0, 1)
    ])
    tex = make_table(df, "latex")
    assert r"\begin{table}" not in tex and tex.count(r"\begin{tabular}") == 1
    for command in (r"\toprule", r"\midrule", r"\bottomrule", r"\multicolumn{2}{c}{A}", r"I-AUROC$\uparrow$",
                    r"\textbf{", r"\underline{", r"{\scriptsize$\pm$"):
        assert command in tex, command
    n_cols, rows = latex_rows(tex)
    assert n_cols == 2 + 2 * 2
    assert rows and all(latex_width(line) == n_cols for line in rows)
    # industrial and medical datasets are separated by a rule, the domain label spans its datasets
    assert re.search(r"VisA.*\\\\\n\\midrule\nMedical & HeadCT", tex)
    assert r"\multirow{2}{*}{Industrial}" in tex
    wrapped = make_table(df, "latex", caption="Zero-shot 50% of runs", label="tab:zs")
    assert wrapped.index(r"\begin{table}") < wrapped.index(r"\caption{Zero-shot 50\% of runs}")
    assert r"\label{tab:zs}" in wrapped and wrapped.rstrip().endswith(r"\end{table}")
    per_cat = make_table(df, "latex", per_category=True)
    n_cols, rows = latex_rows(per_cat)
    assert all(latex_width(line) == n_cols for line in rows)


def test_latex_escapes_special_characters():
    df = pd.DataFrame([cell("x", "Win_CLIP & co", "d", "Data#1 100%", "industrial", image_auroc=.9)])
    tex = make_table(df, "latex", caption="a_b")
    assert r"Win\_CLIP \& co" in tex and r"Data\#1 100\%" in tex and r"\caption{a\_b}" in tex
    assert "Win_CLIP" not in tex and "Data#1" not in tex


def test_markdown_is_a_well_formed_pipe_table():
    df = pd.DataFrame([
        cell("a", "A|B", ds, dl, dom, seed=s, image_auroc=.9 - s / 10, aupro=.5)
        for ds, dl, dom in DATASETS for s in (0, 1)
    ] + [cell("b", "C*", "mvtec", "MVTec AD", "industrial", image_auroc=.7)])
    md = make_table(df, "md", per_category=True, caption="Results")
    table = [line for line in md.splitlines() if line.startswith("|")]
    assert len({line.count("|") for line in table}) == 1
    assert re.fullmatch(r"\|( :-- \|){2}( --: \|)+", table[1])
    assert "A&#124;B<br>I-AUROC ↑" in table[0] and "C\\*<br>" in table[0]
    assert md.startswith("**Results**")


def test_wide_csv_mirrors_the_table_and_long_csv_is_tidy():
    values = np.array([[.912, .50, .70], [.914, .60, .70]])
    wide = pd.read_csv(io.StringIO(make_table(grid(values), "csv")))
    assert list(wide.columns) == ["domain", "dataset", "category", "M0 I-AUROC", "M1 I-AUROC", "notes"]
    assert wide["dataset"].tolist() == ["MVTec AD", "VisA", "HeadCT", "Mean"]
    assert wide["M0 I-AUROC"].tolist() == pytest.approx([91.2, 50.0, 70.0, round(values[0].mean() * 100, 1)])
    assert "**" not in make_table(grid(values), "csv")
    long = pd.read_csv(io.StringIO(make_table(grid(values), "csv", csv_layout="long")))
    assert len(long) == 2 * (3 + 3 + 1)  # variants x (categories + dataset means + overall mean)
    assert set(long["metric"]) == {"image_auroc"} and (long["source"] == "zsadbench").all()


def test_rich_table_styles_best_and_second():
    values = np.array([[.9, .5, .7], [.8, .6, .7], [.7, .4, .6]])
    rendered = make_table(grid(values), "rich")
    (table,) = rendered.tables(240)
    assert isinstance(table, Table)
    columns = [list(col.cells) for col in table.columns[2:]]
    first_row = [col[0] for col in columns]
    assert all(isinstance(c, Text) for c in first_row)
    assert [str(c.style) for c in first_row] == ["bold", "underline", ""]
    assert "MVTec AD" in render_rich(rendered)


def test_write_tables_writes_each_format_atomically(tmp_path):
    df = random_init_frame()
    paths = write_tables(df, tmp_path / "leaderboards", "zero_shot", caption="ZS")
    assert [p.name for p in paths] == ["zero_shot.md", "zero_shot.csv", "zero_shot.tex"]
    for path, fmt in zip(paths, ("md", "csv", "latex")):
        assert path.read_text(encoding="utf-8") == make_table(df, fmt, caption="ZS")
    assert sorted(p.name for p in (tmp_path / "leaderboards").iterdir()) == sorted(p.name for p in paths)
    with pytest.raises(ConfigError, match="rich"):
        write_tables(df, tmp_path / "other", "x", formats=("md", "rich"))
    with pytest.raises(ConfigError, match="basename"):
        write_tables(df, tmp_path / "other", "../x")
    assert not (tmp_path / "other").exists()
