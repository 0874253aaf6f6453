"""Completeness as data: an interrupted few-shot sweep's partial Means (and means over seeds that covered
different categories) are marked in every format and never ranked; the shots plot keeps them off its lines."""
from __future__ import annotations

import io
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from matplotlib.collections import PathCollection
from rich.console import Console

from zsadbench.cli.main import main
from zsadbench.plots import plot_shots, shot_curves
from zsadbench.plots._cells import plt
from zsadbench.plots.shots import _draw, incomplete_shots
from zsadbench.store import ResultStore
from zsadbench.tables import make_paper_tables, make_table, results_frame
from zsadbench.tables._coverage import Coverage

from rows import stored_cell

CATEGORIES = {"mvtec": ("MVTec AD", ("bottle", "cable", "screw")), "visa": ("VisA", ("pcb1", "pcb2"))}
SEEDS = (0, 1)
#: the cells the interrupted sweep finished: 0- and 1-shot everything; 2-shot only MVTec AD's bottle (both
#: seeds) and all of VisA; 4-shot seed 0 everywhere, seed 1 only MVTec AD's bottle and VisA
DONE = {
    0: lambda ds, cat, seed: True,
    1: lambda ds, cat, seed: True,
    2: lambda ds, cat, seed: ds == "visa" or cat == "bottle",
    4: lambda ds, cat, seed: ds == "visa" or seed == 0 or cat == "bottle",
}
#: image AUROC per shot count: the incomplete 2- and 4-shot numbers are the highest, so ranking them would show
VALUE = {0: .70, 1: .80, 2: .99, 4: .95}


def value(k: int, ds: str, cat: str, seed: int) -> float:
    return VALUE[k] + (0.01 if cat == "cable" else 0.0) + 0.002 * seed - (0.05 if ds == "visa" else 0.0)


def interrupted_sweep(out: Path) -> ResultStore:
    store = ResultStore(out)
    n = 0
    for k, done in DONE.items():
        for ds, (label, cats) in CATEGORIES.items():
            for cat in cats:
                for seed in SEEDS:
                    if done(ds, cat, seed):
                        n += 1
                        v = value(k, ds, cat, seed)
                        store.put(stored_cell(cell_id=f"c{n}", dataset=ds, dataset_label=label, category=cat,
                                              shots=k, seed=seed, metrics={"image_auroc": v, "image_ap": v}))
    return store


def expected_dataset(k: int, ds: str) -> float:
    """The dataset score as the tables define it: per seed the mean over finished categories, then over seeds."""
    per_seed = [np.mean([value(k, ds, c, s) for c in CATEGORIES[ds][1] if DONE[k](ds, c, s)]) for s in SEEDS]
    return 100 * float(np.mean(per_seed))


@pytest.fixture(scope="module")
def sweep(tmp_path_factory) -> pd.DataFrame:
    return results_frame(interrupted_sweep(tmp_path_factory.mktemp("sweep") / "out").out)


def md_rows(md: str) -> dict[str, list[str]]:
    lines = [[c.strip() for c in line.strip().strip("|").split("|")] for line in md.splitlines()
             if line.startswith("| ")][2:]
    return {r[1] or r[0]: r[2:] for r in lines}


LABELS = ["WinCLIP", "WinCLIP (1-shot)", "WinCLIP (2-shot)", "WinCLIP (4-shot)"]
# what each incomplete number covers, counted by hand from DONE
MVTEC_2 = "2 of 6 cells (3 categories × 2 seeds)"
MVTEC_4 = "4 of 6 cells (3 categories × 2 seeds)"
MEAN_2 = "6 of 10 cells (5 categories × 2 seeds)"
MEAN_4 = "8 of 10 cells (5 categories × 2 seeds)"


def test_coverage_texts():
    assert Coverage((1, 3), 3, 1).text() == "1 of 3 categories"
    assert Coverage((1, 2), 1, 2).text() == "1 of 2 seeds"
    assert Coverage((4, 6), 3, 2).text() == MVTEC_4
    assert Coverage((3, 3), 3, 1, (2, 3)).text() == "2 of 3 datasets" and not Coverage((3, 3), 3, 1, (2, 3)).complete
    assert Coverage((3, 3), 3, 1, (3, 3)).complete and Coverage().complete


