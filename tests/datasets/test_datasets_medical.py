"""The medical adapters on fake trees in each official and reorganised layout."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import fake_trees as ft
from zsadbench import registry

# (maker, kwargs, dataset, category, (test normals, test anomalies), anomalies have masks, lossless)
CASES = [
    (ft.make_isic, {}, "isic", "skin", (0, 3), True, False),
    (ft.make_isic, {"layout": "anomalyclip"}, "isic", "skin", (0, 3), True, False),
    (ft.make_isic, {"layout": "adaclip"}, "isic", "skin", (0, 3), True, True),
    (ft.make_clinicdb, {}, "clinicdb", "colon", (0, 3), True, True),
    (ft.make_clinicdb, {"layout": "images_masks"}, "clinicdb", "colon", (0, 3), True, True),
    (ft.make_clinicdb, {"layout": "adaclip"}, "clinicdb", "colon", (0, 3), True, True),
    (ft.make_colondb, {}, "colondb", "colon", (0, 3), True, True),
    (ft.make_colondb, {"layout": "adaclip"}, "colondb", "colon", (0, 3), True, True),
    (ft.make_kvasir, {}, "kvasir", "colon", (0, 3), True, False),
    (ft.make_endo, {}, "endo", "colon", (0, 3), True, False),
    (ft.make_endo, {"layout": "adaclip"}, "endo", "colon", (0, 3), True, True),
    (ft.make_headct, {}, "headct", "brain", (2, 2), False, True),
    (ft.make_headct, {"layout": "anomalyclip"}, "headct", "brain", (2, 2), False, True),
    (ft.make_headct, {"layout": "adaclip"}, "headct", "brain", (2, 2), False, True),
    (ft.make_brainmri, {}, "brainmri", "brain", (3, 2), False, False),
    (ft.make_brainmri, {"layout": "adaclip"}, "brainmri", "brain", (2, 2), False, True),
    (ft.make_br35h, {}, "br35h", "brain", (2, 2), False, False),
    (ft.make_br35h, {"layout": "adaclip"}, "br35h", "brain", (2, 2), False, True),
]


@pytest.mark.parametrize(("maker", "kwargs", "name", "category", "expected", "masked", "lossless"), CASES,
                         ids=[f"{c[2]}-{c[1].get('layout', 'official')}" for c in CASES])
def test_medical_adapter(tmp_path, maker, kwargs, name, category, expected, masked, lossless):
    cls = registry.datasets().get(name)
    adapter = cls(maker(tmp_path / name, **kwargs))
    assert adapter.categories() == [category]
    assert not adapter.select("train")
    assert (len(adapter.select("test", category, 0)), len(adapter.select("test", category, 1))) == expected
    assert cls.domain == "medical"
    assert cls.metric_levels == (frozenset({"pixel"}) if masked else frozenset({"image"}))
    for sample in adapter.select("test"):
        image = adapter.load_image(sample)
        assert image.dtype == np.uint8 and image.shape[2] == 3
        mask = adapter.load_mask(sample)
        if not (masked and sample.gt_label):
            assert mask is None
            continue
        iou = ft.defect_iou(image, mask)
        assert iou == 1.0 if lossless else iou > 0.7, (sample.image_path, iou)


def test_kvasir_jpeg_masks_use_a_threshold_not_any_nonzero(tmp_path):
    adapter = registry.datasets().get("kvasir")(ft.make_kvasir(tmp_path / "kvasir"))
    sample = adapter.select("test")[0]
    gray = np.asarray(Image.open(sample.mask_path).convert("L"))
    box = ft.mask_pixels(gray.shape, ft.box(0)) > 0
    loaded = adapter.load_mask(sample)
    # JPEG ringing leaves small non-zero values around the box: ">0" would count them, the threshold does not
    assert np.count_nonzero(gray > 0) > box.sum()
    assert np.array_equal(loaded, gray > 127)
    assert np.logical_and(loaded, box).sum() / np.logical_or(loaded, box).sum() > 0.9


def test_headct_reads_labels_csv_and_16_bit_images(tmp_path):
    root = ft.make_headct(tmp_path / "headct", n=2)
    adapter = registry.datasets().get("headct")(root)
    assert sorted(s.image_path.name for s in adapter.select("test", label=1)) == ["000.png", "001.png"]
    sample = adapter.select("test", label=0)[0]
    raw = np.asarray(Image.open(sample.image_path))
    assert raw.dtype.itemsize == 2 and raw.max() > 255  # a genuine 16-bit file
    image = adapter.load_image(sample)
    assert np.abs(image[..., 0].astype(int) - np.round(raw / 257.0)).max() <= 1


def test_brainmri_ignores_top_level_duplicates_and_keeps_odd_names(tmp_path):
    adapter = registry.datasets().get("brainmri")(ft.make_brainmri(tmp_path / "brainmri"))
    names = sorted(s.image_path.name for s in adapter.samples)
    assert names == sorted(["1 no.jpeg", "No12.jpg", "19 no.JPG", "Y1.jpg", "Y100.JPG"])
    assert all(s.image_path.parent.parent.name == "brain_tumor_dataset" for s in adapter.samples)


def test_br35h_ignores_the_unlabelled_pred_folder(tmp_path):
    adapter = registry.datasets().get("br35h")(ft.make_br35h(tmp_path / "br35h"))
    assert all(s.image_path.parent.name in ("yes", "no") for s in adapter.samples)
    assert {s.image_path.parent.name: s.gt_label for s in adapter.samples} == {"yes": 1, "no": 0}
