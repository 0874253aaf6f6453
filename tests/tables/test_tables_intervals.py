"""Confidence intervals in the tables: after our numbers in every format (which stay exactly as they are), in the
CSV columns, in LaTeX that compiles with pdflatex and still fits the text width, in the paper layout's notes, and
end to end: `zsadbench table --ci` on a results folder against resamples materialised here and scored with
scikit-learn."""
from __future__ import annotations

import csv
import io
import json
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from rich.console import Console
from sklearn.metrics import roc_auc_score

from zsadbench.cli.main import main
from zsadbench.errors import ConfigError
from zsadbench.stats.resample import BootstrapSettings, cell_weights
from zsadbench.store import ResultStore
from zsadbench.tables import Intervals, load_reported, make_paper_tables, make_table

from rows import frame_row

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "stats"))
from stats_store import ToyMethod, write_store  # noqa: E402

REPORTED = Path(__file__).resolve().parents[2] / "leaderboards" / "reported"
METRICS = ["image_auroc", "image_ap", "image_f1_max", "pixel_auroc", "pixel_ap", "pixel_f1_max", "aupro",
           "aupro_anomalyclip"]
WITH_CI = METRICS[:6]
DATASETS = {"mvtec": ("MVTec AD", "industrial", ("bottle", "cable")), "visa": ("VisA", "industrial", ("pcb1",)),
            "headct": ("HeadCT", "medical", ("headct",))}
EXPERTS = (3, 4, 5, 6)
LABELS = [f"MPAMA [experts={k}]" for k in EXPERTS]
TEXT_WIDTH_PT = 17.5 / 2.54 * 72.27
PM = re.compile(r" \(±\d+\.\d\)")


@pytest.fixture(scope="module")
def four() -> pd.DataFrame:
    """MPAMA with experts=3,4,5,6 on three datasets (two domains), two seeds, eight metrics."""
    return pd.DataFrame([
        frame_row(method="mpama", method_label="MPAMA", config_hash=f"h{k}",
                  config_json=json.dumps({"experts": k}), dataset=ds, dataset_label=label, domain=dom, category=cat,
                  seed=seed, metrics={m: 0.6 + 0.05 * v + 0.01 * j + 0.003 * seed + 0.002 * len(cat)
                                      for j, m in enumerate(METRICS)})
        for v, k in enumerate(EXPERTS) for ds, (label, dom, cats) in DATASETS.items() for cat in cats for seed in (0, 1)
    ])


@pytest.fixture(scope="module")
def ends() -> dict[tuple[str, str, str, str], tuple[float, float]]:
    """An asymmetric interval for every number of ours (dataset values as category "mean", the Mean over
    datasets as ("mean", "mean"), the Mean over one domain's datasets as ("mean", domain))."""
    where = [(ds, cat) for ds, (_, _, cats) in DATASETS.items() for cat in (*cats, "mean")]
    where += [("mean", "mean"), ("mean", "industrial"), ("mean", "medical")]
    out = {}
    for n, (label, (ds, cat), metric) in enumerate((a, b, c) for a in LABELS for b in where for c in WITH_CI):
        lo = 0.40 + 0.0013 * (n % 97)
        out[(label, ds, cat, metric)] = (lo, lo + 0.02 + 0.0011 * (n % 13))
    return out


def intervals_of(ends: dict) -> Intervals:
    frame = pd.DataFrame([(*k, lo, hi) for k, (lo, hi) in ends.items()],
                         columns=["variant", "dataset", "category", "metric", "lo", "hi"])
    return Intervals(frame, 0.95, "toy intervals")


def shown_keys(per_category: bool) -> list[tuple[str, str, str, str]]:
    """The keys of the numbers a standard table of ``four`` shows (its Mean row is the Mean over datasets)."""
    rows = [(ds, cat) for ds, (_, _, cats) in DATASETS.items()
            for cat in ((*cats, "mean") if per_category else ("mean",))] + [("mean", "mean")]
    return [(label, ds, cat, m) for label in LABELS for ds, cat in rows for m in WITH_CI]


def pm_text(lo: float, hi: float) -> str:
    return f"(±{100 * (hi - lo) / 2:.1f})"


def range_text(lo: float, hi: float) -> str:
    return f"[{100 * lo:.1f}, {100 * hi:.1f}]"


def render(table, width: int = 2000) -> str:
    console = Console(width=width, record=True, file=io.StringIO())
    console.print(table)
    return console.export_text()


