"""One column per method variant: a trained zero-shot method's protocol cells share a column with a ranked Mean;
``--by-aux`` splits them per auxiliary set; config variants are labelled by the options that differ."""
from __future__ import annotations

import io
import json

import pandas as pd
import pytest

from zsadbench.cli.main import main
from zsadbench.store import ResultStore
from zsadbench.tables import make_table, results_frame

from rows import stored_cell

DATASETS = {"mvtec": ("MVTec AD", ["bottle", "cable"]), "visa": ("VisA", ["pcb1"]), "btad": ("BTAD", ["01", "02"])}
# the anomalyclip protocol: MVTec AD trains on VisA, every other dataset on MVTec AD
PAIRING = {"mvtec": "visa", "visa": "mvtec", "btad": "mvtec"}


def put(store, method, label, dataset, category, value, *, seed=0, aux=None, protocol="anomalyclip",
        config=None, config_hash="h0", n=[0]):
    n[0] += 1
    store.put(stored_cell(
        cell_id=f"cell{n[0]}", method=method, method_label=label, config_hash=config_hash,
        config_json=json.dumps(config or {"epochs": 1}), dataset=dataset, dataset_label=DATASETS[dataset][0],
        category=category, seed=seed, aux=PAIRING[dataset] if aux is None else aux,
        metrics={"image_auroc": value, "pixel_auroc": value - 0.1}, provenance={"protocol": protocol},
    ))


def trained_store(tmp_path, values):
    """values[method][dataset] = image AUROC (fraction), same on each category, seeds 0 and 1 (+0.02 on seed 1)."""
    store = ResultStore(tmp_path / "out")
    for method, by_ds in values.items():
        for ds, value in by_ds.items():
            for category in DATASETS[ds][1]:
                for seed in (0, 1):
                    put(store, method, method.upper(), ds, category, value + 0.02 * seed, seed=seed)
    return store


def long(frame, **kw) -> pd.DataFrame:
    return pd.read_csv(io.StringIO(make_table(frame, "csv", csv_layout="long", **kw)), keep_default_na=False,
                       na_values=[""])


def test_one_protocol_is_one_column_with_a_ranked_mean(tmp_path):
    store = trained_store(tmp_path, {"mpama": {"mvtec": .90, "visa": .80, "btad": .70},
                                     "visualad": {"mvtec": .85, "visa": .75, "btad": .60}})
    frame = results_frame(store.out)
    assert set(frame["protocol"]) == {"anomalyclip"}
    md = make_table(frame, "md", metrics=["image_auroc"])
    header = md.splitlines()[0]
    # two methods, two columns: no "aux visa" / "aux mvtec" split
    assert header.count("<br>") == 2 and "aux" not in header
    mean_row = next(line for line in md.splitlines() if line.startswith("| Mean"))
    # Means over all three datasets (seed means 81, 74.33), ranked: best bold, second underlined, no partial marker
    assert "**81.0** ± 1.4" in mean_row and "<u>74.3</u> ± 1.4" in mean_row and "°" not in md
    assert "MPAMA: anomalyclip protocol, trained on visa for mvtec; on mvtec for visa, btad." in md
    rows = long(frame, metrics=["image_auroc"])
    mpama = rows[(rows.method == "mpama") & (rows.category == "mean")].set_index("dataset")
    assert mpama.loc["mvtec", "aux"] == "visa" and mpama.loc["btad", "aux"] == "mvtec"
    assert (mpama["protocol"] == "anomalyclip").all()
    assert mpama.loc["mean", "mean"] == pytest.approx((90 + 80 + 70) / 3 + 1) and mpama.loc["mean", "n_datasets"] == 3


def test_by_aux_keeps_a_column_per_auxiliary_set(tmp_path):
    store = trained_store(tmp_path, {"mpama": {"mvtec": .90, "visa": .80, "btad": .70}})
    frame = results_frame(store.out)
    md = make_table(frame, "md", metrics=["image_auroc"], by_aux=True)
    header = md.splitlines()[0]
    assert "MPAMA (aux visa)<br>" in header and "MPAMA (aux mvtec)<br>" in header
    # each holds a partial Mean (1 and 2 of 3 datasets), marked and not ranked
    assert "°" in md and "**" not in next(line for line in md.splitlines() if line.startswith("| Mean"))
    rows = long(frame, metrics=["image_auroc"], by_aux=True)
    means = rows[rows.dataset == "mean"].set_index("variant")["mean"]
    assert means["MPAMA (aux visa)"] == pytest.approx(91.0) and means["MPAMA (aux mvtec)"] == pytest.approx((81 + 71) / 2)


