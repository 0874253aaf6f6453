"""Figures: the scale-wise bins against scikit-learn and their drawing (counts, empty bins, legend), expert usage
per dataset and level with MPAMA's expert kinds, few-shot curves, and the plot command on a real run (synthetic
dataset, WinCLIP on a tiny random backbone)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.patches import Rectangle
from PIL import Image
from sklearn.metrics import roc_auc_score

from zsadbench.cli.main import main
from zsadbench.errors import DataError
from zsadbench.methods.mpama.config import MPAMAConfig
from zsadbench.plots import expert_usage, scale_bins, shot_curves, write_plots
from zsadbench.plots._cells import variants
from zsadbench.plots.experts import dataset_usage, expert_names, experts_figure, level_names
from zsadbench.plots.scale import scale_figure
from zsadbench.store import ResultStore
from zsadbench.tables import make_table

from rows import stored_cell

RUN = ["run", "--method", "winclip", "--datasets", "synthetic", "--pretrained", "none", "--set",
       "backbone=zsad-tiny-16-240", "--eval-size", "32", "--no-table"]


def stored(i, *, shots=0, seed=0, category="c", metrics=None, provenance=None, label="M", config_hash="h", **fields):
    fields = {"method": "m", "dataset": "synthetic", "dataset_label": "Synthetic", **fields}
    return stored_cell(
        cell_id=f"c{i}", method_label=label, config_hash=config_hash, domain="synthetic", category=category,
        shots=shots, seed=seed, eval_size=32, metrics=metrics or {}, provenance=provenance, **fields,
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


def tied_areas() -> tuple[np.ndarray, np.ndarray]:
    """Masks and labels: six anomalous images of 5 pixels, two of 10 and 20, two normal images. The lower
    quartiles tie at 5, so every 5-pixel image falls in "medium" and "tiny" and "small" hold none."""
    areas = [5] * 6 + [10, 20]
    masks = np.zeros((len(areas) + 2, 8, 8), bool)
    for i, area in enumerate(areas):
        masks[i].flat[:area] = True
    return masks, np.array([1] * len(areas) + [0, 0])


def test_scale_bins_keep_a_bin_without_images_as_empty():
    masks, labels = tied_areas()
    bins = scale_bins(np.random.default_rng(0).random(masks.shape), masks, labels)
    assert [(b["name"], b["images"]) for b in bins] == [("tiny", 0), ("small", 0), ("medium", 6), ("large", 2)]
    assert bins[0]["area"] is None and np.isnan(bins[0]["pixel_auroc"]) and np.isnan(bins[1]["aupro"])
    assert bins[2]["area"] == (5, 5) and bins[3]["area"] == (10, 20)


def test_scale_figure_counts_each_bin_hatches_empty_ones_and_keeps_the_legend_off_the_bars():
    masks, labels = tied_areas()
    rng = np.random.default_rng(1)
    results = {label: scale_bins(rng.random(masks.shape), masks, labels) for label in ("A", "B (1-shot)")}
    fig = scale_figure(results, "Toy")
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    images = {2: 6, 3: 2}  # bin index -> anomalous images, by construction of tied_areas
    legend = fig.legends[0]
    assert [t.get_text() for t in legend.get_texts()] == ["A", "B (1-shot)"]
    box = legend.get_window_extent(renderer)
    for ax, metric in zip(fig.axes, ("pixel_auroc", "aupro")):
        assert not box.overlaps(ax.get_window_extent(renderer))  # the legend sits outside the panels
        texts = [(t.get_text(), *t.get_position()) for t in ax.texts]
        rects = [p for p in ax.patches if isinstance(p, Rectangle)]
        assert len(rects) == 8  # 4 bins x 2 variants: none left out
        for rect in rects:
            centre = rect.get_x() + rect.get_width() / 2
            b, variant = round(centre), ("A", "B (1-shot)")[int(centre > round(centre))]
            labels_here = [text for text, x, y in texts if x == pytest.approx(centre)]
            if b in images:
                assert not rect.get_hatch()
                assert rect.get_height() == pytest.approx(100 * results[variant][b][metric])
                assert labels_here == [f"n={images[b]}"]
            else:  # an empty bin: a full-height hatched box saying so, never a zero-height bar
                assert rect.get_hatch() and rect.get_height() == 100 and labels_here == ["no images"]


def test_scale_figure_marks_a_bin_with_images_but_no_score():
    masks = np.ones((4, 8, 8), bool)  # every pixel anomalous and no normal image: nothing to rank against
    with pytest.warns(UserWarning, match="is undefined"):  # both metrics say so
        bins = scale_bins(np.random.default_rng(0).random(masks.shape), masks, np.ones(4, int))
    assert bins[3]["images"] == 4 and np.isnan(bins[3]["pixel_auroc"])
    ax = scale_figure({"A": bins}, "Toy").axes[0]
    assert sorted(t.get_text() for t in ax.texts) == ["n=4, no score", "no images", "no images", "no images"]
    assert all(p.get_hatch() and p.get_height() == 100 for p in ax.patches)


def test_expert_names_follow_the_mpama_pool():
    from zsadbench.methods.mpama.moe import expert_kinds  # imports torch, which the plot command never does

    for n in range(1, 7):
        for single in ("frozen", "learnable") if n == 1 else ("frozen",):
            names = expert_names({"single_expert": single}, n)
            assert [name.split(" ")[0] for name in names] == expert_kinds(n, single) and len(set(names)) == n
    assert expert_names({}, 3) == ["expert 1", "expert 2", "expert 3"]


def mpama(i, dataset, aux, usage, category, **config):
    """A stored MPAMA cell of ``dataset`` (trained on ``aux``) with these expert counts."""
    return stored(i, method="mpama", label="MPAMA", dataset=dataset, aux=aux, category=category,
                  dataset_label={"mvtec": "MVTec AD", "visa": "VisA"}[dataset], config_json=MPAMAConfig(**config).to_json(),
                  provenance={"method_stats": {"expert_usage": usage}})


def test_expert_usage_per_dataset_and_level_with_the_experts_named_by_kind():
    cells = [mpama(0, "mvtec", "visa", [[10, 30, 40, 20], [25, 25, 25, 25]], "bottle", perceptions=(1, 3)),
             mpama(1, "mvtec", "visa", [[10, 10, 0, 0], [5, 5, 5, 5]], "cable", perceptions=(1, 3)),
             mpama(2, "visa", "mvtec", [[10, 10, 40, 20, 20], [5, 5, 5, 5, 80]], "candle", perceptions=(1, 3))]
    rows = dataset_usage(cells)
    assert [r.title for r in rows] == ["MVTec AD (trained on visa)", "VisA (trained on mvtec)"]
    assert rows[0].usage.tolist() == [[20, 40, 40, 20], [30, 30, 30, 30]]  # MVTec AD's categories summed
    assert rows[0].experts == ["frozen", "learnable 1", "learnable 2", "zero"]  # 4 experts trained on VisA
    assert rows[1].experts == ["frozen", "learnable 1", "learnable 2", "learnable 3", "zero"]
    assert rows[0].levels == rows[1].levels == ["perception p = 1", "perception p = 3"]
    fig = experts_figure("MPAMA", rows)
    panels = [ax for ax in fig.axes if ax.get_title()]  # the colour bar has no title
    assert [ax.get_title() for ax in panels] == ["perception p = 1", "perception p = 3"]
    assert [t.get_text() for t in panels[0].get_xticklabels()] == ["frozen", "learnable 1", "learnable 2",
                                                                   "learnable 3", "zero"]
    assert [t.get_text() for t in panels[0].get_yticklabels()] == [r.title for r in rows]
    # each cell: the dataset's share (%) of the level's choices; MVTec AD's pool has no third learnable expert
    expected = [[["16.7", "33.3", "33.3", "–", "16.7"], ["10.0", "10.0", "40.0", "20.0", "20.0"]],
                [["25.0", "25.0", "25.0", "–", "25.0"], ["5.0", "5.0", "5.0", "5.0", "80.0"]]]
    for ax, want in zip(panels, expected):
        grid = {(round(t.get_position()[1]), round(t.get_position()[0])): t.get_text() for t in ax.texts}
        assert [[grid[r, e] for e in range(5)] for r in range(2)] == want
    post = mpama(3, "visa", "mvtec", [[1, 2, 3, 4, 5]], "candle", routing="post")
    assert level_names(post, 1) == ["all levels (routed once)"]
    assert level_names(stored(4), 2) == ["level 1", "level 2"]  # a method whose config names no levels


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
    calls = []
    write_plots(out, tmp_path / "again", progress=lambda kind, done, total: calls.append((kind, done, total)))
    read = len([c for c in ResultStore(out).rows() if c.seed == 0])  # each variant's first seed: 3 categories x 2 k
    assert read == 6
    assert calls == ([("scale", i, read) for i in range(read + 1)] + [("experts", i, 2) for i in range(3)]
                     + [("shots", 0, 1), ("shots", 1, 1)])


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
