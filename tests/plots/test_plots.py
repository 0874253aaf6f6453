"""Figures: the scale-wise bins against scikit-learn, expert-usage sums, few-shot curves, and the plot command
on a real run (synthetic dataset, WinCLIP on a tiny random backbone)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sklearn.metrics import roc_auc_score

from zsadbench.cli.main import main
from zsadbench.errors import DataError
from zsadbench.plots import expert_usage, scale_bins, shot_curves
from zsadbench.plots._cells import variants
from zsadbench.store import ResultStore
from zsadbench.tables import make_table

from rows import stored_cell

RUN = ["run", "--method", "winclip", "--datasets", "synthetic", "--pretrained", "none", "--set",
       "backbone=zsad-tiny-16-240", "--eval-size", "32", "--no-table"]


def stored(i, *, shots=0, seed=0, category="c", metrics=None, provenance=None, label="M", config_hash="h"):
    return stored_cell(
        cell_id=f"c{i}", method="m", method_label=label, config_hash=config_hash, dataset="synthetic",
        dataset_label="Synthetic", domain="synthetic", category=category, shots=shots, seed=seed, eval_size=32,
        metrics=metrics or {}, provenance=provenance,
    )


def test_scale_bins_split_anomalous_images_by_area_quartiles_and_score_each_bin():
    rng = np.random.default_rng(0)
    n_anom, n_norm, side = 8, 3, 16
    masks = np.zeros((n_anom + n_norm, side, side), bool)
    for i in range(n_anom):  # areas 4, 8, ..., 32 pixels
        masks[i, : i + 1, :4] = True
    labels = np.array([1] * n_anom + [0] * n_norm)
    maps = rng.random(masks.shape).astype(np.float32)
    maps[6:8] = masks[6:8]  # the "large" bin is perfectly localised
    bins = scale_bins(maps, masks, labels)
    assert [b["name"] for b in bins] == ["tiny", "small", "medium", "large"]
    assert [b["images"] for b in bins] == [2, 2, 2, 2]
    assert bins[0]["area"] == (4, 8) and bins[3]["area"] == (28, 32)
    for b, members in zip(bins, ([0, 1], [2, 3], [4, 5], [6, 7])):
        idx = members + [8, 9, 10]  # the bin's anomalous images and every normal image
        assert b["pixel_auroc"] == pytest.approx(roc_auc_score(masks[idx].ravel(), maps[idx].ravel()))
    assert bins[3]["aupro"] == pytest.approx(1.0) and bins[3]["pixel_auroc"] == pytest.approx(1.0)
    assert bins[0]["aupro"] < 0.5  # random maps
    assert scale_bins(maps[:3], masks[:3], labels[:3]) == []  # fewer anomalous images than bins


def test_expert_usage_sums_the_stored_counts():
    cells = [stored(0, provenance={"method_stats": {"expert_usage": [[1, 2, 3], [0, 0, 6]]}}),
             stored(1, provenance={"method_stats": {"expert_usage": [[4, 0, 1], [2, 2, 2]]}}),
             stored(2)]
    assert expert_usage(cells).tolist() == [[5, 2, 4], [2, 2, 8]]
    assert expert_usage([stored(3)]) is None
    with pytest.raises(DataError, match="c5: expert_usage has shape"):
        expert_usage(cells + [stored(5, provenance={"method_stats": {"expert_usage": [[1, 2]]}})])


def test_shot_curves_macro_average_categories_per_seed():
    cells = [stored(i, shots=k, seed=s, category=c, metrics={"image_auroc": v})
             for i, (k, s, c, v) in enumerate([(1, 0, "a", .6), (1, 0, "b", .8), (1, 1, "a", .5), (1, 1, "b", .7),
                                               (2, 0, "a", .9), (2, 0, "b", .9)])]
    cells.append(stored(99, shots=0, metrics={"image_auroc": .1}))  # zero-shot cells are not on the curve
    curves = shot_curves(cells, "image_auroc")
    assert curves[1] == pytest.approx([70.0, 60.0]) and curves[2] == pytest.approx([90.0]) and 0 not in curves



def test_figures_group_cells_into_the_table_columns():
    cells = [stored_cell(method_label="M", metrics={"image_auroc": .9}),
             stored_cell(method_label="M", precision="bf16", metrics={"image_auroc": .8}),
             stored_cell(method_label="M", shots=1, metrics={"image_auroc": .7})]
    header = make_table(pd.DataFrame([c.frame_record() for c in cells]), "md").splitlines()[0]
    assert all(f"{label}<br>I-AUROC" in header for label in ("M (fp32)", "M (bf16)", "M (1-shot)"))
    assert {k: len(v) for k, v in variants(cells).items()} == {"M (fp32)": 1, "M (bf16)": 1, "M (1-shot)": 1}
    assert [c.shots for c in variants(cells, across_shots=True)["M (fp32)"]] == [0, 1]

def assert_figures(paths, names):
    assert sorted(p.name for p in paths) == sorted(f"{n}.{ext}" for n in names for ext in ("png", "pdf"))
    for p in paths:
        if p.suffix == ".png":
            with Image.open(p) as img:
                assert img.size[0] > 300 and img.size[1] > 150
        else:
            assert p.read_bytes()[:5] == b"%PDF-"


def test_plot_command_on_a_synthetic_run(tmp_path, capsys):
    out = tmp_path / "out"
    assert main([*RUN, "--shots", "1,2", "--seeds", "0,1", "--set", "scales=2", "--out", str(out)]) == 0
    assert main(["plot", "--out", str(out)]) == 0
    written = sorted((out / "plots").iterdir())
    assert_figures(written, ["scale-synthetic", "shots-synthetic"])  # winclip stores no expert counts
    assert main(["plot", "--out", str(out), "--kind", "scale", "--write", str(tmp_path / "only")]) == 0
    assert_figures(list((tmp_path / "only").iterdir()), ["scale-synthetic"])


def test_plot_command_on_the_real_mvtec_samples(tmp_path, real_mvtec):
    out = tmp_path / "out"
    run = [a if a != "synthetic" else "mvtec" for a in RUN]
    assert main([*run, "--data-root", str(real_mvtec), "--shots", "0,1", "--out", str(out)]) == 0
    assert main(["plot", "--out", str(out)]) == 0
    assert_figures(sorted((out / "plots").iterdir()), ["scale-mvtec", "shots-mvtec"])


def test_expert_plot_from_stored_counts(tmp_path):
    store = ResultStore(tmp_path / "out")
    for i in range(2):
        store.put(stored(i, label="MPAMA", category=f"c{i}",
                         provenance={"method_stats": {"expert_usage": [[10, 50, 30, 10], [20, 40, 20, 20]]}}))
    assert main(["plot", "--out", str(store.out), "--kind", "experts"]) == 0
    assert_figures(list((store.out / "plots").iterdir()), ["experts-MPAMA"])


def test_plot_of_a_folder_without_results_fails_cleanly(tmp_path, capsys):
    assert main(["plot", "--out", str(tmp_path / "none")]) == 1
    assert "no results in" in capsys.readouterr().err
