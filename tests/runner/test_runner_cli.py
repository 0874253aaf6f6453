"""End-to-end runner tests through the CLI, with toy plugins loaded by --plugin."""
from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest

from zsadbench import registry
from zsadbench.cli.main import main
from zsadbench.store import ResultStore

import toy_plugins

pytestmark = pytest.mark.usefixtures("fresh_registry")


def run(*args: str) -> int:
    registry.reset()
    return main(["run", "--plugin", "toy_plugins:ToyDataset", "--no-table", "--eval-size", "32", *args])


def created_at(out) -> dict[str, float]:
    with sqlite3.connect(out / "results.sqlite") as conn:
        return dict(conn.execute("SELECT category, created_at FROM cells WHERE status='ok'").fetchall())


def test_run_stores_every_category_with_metrics_from_the_data(data_root, tmp_path):
    out = tmp_path / "out"
    assert run("--plugin", "toy_plugins:ToyMethod", "--method", "toy", "--datasets", "toy",
               "--data-root", str(data_root), "--out", str(out)) == 0
    frame = ResultStore(out).to_frame()
    assert sorted(frame.category) == ["alpha", "beta"]
    assert (frame.status == "ok").all() and frame.random_init.eq(False).all()
    # The toy anomalies are bright squares on flat gray images: a perfect detector at both levels.
    assert np.allclose(frame.image_auroc, 1.0) and np.allclose(frame.pixel_auroc, 1.0, atol=1e-6)
    arrays = ResultStore(out).load_cell_arrays(frame.cell_id.iloc[0])
    assert arrays["pred_score"].shape == (6,) and arrays["anomaly_map"].shape == (6, 32, 32)
    assert arrays["anomaly_map"].dtype == np.float32 and arrays["gt_mask"].dtype == bool


def test_interrupted_run_resumes_without_recomputing_finished_cells(data_root, tmp_path, monkeypatch):
    out = tmp_path / "out"
    common = ("--plugin", "toy_plugins:InterruptingMethod", "--method", "interrupting", "--datasets", "toy",
              "--data-root", str(data_root), "--out", str(out))
    monkeypatch.setenv("TOY_INTERRUPT_AT", "beta")
    assert run(*common) == 130
    first = created_at(out)
    assert list(first) == ["alpha"]
    monkeypatch.delenv("TOY_INTERRUPT_AT")
    assert run(*common) == 0
    second = created_at(out)
    assert second["alpha"] == first["alpha"] and set(second) == {"alpha", "beta"}
    resumed = ResultStore(out).to_frame().sort_values("category")
    clean_out = tmp_path / "clean"
    assert run(*common[:-1], str(clean_out)) == 0
    clean = ResultStore(clean_out).to_frame().sort_values("category")
    metric_columns = ["image_auroc", "image_ap", "pixel_auroc", "aupro"]
    assert np.allclose(resumed[metric_columns].to_numpy(), clean[metric_columns].to_numpy(), equal_nan=True)


def test_nan_output_fails_only_its_cell_and_names_it(data_root, tmp_path, capsys):
    out = tmp_path / "out"
    code = run("--plugin", "toy_plugins:NaNMethod", "--method", "nanmethod", "--datasets", "toy",
               "--data-root", str(data_root), "--out", str(out))
    assert code == 1
    err = capsys.readouterr().err
    assert "nanmethod toy/beta" in err and "NaN" in err
    rows = {r.category: r for r in ResultStore(out).rows()}
    assert rows["alpha"].status == "ok" and rows["beta"].status == "failed"
    assert "anomaly_map" in rows["beta"].error


