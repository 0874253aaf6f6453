"""The real MVTec AD samples in ../shared/real-samples load through the MVTec adapter with aligned masks."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from zsadbench import registry
from zsadbench.datasets.check import check_dataset


@pytest.fixture(scope="module")
def adapter(real_mvtec):
    return registry.datasets().get("mvtec")(real_mvtec)


def test_real_samples_are_indexed_with_the_right_labels(adapter):
    assert adapter.categories() == ["hazelnut", "transistor"]
    # counts of the files on disk (see ../shared/real-samples/SOURCES.md)
    assert len(adapter.select("train", "hazelnut")) == 5 and len(adapter.select("train", "transistor")) == 3
    assert len(adapter.select("test", "hazelnut", 0)) == 2 and len(adapter.select("test", "hazelnut", 1)) == 5
    assert len(adapter.select("test", "transistor", 0)) == 1 and len(adapter.select("test", "transistor", 1)) == 4
    for sample in adapter.select("test", label=1):
        # ground_truth/<defect>/<stem>_mask.png belongs to test/<defect>/<stem>.png
        assert sample.mask_path.parent.name == sample.image_path.parent.name == sample.defect_type
        assert sample.mask_path.name == sample.image_path.stem + "_mask.png"


def test_real_masks_cover_the_printed_defects(adapter):
    # the 'print' defects are white ink on a brown nut: the bright pixels of the image must lie in the mask
    for sample in adapter.select("test", "hazelnut", 1):
        image, mask = adapter.load_image(sample), adapter.load_mask(sample)
        assert image.shape == (256, 256, 3) and mask.shape == (256, 256) and mask.dtype == bool
        raw = np.asarray(Image.open(sample.mask_path))
        assert np.array_equal(mask, raw > 0)
        if sample.defect_type != "print":
            continue
        bright = image.mean(axis=2) > 180
        assert bright.sum() > 300
        assert mask[bright].mean() > 0.95
        assert np.flipud(mask)[bright].mean() < 0.5 and np.fliplr(mask)[bright].mean() < 0.5


def test_real_samples_pass_the_deep_check(real_mvtec):
    report = check_dataset("mvtec", real_mvtec, deep=True)
    assert report.usable and not report.errors
    assert [(c.name, c.train, c.found, c.masks) for c in report.categories] == [
        ("hazelnut", 5, (2, 5), 5), ("transistor", 3, (1, 4), 4)]
