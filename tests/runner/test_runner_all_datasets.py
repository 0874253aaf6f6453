"""`zsadbench run --datasets all` over a fake data root holding every dataset layout, end to end."""
from __future__ import annotations

import numpy as np
import pytest

from zsadbench import registry
from zsadbench.cli.main import main
from zsadbench.datasets.groups import expand_datasets
from zsadbench.metrics import METRICS
from zsadbench.store import ResultStore

from tiny_configs import TINY

IMAGE = [m for m, spec in METRICS.items() if spec.level == "image"]
PIXEL = [m for m, spec in METRICS.items() if spec.level == "pixel"]


def test_every_dataset_runs_and_gets_exactly_its_metrics(fake_root, tmp_path, capsys):
    out = tmp_path / "out"
    registry.reset()
    code = main(["run", "--plugin", "toy_plugins:ToyMethod", "--method", "toy", "--datasets", "all",
                 "--data-root", str(fake_root), "--out", str(out), "--eval-size", "32", "--no-table"])
    assert code == 0, capsys.readouterr().err
    frame = ResultStore(out).to_frame()
    assert set(frame.dataset) == set(expand_datasets("all")) and len(set(frame.dataset)) == 15
    for dataset, rows in frame.groupby("dataset"):
        levels = registry.datasets().get(dataset).metric_levels
        has_image = rows[IMAGE].notna().all(axis=None)
        has_pixel = rows[PIXEL].notna().all(axis=None)
        assert has_image == ("image" in levels), dataset
        assert has_pixel == ("pixel" in levels), dataset
        assert rows[IMAGE + PIXEL].isna().all(axis=None) == (not levels), dataset

    capsys.readouterr()
    assert main(["table", "--out", str(out), "--format", "md"]) == 0
    rows = [line.split("|") for line in capsys.readouterr().out.splitlines() if line.startswith("|")]
    headers = rows[0]
    image_col = next(i for i, h in enumerate(headers) if "I-AUROC" in h)
    pixel_col = next(i for i, h in enumerate(headers) if "P-AUROC" in h)
    by_title = {row[2].strip(): row for row in rows[2:]}
    for name, (want_image, want_pixel) in {"headct": (True, False), "kvasir": (False, True), "mvtec": (True, True)}.items():
        row = by_title[registry.datasets().get(name).title]
        assert (row[image_col].strip() != "–") == want_image, (name, row)
        assert (row[pixel_col].strip() != "–") == want_pixel, (name, row)


def test_winclip_runs_every_dataset_zero_shot(fake_root, tmp_path, capsys):
    out = tmp_path / "out"
    registry.reset()
    code = main(["run", "--method", "winclip", "--datasets", "all", "--pretrained", "none",
                 "--set", "backbone=zsad-tiny-16-240", "--data-root", str(fake_root), "--out", str(out),
                 "--eval-size", "64", "--no-table"])
    assert code == 0, capsys.readouterr().err
    frame = ResultStore(out).to_frame()
    assert set(frame.dataset) == set(expand_datasets("all")) and (frame.status == "ok").all()
    for dataset, rows in frame.groupby("dataset"):
        levels = registry.datasets().get(dataset).metric_levels
        assert rows[IMAGE].notna().all(axis=None) == ("image" in levels), dataset
        assert rows[PIXEL].notna().all(axis=None) == ("pixel" in levels), dataset


def test_winclip_runs_zero_and_few_shot_on_a_real_layout_with_a_tiny_backbone(fake_root, tmp_path, capsys):
    out = tmp_path / "out"
    registry.reset()
    code = main(["run", "--method", "winclip", "--datasets", "mvtec,headct", "--shots", "0,1", "--pretrained", "none",
                 "--set", "backbone=zsad-tiny-16-240", "--data-root", str(fake_root), "--out", str(out),
                 "--eval-size", "64", "--no-table"])
    err = capsys.readouterr().err
    assert code == 0, err
    frame = ResultStore(out).to_frame()
    assert set(frame.shots) == {0, 1} and frame.random_init.all() and (frame.status == "ok").all()
    mvtec = frame[frame.dataset == "mvtec"]
    assert np.isfinite(mvtec[IMAGE + PIXEL].to_numpy()).all()
    assert len(frame[(frame.dataset == "headct") & (frame.shots == 1)]) == 0  # no train normals: few-shot skipped
    assert "too few for 1-shot" in " ".join(err.split())


@pytest.mark.parametrize("method,shots", [("patchcore", 1), ("padim", 1), ("spade", 1), ("inctrl", 1), ("vand", 0),
                                          ("adaclip", 0), ("faprompt", 0)])
def test_the_added_methods_run_every_dataset(method, shots, fake_root, tmp_path, capsys):
    out = tmp_path / "out"
    registry.reset()
    tiny = [token for key, value in TINY[method].items()
            for token in ("--set", f"{key}={','.join(map(str, value)) if isinstance(value, tuple) else value}")]
    code = main(["run", "--method", method, "--datasets", "all", "--shots", str(shots), "--pretrained", "none", *tiny,
                 "--limit", "4", "--data-root", str(fake_root), "--out", str(out), "--eval-size", "32", "--no-table"])
    assert code == 0, capsys.readouterr().err
    frame = ResultStore(out).to_frame()
    expected = set(expand_datasets("all")) if shots == 0 else {
        d for d in expand_datasets("all")
        if any(s.split == "train" for s in registry.datasets().get(d)(fake_root / d).samples)}
    assert set(frame.dataset) == expected and (frame.status == "ok").all()
    for dataset, rows in frame.groupby("dataset"):
        levels = registry.datasets().get(dataset).metric_levels
        assert rows[IMAGE].notna().all(axis=None) == ("image" in levels), dataset
        assert rows[PIXEL].notna().all(axis=None) == ("pixel" in levels), dataset
    capsys.readouterr()
    for fmt in ("md", "csv", "latex"):
        assert main(["table", "--out", str(out), "--format", fmt]) == 0
        assert registry.methods().get(method).label in capsys.readouterr().out
