"""Tables that fit: a 4-variant run in the terminal at 100 and 160 columns and in LaTeX on a 17.5 cm text width
(checked with pdflatex), every value and header present, reported sources as short marks."""
from __future__ import annotations

import io
import json
import math
import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
from rich.cells import cell_len
from rich.console import Console

from zsadbench.tables import load_reported, make_paper_tables, make_table
from zsadbench.tables._latex import to_latex
from zsadbench.tables._aggregate import build_model
from zsadbench.tables._model import select_metrics

from rows import frame_row

REPORTED = Path(__file__).resolve().parents[2] / "leaderboards" / "reported"
METRICS = ["image_auroc", "image_ap", "image_f1_max", "pixel_auroc", "pixel_ap", "pixel_f1_max", "aupro",
           "aupro_anomalyclip"]
HEADS = ["I-AUROC", "I-AP", "I-F1max", "P-AUROC", "P-AP", "P-F1max", "AUPRO", "AUPRO-AC"]
DATASETS = {"mvtec": ("MVTec AD", "industrial", ("bottle", "cable", "metal_nut")),
            "visa": ("VisA", "industrial", ("macaroni1", "pcb1")), "headct": ("HeadCT", "medical", ("headct",))}
EXPERTS = (3, 4, 5, 6)
TEXT_WIDTH_PT = 17.5 / 2.54 * 72.27


def value(v: int, ds: str, cat: str, m: int, seed: int) -> float:
    return 0.55 + 0.07 * v + 0.013 * len(cat) + 0.011 * m + 0.004 * list(DATASETS).index(ds) + 0.009 * seed


@pytest.fixture(scope="module")
def four() -> pd.DataFrame:
    """MPAMA run with experts=3,4,5,6: three datasets, six categories, two seeds, eight metrics."""
    return pd.DataFrame([
        frame_row(method="mpama", method_label="MPAMA", config_hash=f"h{k}",
                  config_json=json.dumps({"experts": k, "epochs": 2}), dataset=ds, dataset_label=label, domain=dom,
                  category=cat, seed=seed, aux="visa", metrics={m: value(v, ds, cat, j, seed) for j, m in enumerate(METRICS)})
        for v, k in enumerate(EXPERTS) for ds, (label, dom, cats) in DATASETS.items() for cat in cats for seed in (0, 1)
    ])


def expected_values(df: pd.DataFrame) -> Counter:
    """Every "mean ± std" the per-category table shows, computed here with pandas (one decimal)."""
    out: Counter = Counter()
    pct = df.assign(**{m: df[m] * 100 for m in METRICS})
    for _, part in pct.groupby("config_hash"):
        per_seed = {ds: g.groupby("seed")[METRICS].mean() for ds, g in part.groupby("dataset")}
        rows = [g[METRICS] for _, g in part.groupby(["dataset", "category"])] + list(per_seed.values())
        rows.append(sum(per_seed.values()) / len(per_seed))  # the Mean over datasets, per seed
        for frame in rows:
            for m in METRICS:
                out[f"{frame[m].mean():.1f} ± {frame[m].std(ddof=1):.1f}"] += 1
    return out


def render(table, width: int) -> str:
    console = Console(width=width, record=True, file=io.StringIO())
    console.print(table)
    return console.export_text()


def values_in(text: str) -> Counter:
    return Counter(re.findall(r"\d+\.\d ± \d+\.\d", text))


def heads_in(text: str, head: str) -> int:
    return len(re.findall(rf"(?<![\w-]){re.escape(head)} ↑", text))


@pytest.mark.parametrize("width", [100, 160])
def test_terminal_table_of_four_variants_fits_and_loses_nothing(four, width):
    text = render(make_table(four, "rich", per_category=True), width)
    lines = text.splitlines()
    assert max(cell_len(line) for line in lines) <= width
    assert values_in(text) == expected_values(four)  # every value, once per cell
    for head in HEADS:
        assert heads_in(text, head) == len(EXPERTS)  # one column per variant and metric
    for k in EXPERTS:
        assert f"[experts={k}]" in text
    for _, _, cats in DATASETS.values():
        for cat in cats:  # category labels whole, on one line
            assert any(re.search(rf"\b{cat}\b", line) for line in lines)
    assert not any(len(line.strip()) == 1 for line in lines)
    assert " ".join(text.split()).endswith("± is the sample standard deviation (ddof=1) over seeds.")


