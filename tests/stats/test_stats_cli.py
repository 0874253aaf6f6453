"""``zsadbench compare``, ``intervals`` and ``rank`` end to end on a small results folder: values, formats, the
cache, one-line errors, and no model library loaded."""
from __future__ import annotations

import csv
import io
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from zsadbench.cli.main import main
from zsadbench.store import ResultStore

from stats_store import ToyMethod, cell_arrays, category_images, put_cell, write_store

METHODS = [ToyMethod("good", 3.0, label="Good", seeds=(0, 1)), ToyMethod("mid", 1.0, label="Mid"),
           ToyMethod("dim", 1.0, label="Mid"), ToyMethod("poor", 0.0, label="Poor"),
           ToyMethod("poor", 0.0, label="Poor", shots=1)]
DATASETS = {"toy": ("a", "b"), "toy2": ("c",), "toy3": ("d",)}
FAST = ["--resamples", "200"]


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli") / "out"
    write_store(folder, METHODS, DATASETS, normal=10, anomalous=10)
    return folder


def run_csv(capsys, *args: str) -> list[dict[str, str]]:
    assert main([*args, "--format", "csv"]) == 0
    return list(csv.DictReader(io.StringIO(capsys.readouterr().out)))


def one_line_error(capsys, *args: str) -> str:
    assert main(list(args)) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    return err


def test_compare_finds_the_planted_advantage_and_reports_every_dataset(out, capsys):
    rows = run_csv(capsys, "compare", "--out", str(out), "--a", "good", "--b", "Poor", "--metric", "image_auroc", *FAST)
    assert [r["dataset"] for r in rows] == ["toy", "toy2", "toy3", "mean"]
    for row in rows:
        assert float(row["difference"]) > 0 and float(row["low"]) > 0
        assert float(row["p_bootstrap"]) < 0.05 and float(row["p_delong"]) < 0.05
    stored = {c.cell_id: c for c in ResultStore(out).rows()}
    good_toy = [c for c in stored.values() if c.method == "good" and c.dataset == "toy"]
    per_seed = [np.mean([c.metrics["image_auroc"] for c in good_toy if c.seed == s]) for s in (0, 1)]
    assert float(rows[0]["a"]) == pytest.approx(np.mean(per_seed), abs=1e-15)  # the table's dataset value


def test_compare_of_two_identical_methods_gives_zero_and_p_one(out, capsys):
    rows = run_csv(capsys, "compare", "--out", str(out), "--a", "dim", "--b", "mid", "--metric", "pixel_ap",
                   *FAST)
    assert {float(r["difference"]) for r in rows} == {0.0} and {float(r["p_bootstrap"]) for r in rows} == {1.0}


def test_compare_prints_rich_and_markdown_tables(out, capsys):
    assert main(["compare", "--out", str(out), "--a", "good", "--b", "poor/1-shot", *FAST]) == 0
    shown = capsys.readouterr().out
    assert "P-AUROC: Good vs Poor (1-shot)" in shown and "Mean (3 datasets)" in shown and "DeLong" not in shown
    assert main(["compare", "--out", str(out), "--a", "good", "--b", "Poor", "--metric", "image_auroc", "--format",
                 "md", *FAST]) == 0
    shown = capsys.readouterr().out
    assert "| Dataset | A I-AUROC | B I-AUROC | Δ (A−B) | 95% CI | p (bootstrap) | DeLong z |" in shown


def test_intervals_point_estimates_are_the_stored_values_and_come_back_from_the_cache(out, capsys):
    rows = run_csv(capsys, "intervals", "--out", str(out), "--metrics", "image_auroc,pixel_auroc,aupro",
                   "--datasets", "toy2", "--resamples", "20")
    stored = {c.cell_id: c.metrics for c in ResultStore(out).rows() if c.dataset == "toy2"}
    cells = [r for r in rows if r["level"] == "cell"]
    assert len(cells) == 3 * len(stored)
    for row in cells:
        assert float(row["point"]) == stored[row["cell_id"]][row["metric"]]  # exactly the stored value
        assert float(row["low"]) <= float(row["point"]) <= float(row["high"])
    assert {r["level"] for r in rows} == {"cell", "dataset"}
    assert main(["intervals", "--out", str(out), "--datasets", "toy2", "--metrics", "image_auroc,pixel_auroc,aupro",
                 "--resamples", "20", "--format", "md"]) == 0
    shown = capsys.readouterr().out
    assert f"bootstrapped 0 cells in 0.0 s, {len(stored)} from" in shown
    assert "**Per cell**" in shown and "**Per dataset (mean over categories, seeds averaged)**" in shown