def test_markdown_marks_partial_means_and_ranks_only_complete_ones(sweep):
    md = make_table(sweep, "md", metrics=["image_auroc"])
    assert [h.split("<br>")[0] for h in md.splitlines()[0].strip("|").split("|")[2:]] == [f" {x}" for x in LABELS]
    rows = md_rows(md)
    for name, ds in (("MVTec AD", "mvtec"), ("VisA", "visa")):
        numbers = [float(re.sub(r"[^\d.]", "", c.split("±")[0])) for c in rows[name]]
        assert numbers == pytest.approx([round(expected_dataset(k, ds), 1) for k in DONE], abs=0.05)
    # MVTec AD: 2- and 4-shot are incomplete (°) and unranked although highest; 1-shot best, 0-shot second
    assert [c.startswith("**") for c in rows["MVTec AD"]] == [False, True, False, False]
    assert rows["MVTec AD"][0].startswith("<u>")
    assert rows["MVTec AD"][2].endswith("°") and rows["MVTec AD"][3].endswith("°")
    # VisA is complete for every variant: plain ranking, 2-shot best, 4-shot second
    assert [c[:3] for c in rows["VisA"]] == ["65.", "75.", "**9", "<u>"]
    assert "°" not in "".join(rows["VisA"])
    # the overall Mean of the incomplete variants is incomplete too
    assert rows["Mean"][2].endswith("°") and rows["Mean"][3].endswith("°")
    assert "**" in rows["Mean"][1] and "<u>" in rows["Mean"][0]
    for text in (f"° WinCLIP (2-shot) on MVTec AD: covers {MVTEC_2}; not ranked.",
                 f"° WinCLIP (4-shot) on MVTec AD: covers {MVTEC_4}; not ranked.",
                 f"° WinCLIP (2-shot) on Mean: covers {MEAN_2}; not ranked.",
                 f"° WinCLIP (4-shot) on Mean: covers {MEAN_4}; not ranked."):
        assert text in md


def test_seeds_that_covered_different_categories_are_marked_per_category(sweep):
    md = make_table(sweep, "md", metrics=["image_auroc"], per_category=True)
    cable = next(line for line in md.splitlines() if "| cable |" in line)
    cells = [c.strip() for c in cable.strip("|").split("|")][2:]
    # 4-shot cable has seed 0 only (1 of 2 seeds): marked, no ±, not ranked; 2-shot has no cable at all
    assert cells[3] == f"{100 * value(4, 'mvtec', 'cable', 0):.1f}°" and cells[2] == "–"
    assert "° WinCLIP (4-shot) on MVTec AD / cable, MVTec AD / screw: covers 1 of 2 seeds; not ranked." in md


def test_csv_says_what_each_number_covers(sweep):
    wide = pd.read_csv(io.StringIO(make_table(sweep, "csv", metrics=["image_auroc"])), keep_default_na=False)
    assert "WinCLIP (1-shot) I-AUROC covers" not in wide.columns  # complete everywhere: no column
    covers = wide.set_index("dataset")["WinCLIP (2-shot) I-AUROC covers"]
    assert covers.to_dict() == {"MVTec AD": MVTEC_2, "VisA": "complete", "Mean": MEAN_2}
    long = pd.read_csv(io.StringIO(make_table(sweep, "csv", metrics=["image_auroc"], csv_layout="long")))
    means = long[long.category == "mean"].set_index(["variant", "dataset"])
    assert means.loc[("WinCLIP (2-shot)", "mvtec"), ["covered_cells", "expected_cells"]].tolist() == [2, 6]
    assert means.loc[("WinCLIP (4-shot)", "mean"), ["covered_cells", "expected_cells", "n_datasets"]].tolist() == [8, 10, 2]
    assert not means.loc[("WinCLIP (2-shot)", "mean"), "complete"]
    assert means.loc[("WinCLIP (1-shot)", "mean"), "complete"] and means.loc[("WinCLIP (2-shot)", "visa"), "complete"]


