"""Mask thresholds follow the mask file's format: JPEG masks are cut at > 127, lossless ones at > 0.

Every fake tree's masks mark exactly the bright box drawn into their image. Re-encoding a mask as JPEG adds
compression noise around the box (faint non-zero gray levels); loaded through any adapter, the mask must still
cover exactly the drawn box.
"""
from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

import fake_trees as ft
from zsadbench import registry
from zsadbench.datasets.export import export_meta
from zsadbench.datasets.io import JPEG_MASK_THRESHOLD, read_mask

# every adapter whose datasets have masks (the brain sets are image-level; synthetic writes its own PNGs)
MASKED = ("mvtec", "visa", "mpdd", "btad", "sdd", "dagm", "dtd", "isic", "clinicdb", "colondb", "kvasir", "endo",
          "realiad")


def jpeg_bytes(mask: np.ndarray, quality: int = 75) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(mask.astype(np.uint8) * 255).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def noisy_gray(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("L"))


def masked_samples(adapter):
    return [s for s in adapter.select("test") if s.mask_path is not None]


@pytest.mark.parametrize("name", MASKED)
def test_jpeg_encoded_masks_keep_the_drawn_area_through_every_adapter(name, tmp_path):
    ft.MAKERS[name](tmp_path / name)
    adapter = registry.datasets().get(name)(tmp_path / name)
    samples = masked_samples(adapter)
    assert samples
    drawn = {s.mask_path: read_mask(s.mask_path) for s in samples}  # lossless originals: the drawn boxes
    for path, mask in drawn.items():
        data = jpeg_bytes(mask)
        gray = noisy_gray(data)
        assert np.count_nonzero(gray) > mask.sum(), "the re-encoded mask must carry noise outside the box"
        path.write_bytes(data)  # same name, JPEG content: the format is read from the file, not its name
    for sample in samples:
        loaded = adapter.load_mask(sample)
        top, left, height, width = sample.crop or (0, 0, *drawn[sample.mask_path].shape)
        expected = drawn[sample.mask_path][top : top + height, left : left + width]
        np.testing.assert_array_equal(loaded, expected)


@pytest.mark.parametrize("name", ["kvasir", "endo"])
def test_jpg_masks_of_the_polyp_sets_match_their_defect_boxes(name, tmp_path):
    maker = ft.make_endo if name == "endo" else ft.make_kvasir
    kwargs = {"mask_ext": ".jpg"} if name == "endo" else {}
    maker(tmp_path / name, **kwargs)
    adapter = registry.datasets().get(name)(tmp_path / name)
    samples = masked_samples(adapter)
    assert samples and all(s.mask_path.suffix == ".jpg" for s in samples)
    for i, sample in enumerate(samples):
        raw = np.asarray(Image.open(sample.mask_path).convert("L"))
        assert np.count_nonzero(raw) > ft.BOX * ft.BOX  # > 0 would have counted the ringing as object
        mask = adapter.load_mask(sample)
        assert mask.sum() == ft.BOX * ft.BOX
        assert ft.defect_iou(adapter.load_image(sample), mask) == 1.0


def test_kvasir_read_through_its_meta_json_uses_the_jpeg_rule_too(tmp_path):
    ft.make_kvasir(tmp_path / "kvasir")
    source = registry.datasets().get("kvasir")(tmp_path / "kvasir")
    export_meta(source, tmp_path / "kvasir" / "meta.json")
    adapter = registry.datasets().get("meta_json")(tmp_path / "kvasir")
    samples = masked_samples(adapter)
    assert len(samples) == 3
    for sample in samples:
        mask = adapter.load_mask(sample)
        assert mask.sum() == ft.BOX * ft.BOX
        assert ft.defect_iou(adapter.load_image(sample), mask) == 1.0


@pytest.mark.parametrize("suffix", [".png", ".bmp", ".tif"])
def test_lossless_masks_keep_every_non_zero_level(suffix, tmp_path):
    # class-index masks (VisA's 1..K) and faint annotations must not be cut at the JPEG level
    mask = np.zeros((16, 16), np.uint8)
    mask[2:6, 2:6] = 1
    mask[8:12, 8:12] = JPEG_MASK_THRESHOLD  # a level the JPEG rule would drop
    path = tmp_path / f"mask{suffix}"
    Image.fromarray(mask).save(path)
    np.testing.assert_array_equal(read_mask(path), mask > 0)


def test_an_explicit_threshold_overrides_the_format_rule(tmp_path):
    mask = np.zeros((16, 16), np.uint8)
    mask[4:8, 4:8] = 200
    mask[10:12, 10:12] = 100
    path = tmp_path / "mask.png"
    Image.fromarray(mask).save(path)
    np.testing.assert_array_equal(read_mask(path, threshold=150), mask > 150)
