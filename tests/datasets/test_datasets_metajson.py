"""The AnomalyCLIP meta.json adapter, the meta.json export, and the Real-IAD adapter."""
from __future__ import annotations

import json

import numpy as np
import pytest

import fake_trees as ft
from zsadbench import registry
from zsadbench.datasets.export import export_meta
from zsadbench.errors import DataError


def sample_table(adapter) -> list[tuple]:
    return sorted((s.split, s.category, s.gt_label, str(s.image_path), str(s.mask_path)) for s in adapter.samples)


def test_meta_json_reroots_absolute_paths_and_reads_capitalised_keys(tmp_path):
    root = ft.make_meta_json(tmp_path / "copy", prefix="/elsewhere/data//mvtec")
    meta = registry.datasets().get("meta_json")(root)
    folder = registry.datasets().get("mvtec")(root)
    assert sample_table(meta) == sample_table(folder)
    assert meta.categories() == ["bottle", "grid"]


def test_meta_json_accepts_a_path_to_the_file_and_relative_paths(tmp_path):
    root = ft.make_meta_json(tmp_path / "copy", split_keys=("train", "test"), absolute=False)
    meta = registry.datasets().get("meta_json")(root / "meta.json")
    assert meta.root == root and len(meta.select("test")) == 8


def test_meta_json_empty_mask_path_means_no_mask_and_train_anomalies_are_dropped(tmp_path):
    root = ft.make_mvtec(tmp_path / "m", categories=("bottle",))
    bad = "bottle/test/crack/000.png"
    info = {"Train": {"bottle": [
                {"img_path": bad, "mask_path": "", "cls_name": "bottle", "specie_name": "crack", "anomaly": 1},
                {"img_path": "bottle/train/good/000.png", "mask_path": "", "cls_name": "bottle",
                 "specie_name": "good", "anomaly": 0}]},
            "Test": {"electrical commutators": [
                {"img_path": bad, "mask_path": "", "cls_name": "electrical commutators", "specie_name": "",
                 "anomaly": 1},
                {"img_path": "bottle/test/good/000.png", "mask_path": "", "cls_name": "electrical commutators",
                 "specie_name": "good", "anomaly": 0}]}}
    (root / "meta.json").write_text(json.dumps(info))
    meta = registry.datasets().get("meta_json")(root)
    assert [s.image_path.name for s in meta.select("train")] == ["000.png"] and meta.select("train")[0].gt_label == 0
    anomalous = meta.select("test", label=1)[0]
    assert anomalous.mask_path is None and meta.load_mask(anomalous) is None
    assert meta.categories() == ["electrical commutators"]


def test_meta_json_missing_image_is_an_error_naming_it(tmp_path):
    root = ft.make_meta_json(tmp_path / "copy", absolute=False)
    (root / "grid" / "test" / "good" / "001.png").unlink()
    with pytest.raises(DataError, match=r"grid/test/good/001\.png"):
        registry.datasets().get("meta_json")(root).samples


@pytest.mark.parametrize("name", ["mvtec", "btad", "dagm", "isic", "brainmri"])
def test_export_meta_round_trips_through_the_meta_json_adapter(tmp_path, name):
    root = ft.MAKERS[name](tmp_path / name)
    adapter = registry.datasets().get(name)(root)
    out = export_meta(adapter, tmp_path / "out" / "meta.json")
    text = out.read_text()
    assert text.endswith("}\n") and text.startswith('{\n    "train": {')
    info = json.loads(text)
    assert set(info) == {"train", "test"}
    for records in info["test"].values():
        for record in records:
            assert set(record) == {"img_path", "mask_path", "cls_name", "specie_name", "anomaly"}
            assert not record["img_path"].startswith("/")
            assert (record["mask_path"] == "") == (record["anomaly"] == 0 or "pixel" not in adapter.metric_levels)
    meta = registry.datasets().get("meta_json")(out)
    resolved = [(s.split, s.category, s.gt_label, s.image_path.resolve(), s.mask_path and s.mask_path.resolve())
                for s in meta.samples]
    expected = [(s.split, s.category, s.gt_label, s.image_path.resolve(), s.mask_path and s.mask_path.resolve())
                for s in adapter.samples]
    assert sorted(resolved, key=str) == sorted(expected, key=str)


def test_export_meta_writes_sdd_strips_as_files(tmp_path):
    adapter = registry.datasets().get("sdd")(ft.make_sdd(tmp_path / "sdd"))
    out = export_meta(adapter, tmp_path / "sdd_meta" / "meta.json")
    meta = registry.datasets().get("meta_json")(out)
    assert len(meta.samples) == len(adapter.samples)
    by_name = {}
    for sample in adapter.samples:
        rel = sample.image_path.relative_to(adapter.root).with_suffix("").as_posix().replace("/", "_")
        by_name[f"{rel}_{sample.crop[0]}_{sample.crop[1]}.png"] = sample
    for sample in meta.select("test"):
        source = by_name[sample.image_path.name]
        assert np.array_equal(meta.load_image(sample), adapter.load_image(source))
        if sample.gt_label:
            assert np.array_equal(meta.load_mask(sample), adapter.load_mask(source))


def test_realiad_follows_the_top_view_protocol(tmp_path):
    adapter = registry.datasets().get("realiad")(ft.make_realiad(tmp_path / "realiad"))
    assert adapter.categories() == ["audiojack", "pcb"]
    for category in adapter.categories():
        normals = adapter.select("test", category, 0)
        assert len(normals) == 2 and all("_OK_C1_" in s.image_path.name for s in normals)
        assert [s.image_path for s in adapter.select("train", category)] == [s.image_path for s in normals]
        anomalies = adapter.select("test", category, 1)
        # three NG C1 views have a mask (one as <stem>_mask.png); the fourth has none and is dropped
        assert len(anomalies) == 3 and {s.defect_type for s in anomalies} == {"AK", "HS"}
        for sample in anomalies:
            assert "_C1_" in sample.image_path.name
            assert ft.defect_iou(adapter.load_image(sample), adapter.load_mask(sample)) > 0.7


def test_check_reads_a_meta_json_file_and_reports_its_missing_images(tmp_path):
    from zsadbench.datasets.check import check_dataset

    root = ft.make_meta_json(tmp_path / "copy")
    assert check_dataset("meta_json", root / "meta.json").usable
    (root / "bottle" / "test" / "cut" / "000.png").unlink()
    report = check_dataset("meta_json", root / "meta.json")
    assert not report.usable
    assert any("bottle/test/cut/000.png: image of record test/bottle[1]" in str(p) for p in report.errors)