def test_rank_runs_friedman_and_draws_the_cd_diagram(out, tmp_path, capsys):
    plot = tmp_path / "figures" / "cd.png"
    assert main(["rank", "--out", str(out), "--metric", "pixel_auroc", "--plot", str(plot)]) == 0
    captured = capsys.readouterr()
    assert "Friedman chi2" in captured.out and "Nemenyi critical difference" in captured.out
    assert plot.is_file() and plot.with_suffix(".pdf").is_file() and "wrote" in captured.err
    rows = run_csv(capsys, "rank", "--out", str(out), "--test", "wilcoxon-holm")
    assert rows[0]["method"] == "Good" and rows[-1]["method"].startswith("Poor")


@pytest.mark.parametrize("args, message", [
    (("compare", "--a", "nosuch", "--b", "poor"), "--a nosuch: no method 'nosuch' in these results"),
    (("compare", "--a", "poor", "--b", "good"), "--a poor: 2 variants match (Poor; Poor (1-shot))"),
    (("compare", "--a", "poor/5-shot", "--b", "good"), "no variant of poor matches '5-shot'"),
    (("compare", "--a", "good", "--b", "good"), "name the same variant"),
    (("intervals", "--metrics", "aupro_anomalyclip"), "has no bootstrap here"),
    (("rank", "--methods", "good,mid"), "ranking needs at least 3 methods"),
])
def test_bad_input_is_one_line(out, capsys, args, message):
    command, *rest = args
    assert message in one_line_error(capsys, command, "--out", str(out), *rest)


def test_methods_on_other_images_are_refused_in_one_line(tmp_path, capsys):
    store = write_store(tmp_path / "out", [ToyMethod("one", 1.0)], {"toy": ("a",)})
    keys, labels, masks = category_images("toy", "a")
    labels = labels.copy()
    labels[0] = 1 - labels[0]
    maps, scores = cell_arrays(ToyMethod("two", 1.0), masks, labels, 0)
    put_cell(store, ToyMethod("two", 1.0), "toy", "a", 0, keys, labels, masks, maps, scores)
    err = one_line_error(capsys, "compare", "--out", str(tmp_path / "out"), "--a", "one", "--b", "two", *FAST)
    assert "were not evaluated on the same images of toy/a" in err and "same copy of the data" in err


def test_a_folder_without_artifacts_is_one_line(tmp_path, capsys):
    write_store(tmp_path / "out", METHODS[:2], {"toy": ("a",)})
    shutil.rmtree(tmp_path / "out" / "cells")
    err = one_line_error(capsys, "intervals", "--out", str(tmp_path / "out"), *FAST)
    assert "holds none of these cells' artifacts" in err and "run the same `zsadbench run` command again" in err
    err = one_line_error(capsys, "intervals", "--out", str(tmp_path / "nothing"))
    assert "no results store" in err


def test_pixel_intervals_without_maps_are_one_line(tmp_path, capsys):
    write_store(tmp_path / "out", METHODS[:2], {"toy": ("a",)}, keep_maps="none")
    err = one_line_error(capsys, "compare", "--out", str(tmp_path / "out"), "--a", "good", "--b", "mid", *FAST)
    assert "pixel_auroc needs every image's map" in err and "--keep-maps none" in err and "--keep-maps all" in err
    assert main(["intervals", "--out", str(tmp_path / "out"), "--format", "csv", *FAST]) == 0
    captured = capsys.readouterr()  # without --metrics, the image metrics only
    assert {r["metric"] for r in csv.DictReader(io.StringIO(captured.out))} == {"image_auroc", "image_ap",
                                                                               "image_f1_max"}
    assert "pixel metrics left out: 3 cells were stored without every map" in captured.err


PROBE = """
import sys
from zsadbench.cli.main import main
out, plot = sys.argv[1:]
statuses = [main(["compare", "--out", out, "--a", "good", "--b", "Poor", "--metric", "image_auroc", "--resamples", "50"]),
            main(["intervals", "--out", out, "--resamples", "50"]), main(["rank", "--out", out, "--plot", plot])]
print("STATUS", *statuses)
print("LOADED", *[name for name in ("torch", "open_clip", "timm", "transformers") if name in sys.modules])
"""


def test_the_statistics_commands_load_no_model_library(out, tmp_path):
    """compare, intervals and rank run one after the other in a fresh interpreter, which then reports the model
    libraries it imported."""
    environment = {**os.environ, "ZSADBENCH_DISABLE_PLUGIN_AUTOLOAD": "1"}
    done = subprocess.run([sys.executable, "-c", PROBE, str(out), str(tmp_path / "cd")], capture_output=True,
                          text=True, timeout=120, env=environment)
    lines = {line.split()[0]: line.split()[1:] for line in done.stdout.splitlines() if line[:6] in ("STATUS", "LOADED")}
    assert lines["STATUS"] == ["0", "0", "0"], done.stderr
    assert lines["LOADED"] == [], f"the statistics commands imported {lines['LOADED']}"
