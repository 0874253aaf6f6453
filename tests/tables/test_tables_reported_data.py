"""The reported-number files: each parses under the schema, its names resolve, its content matches its source
table in the paper text (a checksum over every number the table prints), and spot-checked values read from the
papers are where they belong."""
from __future__ import annotations

import csv
import hashlib
import re
from pathlib import Path

import pytest

from zsadbench.tables import load_reported

ROOT = Path(__file__).resolve().parents[2]
REPORTED = ROOT / "leaderboards" / "reported"
MPAMA_TABLES = [1, 2, 3, 4, 5, 7, 8, *range(9, 21)]
FGAD_TABLES = [1, 2, 4]
SOURCES = [("mpama", n) for n in MPAMA_TABLES] + [("finegrainedad", n) for n in FGAD_TABLES]
# a printed number: a decimal (91.8, 76.60, 0.124) or a memory size in MB (2235MB)
NUMBER = re.compile(r"(?<![\w.])(\d+\.\d+|\d+(?=MB))")


def source_numbers(papers: Path, paper: str, number: int) -> list[str]:
    """Every number of the table's body in the paper text (``../shared/papers``): the tab-separated lines beside
    its caption (after it in the MPAMA text, before it in the FineGrainedAD text)."""
    lines = (papers / f"{paper}.md").read_text(encoding="utf-8").splitlines()
    caption = [i for i, line in enumerate(lines) if line.startswith((f"Table {number}: ", f"Table {number}. "))]
    assert len(caption) == 1, f"{paper} Table {number}: caption found {len(caption)} times"
    step = 1 if paper == "mpama" else -1
    i = caption[0] + step
    while not lines[i].strip():
        i += step
    found = []
    while "\t" in lines[i]:
        found += NUMBER.findall(lines[i])
        i += step
    return found


def checksum(values: list[str]) -> str:
    return hashlib.sha256("\n".join(sorted(values)).encode()).hexdigest()


def file_values(path: Path) -> list[str]:
    with open(path, encoding="utf-8", newline="") as handle:
        return [row["value"] for row in csv.DictReader(handle)]


def test_every_source_table_has_a_file_and_nothing_else_is_there():
    expected = {f"{paper}_table{n}.csv" for paper, n in SOURCES} | {"visualad_readme.csv"}
    assert {p.name for p in REPORTED.glob("*.csv")} == expected


def test_every_row_parses_and_every_name_resolves():
    # load_reported checks the schema, resolves methods (registered or known baselines), datasets (the
    # registry) and categories (the dataset's own), and refuses one number printed with two values
    df = load_reported(REPORTED)
    counts = df.groupby("source").size()
    for path in REPORTED.glob("*.csv"):
        assert counts[str(path)] == len(file_values(path))
    assert set(df["dataset"]) - {""} == {
        "mvtec", "visa", "mpdd", "btad", "sdd", "dagm", "dtd", "headct", "brainmri", "br35h", "isic", "colondb",
        "clinicdb", "kvasir", "endo",
    }
    assert (df.loc[df["dataset"] == "", "metric"].isin(["inference_time_s", "inference_time_ms", "fps",
                                                          "peak_gpu_memory_mb"])).all()


@pytest.mark.parametrize(("paper", "number"), SOURCES, ids=[f"{p}-table{n}" for p, n in SOURCES])
def test_file_content_matches_its_source_table(papers, paper, number):
    path = REPORTED / f"{paper}_table{number}.csv"
    values, source = file_values(path), source_numbers(papers, paper, number)
    assert len(source) > 10
    assert checksum(values) == checksum(source), (
        f"{path.name}: numbers differ from the paper's Table {number}: "
        f"only in the file {sorted(set(values) - set(source))}, only in the paper {sorted(set(source) - set(values))}"
    )
    with open(path, encoding="utf-8", newline="") as handle:
        assert {row["table"] for row in csv.DictReader(handle)} == {f"Table {number}"}


@pytest.fixture(scope="module")
def reported():
    return load_reported(REPORTED)


def value(df, source, method, dataset, category, metric, shots=0, variant=""):
    sel = df[df["source"].str.endswith(source) & (df.method == method) & (df.dataset == dataset)
             & (df.category == category) & (df.metric == metric) & (df.shots == shots) & (df.variant == variant)]
    assert len(sel) == 1, sel
    return float(sel["value"].iloc[0])