def test_every_format_shows_the_intervals_and_keeps_the_values(four, ends):
    iv = intervals_of(ends)
    expected_pm = Counter(pm_text(*ends[k]) for k in shown_keys(True))
    for fmt in ("md", "rich"):
        plain = make_table(four, fmt, per_category=True)
        ci = make_table(four, fmt, per_category=True, intervals=iv)
        text_plain, text_ci = (render(t) if fmt == "rich" else t for t in (plain, ci))
        assert Counter(PM.findall(text_ci)) == Counter(f" {t}" for t in expected_pm.elements()), fmt
        numbers = re.compile(r"\d+\.\d ± \d+\.\d")
        assert Counter(numbers.findall(text_ci)) == Counter(numbers.findall(text_plain)), fmt  # values unchanged
        assert "(±h): half the width of the 95% confidence interval (toy intervals)" in " ".join(text_ci.split())
        assert "AUPRO, AUPRO-AC: no interval." in text_ci
        if fmt == "md":  # nothing but the intervals and their notes was added
            kept = [line for line in PM.sub("", text_ci).splitlines()
                    if not line.startswith(("(±h)", "AUPRO, AUPRO-AC: no interval"))]
            assert "\n".join(kept).rstrip() == text_plain.rstrip()
    narrow = render(make_table(four, "rich", per_category=True, intervals=iv), 100)  # split to fit, nothing lost
    assert max(len(line) for line in narrow.splitlines()) <= 100 and "(1 of " in narrow
    assert Counter(PM.findall(narrow)) == Counter(f" {t}" for t in expected_pm.elements())
    md = make_table(four, "md", per_category=True, intervals=iv, ci_style="range")
    found = Counter(re.findall(r"\[\d+\.\d, \d+\.\d\]", md))
    assert found == Counter(range_text(*ends[k]) for k in shown_keys(True))
    assert "[lo, hi]: the 95% confidence interval (toy intervals)." in md


def read_csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_csv_adds_interval_columns_and_keeps_every_other(four, ends):
    iv = intervals_of(ends)
    plain, ci = (read_csv(make_table(four, "csv", intervals=x)) for x in (None, iv))
    assert len(plain) == len(ci)
    for row_plain, row_ci in zip(plain, ci):
        assert {k: row_ci[k] for k in row_plain} == row_plain
        extra = set(row_ci) - set(row_plain)
        assert extra == {f"{label} {head} {end}" for label in LABELS
                         for head in ("I-AUROC", "I-AP", "I-F1max", "P-AUROC", "P-AP", "P-F1max")
                         for end in ("ci_lo", "ci_hi")}
    mvtec = ci[0]
    lo, hi = ends[("MPAMA [experts=4]", "mvtec", "mean", "pixel_ap")]
    assert float(mvtec["MPAMA [experts=4] P-AP ci_lo"]) == round(100 * lo, 1)
    assert float(mvtec["MPAMA [experts=4] P-AP ci_hi"]) == round(100 * hi, 1)

    plain, ci = (read_csv(make_table(four, "csv", csv_layout="long", intervals=x)) for x in (None, iv))
    assert len(plain) == len(ci)
    for row_plain, row_ci in zip(plain, ci):
        assert {k: row_ci[k] for k in row_plain} == row_plain
        key = (row_ci["variant"], row_ci["dataset"], row_ci["category"], row_ci["metric"])
        if key[3] in WITH_CI:
            assert (float(row_ci["ci_lo"]), float(row_ci["ci_hi"])) == pytest.approx(
                tuple(100 * x for x in ends[key]), abs=1e-12)
            assert float(row_ci["ci_level"]) == 0.95
        else:
            assert row_ci["ci_lo"] == row_ci["ci_hi"] == ""


def test_reported_columns_get_no_interval_even_under_the_same_label():
    frame = pd.DataFrame([frame_row(method="winclip", method_label="WinCLIP", dataset="mvtec", category=cat,
                                    metrics={"image_auroc": 0.9, "image_ap": 0.95}) for cat in ("bottle", "cable")])
    iv = Intervals(pd.DataFrame([("WinCLIP", "mvtec", "mean", m, 0.8, 0.95) for m in ("image_auroc", "image_ap")],
                                columns=["variant", "dataset", "category", "metric", "lo", "hi"]))
    md = make_table(frame, "md", intervals=iv, reported=load_reported(REPORTED / "mpama_table1.csv"),
                    metrics=["image_auroc", "image_ap"])
    header = [c.strip() for c in md.splitlines()[0].strip("|").split("|")]
    row = [c.strip() for c in md.splitlines()[2].strip("|").split("|")]
    ours = [c for h, c in zip(header, row) if h.startswith("WinCLIP<br>")]
    theirs = [c for h, c in zip(header, row) if h.startswith("WinCLIP†<br>")]
    assert ours and theirs and all("(±7.5)" in c for c in ours) and not any("±" in c for c in theirs)


