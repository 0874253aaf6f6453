"""``data check`` on masks and trees that would make the numbers meaningless, and the categories a run skips."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

import fake_trees as ft
from zsadbench import registry
from zsadbench.datasets.check import check_dataset


@pytest.fixture
def mvtec(tmp_path):
    return ft.make_mvtec(tmp_path / "mvtec")


def warnings_of(report) -> list[str]:
    return [str(p) for p in report.warnings]


def test_a_category_without_test_images_is_reported_and_listed_as_skipped(mvtec):
    for image in (mvtec / "grid" / "test").rglob("*.png"):
        image.unlink()
    for mask in (mvtec / "grid" / "ground_truth").rglob("*.png"):
        mask.unlink()
    adapter = registry.datasets().get("mvtec")(mvtec)
    assert adapter.categories() == ["bottle"]
    assert adapter.skipped == {"grid": f"its folder {mvtec / 'grid' / 'test'} holds no test images"}
    texts = warnings_of(check_dataset("mvtec", mvtec))
    assert any(f"category 'grid' skipped: its folder {mvtec / 'grid' / 'test'} holds no test images" in t
               and "the dataset mean is taken over the other categories" in t for t in texts)


def test_a_complete_copy_skips_nothing(mvtec):
    adapter = registry.datasets().get("mvtec")(mvtec)
    assert adapter.samples and adapter.skipped == {}
    assert not [t for t in warnings_of(check_dataset("mvtec", mvtec)) if "skipped" in t]


def test_a_meta_json_category_with_training_images_only_is_skipped(tmp_path):
    root = ft.make_meta_json(tmp_path / "meta", absolute=False)
    meta = json.loads((root / "meta.json").read_text())
    del meta["Test"]["grid"]
    (root / "meta.json").write_text(json.dumps(meta))
    adapter = registry.datasets().get("meta_json")(root)
    assert adapter.categories() == ["bottle"]
    assert adapter.skipped == {"grid": "it has training images but no test images"}


def test_a_mask_with_soft_edges_is_reported_as_not_binary(mvtec):
    path = mvtec / "bottle" / "ground_truth" / "crack" / "000_mask.png"
    top, left, height, width = ft.box(0)
    soft = np.zeros((32, 32), np.uint8)
    soft[top - 1 : top + height + 1, left - 1 : left + width + 1] = 128  # an anti-aliased rim
    soft[top : top + height, left : left + width] = 255
    ft.save(path, soft)
    texts = [t for t in warnings_of(check_dataset("mvtec", mvtec)) if "not binary" in t]
    assert texts == [f"{path}: mask is not binary: 3 gray levels, 36 pixels between 0 and 255, all counted as "
                     "anomalous. Fix: re-export it with two levels (0 and 255)"]


def test_class_index_masks_are_not_taken_for_soft_ones(tmp_path):
    root = ft.make_visa(tmp_path / "visa")  # masks hold the defect classes 1 and 2
    assert not [t for t in warnings_of(check_dataset("visa", root)) if "not binary" in t]


def test_a_mask_covering_most_of_its_image_is_reported_as_likely_inverted(mvtec):
    path = mvtec / "grid" / "ground_truth" / "cut" / "000_mask.png"
    ft.save(path, 255 - ft.mask_pixels((32, 32), ft.box(1)))
    texts = [t for t in warnings_of(check_dataset("mvtec", mvtec)) if "inverted" in t]
    assert texts == [f"{path}: mask marks 94% of its image 000.png as anomalous: likely inverted (anomalies must "
                     "be the bright pixels). Fix: invert it (255 - mask) if the defect is the dark part"]


def test_good_masks_raise_no_content_warning(mvtec):
    texts = warnings_of(check_dataset("mvtec", mvtec))
    assert not [t for t in texts if "binary" in t or "inverted" in t or "empty" in t]


def test_symlink_loops_are_reported_and_not_walked(mvtec):
    test_dir = mvtec / "bottle" / "test"
    os.symlink("..", test_dir / "parent")  # a folder pointing at the category that holds it
    os.symlink("self", test_dir / "self")  # a link to itself
    adapter = registry.datasets().get("mvtec")(mvtec)
    assert {s.defect_type for s in adapter.select("test", "bottle")} == {"good", "crack", "cut"}
    texts = [t for t in warnings_of(check_dataset("mvtec", mvtec)) if "symlink loop" in t]
    assert texts == [
        f"{test_dir / 'parent'}: symlink loop (parent -> .. leads back to a folder holding it): ignored. "
        "Fix: remove the link, or point it at a folder outside the tree",
        f"{test_dir / 'self'}: symlink loop (self -> self leads back to a folder holding it): ignored. "
        "Fix: remove the link, or point it at a folder outside the tree",
    ]


def test_a_symlink_to_a_folder_outside_the_tree_is_followed(tmp_path):
    real = ft.make_mvtec(tmp_path / "store", categories=("bottle",))
    tree = tmp_path / "mvtec"
    tree.mkdir()
    os.symlink(real / "bottle", tree / "bottle")
    adapter = registry.datasets().get("mvtec")(tree)
    assert adapter.categories() == ["bottle"]
    assert not [t for t in warnings_of(check_dataset("mvtec", tree)) if "symlink loop" in t]
