"""The paper layout (MPAMA Tables 1/2, 3-5, 9-20): marks, daggers, deltas and escaping checked against
hand-built stores, and every generated table compiled with pdflatex (installed by .ci/run; missing is a failure)."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from zsadbench.cli.main import main
from zsadbench.store import ResultStore
from zsadbench.tables import load_reported, make_paper_tables, results_frame
from zsadbench.tables._paper import document

from rows import stored_cell

REPORTED = Path(__file__).resolve().parents[2] / "leaderboards" / "reported"
LABELS = {"mvtec": ("MVTec AD", "industrial"), "visa": ("VisA", "industrial"), "headct": ("HeadCT", "medical")}
RED = r"\textcolor{red}{\textbf{%s}}"
BLUE = r"\textcolor{blue}{%s}"


def compile_latex(tmp_path: Path, tables: list[str]) -> None:
    pdflatex = shutil.which("pdflatex")
    assert pdflatex, "pdflatex is missing: apt-get install texlive-latex-base texlive-latex-recommended texlive-latex-extra"
    (tmp_path / "doc.tex").write_text(document(tables), encoding="utf-8")
    run = subprocess.run([pdflatex, "-interaction=nonstopmode", "-halt-on-error", "doc.tex"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout[-3000:]
    assert (tmp_path / "doc.pdf").stat().st_size > 1000


class Store:
    def __init__(self, out: Path) -> None:
        self.store, self.n = ResultStore(out), 0

    def put(self, method, label, dataset, category, metrics, *, seed=0, config=None, config_hash="h"):
        self.n += 1
        self.store.put(stored_cell(
            cell_id=f"c{self.n}", method=method, method_label=label, config_hash=config_hash,
            config_json=json.dumps(config or {}), dataset=dataset, dataset_label=LABELS[dataset][0],
            domain=LABELS[dataset][1], category=category, seed=seed, metrics=metrics,
        ))


def two_methods(tmp_path) -> ResultStore:
    """AnomalyCLIP (2 seeds) and WinCLIP on MVTec AD (2 categories) and VisA, image and pixel metrics."""
    s = Store(tmp_path / "out")
    for seed, shift in ((0, 0.0), (1, 0.01)):
        for cat in ("bottle", "metal_nut"):
            s.put("anomalyclip", "AnomalyCLIP", "mvtec", cat, {"image_auroc": .92 + shift, "image_ap": .95 + shift,
                  "pixel_auroc": .90, "aupro_anomalyclip": .80}, seed=seed)
        s.put("anomalyclip", "AnomalyCLIP", "visa", "pcb1", {"image_auroc": .80 + shift, "image_ap": .84,
              "pixel_auroc": .96, "aupro_anomalyclip": .88}, seed=seed)
    for cat in ("bottle", "metal_nut"):
        s.put("winclip", "WinCLIP", "mvtec", cat, {"image_auroc": .88, "image_ap": .97, "pixel_auroc": .85,
              "aupro_anomalyclip": .60})
    s.put("winclip", "WinCLIP", "visa", "pcb1", {"image_auroc": .70, "image_ap": .75, "pixel_auroc": .80,
          "aupro_anomalyclip": .50})
    return s.store


def table1():
    rep = load_reported(REPORTED / "mpama_table1.csv")
    return rep[rep["method"].isin(["anomalyclip", "winclip"])]


def test_main_table_marks_daggers_and_deltas(tmp_path):
    tables = make_paper_tables(results_frame(two_methods(tmp_path).out), reported=table1(), delta=True)
    tex = tables["main"]
    mvtec = next(line for line in tex.splitlines() if line.startswith("& MVTec AD") or " & MVTec AD &" in line)
    cells = [c.strip() for c in mvtec.rstrip(r" \\").split(" & ")][2:]
    # columns: AnomalyCLIP† (91.5, 96.2), ours (92.5±0.7, 95.5±0.7), Δ, WinCLIP† (91.8, 96.5), ours (88.0, 97.0), Δ
    assert cells[0] == r"(91.5, 96.2)$^{\dagger}$"
    assert cells[1] == rf"({RED % '92.5'}{{\scriptsize$\pm$0.7}}, 95.5{{\scriptsize$\pm$0.7}})"
    assert cells[2] == "(+1.0, $-$0.7)"
    assert cells[3] == rf"({BLUE % '91.8'}, {BLUE % '96.5'})$^{{\dagger}}$"
    assert cells[4] == rf"(88.0, {RED % '97.0'})"
    assert cells[5] == "($-$3.8, +0.5)"
    head = next(line for line in tex.splitlines() if line.startswith("Task &"))
    assert head == r"Task & Dataset & AnomalyCLIP$^{\dagger}$ & AnomalyCLIP & $\Delta$ & WinCLIP$^{\dagger}$ & WinCLIP & $\Delta$ \\"
    assert r"\makecell[l]{Image-level\\(AUROC, AP)}" in tex and r"\makecell[l]{Pixel-level\\(AUROC, PRO)}" in tex
    assert "as reported in MPAMA (ICLR 2026 submission): Table 1" in tex
    assert r"\label{tab:main}" in tex and r"\caption{Results on the industrial datasets.}" in tex
    compile_latex(tmp_path, list(tables.values()))


def test_per_category_tables_and_names_are_escaped(tmp_path):
    s = Store(tmp_path / "out")
    for cat, v in (("cat_1&#", .9), ("ca$t~2", .8)):
        s.put("winclip", "Win_CLIP & 50% {v2}", "mvtec", cat, {"image_auroc": v, "pixel_auroc": v - .1})
        s.put("anomalyclip", "AnomalyCLIP", "mvtec", cat, {"image_auroc": v - .05, "pixel_auroc": v})
    tables = make_paper_tables(results_frame(s.store.out), caption="A caption with 100% & more_", label="tab:x_y")
    assert set(tables) == {"main", "mvtec-image_auroc", "mvtec-pixel_auroc"}
    cat = tables["mvtec-image_auroc"]
    assert r"cat\_1\&\# & " + RED % "90.0" + " & " + BLUE % "85.0" + r" \\" in cat
    assert r"ca\$t\textasciitilde{}2 & " in cat and r"Win\_CLIP \& 50\% \{v2\}" in cat
    assert r"Mean & " + RED % "85.0" in cat
    assert r"\caption{A caption with 100\% \& more\_}" in tables["main"] and r"\label{tab:x_y}" in tables["main"]
    compile_latex(tmp_path, list(tables.values()))


def test_ablation_table_has_one_row_per_variant_beside_the_reported_rows(tmp_path):
    s = Store(tmp_path / "out")
    for experts, v in ((3, .94), (4, .95)):
        for ds, cat in (("mvtec", "bottle"), ("visa", "pcb1")):
            s.put("mpama", "MPAMA", ds, cat, {"image_auroc": v, "image_ap": v, "pixel_auroc": v, "aupro_anomalyclip": v},
                  config={"experts": experts, "epochs": 2}, config_hash=f"e{experts}")
    rep = load_reported(REPORTED / "mpama_table5.csv")
    tables = make_paper_tables(results_frame(s.store.out), reported=rep)
    tex = tables["ablation-mpama"]
    rows = {line.split(" & ")[0]: line for line in tex.splitlines() if line.startswith("experts=")}
    assert set(rows) == {f"experts={k}$^{{\\dagger}}$" for k in range(1, 7)} | {"experts=3", "experts=4"}
    # MVTec AD pixel (AUROC, PRO), image (AUROC, AP); then VisA; Table 5's experts=4 row is (93.2, 88.3) ...
    assert rows["experts=4$^{\\dagger}$"].split(" & ")[1:3] == ["(93.2, 88.3)", "(94.5, 97.6)"]
    assert RED % "95.0" in rows["experts=4"]  # ours beats every reported MVTec number
    assert r"\multicolumn{2}{c}{MVTec AD} & \multicolumn{2}{c}{VisA}" in tex
    compile_latex(tmp_path, list(tables.values()))


def test_cli_paper_layout_with_reported_table1_and_write(tmp_path, capsys):
    store = two_methods(tmp_path)
    argv = ["table", "--out", str(store.out), "--layout", "paper", "--reported", str(REPORTED / "mpama_table1.csv")]
    assert main(argv + ["--write", str(tmp_path / "tex"), "--name", "demo"]) == 0
    printed = capsys.readouterr().out
    # every method of Table 1 is a column: 7 reported plus our 2
    head = next(line for line in printed.splitlines() if line.startswith("Task &"))
    assert head.count(r"$^{\dagger}$") == 7 and len(head.split(" & ")) == 2 + 9
    written = sorted(p.name for p in (tmp_path / "tex").iterdir())
    assert written == ["demo-main.tex", "demo-mvtec-aupro_anomalyclip.tex", "demo-mvtec-image_ap.tex",
                       "demo-mvtec-image_auroc.tex", "demo-mvtec-pixel_auroc.tex", "demo-visa-aupro_anomalyclip.tex",
                       "demo-visa-image_ap.tex", "demo-visa-image_auroc.tex", "demo-visa-pixel_auroc.tex"]
    assert re.search(r"MPAMA\$\^\{\\dagger\}\$", head)
    compile_latex(tmp_path, [p.read_text() for p in sorted((tmp_path / "tex").iterdir())])
    assert main(["table", "--out", str(store.out), "--layout", "paper", "--pro", "aupro"]) == 0
    assert "standard AUPRO" in capsys.readouterr().out


def test_bad_paper_options_raise(tmp_path):
    from zsadbench.errors import ConfigError

    frame = results_frame(two_methods(tmp_path).out)
    with pytest.raises(ConfigError, match="PRO metric"):
        make_paper_tables(frame, pro="pro")
    with pytest.raises(ConfigError, match="LaTeX label"):
        make_paper_tables(frame, label="tab:{x}")


def test_reported_folder_gives_per_category_numbers_and_only_our_settings(tmp_path):
    tables = make_paper_tables(results_frame(two_methods(tmp_path).out), reported=load_reported(REPORTED))
    head = next(line for line in tables["main"].splitlines() if line.startswith("Task &"))
    # zero-shot results: FineGrainedAD's few-shot columns stay out; WinCLIP is quoted by two sources, each
    # column marked with its source's number and the full source in a footnote
    assert "shot" not in head and "PaDiM" not in head
    assert r"WinCLIP$^{\dagger1}$ & WinCLIP$^{\dagger2}$ & WinCLIP \\" in head
    notes = tables["main"].split(r"\par ")
    assert any(n.startswith(r"$^{\dagger1}$VAND, ") and "as reported in MPAMA (ICLR 2026 submission): Table 1;" in n
               for n in notes)
    assert any(n.startswith(r"$^{\dagger2}$APRIL-GAN, ") and "as reported in VisualAD repository README" in n
               for n in notes)
    cat = tables["mvtec-pixel_auroc"]
    bottle = next(line for line in cat.splitlines() if line.startswith("bottle &"))
    # MPAMA Table 9: bottle pixel AUROC of WinCLIP 89.5, AnomalyCLIP 90.4, MPAMA 93.5 (best)
    assert "89.5$^{\\dagger}$" in bottle and "90.4$^{\\dagger}$" in bottle and RED % "93.5" in bottle
    compile_latex(tmp_path, [tables["main"], cat])