def test_bad_interval_data_is_one_clear_error(four):
    with pytest.raises(ConfigError, match="lacks column.*hi"):
        Intervals(pd.DataFrame({"variant": [], "dataset": [], "category": [], "metric": [], "lo": []}))
    with pytest.raises(ConfigError, match="strictly between 0 and 1"):
        Intervals(pd.DataFrame(columns=["variant", "dataset", "category", "metric", "lo", "hi"]), level=95)
    with pytest.raises(ConfigError, match="unknown interval style 'mid'"):
        make_table(four, "md", ci_style="mid")


# -- LaTeX --------------------------------------------------------------------------------------------
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


def tabulars(tex: str) -> list[str]:
    return re.findall(r"\\begin\{tabular\}.*?\\end\{tabular\}", tex, re.S)


def tabular_widths(tmp_path: Path, tex: str) -> list[float]:
    """The natural width in pt of every tabular of ``tex``, as pdflatex sets it."""
    found = tabulars(tex)
    body = "\n".join(rf"\sbox0{{{t}}}\typeout{{WIDTH={k}:\the\wd0}}" for k, t in enumerate(found))
    widths = dict(re.findall(r"WIDTH=(\d+):([\d.]+)pt", pdflatex(tmp_path, body, "measure")))
    return [float(widths[str(k)]) for k in range(len(found))]


def test_standard_latex_with_intervals_compiles_and_is_split_to_fit(four, ends, tmp_path):
    iv = intervals_of(ends)
    plain = make_table(four, "latex", per_category=True)
    tex = make_table(four, "latex", per_category=True, intervals=iv, ci_style="range")
    assert "Overfull \\hbox" not in pdflatex(tmp_path, tex)
    widths = tabular_widths(tmp_path, tex)
    assert len(widths) > len(tabulars(plain)) and max(widths) <= TEXT_WIDTH_PT  # wider cells, more parts, each fits
    found = Counter(re.findall(r"\{\\scriptsize\\,\[(\d+\.\d), (\d+\.\d)\]\}", tex))
    assert found == Counter(tuple(range_text(*ends[k])[1:-1].split(", ")) for k in shown_keys(True))
    values = re.compile(r"(\d+\.\d)\}?\{\\scriptsize\$\\pm\$(\d+\.\d)\}")
    assert Counter(values.findall(tex)) == Counter(values.findall(plain))  # every value, unchanged
    assert "natural size" not in tex


def test_paper_tables_list_intervals_in_their_notes_and_keep_their_cells(four, ends, tmp_path):
    plain = make_paper_tables(four)
    tables = make_paper_tables(four, intervals=intervals_of(ends), ci_style="range")
    assert set(tables) == set(plain)
    mark = r"$^{\S}$"
    for name, tex in tables.items():
        (tab,), (tab_plain,) = tabulars(tex), tabulars(plain[name])
        assert tab.replace(mark, "") == tab_plain, name  # the cells as without intervals: marks on heads only
        assert ("resizebox" in tex) == ("resizebox" in plain[name]), name
    main = tables["main-industrial"]
    head = next(line for line in main.splitlines() if line.startswith("Task &"))
    assert head.count(mark) == len(LABELS)
    note = " ".join(main.split())
    label = "MPAMA [experts=5]"
    for row, (ds, cat) in (("MVTec AD", ("mvtec", "mean")), ("Mean", ("mean", "industrial"))):
        listed = ", ".join(f"{h} {range_text(*ends[(label, ds, cat, m)])}"
                           for h, m in (("I-AUROC", "image_auroc"), ("I-AP", "image_ap"), ("P-AUROC", "pixel_auroc")))
        assert f"{row}: {listed}" in note  # the Mean row: the Mean over this domain's datasets
    assert range_text(*ends[(label, "mean", "mean", "image_auroc")]) not in note
    ablation = tables["ablation-mpama"]
    assert sum(line.count(mark) for line in ablation.splitlines() if line.startswith("experts=")) == len(EXPERTS)
    category = tables["mvtec-image_auroc"]
    bottle = range_text(*ends[(label, "mvtec", "bottle", "image_auroc")])
    assert f"bottle: I-AUROC {bottle}" in " ".join(category.split())
    assert "Overfull \\hbox" not in pdflatex(tmp_path, "\n".join(tables.values()))