def test_two_protocols_and_a_forced_aux_are_separate_columns(tmp_path):
    store = ResultStore(tmp_path / "out")
    for ds, (_, cats) in DATASETS.items():
        put(store, "mpama", "MPAMA", ds, cats[0], .9)
        # visualad protocol: VisA trains on MVTec AD, every other dataset on VisA
        put(store, "mpama", "MPAMA", ds, cats[0], .8, protocol="visualad", aux="mvtec" if ds == "visa" else "visa")
    put(store, "mpama", "MPAMA", "mvtec", "bottle", .7, aux="mvtec")  # forced --aux mvtec: not the pairing
    header = make_table(results_frame(store.out), "md", metrics=["image_auroc"]).splitlines()[0]
    assert "MPAMA (anomalyclip protocol)<br>" in header and "MPAMA (visualad protocol)<br>" in header
    assert "MPAMA (aux mvtec)<br>" in header and header.count("<br>") == 3


def test_config_variants_are_labelled_by_the_differing_options(tmp_path):
    store = ResultStore(tmp_path / "out")
    for experts in (3, 4, 5):
        config = {"experts": experts, "epochs": 2, "perception": [1, 2, 3, 4]}
        for ds in ("mvtec", "btad"):
            put(store, "mpama", "MPAMA", ds, DATASETS[ds][1][0], .7 + experts / 100, config=config,
                config_hash=f"hash{experts}")
    # a label that already carries the option (as the runner writes it) is kept as it is
    put(store, "mpama", "MPAMA [perception=1,2]", "mvtec", "bottle", .5,
        config={"experts": 4, "epochs": 2, "perception": [1, 2]}, config_hash="hashp")
    md = make_table(results_frame(store.out), "md", metrics=["image_auroc"])
    header = md.splitlines()[0]
    for experts in (3, 4, 5):
        assert f"MPAMA [experts={experts}]<br>" in header
    assert "MPAMA [perception=1,2]<br>" in header and header.count("<br>") == 4
    mean_row = next(line for line in md.splitlines() if line.startswith("| Mean"))
    assert "**75.0**" in mean_row and "<u>74.0</u>" in mean_row


def test_cli_table_merges_protocol_and_splits_with_by_aux(tmp_path, capsys):
    store = trained_store(tmp_path, {"mpama": {"mvtec": .90, "visa": .80, "btad": .70}})
    assert main(["table", "--out", str(store.out), "--format", "md", "--metrics", "image_auroc"]) == 0
    merged = capsys.readouterr().out
    assert merged.splitlines()[0].count("<br>") == 1 and "81.0 ± 1.4" in merged
    assert main(["table", "--out", str(store.out), "--format", "md", "--metrics", "image_auroc", "--by-aux"]) == 0
    assert capsys.readouterr().out.splitlines()[0].count("aux ") == 2


def test_table_selects_methods_and_datasets_and_names_unknown_ones(tmp_path, capsys):
    trained_store(tmp_path, {"mpama": {"mvtec": .9, "visa": .8, "btad": .7}, "anomalyclip": {"mvtec": .6, "visa": .5}})
    out = str(tmp_path / "out")
    assert main(["table", "--out", out, "--format", "csv", "--csv-layout", "long", "--methods", "mpama",
                 "--datasets", "mvtec,btad"]) == 0
    long = pd.read_csv(io.StringIO(capsys.readouterr().out))
    assert set(long["method"]) == {"mpama"} and set(long["dataset"]) - {"mean"} == {"mvtec", "btad"}
    assert main(["table", "--out", out, "--format", "csv", "--csv-layout", "long", "--methods", "ANOMALYCLIP"]) == 0
    assert set(pd.read_csv(io.StringIO(capsys.readouterr().out))["method"]) == {"anomalyclip"}  # by label
    assert main(["table", "--out", out, "--methods", "winclip"]) == 1
    err = " ".join(capsys.readouterr().err.split())
    assert "--methods: 'winclip' is not in these results; they hold ANOMALYCLIP, MPAMA, anomalyclip, mpama" in err
    assert main(["table", "--out", out, "--datasets", "mpdd"]) == 1
    assert "--datasets: 'mpdd' is not in these results; they hold btad, mvtec, visa" in " ".join(capsys.readouterr().err.split())
