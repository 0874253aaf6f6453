"""`zsadbench merge`: files from two machines give the table of one folder holding every cell; what cannot be
compared (random-init beside real weights, two protocols, two evaluation sizes, two metric definitions, one cell
with two results) is refused in one line naming both files; intervals travel where they cover the same cells."""
from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import pytest

from zsadbench.cli.main import main

from share_store import Variant, write_folder

WINCLIP = Variant("winclip", "WinCLIP", 2.0)
MPAMA = Variant("mpama", "MPAMA", 1.0, aux="visa", protocol="anomalyclip", config='{"experts":4}')
PADIM = Variant("padim", "PaDiM", 0.5)
DATA = {"mvtec": ("bottle", "cable"), "headct": ("brain",)}


def export(folder: Path, path: Path, *extra: str) -> Path:
    assert main(["export", "--out", str(folder), "--write", str(path), *extra]) == 0
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """Results files of two machines (A: WinCLIP seed 0 and MPAMA, with intervals; B: WinCLIP seed 1 and PaDiM),
    and the folder that holds all their cells."""
    root = tmp_path_factory.mktemp("merge")
    write_folder(root / "a", [WINCLIP, MPAMA], DATA)
    write_folder(root / "b", [Variant("winclip", "WinCLIP", 2.0, seeds=(1,)), PADIM], DATA)
    write_folder(root / "all", [Variant("winclip", "WinCLIP", 2.0, seeds=(0, 1)), MPAMA, PADIM], DATA)
    return {"a": export(root / "a", root / "a.json", "--ci", "--resamples", "50"),
            "b": export(root / "b", root / "b.json"), "all": root / "all", "root": root}


def table(folder: Path, capsys, *extra: str) -> str:
    assert main(["table", "--out", str(folder), *extra]) == 0
    return capsys.readouterr().out


def one_line_error(capsys, *args: str) -> str:
    assert main(list(args)) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    return err


def test_merged_files_give_the_table_of_one_folder_with_every_cell(files, tmp_path, capsys):
    board = tmp_path / "board"
    assert main(["merge", str(files["a"]), str(files["b"]), "--write", str(board)]) == 0
    assert "merged 2 files: 3 variants, 12 cells" in " ".join(capsys.readouterr().err.split())
    for args in (("-f", "csv", "--csv-layout", "long"), ("-f", "md", "--per-category"), ("--layout", "paper")):
        assert table(board, capsys, *args) == table(files["all"], capsys, *args), args
    merged = json.loads((board / "results.json").read_text(encoding="utf-8"))
    assert [s["file"] for s in merged["sources"]] == ["a.json", "b.json"]
    # the same file twice: its cells once; a second merge replaces the folder
    assert main(["merge", str(files["a"]), str(files["a"]), "--write", str(board)]) == 0
    assert "merged 2 files: 2 variants, 6 cells" in " ".join(capsys.readouterr().err.split())
    assert "PaDiM" not in table(board, capsys, "-f", "md")
    err = one_line_error(capsys, "merge", str(files["a"]), "--write", str(files["root"] / "a"))
    assert "holds a results store that no merge wrote; pass a new folder" in err


def test_intervals_travel_only_with_the_cells_they_cover(files, tmp_path, capsys):
    board = tmp_path / "board"
    assert main(["merge", str(files["a"]), str(files["b"]), "--write", str(board)]) == 0
    capsys.readouterr()
    rows = list(csv.DictReader(io.StringIO(table(board, capsys, "--ci", "-f", "csv", "--csv-layout", "long",
                                                 "--metrics", "image_auroc,pixel_auroc"))))
    source = json.loads(files["a"].read_text(encoding="utf-8"))
    mpama = next(v for v in source["variants"] if v["method"] == "mpama")
    for row in rows:
        if row["variant"] == "MPAMA" and row["dataset"] != "mean":  # all its cells come from a.json
            d = mpama["datasets"][row["dataset"]]
            summary = d["metrics"] if row["category"] == "mean" else d["categories"][row["category"]]["metrics"]
            ci = summary[row["metric"]]["ci"]
            assert (float(row["ci_lo"]), float(row["ci_hi"])) == pytest.approx((100 * ci["lo"], 100 * ci["hi"]))
        else:  # WinCLIP mixes the seeds of both files, PaDiM's file has no intervals; no Mean over datasets
            assert row["ci_lo"] == row["ci_hi"] == "", row
    assert sum(r["ci_lo"] != "" for r in rows) == 2 * 5  # MPAMA: 3 categories and 2 datasets, two metrics
    err = one_line_error(capsys, "table", "--out", str(board), "--ci", "--ci-level", "0.9")
    assert "holds 95% intervals" in err and "pass --ci-level 0.95" in err


def edited(path: Path, target: Path, change) -> Path:
    doc = json.loads(path.read_text(encoding="utf-8"))
    change(doc)
    target.write_text(json.dumps(doc), encoding="utf-8")
    return target


@pytest.mark.parametrize("other, message", [
    ("random", "winclip on mvtec has random-init weights in {other} and real weights (openai) in {a}"),
    ("protocol", "mpama on mvtec was trained under the anomalyclip protocol in {a} and the visualad protocol in "
                 "{other}"),
    ("size", "winclip on mvtec was evaluated at 16 px in {a} and 32 px in {other}"),
    ("metric", "winclip on mvtec has image_auroc by definition 1 in {a} and 2 in {other}"),
    ("cell", "both hold winclip mvtec/bottle 0-shot seed=0, with different metrics ("),
])
def test_what_cannot_be_compared_is_refused_naming_both_files(files, tmp_path, capsys, other, message):
    root = tmp_path / other
    if other == "metric":
        path = edited(files["b"], tmp_path / "metric.json", lambda d: d["metric_versions"].update(image_auroc=2))
    else:
        variant, size = {
            "random": (Variant("winclip", "WinCLIP", 2.0, pretrained="none", random_init=True), 16),
            "protocol": (Variant("mpama", "MPAMA", 1.0, aux="visa", protocol="visualad", config='{"experts":4}'), 16),
            "size": (WINCLIP, 32),
            "cell": (Variant("winclip", "WinCLIP", 2.0, salt=7), 16),  # the same cell, other numbers
        }[other]
        write_folder(root, [variant], {"mvtec": ("bottle",)}, size=size)
        path = export(root, tmp_path / f"{other}.json")
    capsys.readouterr()
    err = one_line_error(capsys, "merge", str(files["a"]), str(path), "--write", str(tmp_path / "board"))
    assert err.startswith(f"DataError: {files['a']} and {path}: "), err
    assert message.format(a=files["a"], other=path) in err, err
    assert not (tmp_path / "board" / "results.sqlite").exists()


def test_a_folder_of_files_and_the_leaderboard_of_files_merge_alike(files, tmp_path, capsys):
    shared = tmp_path / "shared"
    shared.mkdir()
    for name in ("a", "b"):
        shutil.copy(files[name], shared / f"{name}.json")
    assert main(["merge", str(shared), "--write", str(tmp_path / "board")]) == 0
    assert main(["leaderboard", "--results", str(files["a"]), str(files["b"]),
                 "--write", str(tmp_path / "p.html")]) == 0
    page = (tmp_path / "p.html").read_text(encoding="utf-8")
    assert page.count("<tr data-group=") == 3 * 2  # three variants on two datasets
