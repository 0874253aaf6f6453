"""Reading images and masks from disk, with errors that name the file."""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from zsadbench.errors import DataError, DataWarning

Crop = tuple[int, int, int, int] | None

#: gray level a pixel of a JPEG mask must exceed: lossy compression leaves faint non-zero values around every
#: object's edge, which ``> 0`` would count as part of the object
JPEG_MASK_THRESHOLD = 127
_LOSSY_FORMATS = frozenset({"JPEG", "MPO"})


def _open(path: Path) -> Image.Image:
    try:
        image = Image.open(path)
        image.load()
    except FileNotFoundError as exc:
        raise DataError(f"image file not found: {path}") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"cannot read image file {path} ({exc}); the file is corrupt or not an image: replace it") from exc
    return image


def _apply_crop(array: np.ndarray, crop: Crop, path: Path) -> np.ndarray:
    if crop is None:
        return array
    top, left, height, width = crop
    if top + height > array.shape[0] or left + width > array.shape[1]:
        raise DataError(f"crop {crop} lies outside {path} of size {array.shape[1]}x{array.shape[0]}")
    return array[top : top + height, left : left + width]


def _to_uint8(array: np.ndarray, path: Path) -> np.ndarray:
    if array.dtype == np.uint8:
        return array
    if array.dtype == bool:
        return array.astype(np.uint8) * 255
    if np.issubdtype(array.dtype, np.integer):
        peak = _integer_peak(int(array.max(initial=0)), path)
        return (array.astype(np.float64) * (255.0 / peak)).round().clip(0, 255).astype(np.uint8)
    array = np.nan_to_num(array.astype(np.float64))
    top = array.max(initial=0.0)
    scale = 255.0 if top <= 1.0 else 255.0 / top
    return (array * scale).clip(0, 255).round().astype(np.uint8)


def _integer_peak(top: int, path: Path) -> int:
    """The full-scale value of integer samples whose largest is ``top``: 255 for 8-bit content, 65535 for 16-bit,
    and ``2^b - 1`` for ``b``-bit data (10, 12 or 14 bits, as scanners and medical devices write it) stored
    unscaled in a 16-bit file, which read as 16-bit would be nearly black; that case is warned about."""
    if top <= 255:
        return 255
    bits = min(16, -(-top.bit_length() // 2) * 2)
    if bits < 16:
        warnings.warn(f"{path}: 16-bit samples no larger than {top} hold {bits}-bit data stored unscaled; they are "
                      f"read as {bits}-bit (full scale {2**bits - 1}), not as 16-bit", DataWarning, stacklevel=4)
    return 2**bits - 1


def read_rgb(path: str | Path, crop: Crop = None) -> np.ndarray:
    """``uint8 [H,W,3]`` RGB; grayscale is replicated, 16-bit rescaled, alpha and palettes dropped."""
    path = Path(path)
    image = _open(path)
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        gray = _to_uint8(np.asarray(image), path)
        array = np.repeat(gray[..., None], 3, axis=2)
    else:
        array = np.asarray(image.convert("RGB"))
    return np.ascontiguousarray(_apply_crop(array, crop, path))


def mask_threshold(image: Image.Image) -> int:
    """The gray level a mask pixel must exceed, by the file's format (read from its content, not its name):
    :data:`JPEG_MASK_THRESHOLD` for JPEG, 0 for lossless formats (PNG, BMP, TIFF), which keeps class-index
    masks (VisA's 1..K) whole."""
    return JPEG_MASK_THRESHOLD if image.format in _LOSSY_FORMATS else 0


def read_mask(path: str | Path, crop: Crop = None, threshold: int | None = None) -> np.ndarray:
    """``bool [H,W]``: pixels whose gray value is ``> threshold``; ``None`` chooses it by format
    (:func:`mask_threshold`)."""
    path = Path(path)
    image = _open(path)
    if threshold is None:
        threshold = mask_threshold(image)
    return np.ascontiguousarray(_gray(image, crop, path) > threshold)


def read_gray(path: str | Path, crop: Crop = None) -> np.ndarray:
    """``uint8 [H,W]``: a mask's gray levels as stored (16-bit rescaled), before any threshold."""
    path = Path(path)
    return np.ascontiguousarray(_gray(_open(path), crop, path))


def _gray(image: Image.Image, crop: Crop, path: Path) -> np.ndarray:
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        gray = _to_uint8(np.asarray(image), path)
    else:
        gray = np.asarray(image.convert("L"))
    return _apply_crop(gray, crop, path)