def test_trained_method_fits_once_per_auxiliary_set_and_reuses_its_state(data_root, tmp_path, monkeypatch):
    marker = tmp_path / "fits.txt"
    monkeypatch.setenv("TOY_FIT_MARKER", str(marker))
    out = tmp_path / "out"
    args = ("--plugin", "toy_plugins:ToyTrainedMethod", "--method", "toytrained", "--datasets", "toy", "--aux", "toy",
            "--seeds", "0,1", "--data-root", str(data_root), "--out", str(out))
    assert run(*args) == 0
    assert marker.read_text().splitlines() == ["toy", "toy"]  # one fit per seed, shared by both categories
    assert run(*args) == 0  # nothing to do: cells and trained states are stored
    assert marker.read_text().splitlines() == ["toy", "toy"]
    assert run(*args, "--force") == 0  # --force recomputes the cells and trains the states again
    assert marker.read_text().splitlines() == ["toy"] * 4
    frame = ResultStore(out).to_frame()
    assert sorted(set(frame.seed)) == [0, 1] and set(frame.aux) == {"toy"}


def test_few_shot_draws_are_recorded_and_reproducible(data_root, tmp_path):
    outs = [tmp_path / "a", tmp_path / "b"]
    for out in outs:
        assert run("--plugin", "toy_plugins:ToyMethod", "--method", "toy", "--datasets", "toy", "--shots", "1,2",
                   "--seeds", "0,1", "--data-root", str(data_root), "--out", str(out)) == 0
    manifests = [[json.loads(line) for line in (o / "manifests" / "support.jsonl").read_text().splitlines()] for o in outs]
    assert manifests[0] == manifests[1]
    assert len(manifests[0]) == 2 * 2 * 2  # categories × shots × seeds
    for record in manifests[0]:
        assert len(record["files"]) == record["shots"] == len(set(record["files"]))
        assert all(f.startswith(f"{record['category']}/train/good/") for f in record["files"])  # relative to the root


def test_dry_run_prints_the_plan_and_computes_nothing(data_root, tmp_path, capsys):
    out = tmp_path / "out"
    assert run("--plugin", "toy_plugins:ToyMethod", "--method", "toy", "--datasets", "toy", "--shots", "0,1",
               "--data-root", str(data_root), "--out", str(out), "--dry-run") == 0
    printed = capsys.readouterr().out
    assert "plan: 4 cells" in printed
    assert not (out / "results.sqlite").exists()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--method", "toyy", "--datasets", "toy"), "unknown method 'toyy'. Did you mean 'toy'"),
        (("--method", "toy", "--datasets", "toyy"), "unknown dataset 'toyy'"),
        (("--method", "toy", "--datasets", "industrail"), "Did you mean the group 'industrial'"),
        (("--method", "toy", "--datasets", "toy", "--set", "nope=1"), "no selected method has an option 'nope'"),
        (("--method", "toy", "--datasets", "toy", "--set", "gain=abc"), "ToyConfig.gain must be float"),
    ],
)
def test_bad_input_gives_one_clear_line(data_root, tmp_path, capsys, args, expected):
    code = run("--plugin", "toy_plugins:ToyMethod", *args, "--data-root", str(data_root), "--out", str(tmp_path / "o"))
    err = capsys.readouterr().err
    assert code == 1
    assert expected in " ".join(err.split())
    assert "Traceback" not in err


def test_missing_data_root_names_the_path_and_the_layout(tmp_path, capsys):
    missing = tmp_path / "nowhere"
    code = run("--plugin", "toy_plugins:ToyMethod", "--method", "toy", "--datasets", "toy",
               "--data-root", str(missing), "--out", str(tmp_path / "o"))
    err = " ".join(capsys.readouterr().err.split())
    assert code == 1 and "DataError" in err and str(missing / "toy") in err and "ground_truth" in err


