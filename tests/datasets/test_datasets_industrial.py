"""The industrial adapters on fake trees in each official and reorganised layout."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import fake_trees as ft
from zsadbench import registry
from zsadbench.datasets.problems import ProblemLog

# (maker, kwargs, dataset, {category: (train normals, test normals, test anomalies)}, lossless images)
CASES = [
    (ft.make_mvtec, {}, "mvtec", {"bottle": (1, 2, 2), "grid": (1, 2, 2)}, True),
    (ft.make_visa, {}, "visa", {"candle": (1, 2, 2), "capsules": (1, 2, 2)}, False),
    (ft.make_visa, {"layout": "prepared"}, "visa", {"candle": (1, 2, 2), "capsules": (1, 2, 2)}, True),
    (ft.make_mpdd, {}, "mpdd", {"bracket_black": (1, 2, 2), "tubes": (1, 2, 2)}, True),
    (ft.make_mpdd, {"wrapped": True}, "mpdd", {"bracket_black": (1, 2, 2), "tubes": (1, 2, 2)}, True),
    (ft.make_btad, {}, "btad", {"01": (1, 2, 2), "02": (1, 2, 2), "03": (1, 2, 2)}, True),
    (ft.make_sdd, {"layout": "adaclip"}, "sdd", {"electrical_commutators": (1, 2, 2)}, True),
    (ft.make_sdd, {"layout": "anomalyclip"}, "sdd", {"electrical_commutators": (0, 2, 2)}, True),
    (ft.make_dagm, {}, "dagm", {"Class1": (1, 2, 2), "Class2": (1, 2, 2)}, True),
    (ft.make_dagm, {"layout": "adaclip"}, "dagm", {"Class1": (1, 2, 2), "Class2": (1, 2, 2)}, True),
    (ft.make_dtd, {}, "dtd", {"Blotchy_099": (1, 2, 2), "Woven_001": (1, 2, 2)}, True),
]


def adapter_for(name: str, root: Path):
    return registry.datasets().get(name)(root)


def counts(adapter, category: str) -> tuple[int, int, int]:
    return (len(adapter.select("train", category)), len(adapter.select("test", category, 0)),
            len(adapter.select("test", category, 1)))


@pytest.mark.parametrize(("maker", "kwargs", "name", "expected", "lossless"), CASES,
                         ids=[f"{c[2]}-{c[1].get('layout', 'wrapped' if c[1] else 'official')}" for c in CASES])
def test_adapter_yields_samples_labels_and_aligned_masks(tmp_path, maker, kwargs, name, expected, lossless):
    adapter = adapter_for(name, maker(tmp_path / name, **kwargs))
    assert adapter.categories() == sorted(expected)
    for category, triple in expected.items():
        assert counts(adapter, category) == triple
    assert all(s.gt_label == 0 for s in adapter.select("train"))
    for sample in adapter.select("test"):
        image = adapter.load_image(sample)
        assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
        mask = adapter.load_mask(sample)
        if sample.gt_label == 0:
            assert mask is None
            continue
        assert mask is not None and mask.dtype == bool and mask.shape == image.shape[:2]
        iou = ft.defect_iou(image, mask)
        assert iou == 1.0 if lossless else iou > 0.7, (sample.image_path, iou)


def test_masks_pair_by_name_not_by_position(tmp_path):
    # deleting the first mask must not shift the others onto the wrong images
    root = ft.make_mvtec(tmp_path / "mvtec", categories=("bottle",), defects=("crack",), n_bad=3)
    (root / "bottle" / "ground_truth" / "crack" / "000_mask.png").unlink()
    adapter = adapter_for("mvtec", root)
    adapter.log = ProblemLog("mvtec", strict=False)
    samples = [s for s in adapter.index() if s.gt_label == 1]
    assert [s.mask_path.name if s.mask_path else None for s in samples] == [None, "001_mask.png", "002_mask.png"]
    for sample in samples[1:]:
        assert ft.defect_iou(adapter.load_image(sample), adapter.load_mask(sample)) == 1.0


def test_grayscale_mvtec_category_is_replicated_to_rgb(tmp_path):
    root = ft.make_mvtec(tmp_path / "mvtec")
    sample = adapter_for("mvtec", root).select("test", "grid", 0)[0]
    assert Image.open(sample.image_path).mode == "L"
    image = adapter_for("mvtec", root).load_image(sample)
    gray = np.asarray(Image.open(sample.image_path))
    assert all(np.array_equal(image[..., c], gray) for c in range(3))


def test_visa_class_index_masks_are_binarised(tmp_path):
    root = ft.make_visa(tmp_path / "visa")
    adapter = adapter_for("visa", root)
    second = adapter.select("test", "candle", 1)[1]
    raw = np.asarray(Image.open(second.mask_path))
    assert set(np.unique(raw)) == {0, 2}  # defect-class index 2, not 255
    assert adapter.load_mask(second).sum() == ft.BOX * ft.BOX
    assert second.image_path.suffix == ".JPG" and second.image_path.parent.name == "Anomaly"


def test_visa_without_split_csv_is_an_error_naming_the_file(tmp_path):
    root = ft.make_visa(tmp_path / "visa")
    (root / "split_csv" / "1cls.csv").unlink()
    with pytest.raises(Exception, match="1cls.csv"):
        adapter_for("visa", root).samples


def test_btad_pairs_masks_across_extensions(tmp_path):
    adapter = adapter_for("btad", ft.make_btad(tmp_path / "btad"))
    exts = {s.category: (s.image_path.suffix, s.mask_path.suffix) for s in adapter.select("test", label=1)}
    assert exts == {"01": (".bmp", ".png"), "02": (".png", ".png"), "03": (".bmp", ".bmp")}
    assert {s.defect_type for s in adapter.select("test", label=0)} == {"ok"}


def test_sdd_official_parts_are_cut_into_three_strips(tmp_path):
    from sklearn.model_selection import train_test_split

    root = ft.make_sdd(tmp_path / "sdd", items=4, parts=2)
    adapter = adapter_for("sdd", root)
    samples = adapter.samples
    assert len(samples) == 4 * 2 * 3
    for part in {s.image_path for s in samples}:
        crops = sorted(s.crop for s in samples if s.image_path == part)
        assert crops == [(0, 0, 32, 32), (32, 0, 32, 32), (64, 0, 32, 32)]
    anomalous = adapter.select("test", label=1)
    # the writer puts a defect in the first strip of every odd-numbered part (4 of 8 parts)
    assert len(anomalous) == 4 and all(s.crop[0] == 0 and s.mask_path.name.endswith("_label.bmp") for s in anomalous)
    for sample in anomalous:
        assert ft.defect_iou(adapter.load_image(sample), adapter.load_mask(sample)) > 0.7
    normal_names = sorted(f"{s.image_path.parent.name}_{s.image_path.stem}_{s.crop[0] // 32}"
                          for s in samples if s.gt_label == 0)
    _, test_names = train_test_split(normal_names, test_size=0.25, random_state=42)
    got = sorted(f"{s.image_path.parent.name}_{s.image_path.stem}_{s.crop[0] // 32}"
                 for s in adapter.select("test", label=0))
    assert got == sorted(test_names) and len(got) == 5  # ceil(0.25 * 20)
    assert len(adapter.select("train")) == 15


def test_dagm_uses_labels_txt_and_drops_training_defects(tmp_path):
    root = ft.make_dagm(tmp_path / "dagm")
    assert (root / "Class1" / "Test" / "Label" / "Labels.txt").read_bytes().startswith(b"\xef\xbb\xbf")
    adapter = adapter_for("dagm", root)
    train = adapter.select("train", "Class1")
    assert [s.image_path.name for s in train] == ["0011.PNG"]  # 0012.PNG is defective
    assert [s.image_path.name for s in adapter.select("test", "Class1", 1)] == ["0003.PNG", "0004.PNG"]


def test_dagm_labels_txt_flag_wins_over_a_stray_label_image(tmp_path):
    root = ft.make_dagm(tmp_path / "dagm")
    labels = root / "Class1" / "Test" / "Label" / "Labels.txt"
    labels.write_text(labels.read_text(encoding="utf-8-sig").replace("4\t1\t0004.PNG", "4\t0\t0004.PNG"))
    adapter = adapter_for("dagm", root)
    assert [s.image_path.name for s in adapter.select("test", "Class1", 1)] == ["0003.PNG"]
    assert any("0004_label.PNG" in str(p) for p in adapter.log.warnings)


def test_dagm_without_labels_txt_falls_back_to_label_images(tmp_path):
    root = ft.make_dagm(tmp_path / "dagm")
    for listing in root.glob("Class*/*/Label/Labels.txt"):
        listing.unlink()
    adapter = adapter_for("dagm", root)
    assert len(adapter.select("test", "Class2", 1)) == 2 and len(adapter.select("train", "Class2")) == 1
    assert any("Labels.txt" in str(p) for p in adapter.log.warnings)