def test_rich_marks_and_does_not_style_partial_means(sweep):
    rendered = make_table(sweep, "rich", metrics=["image_auroc"])
    (table,) = rendered.tables(200)
    mvtec, mean = ([list(col.cells)[n] for col in table.columns[2:]] for n in (0, 2))
    assert [str(c.style) for c in mvtec] == ["underline", "bold", "", ""]
    assert [c.plain.endswith("°") for c in mvtec] == [False, False, True, True]
    assert [str(c.style) for c in mean][2:] == ["", ""] and mean[3].plain.endswith("°")
    console = Console(width=200, record=True, file=io.StringIO())
    console.print(rendered)
    text = " ".join(console.export_text().split())
    assert f"° WinCLIP (2-shot) on Mean: covers {MEAN_2}; not ranked." in text


def test_standard_latex_marks_and_does_not_rank_partial_means(sweep):
    tex = make_table(sweep, "latex", metrics=["image_auroc"])
    mvtec = next(line for line in tex.splitlines() if "MVTec AD" in line)
    cells = mvtec.rstrip(r" \\").split(" & ")[2:]
    assert cells[0].startswith(r"\underline{") and cells[1].startswith(r"\textbf{")
    assert all(c.endswith(r"$^{\circ}$") and "textbf" not in c and "underline" not in c for c in cells[2:])
    mean_2 = MEAN_2.replace("×", r"$\times$")
    assert rf"$^{{\circ}}$WinCLIP (2-shot) on Mean: covers {mean_2}; not ranked." in tex


def test_paper_layout_marks_partial_means_and_colours_only_complete_ones(sweep):
    tables = make_paper_tables(sweep)
    mean = next(line for line in tables["main"].splitlines() if " & Mean & " in line)
    pairs = mean.rstrip(r" \\").split(" & ")[2:]
    assert len(pairs) == 4 and "textcolor{red}" in pairs[1] and "textcolor{blue}" in pairs[0]
    assert all(p.endswith(r"$^{\circ}$") and "textcolor" not in p for p in pairs[2:])
    cat = tables["mvtec-image_auroc"]
    ds_mean = next(line for line in cat.splitlines() if line.startswith("Mean & "))
    assert all("textcolor" not in c and c.endswith(r"$^{\circ}$") for c in ds_mean.rstrip(r" \\").split(" & ")[3:])
    # each table explains its own marks: the per-category table speaks of MVTec AD, not of the overall Mean
    assert "on MVTec AD: covers" in cat and "on Mean: covers" not in cat
    assert "on Mean: covers" in tables["main"]


def test_cli_selection_keeps_the_folder_s_categories_as_expected(sweep, tmp_path, capsys):
    out = tmp_path / "out"
    store = interrupted_sweep(out)
    assert main(["table", "--out", str(store.out), "--format", "md", "--metrics", "image_auroc",
                 "--variants", "WinCLIP (2-shot)"]) == 0
    md = capsys.readouterr().out
    # one column left: MVTec AD is still 2 of its 6 expected cells, counted over the whole results folder
    assert md.splitlines()[0].count("<br>") == 1 and f"covers {MVTEC_2}" in md
    assert main(["table", "--out", str(out), "--variants", "WinCLIP (3-shot)"]) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert "--variants: 'WinCLIP (3-shot)' is not in these results; they hold " + ", ".join(LABELS) in err


def test_shots_plot_keeps_incomplete_points_off_the_line(tmp_path):
    store = interrupted_sweep(tmp_path / "out")
    cells = [c for c in store.rows() if c.dataset == "mvtec"]
    # expected: 3 categories x 2 seeds; 2-shot has bottle twice, 4-shot all of seed 0 and bottle of seed 1
    assert incomplete_shots(cells, "image_auroc", 6) == {2: (2, 6), 4: (4, 6)}
    curves = shot_curves(cells, "image_auroc")
    fig, ax = plt.subplots()
    _draw(ax, "WinCLIP", curves, {2: (2, 6), 4: (4, 6)})
    (line,) = ax.lines[:1]
    assert list(line.get_xdata()) == [1]  # only the complete point is on the line
    hollow = [c for c in ax.collections if isinstance(c, PathCollection) and not c.get_facecolors().size]
    assert sorted(float(c.get_offsets()[0][0]) for c in hollow) == [2.0, 4.0]
    assert sorted(t.get_text() for t in ax.texts) == ["2/6", "4/6"]
    plt.close(fig)
    written = plot_shots(store, tmp_path / "plots")
    assert sorted(p.name for p in written) == ["shots-mvtec.pdf", "shots-mvtec.png", "shots-visa.pdf",
                                               "shots-visa.png"]
