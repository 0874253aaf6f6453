"""Aggregation rules of the leaderboard tables, checked against hand-computed means and stds."""
from __future__ import annotations

import io
import math

import numpy as np
import pandas as pd
import pytest

from zsadbench.errors import ConfigError
from zsadbench.tables import make_table

from rows import frame_row, stored_cell

METRICS = ["image_auroc", "image_ap", "image_f1_max", "pixel_auroc", "pixel_ap", "pixel_f1_max", "aupro",
           "aupro_anomalyclip"]


def cell(category="bottle", seed=0, *, label="WinCLIP", aux="visa", **fields):
    metrics = {m: fields.pop(m, math.nan) for m in METRICS}
    return frame_row(category=category, seed=seed, method_label=label, aux=aux, metrics=metrics, **fields)


def long_csv(df, **kw) -> pd.DataFrame:
    return pd.read_csv(io.StringIO(make_table(df, "csv", csv_layout="long", **kw)), keep_default_na=False,
                       na_values=[""])


def two_datasets() -> pd.DataFrame:
    """MVTec (2 categories) and VisA (1 category), 3 seeds; image AUROC everywhere, pixel AUROC on MVTec only."""
    mvtec = {("bottle", 0): .90, ("bottle", 1): .80, ("bottle", 2): .85,
             ("cable", 0): .70, ("cable", 1): .60, ("cable", 2): .95}
    rows = [cell(c, s, image_auroc=v, pixel_auroc=v / 2) for (c, s), v in mvtec.items()]
    rows += [cell("pcb1", s, dataset="visa", dataset_label="VisA", image_auroc=v)
             for s, v in enumerate([.60, .70, .80])]
    return pd.DataFrame(rows)


def pick(long: pd.DataFrame, dataset: str, category: str, metric: str) -> pd.Series:
    sel = long[(long.dataset == dataset) & (long.category == category) & (long.metric == metric)]
    assert len(sel) == 1, sel
    return sel.iloc[0]


def test_category_dataset_and_mean_rows_match_hand_computation():
    long = long_csv(two_datasets())
    bottle = pick(long, "mvtec", "bottle", "image_auroc")
    assert bottle["mean"] == pytest.approx(85.0) and bottle["std"] == pytest.approx(5.0) and bottle["n_seeds"] == 3
    cable = pick(long, "mvtec", "cable", "image_auroc")
    assert cable["std"] == pytest.approx(math.sqrt(((70 - 75) ** 2 + (60 - 75) ** 2 + (95 - 75) ** 2) / 2))
    # dataset: per-seed macro means 80, 70, 90, then mean ± sample std over seeds (not the std of the category means)
    mvtec = pick(long, "mvtec", "mean", "image_auroc")
    assert mvtec["mean"] == pytest.approx(80.0)
    assert mvtec["std"] == pytest.approx(np.std([80, 70, 90], ddof=1))
    visa = pick(long, "visa", "mean", "image_auroc")
    assert (visa["mean"], visa["std"]) == (pytest.approx(70.0), pytest.approx(10.0))
    # Mean over datasets: macro mean of the dataset scores; std over per-seed means (70, 70, 85)
    overall = pick(long, "mean", "mean", "image_auroc")
    assert overall["mean"] == pytest.approx(75.0)
    assert overall["std"] == pytest.approx(np.std([70, 70, 85], ddof=1))
    # pixel AUROC applies to MVTec only: the Mean is MVTec's score, over 1 of 1 applicable datasets
    pixel = pick(long, "mean", "mean", "pixel_auroc")
    assert pixel["mean"] == pytest.approx(40.0) and pixel["n_datasets"] == 1


def test_the_mean_over_datasets_leaves_out_generated_sets_unless_they_are_all_there_is():
    synthetic = [cell(c, s, dataset="synthetic", dataset_label="Synthetic", domain="synthetic", image_auroc=.1)
                 for c in ("carpet", "nut") for s in range(3)]
    overall = pick(long_csv(pd.concat([two_datasets(), pd.DataFrame(synthetic)])), "mean", "mean", "image_auroc")
    assert overall["mean"] == pytest.approx(75.0) and overall["n_datasets"] == 2  # MVTec and VisA only
    alone = pick(long_csv(pd.DataFrame(synthetic)), "mean", "mean", "image_auroc")
    assert alone["mean"] == pytest.approx(10.0)


def test_markdown_shows_percent_with_std_and_dash_where_metric_does_not_apply():
    md = make_table(two_datasets(), "md")
    mvtec = next(line for line in md.splitlines() if "MVTec AD" in line)
    visa = next(line for line in md.splitlines() if "| VisA |" in line)
    assert "80.0 ± 10.0" in mvtec and "40.0 ± 5.0" in mvtec
    assert visa.rstrip(" |").endswith("–")
    # metrics without any value get no column
    assert "I-AP" not in md and "AUPRO" not in md
    assert make_table(two_datasets(), "md", digits=2).count("80.00 ± 10.00") == 1


def test_std_is_only_shown_with_two_or_more_seeds():
    df = pd.DataFrame([cell("bottle", 0, image_auroc=.9), cell("cable", 0, image_auroc=.7)])
    md = make_table(df, "md")
    assert "80.0" in md and "±" not in md
    long = long_csv(df)
    assert long["std"].isna().all() and (long["n_seeds"] == 1).all()