def test_killed_run_resumes_from_the_store(data_root, tmp_path):
    """SIGKILL mid-run (no cleanup at all), then the same command: finished cells are kept, not recomputed."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    out = tmp_path / "out"
    args = [sys.executable, "-m", "zsadbench", "run", "--plugin", "toy_plugins:ToyDataset", "--plugin",
            "toy_plugins:ToyMethod", "--method", "toy", "--datasets", "toy", "--data-root", str(data_root),
            "--out", str(out), "--eval-size", "32", "--batch-size", "1", "--no-table"]
    env = {**os.environ, "PYTHONPATH": str(Path(toy_plugins.__file__).parent), "TOY_SLEEP": "1.5"}
    process = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline:
        try:
            if created_at(out):
                break
        except sqlite3.OperationalError:  # the store does not exist yet
            pass
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    process.wait()
    first = created_at(out)
    assert list(first) == ["alpha"], "the first category should be stored before the kill, the second not"
    env["TOY_SLEEP"] = "0"
    assert subprocess.run(args, env=env, capture_output=True).returncode == 0
    second = created_at(out)
    assert second["alpha"] == first["alpha"] and set(second) == {"alpha", "beta"}


def test_random_weights_use_the_demo_configuration_unless_the_user_sets_it(data_root, tmp_path, capsys):
    common = ("--plugin", "toy_plugins:ToyMethod", "--method", "toy", "--datasets", "toy", "--data-root", str(data_root))
    assert run(*common, "--out", str(tmp_path / "a"), "--pretrained", "none") == 0
    assert "demo configuration (gain=2.0)" in " ".join(capsys.readouterr().err.split())
    frame = ResultStore(tmp_path / "a").to_frame()
    assert {json.loads(c)["gain"] for c in frame.config_json} == {2.0} and frame.random_init.all()
    assert run(*common, "--out", str(tmp_path / "b"), "--pretrained", "none", "--set", "gain=3") == 0
    assert {json.loads(c)["gain"] for c in ResultStore(tmp_path / "b").to_frame().config_json} == {3.0}
    assert run(*common, "--out", str(tmp_path / "c")) == 0
    assert {json.loads(c)["gain"] for c in ResultStore(tmp_path / "c").to_frame().config_json} == {1.0}


def test_corrupt_image_fails_its_cell_naming_the_file(data_root, tmp_path, capsys):
    broken = data_root / "toy" / "beta" / "test" / "bad" / "001.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    out = tmp_path / "out"
    code = run("--plugin", "toy_plugins:ToyMethod", "--method", "toy", "--datasets", "toy",
               "--data-root", str(data_root), "--out", str(out))
    err = " ".join(capsys.readouterr().err.split())
    assert code == 1 and str(broken) in err
    rows = {r.category: r for r in ResultStore(out).rows()}
    assert rows["alpha"].status == "ok" and rows["beta"].status == "failed" and str(broken) in rows["beta"].error


def test_missing_paper_weights_stop_the_run_with_one_message(tmp_path):
    import os
    import subprocess
    import sys

    # A fresh process, so that the hub client reads the offline switch at import, as it would for a user.
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "XDG_CACHE_HOME": str(tmp_path / "empty-cache"),
           "HOME": str(tmp_path / "home"), "ZSADBENCH_CACHE": str(tmp_path / "cache")}
    result = subprocess.run([sys.executable, "-m", "zsadbench", "run", "--method", "winclip", "--datasets", "synthetic",
                             "--out", str(tmp_path / "o"), "--no-table"], capture_output=True, text=True, env=env,
                            timeout=300)
    err = " ".join(result.stderr.split())
    assert result.returncode == 1 and "WeightsError" in err and "--pretrained" in err and "Traceback" not in err
    assert not ResultStore(tmp_path / "o").rows()


@pytest.mark.parametrize("fmt", ["latex", "md", "csv"])
def test_table_of_one_dataset_lists_its_categories_and_their_mean(data_root, tmp_path, capsys, fmt):
    out = tmp_path / "out"
    assert run("--plugin", "toy_plugins:ToyMethod", "--method", "toy", "--datasets", "toy",
               "--data-root", str(data_root), "--out", str(out)) == 0
    capsys.readouterr()
    assert main(["table", "--out", str(out), "--format", fmt]) == 0
    printed = capsys.readouterr().out
    assert "alpha" in printed and "beta" in printed and "Mean" in printed
    assert "I-AUROC" in printed and "P-AUROC" in printed and "AUPRO" in printed
    if fmt == "latex":
        assert "\\begin{tabular}" in printed and "\\end{tabular}" in printed
    capsys.readouterr()
    assert main(["table", "--out", str(out), "--format", fmt, "--no-per-category"]) == 0
    assert "alpha" not in capsys.readouterr().out