def test_wider_terminals_split_less_and_a_wide_one_not_at_all(four):
    table = make_table(four, "rich", per_category=True)
    parts = {w: len(table.tables(w)) for w in (100, 160, 600)}
    assert parts[100] > parts[160] > parts[600] == 1
    assert "Image-level metrics" in render(table, 160) and "metrics (" not in render(table, 600)


def test_reported_columns_never_push_ours_off_the_screen(four):
    rep = load_reported(REPORTED / "mpama_table1.csv")
    text = render(make_table(four, "rich", reported=rep), 100)
    assert max(cell_len(line) for line in text.splitlines()) <= 100
    ours = expected_values(four)
    # ours: the dataset rows and the Mean (no category rows here), each value present
    found = values_in(text)
    assert sum(found.values()) == len(EXPERTS) * len(METRICS) * (len(DATASETS) + 1)
    assert all(ours[v] >= n for v, n in found.items())
    for k in EXPERTS:
        assert f"[experts={k}]" in text
    for label in ("WinCLIP†", "VAND†", "AdaCLIP†", "AnomalyCLIP†", "FAPrompt†", "MPA†", "MPAMA†"):
        assert label in text
    flat = " ".join(text.split())
    assert "numbers as reported in MPAMA (ICLR 2026 submission): Table 1; not reproduced here." in flat