@pytest.mark.parametrize(
    ("source", "method", "dataset", "category", "metric", "shots", "variant", "printed"),
    [
        # MPAMA Table 1: MPAMA on MVTec AD (94.5, 97.6), AnomalyCLIP's BTAD PRO 74.8†, WinCLIP's DAGM pixel AUROC
        ("mpama_table1.csv", "mpama", "mvtec", "mean", "image_auroc", 0, "", 94.5),
        ("mpama_table1.csv", "mpama", "mvtec", "mean", "image_ap", 0, "", 97.6),
        ("mpama_table1.csv", "anomalyclip", "btad", "mean", "aupro_anomalyclip", 0, "", 74.8),
        ("mpama_table1.csv", "winclip", "dagm", "mean", "pixel_auroc", 0, "", 87.6),
        ("mpama_table1.csv", "vand", "visa", "mean", "aupro_anomalyclip", 0, "", 86.8),
        # Table 2: MPAMA on HeadCT (96.4, 96.2); FAPrompt on Kvasir (80.4, 46.5)
        ("mpama_table2.csv", "mpama", "headct", "mean", "image_ap", 0, "", 96.2),
        ("mpama_table2.csv", "faprompt", "kvasir", "mean", "aupro_anomalyclip", 0, "", 46.5),
        # Tables 3-5 and 8: ablation rows
        ("mpama_table3.csv", "mpama", "mvtec", "mean", "aupro_anomalyclip", 0, "modules=M0+T1", 87.5),
        ("mpama_table3.csv", "mpama", "visa", "mean", "image_auroc", 0, "modules=M0+T3", 83.5),
        ("mpama_table4.csv", "mpama", "visa", "mean", "image_auroc", 0, "perception=1,2,3,4,5", 85.6),
        ("mpama_table5.csv", "mpama", "visa", "mean", "image_ap", 0, "experts=3", 87.8),
        ("mpama_table5.csv", "mpama", "visa", "mean", "aupro_anomalyclip", 0, "experts=4", 88.4),
        ("mpama_table8.csv", "mpama", "mvtec", "mean", "pixel_auroc", 0, "perception=3,4,5,6", 92.3),
        # Table 7: cost
        ("mpama_table7.csv", "mpama", "", "mean", "fps", 0, "", 6.56),
        ("mpama_table7.csv", "mpa", "", "mean", "peak_gpu_memory_mb", 0, "", 3275),
        ("mpama_table7.csv", "anomalyclip", "", "mean", "inference_time_s", 0, "", 0.124),
        # Tables 9-20: per category (MPL is printed for MPA in 9-19)
        ("mpama_table10.csv", "vand", "mvtec", "zipper", "aupro_anomalyclip", 0, "", 10.7),
        ("mpama_table11.csv", "winclip", "mvtec", "metal_nut", "image_auroc", 0, "", 97.1),
        ("mpama_table14.csv", "winclip", "visa", "macaroni2", "aupro_anomalyclip", 0, "", 21.4),
        ("mpama_table16.csv", "mpama", "visa", "pipe_fryum", "image_ap", 0, "", 98.5),
        ("mpama_table18.csv", "mpa", "mpdd", "tubes", "aupro_anomalyclip", 0, "", 88.9),
        ("mpama_table20.csv", "mpa", "mpdd", "connector", "image_ap", 0, "", 67.0),
        ("mpama_table20.csv", "mpama", "mpdd", "mean", "image_ap", 0, "", 82.1),
        # FineGrainedAD Table 1 (image/pixel AUROC), Table 2 (VisA), Table 4 (4-shot components)
        ("finegrainedad_table1.csv", "anomalygpt", "visa", "mean", "pixel_auroc", 1, "", 96.39),
        ("finegrainedad_table1.csv", "finegrainedad", "mvtec", "mean", "image_auroc", 4, "", 94.51),
        ("finegrainedad_table1.csv", "inctrl", "mvtec", "mean", "image_auroc", 2, "", 94.15),
        ("finegrainedad_table1.csv", "winclip", "visa", "mean", "image_auroc", 2, "", 83.41),
        ("finegrainedad_table1.csv", "patchcore", "", "mean", "inference_time_ms", 4, "", 73.2),
        ("finegrainedad_table2.csv", "glass", "visa", "mean", "pixel_auroc", -1, "", 98.8),
        ("finegrainedad_table2.csv", "winclip", "visa", "mean", "image_auroc", 8, "", 86.0),
        ("finegrainedad_table4.csv", "finegrainedad", "visa", "mean", "pixel_auroc", 4, "components=BL+MP+TI", 97.28),
    ],
)
def test_spot_checked_values(reported, source, method, dataset, category, metric, shots, variant, printed):
    assert value(reported, source, method, dataset, category, metric, shots, variant) == printed


def test_numbers_the_papers_leave_out_are_absent(reported):
    # MPAMA Table 1 prints AdaCLIP's AP and PRO as "-", InCTRL's pixel AUROC is "-" in FineGrainedAD Table 1
    ada = reported[(reported.method == "adaclip") & reported["source"].str.endswith("mpama_table1.csv")]
    assert set(ada["metric"]) == {"image_auroc", "pixel_auroc"} and "sdd" not in set(ada["dataset"])
    inctrl = reported[(reported.method == "inctrl") & (reported.metric == "pixel_auroc")]
    assert inctrl.empty
