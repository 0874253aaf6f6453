"""`zsadbench export`: one results file per folder, valid against the shipped JSON Schema (checked here with
jsonschema itself), its numbers the tables' aggregation of the stored cells (recomputed here with pandas), its
intervals those of `zsadbench intervals`, nothing local in it, and every broken file refused in one line."""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import jsonschema
import pandas as pd
import pytest

from zsadbench.cli.main import main
from zsadbench.errors import DataError
from zsadbench.metrics import METRICS
from zsadbench.share import SCHEMA_PATH, read_results, results_document, stored_cells, write_results
from zsadbench.store import ResultStore

from share_store import Variant, put_failed, write_folder

VARIANTS = [Variant("winclip", "WinCLIP", 2.0, seeds=(0, 1)),
            Variant("mpama", "MPAMA", 1.0, aux="visa", protocol="anomalyclip", config='{"experts":4}'),
            Variant("winclip", "WinCLIP", 0.3, shots=1, seeds=(0, 1), salt=1)]
DATASETS = {"mvtec": ("bottle", "cable"), "headct": ("brain",)}
RESAMPLES = "80"


@pytest.fixture(scope="module")
def out(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("export") / "out"
    store = write_folder(folder, VARIANTS, DATASETS)
    put_failed(store, VARIANTS[1], "headct", "brain", 1)
    return folder


@pytest.fixture(scope="module")
def exported(out, tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("exported") / "results.json"
    assert main(["export", "--out", str(out), "--write", str(path)]) == 0
    return path


def export(out: Path, path: Path, *extra: str) -> dict:
    assert main(["export", "--out", str(out), "--write", str(path), *extra]) == 0
    return json.loads(path.read_text(encoding="utf-8"))


def one_line_error(capsys, *args: str) -> str:
    assert main(list(args)) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "Traceback" not in err
    return err


def test_the_schema_names_every_metric():
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    assert schema["$defs"]["metric"]["enum"] == list(METRICS)


def test_export_holds_every_variant_with_the_tables_numbers(out, tmp_path):
    doc = export(out, tmp_path / "r.json")
    jsonschema.validate(doc, json.loads(SCHEMA_PATH.read_text(encoding="utf-8")))
    assert doc["schema_version"] == 1 and doc["intervals"] is None and doc["sources"] == []
    assert [v["label"] for v in doc["variants"]] == ["WinCLIP", "MPAMA", "WinCLIP (1-shot)"]
    cells = [c for c in ResultStore(out).rows()]
    rows = pd.DataFrame([{"method": c.method, "shots": c.shots, "dataset": c.dataset, "category": c.category,
                          "seed": c.seed, **c.metrics} for c in cells if c.status == "ok"])
    for v in doc["variants"]:
        mine = rows[(rows["method"] == v["method"]) & (rows["shots"] == v["shots"])]
        for dataset, d in v["datasets"].items():
            part = mine[mine["dataset"] == dataset]
            per_seed = part.groupby("seed")[list(METRICS)].mean()
            for metric, s in d["metrics"].items():
                assert s["mean"] == pytest.approx(per_seed[metric].mean(), abs=1e-15)
                assert s["n_seeds"] == len(per_seed)
                assert (s["std"] is None) == (len(per_seed) < 2)
            for category, cat in d["categories"].items():
                values = part[part["category"] == category]
                for metric, s in cat["metrics"].items():
                    assert s["mean"] == pytest.approx(values[metric].mean(), abs=1e-15)
                    assert s["n_seeds"] == len(values)
    mpama = doc["variants"][1]
    assert mpama["config"] == {"experts": 4} and mpama["protocol"] == "anomalyclip"
    assert mpama["weights"] == {"tag": "openai", "sha256": "f" * 64, "random_init": False}
    assert mpama["eval_size"] == 16 and mpama["precision"] == "fp32" and mpama["datasets"]["mvtec"]["aux"] == "visa"
    assert doc["variants"][0]["protocol"] == ""  # a method that trains on no auxiliary set has no protocol
    assert mpama["environments"] == [{"python": "3.11.7", "platform": "Linux", "git_sha": "abc123",
                                      "packages": {"zsadbench": "0.1.0", "torch": "2.4.0"}}]
    brain = mpama["datasets"]["headct"]["categories"]["brain"]
    assert [c["status"] for c in brain["cells"]] == ["ok", "failed"] and brain["metrics"]["image_auroc"]["n_seeds"] == 1
    assert brain["cells"][1]["error"] == "MethodError: NaN in the maps"
    cell = brain["cells"][0]
    assert cell["environment"] == 0 and cell["provenance"]["device"] == "cpu"
    text = (tmp_path / "r.json").read_text(encoding="utf-8")
    assert "/home/someone" not in text and "secret-host" not in text  # no local paths, no host names


def intervals_csv(capsys, out: Path) -> dict[tuple, tuple[float, float]]:
    assert main(["intervals", "--out", str(out), "--metrics", "image_auroc,pixel_auroc", "--resamples", RESAMPLES,
                 "--format", "csv"]) == 0
    rows = csv.DictReader(io.StringIO(capsys.readouterr().out))
    return {(r["level"], r["variant"], r["dataset"], r["category"], r["seed"], r["metric"]):
            (float(r["low"]), float(r["high"])) for r in rows}


def test_intervals_come_from_the_bootstrap_and_later_from_the_cache(out, tmp_path, capsys):
    doc = export(out, tmp_path / "ci.json", "--ci", "--resamples", RESAMPLES)
    assert doc["intervals"] == {"method": "bootstrap-percentile", "level": 0.95, "resamples": int(RESAMPLES), "seed": 0,
                                "scheme": "stratified-images/1"}
    reference = intervals_csv(capsys, out)
    for v in doc["variants"]:
        for dataset, d in v["datasets"].items():
            for metric in ("image_auroc", "pixel_auroc"):
                low, high = reference[("dataset", v["label"], dataset, "", "", metric)]
                assert (d["metrics"][metric]["ci"]["lo"], d["metrics"][metric]["ci"]["hi"]) == pytest.approx(
                    (low, high), abs=1e-12)
                if v["label"] == "MPAMA":  # one seed: a category's interval is its cell's
                    for category, cat in d["categories"].items():
                        low, high = reference[("cell", "MPAMA", dataset, category, "0", metric)]
                        assert cat["metrics"][metric]["ci"] == pytest.approx({"lo": low, "hi": high}, abs=1e-12)
    again = export(out, tmp_path / "cached.json", "--resamples", RESAMPLES)  # no --ci: what OUT/stats holds
    assert {k: again[k] for k in ("intervals", "variants")} == {k: doc[k] for k in ("intervals", "variants")}
    capsys.readouterr()
    assert export(out, tmp_path / "none.json")["intervals"] is None  # other settings: nothing cached
    assert "pass --ci to bootstrap them" in " ".join(capsys.readouterr().err.split())


def test_a_read_file_gives_back_its_cells(out, exported):
    doc = read_results(exported)
    cells = stored_cells(doc)
    stored = {c.cell_id: c for c in ResultStore(out).rows()}
    assert {c.cell_id for c in cells} == set(stored)
    for cell in cells:
        original = stored[cell.cell_id]
        assert cell.metrics == pytest.approx(original.metrics, nan_ok=True)
        assert (cell.method, cell.config_hash, cell.dataset, cell.category, cell.seed, cell.aux, cell.random_init) == (
            original.method, original.config_hash, original.dataset, original.category, original.seed, original.aux,
            original.random_init)
    again = results_document(cells)
    assert {k: v for k, v in again.items() if k != "created"} == {k: v for k, v in doc.items() if k != "created"}


@pytest.mark.parametrize("edit, message", [
    (lambda d: d.pop("variants"), "(top level): 'variants' is a required property"),
    (lambda d: d["variants"][0].update(shots="zero"), "variants[0].shots: 'zero' is not of type 'integer'"),
    (lambda d: d["variants"][0]["datasets"]["mvtec"]["metrics"]["image_auroc"].update(mean=0.5),
     "variants[0].datasets.mvtec.metrics.image_auroc.mean is 0.5, but the cells give"),
    (lambda d: d["variants"][1].update(label="WinCLIP"), "variant label 'WinCLIP' is given twice"),
    (lambda d: d.update(schema_version=7), "schema_version 7 is newer than the results format this zsadbench reads "
                                           "(1): upgrade zsadbench"),
    (lambda d: d["metric_versions"].update(iou=1), "metric_versions: 'iou' is not one of"),
])
def test_a_broken_file_is_refused_in_one_line_naming_the_file_and_the_field(exported, tmp_path, capsys, edit, message):
    doc = json.loads(exported.read_text(encoding="utf-8"))
    edit(doc)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc), encoding="utf-8")
    err = one_line_error(capsys, "merge", str(bad), "--write", str(tmp_path / "lb"))
    assert err.startswith(f"DataError: {bad}: ") and message in err, err


def test_writing_checks_the_document_and_unreadable_files_are_named(exported, tmp_path, capsys):
    doc = json.loads(exported.read_text(encoding="utf-8"))
    doc["variants"][0]["eval_size"] = 0
    with pytest.raises(DataError, match=r"x\.json \(as written\): variants\[0\]\.eval_size: 0 is less than"):
        write_results(tmp_path / "x.json", doc)
    assert not (tmp_path / "x.json").exists()
    broken = tmp_path / "broken.json"
    broken.write_text('{"schema_version": 1,', encoding="utf-8")
    err = one_line_error(capsys, "leaderboard", "--results", str(broken), "--write", str(tmp_path / "p.html"))
    assert f"{broken}: not valid JSON (line 1" in err
    assert "does not exist" in one_line_error(capsys, "merge", str(tmp_path / "nope.json"), "--write", str(tmp_path))