# -- from a results folder ----------------------------------------------------------------------------
TOY = [ToyMethod("good", 2.0, label="Good", seeds=(0, 1)), ToyMethod("poor", 0.5, label="Poor")]
TOY_DATA = {"toy": ("a", "b"), "toy2": ("c",)}
RESAMPLES = 60


@pytest.fixture(scope="module")
def out(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("ci") / "out"
    write_store(folder, TOY, TOY_DATA, normal=8, anomalous=8)
    return folder


def materialised(out: Path) -> dict[str, dict[str, np.ndarray]]:
    """cell id → metric → its value on each resample, the resampled images scored with scikit-learn."""
    store = ResultStore(out)
    found = {}
    for cell in store.rows():
        arrays = store.load_cell_arrays(cell.cell_id)
        weights = cell_weights(arrays["image_keys"], arrays["gt_label"], BootstrapSettings(RESAMPLES, 0))
        values = {"image_auroc": [], "pixel_auroc": []}
        for row in weights:
            index = np.repeat(np.arange(len(row)), row)
            values["image_auroc"].append(roc_auc_score(arrays["gt_label"][index], arrays["pred_score"][index]))
            values["pixel_auroc"].append(roc_auc_score(arrays["gt_mask"][index].ravel(),
                                                       arrays["anomaly_map"][index].ravel()))
        found[cell.cell_id] = {k: np.array(v) for k, v in values.items()}
    return found


def expected_intervals(out: Path) -> dict[tuple[str, str, str, str], tuple[float, float]]:
    """Each number's 95% interval in percent: per resample, the number formed as the table forms it."""
    values = materialised(out)
    cells = ResultStore(out).rows()
    label = {"good": "Good", "poor": "Poor"}
    out_: dict = {}
    for method in label:
        for metric in ("image_auroc", "pixel_auroc"):
            per_dataset = {}
            for ds, cats in TOY_DATA.items():
                of = [c for c in cells if c.method == method and c.dataset == ds]
                by_seed = {s: np.mean([values[c.cell_id][metric] for c in of if c.seed == s], axis=0)
                           for s in {c.seed for c in of}}
                per_dataset[ds] = np.mean(list(by_seed.values()), axis=0)
                out_[(label[method], ds, "mean", metric)] = per_dataset[ds]
                for cat in cats:
                    out_[(label[method], ds, cat, metric)] = np.mean(
                        [values[c.cell_id][metric] for c in of if c.category == cat], axis=0)
            out_[(label[method], "mean", "mean", metric)] = np.mean(list(per_dataset.values()), axis=0)
    return {k: tuple(100 * np.percentile(v, [2.5, 97.5])) for k, v in out_.items()}


def test_table_ci_bootstraps_the_folder_once_and_matches_materialised_resamples(out, capsys):
    args = ["table", "--out", str(out), "--metrics", "image_auroc,pixel_auroc", "-f", "csv", "--csv-layout", "long"]
    assert main(args) == 0
    plain = read_csv(capsys.readouterr().out)
    assert main([*args, "--ci", "--resamples", str(RESAMPLES)]) == 0
    captured = capsys.readouterr()
    assert "bootstrapped 9 cells" in captured.err
    ci = read_csv(captured.out)
    expected = expected_intervals(out)
    assert len(ci) == len(plain) == len(expected)
    for row_plain, row in zip(plain, ci):
        assert {k: row[k] for k in row_plain} == row_plain  # the point estimates are the table's
        key = (row["variant"], row["dataset"], row["category"], row["metric"])
        assert (float(row["ci_lo"]), float(row["ci_hi"])) == pytest.approx(expected[key], abs=1e-9), key
    assert main([*args, "--ci", "--resamples", str(RESAMPLES)]) == 0  # again: from OUT/stats
    captured = capsys.readouterr()
    assert "bootstrapped 0 cells" in captured.err and "9 read from" in captured.err
    assert read_csv(captured.out) == ci


def test_table_ci_in_the_paper_layout_and_its_errors(out, capsys):
    assert main(["table", "--out", str(out), "--layout", "paper", "--ci", "--resamples", str(RESAMPLES),
                 "--ci-style", "range"]) == 0
    tex = capsys.readouterr().out
    assert r"Good$^{\S}$" in tex and "95\\% confidence intervals of our numbers" in tex
    assert main(["table", "--out", str(out), "--metrics", "aupro_anomalyclip", "--ci"]) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert "--ci: none of the metrics shown (aupro_anomalyclip) has a bootstrap" in err
