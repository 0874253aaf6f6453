"""Layout detection shared by the adapters, and the dataset metadata every adapter declares."""
from __future__ import annotations

import json
import shutil

import pytest

import fake_trees as ft
from zsadbench import registry
from zsadbench.datasets.base import DatasetAdapter
from zsadbench.datasets.groups import ZSAD_DATASETS
from zsadbench.errors import DataError

# the MPAMA paper's Table 6, (normal, anomalous) test images
TABLE6 = {
    "mvtec": (467, 1258), "visa": (962, 1200), "mpdd": (176, 282), "btad": (451, 290), "sdd": (181, 74),
    "dagm": (6996, 1054), "dtd": (357, 947), "isic": (0, 379), "clinicdb": (0, 612), "colondb": (0, 380),
    "kvasir": (0, 1000), "endo": (0, 200), "headct": (100, 100), "brainmri": (98, 155), "br35h": (1500, 1500),
}


@pytest.mark.parametrize("name", ZSAD_DATASETS)
def test_adapters_declare_table6_counts_and_applicable_metrics(name):
    cls = registry.datasets().get(name)
    assert issubclass(cls, DatasetAdapter) and cls.name == name
    assert cls.expected_test == TABLE6[name]
    normal, anomalous = TABLE6[name]
    has_masks = name not in ("headct", "brainmri", "br35h")
    expected_levels = ({"image"} if normal else set()) | ({"pixel"} if has_masks else set())
    assert cls.metric_levels == frozenset(expected_levels)
    assert cls.title and cls.source and cls.license and cls.layout
    # where per-category counts are declared (from the official listings) they add up to Table 6
    per_category = [v for v in cls.expected_categories.values() if v is not None]
    if len(per_category) == len(cls.expected_categories) and per_category:
        assert tuple(map(sum, zip(*per_category))) == TABLE6[name]


def test_a_download_wrapper_folder_is_looked_into(tmp_path):
    ft.make_mvtec(tmp_path / "mvtec" / "my_download")
    adapter = registry.datasets().get("mvtec")(tmp_path / "mvtec")
    assert adapter.categories() == ["bottle", "grid"]
    assert adapter.samples[0].image_path.is_relative_to(tmp_path / "mvtec" / "my_download")


def test_unknown_layout_error_names_the_folder_and_the_expected_layout(tmp_path):
    (tmp_path / "kvasir" / "pictures").mkdir(parents=True)
    (tmp_path / "kvasir" / "labels").mkdir()
    with pytest.raises(DataError, match=r"kvasir is in no layout.*pictures.*Kvasir-SEG/images"):
        registry.datasets().get("kvasir")(tmp_path / "kvasir").samples


def test_missing_root_error_says_where_to_put_the_data(tmp_path):
    with pytest.raises(DataError, match="does not exist.*--data-root"):
        registry.datasets().get("btad")(tmp_path / "absent").samples


def test_a_folder_in_no_known_layout_is_read_through_its_meta_json(tmp_path):
    root = tmp_path / "clinicdb"
    ft.make_clinicdb(tmp_path / "source", layout="images_masks")
    shutil.copytree(tmp_path / "source" / "images", root / "frames")
    shutil.copytree(tmp_path / "source" / "masks", root / "truth")
    records = [{"img_path": f"frames/{i}.png", "mask_path": f"truth/{i}.png", "cls_name": "colon",
                "specie_name": "", "anomaly": 1} for i in (1, 2, 3)]
    (root / "meta.json").write_text(json.dumps({"train": {}, "test": {"colon": records}}))
    adapter = registry.datasets().get("clinicdb")(root)
    assert adapter.detected_layout == "" and len(adapter.samples) == 3
    assert adapter.detected_layout == "meta.json"
    for sample in adapter.samples:
        assert ft.defect_iou(adapter.load_image(sample), adapter.load_mask(sample)) == 1.0


def test_stray_folders_are_warnings_not_errors(tmp_path):
    root = ft.make_mvtec(tmp_path / "mvtec")
    (root / "__MACOSX").mkdir()
    (root / "notes").mkdir()
    adapter = registry.datasets().get("mvtec")(root)
    assert adapter.categories() == ["bottle", "grid"]
    assert [p.path.name for p in adapter.log.warnings] == ["notes"]


def test_single_category_datasets_refuse_several_category_folders(tmp_path):
    ft.make_isic(tmp_path / "isic", layout="adaclip")
    shutil.copytree(tmp_path / "isic" / "isic", tmp_path / "isic" / "isic_copy")
    with pytest.raises(DataError, match="single category"):
        registry.datasets().get("isic")(tmp_path / "isic").samples
