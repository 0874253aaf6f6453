"""Images and masks in every mode a dataset copy may hold come out as the pixel values expected."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from PIL import Image

from zsadbench.datasets.io import read_mask, read_rgb
from zsadbench.errors import DataWarning

GRAY = np.array([[0, 1, 127], [128, 254, 255]], np.uint8)


def rgb_of(gray: np.ndarray) -> np.ndarray:
    return np.repeat(gray[..., None], 3, axis=2)


def test_8_bit_grayscale_is_replicated_into_three_equal_channels(tmp_path):
    Image.fromarray(GRAY, "L").save(tmp_path / "g.png")
    np.testing.assert_array_equal(read_rgb(tmp_path / "g.png"), rgb_of(GRAY))


def test_16_bit_png_is_scaled_by_65535_to_255(tmp_path):
    wide = GRAY.astype(np.uint16) * 257  # the 8-bit levels spread over the 16-bit range
    wide[0, 1] = 32768  # half way: 127.5 rounds to 128
    Image.fromarray(wide).save(tmp_path / "w.png")
    assert Image.open(tmp_path / "w.png").mode.startswith("I")
    expected = GRAY.copy()
    expected[0, 1] = 128
    np.testing.assert_array_equal(read_rgb(tmp_path / "w.png"), rgb_of(expected))


def test_12_bit_png_stored_as_the_png_standard_says_is_scaled_to_8_bits(tmp_path):
    levels = np.array([[0, 1024], [2048, 4095]], np.uint16)  # 12-bit samples
    stored = (levels << 4) | (levels >> 8)  # left-justified into 16 bits with bit replication (PNG spec)
    Image.fromarray(stored).save(tmp_path / "twelve.png")
    expected = np.round(stored.astype(np.float64) * 255 / 65535).astype(np.uint8)
    np.testing.assert_array_equal(expected, [[0, 64], [128, 255]])
    np.testing.assert_array_equal(read_rgb(tmp_path / "twelve.png"), rgb_of(expected))


def test_rgba_drops_alpha_and_keeps_the_colour_even_where_transparent(tmp_path):
    rgba = np.array([[[200, 10, 30, 255], [5, 250, 100, 0]]], np.uint8)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    np.testing.assert_array_equal(read_rgb(tmp_path / "a.png"), rgba[..., :3])


def test_gray_with_alpha_is_replicated(tmp_path):
    la = np.stack([GRAY, np.full_like(GRAY, 7)], axis=2)
    Image.fromarray(la, "LA").save(tmp_path / "la.png")
    np.testing.assert_array_equal(read_rgb(tmp_path / "la.png"), rgb_of(GRAY))


def test_palette_images_are_looked_up_in_their_palette(tmp_path):
    palette = [255, 0, 0, 0, 128, 255, 17, 34, 51] + [0] * (256 * 3 - 9)
    image = Image.fromarray(np.array([[0, 1], [2, 1]], np.uint8), "P")
    image.putpalette(palette)
    image.save(tmp_path / "p.png")
    expected = np.array([[[255, 0, 0], [0, 128, 255]], [[17, 34, 51], [0, 128, 255]]], np.uint8)
    np.testing.assert_array_equal(read_rgb(tmp_path / "p.png"), expected)


def test_1_bit_images_become_black_and_white(tmp_path):
    bits = np.array([[True, False, True], [False, False, True]])
    Image.fromarray(bits).convert("1").save(tmp_path / "b.png")
    assert Image.open(tmp_path / "b.png").mode == "1"
    np.testing.assert_array_equal(read_rgb(tmp_path / "b.png"), rgb_of(bits.astype(np.uint8) * 255))


@pytest.mark.parametrize(("cmyk", "rgb"), [
    ((0, 0, 0, 0), (255, 255, 255)), ((0, 255, 255, 0), (255, 0, 0)), ((255, 0, 255, 0), (0, 255, 0)),
    ((255, 255, 0, 0), (0, 0, 255)), ((0, 0, 0, 255), (0, 0, 0)), ((0, 0, 0, 128), (127, 127, 127)),
])
def test_cmyk_jpeg_is_converted_to_rgb(cmyk, rgb, tmp_path):
    Image.new("CMYK", (16, 16), cmyk).save(tmp_path / "c.jpg", quality=100)
    assert Image.open(tmp_path / "c.jpg").mode == "CMYK"
    pixels = read_rgb(tmp_path / "c.jpg").astype(int)
    assert pixels.shape == (16, 16, 3)
    assert np.abs(pixels - np.array(rgb)).max() <= 2  # a flat JPEG is exact up to rounding


def test_float_tiff_in_0_1_is_scaled_to_255(tmp_path):
    values = np.array([[0.0, 0.5], [0.25, 1.0]], np.float32)
    Image.fromarray(values, "F").save(tmp_path / "f.tif")
    np.testing.assert_array_equal(read_rgb(tmp_path / "f.tif"), rgb_of(np.array([[0, 128], [64, 255]], np.uint8)))


def test_crop_is_applied_after_conversion(tmp_path):
    Image.fromarray(GRAY, "L").save(tmp_path / "g.png")
    np.testing.assert_array_equal(read_rgb(tmp_path / "g.png", crop=(1, 1, 1, 2)), rgb_of(GRAY[1:2, 1:3]))


@pytest.mark.parametrize("mode", ["1", "L", "P", "I;16", "RGB", "RGBA"])
def test_masks_in_every_mode_mark_the_same_pixels(mode, tmp_path):
    truth = np.zeros((8, 8), bool)
    truth[2:5, 3:7] = True
    gray = truth.astype(np.uint8) * 255
    if mode == "1":
        image = Image.fromarray(truth).convert("1")
    elif mode == "P":
        image = Image.fromarray(truth.astype(np.uint8), "P")
        image.putpalette([0, 0, 0, 255, 255, 255] + [0] * (256 * 3 - 6))
    elif mode == "I;16":
        image = Image.fromarray(truth.astype(np.uint16) * 65535)
    elif mode == "RGBA":
        image = Image.fromarray(np.dstack([gray, gray, gray, np.full_like(gray, 255)]), "RGBA")
    else:
        image = Image.fromarray(gray).convert(mode)
    image.save(tmp_path / "m.png")
    np.testing.assert_array_equal(read_mask(tmp_path / "m.png"), truth)


@pytest.mark.parametrize(("bits", "top"), [(10, 1023), (12, 4095), (12, 3000), (14, 16383)])
def test_data_of_fewer_bits_stored_unscaled_in_16_bits_is_rescaled_with_a_warning(tmp_path, bits, top):
    levels = np.array([[0, top // 3], [top // 2, top]], np.uint16)
    Image.fromarray(levels).save(tmp_path / "raw.png")
    with pytest.warns(DataWarning, match=rf"raw.png: 16-bit samples no larger than {top} hold {bits}-bit data"):
        pixels = read_rgb(tmp_path / "raw.png")
    expected = np.round(levels.astype(np.float64) * 255 / (2**bits - 1)).astype(np.uint8)
    assert np.array_equal(pixels[..., 0], expected) and np.array_equal(pixels[..., 2], expected)


def test_16_bit_data_using_the_full_range_is_read_without_a_warning(tmp_path):
    Image.fromarray(np.array([[0, 300], [40000, 65535]], np.uint16)).save(tmp_path / "full.png")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pixels = read_rgb(tmp_path / "full.png")
    assert pixels[..., 0].tolist() == [[0, 1], [156, 255]]