def test_per_category_rows_then_dataset_mean():
    md = make_table(two_datasets(), "md", per_category=True)
    body = [line for line in md.splitlines() if line.startswith("| ")][2:]
    labels = [[c.strip() for c in line.strip("|").split("|")][:2] for line in body]
    assert labels == [["MVTec AD", "bottle"], ["", "cable"], ["", "Mean"], ["VisA", "pcb1"], ["", "Mean"],
                      ["Mean", ""]]
    assert "85.0 ± 5.0" in body[0] and "75.0 ± 18.0" in body[1] and "80.0 ± 10.0" in body[2]


def test_failed_cells_are_excluded_and_marked():
    df = pd.DataFrame([
        cell("bottle", 0, image_auroc=.9), cell("cable", 0, image_auroc=.5),
        cell("screw", 0, status="failed"),
        # a failure later superseded by a success of the same cell is not a failure
        cell("bottle", 0, method="other", label="Other", status="failed"),
        cell("bottle", 0, method="other", label="Other", image_auroc=.6),
    ])
    md = make_table(df, "md")
    mvtec = next(line for line in md.splitlines() if "MVTec AD" in line)
    # MVTec AD holds 3 categories: WinCLIP's mean covers 2 (screw failed), Other's 1; neither is ranked
    assert "| 70.0\\*° | 60.0° |" in mvtec
    assert "WinCLIP, MVTec AD: 1 of 3 categories failed" in md
    assert "Other, MVTec AD:" not in md
    assert "° WinCLIP on MVTec AD, Mean: covers 2 of 3 categories; not ranked." in md
    assert "° Other on MVTec AD, Mean: covers 1 of 3 categories; not ranked." in md
    per_cat = make_table(df, "md", per_category=True)
    screw = next(line for line in per_cat.splitlines() if "screw" in line)
    assert "–\\*" in screw
    assert "WinCLIP, MVTec AD / screw: 1 of 1 seeds failed" in per_cat


def test_variants_split_by_shots_init_hash_and_resolution():
    df = pd.DataFrame([
        cell(image_auroc=.9),
        cell(image_auroc=.8, shots=4),
        cell(image_auroc=.7, pretrained="none", random_init=True),
        cell(image_auroc=.6, config_hash="fedcba9876543210"),
        cell(image_auroc=.5, eval_size=336),
    ])
    md = make_table(df, "md")
    header = md.splitlines()[0]
    assert "WinCLIP (4-shot)<br>" in header and "WinCLIP (random init)<br>" in header
    # no stored configs to tell the two hashes apart: the short hash names them
    assert "WinCLIP [0123456] (518 px)<br>" in header and "WinCLIP [fedcba9] (518 px)<br>" in header
    assert "WinCLIP [0123456] (336 px)<br>" in header
    assert header.count("<br>") == 5



def test_precisions_never_share_a_column():
    df = pd.DataFrame([cell(image_auroc=.9), cell(image_auroc=.7, precision="bf16")])
    md = make_table(df, "md")
    header = md.splitlines()[0]
    assert "WinCLIP (fp32)<br>I-AUROC" in header and "WinCLIP (bf16)<br>I-AUROC" in header
    mvtec = next(line for line in md.splitlines() if "MVTec AD" in line)
    assert "90.0" in mvtec and "70.0" in mvtec

def test_metric_and_level_selection():
    df = pd.DataFrame([cell(image_auroc=.9, image_ap=.8, pixel_auroc=.7, aupro=.6)])
    header = make_table(df, "md", level="pixel").splitlines()[0]
    assert "P-AUROC" in header and "AUPRO" in header and "I-AUROC" not in header
    header = make_table(df, "md", metrics=["aupro", "image_auroc"]).splitlines()[0]
    assert header.index("AUPRO") < header.index("I-AUROC") and "I-AP" not in header
    with pytest.raises(ConfigError, match="unknown metric"):
        make_table(df, "md", metrics=["image_aucroc"])
    with pytest.raises(ConfigError, match="none of the selected metrics"):
        make_table(df, "md", metrics=["pixel_ap"])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"fmt": "html"}, "unknown table format"), ({"digits": -1}, "digits"), ({"level": "region"}, "level"),
     ({"fmt": "csv", "csv_layout": "tall"}, "csv_layout")],
)
def test_bad_options_raise_config_errors(kwargs, match):
    df = pd.DataFrame([cell(image_auroc=.9)])
    with pytest.raises(ConfigError, match=match):
        make_table(df, **{"fmt": "md", **kwargs})


def test_bad_frames_raise_config_errors():
    good = pd.DataFrame([cell(image_auroc=.9)])
    with pytest.raises(ConfigError, match="lacks column.*seed"):
        make_table(good.drop(columns="seed"), "md")
    with pytest.raises(ConfigError, match="'running'"):
        make_table(good.assign(status="running"), "md")
    with pytest.raises(ConfigError, match="duplicate"):
        make_table(pd.concat([good, good]), "md")
    with pytest.raises(ConfigError, match="empty"):
        make_table(good.iloc[:0], "md")


def test_frame_of_the_results_store_renders(tmp_path):
    from zsadbench.store import ResultStore

    store = ResultStore(tmp_path / "out")
    for category, status, metrics in [("bottle", "ok", {"image_auroc": 0.9, "pixel_auroc": 0.8}),
                                      ("cable", "failed", {})]:
        store.put(stored_cell(category=category, aux="visa", pretrained="none", random_init=True, status=status,
                              metrics=metrics))
    md = make_table(store.to_frame(), "md")
    row = next(line for line in md.splitlines() if "MVTec AD" in line)
    assert "90.0\\*" in row and "80.0\\*" in row
    assert "WinCLIP (random init)<br>I-AUROC" in md and "1 of 2 categories failed" in md