# -- LaTeX ----------------------------------------------------------------------------------------------
def pdflatex(tmp_path: Path, body: str, name: str = "doc") -> str:
    """Compile ``body`` on A4 with a 17.5 cm text width; returns the log."""
    exe = shutil.which("pdflatex")
    assert exe, "pdflatex is missing: bash scripts/install-test-deps"
    doc = "\n".join([r"\documentclass{article}", r"\usepackage[a4paper,textwidth=17.5cm,textheight=26cm]{geometry}",
                     r"\usepackage{booktabs,multirow,makecell,graphicx,xcolor}", r"\begin{document}", body,
                     r"\end{document}", ""])
    (tmp_path / f"{name}.tex").write_text(doc, encoding="utf-8")
    run = subprocess.run([exe, "-interaction=nonstopmode", "-halt-on-error", f"{name}.tex"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout[-3000:]
    return (tmp_path / f"{name}.log").read_text(encoding="utf-8", errors="replace")


def tabular_widths(tmp_path: Path, tex: str) -> list[float]:
    """The natural width in pt of every tabular of ``tex``, as pdflatex sets it."""
    tabulars = re.findall(r"\\begin\{tabular\}.*?\\end\{tabular\}", tex, re.S)
    body = "\n".join(rf"\sbox0{{{t}}}\typeout{{WIDTH={k}:\the\wd0}}" for k, t in enumerate(tabulars))
    log = pdflatex(tmp_path, body, "measure")
    widths = dict(re.findall(r"WIDTH=(\d+):([\d.]+)pt", log))
    return [float(widths[str(k)]) for k in range(len(tabulars))]


def latex_values(tex: str) -> Counter:
    return Counter(f"{m} ± {s}" for m, s in re.findall(r"(\d+\.\d)\}?\{\\scriptsize\$\\pm\$(\d+\.\d)\}", tex))


def test_standard_latex_of_four_variants_fits_the_text_width(four, tmp_path):
    tex = make_table(four, "latex", per_category=True, caption="Four variants")
    log = pdflatex(tmp_path, tex)
    assert "Overfull \\hbox" not in log
    widths = tabular_widths(tmp_path, tex)
    assert len(widths) > 1 and max(widths) <= TEXT_WIDTH_PT  # split by metric group, each part fits
    assert latex_values(tex) == expected_values(four)  # no value lost in the split
    for head in HEADS:
        assert len(re.findall(rf"(?<![\w-]){re.escape(head)}\$\\uparrow\$", tex)) == len(EXPERTS)
    assert "Image-level metrics" in tex and "Pixel-level metrics" in tex and "natural size" not in tex


def test_latex_that_cannot_fit_says_by_how_much(four, tmp_path):
    specs = select_metrics(["image_auroc"], None)
    model = build_model(four, specs, per_category=False, digits=1)
    tex = to_latex(model, text_width_cm=4.0)  # one column plus the labels is wider than 4 cm
    widest = max(tabular_widths(tmp_path, tex))
    stated = re.search(r"about ([\d.]+) cm wide, ([\d.]+) cm more than the 4.0 cm text width", tex)
    assert stated, tex
    assert float(stated.group(1)) == pytest.approx(widest * 2.54 / 72.27, rel=0.05)
    assert float(stated.group(2)) == pytest.approx(widest * 2.54 / 72.27 - 4.0, abs=0.3)
    assert r"\texttt{-{}-metrics}" in tex


def cells_of(line: str) -> list[str]:
    return [c.strip() for c in re.split(r"(?<!\\)&", line.rstrip().removesuffix(r"\\"))]


def test_paper_tables_with_every_reported_source_compile_and_state_their_scale(four, tmp_path):
    tables = make_paper_tables(four, reported=load_reported(REPORTED))
    shown = {k: tables[k] for k in ("main-industrial", "main-medical", "mvtec-image_auroc", "ablation-mpama")}
    log = pdflatex(tmp_path, "\n".join(shown.values()))
    assert "Overfull \\hbox" not in log
    for name, tex in shown.items():
        (width,) = tabular_widths(tmp_path, tex)
        stated = re.search(r"about ([\d.]+) cm wide", tex)
        if width > TEXT_WIDTH_PT:  # scaled down to the text width, and it says from what
            assert r"\resizebox{\linewidth}" in tex and stated, name
            assert float(stated.group(1)) == pytest.approx(width * 2.54 / 72.27, rel=0.05), name
        else:
            assert r"\resizebox" not in tex and not stated, name
    cat = tables["mvtec-image_auroc"]
    head = cells_of(next(line for line in cat.splitlines() if line.startswith("Category &")))
    # short source marks, not source strings; a reported method without an MVTec AD I-AUROC gets no column
    assert not any("ICLR" in h or "README" in h for h in head)
    assert r"WinCLIP$^{\dagger1}$" in head and r"WinCLIP$^{\dagger2}$" in head
    rows = [cells_of(line) for line in cat.splitlines() if re.match(r"(bottle|cable|metal\\_nut|Mean) &", line)]
    assert all(any(c != "-" for c in (r[k] for r in rows)) for k in range(1, len(head)))
    assert r"$^{\dagger1}$" in cat and "MPAMA (ICLR 2026 submission)" in cat  # the full source in a footnote


def test_daggers_mark_only_numbers_as_printed(four):
    rep = load_reported(REPORTED / "mpama_table1.csv")
    tables = make_paper_tables(four[four["dataset"] != "headct"], reported=rep)
    main = tables["main"]
    head = cells_of(next(line for line in main.splitlines() if line.startswith("Task &")))
    reported = [k for k, h in enumerate(head) if r"\dagger" in h]
    assert len(reported) == 7
    for line in main.splitlines():
        if " & MVTec AD & " in line or " & VisA & " in line:  # dataset scores as printed
            assert all(cells_of(line)[k].endswith(r"$^{\dagger}$") for k in reported)
        if " & Mean & " in line:  # the Mean over MVTec AD and VisA is computed here
            assert all(cells_of(line)[k].endswith(r"$^{\ddagger}$") for k in reported)
            assert r"\dagger}" not in line
    assert r"$^{\ddagger}$every reported column: Mean of the reported dataset scores" in main
    cat = tables["mvtec-image_auroc"]
    mean = cells_of(next(line for line in cat.splitlines() if line.startswith("Mean &")))
    assert mean[1].endswith(r"$^{\dagger}$")  # a per-dataset Mean the paper prints keeps its dagger
    assert math.isclose(float(re.search(r"\d+\.\d", mean[1]).group()), 91.8)  # WinCLIP, MVTec AD, Table 1


def test_metric_selection_names_what_exists(tmp_path, capsys, four):
    from zsadbench.cli.main import main
    from zsadbench.store import ResultStore

    from rows import stored_cell

    store = ResultStore(tmp_path / "out")
    for n, rec in enumerate(four[four["config_hash"].isin(["h3", "h4"])].to_dict("records")):
        store.put(stored_cell(cell_id=f"c{n}", **{k: rec[k] for k in (
            "method", "method_label", "config_hash", "config_json", "dataset", "dataset_label", "domain",
            "category", "seed", "aux")}, metrics={m: rec[m] for m in ("image_auroc", "pixel_auroc")}))
    out = str(store.out)
    assert main(["table", "--out", out, "--format", "md", "--metrics", "pixel_auroc",
                 "--variants", "MPAMA [experts=4]"]) == 0
    md = capsys.readouterr().out
    assert md.splitlines()[0].count("<br>") == 1 and "MPAMA [experts=4]<br>P-AUROC" in md
    assert main(["table", "--out", out, "--metrics", "aupro"]) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert "--metrics: 'aupro' has no value in these results; they hold image_auroc, pixel_auroc" in err
