"""Input checks shared by every metric: arrays in, clear :class:`MetricError` out."""
from __future__ import annotations

import math
import warnings

import numpy as np

from ..errors import MetricError


class UndefinedMetricWarning(UserWarning):
    """A metric is undefined on these inputs (e.g. one class only) and was returned as NaN."""


def undefined(name: str, reason: str) -> float:
    """Warn that metric ``name`` is undefined for ``reason`` and return NaN."""
    warnings.warn(f"{name} is undefined: {reason}; returning NaN", UndefinedMetricWarning, stacklevel=3)
    return math.nan


def to_numpy(x: object) -> np.ndarray:
    """``x`` as a NumPy array (a torch tensor is detached and moved to the CPU first)."""
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    return np.asarray(x)


def _array(x: object, name: str) -> np.ndarray:
    arr = to_numpy(x)
    if arr.size == 0:
        raise MetricError(f"{name} is empty (shape {arr.shape}); pass at least one value")
    return arr


def as_scores(x: object, name: str, ndim: int) -> np.ndarray:
    """A C-contiguous float32 or float64 array of ``ndim`` dimensions (other dtypes converted exactly)."""
    arr = _array(x, name)
    if arr.ndim != ndim:
        want = "[N]" if ndim == 1 else "[N,H,W]"
        raise MetricError(f"{name} must have shape {want}, got shape {arr.shape}")
    kind, size = arr.dtype.kind, arr.dtype.itemsize
    if kind == "f" and size in (4, 8):
        dtype = np.float32 if size == 4 else np.float64  # native byte order
    elif kind == "f" and size < 4 or kind in "iub" and size <= 2:
        dtype = np.float32  # exact: float16 and small integers fit a float32
    elif kind in "iu":
        dtype = np.float64
    else:
        raise MetricError(f"{name} must be float32 or float64 numbers, got dtype {arr.dtype}")
    return np.ascontiguousarray(arr, dtype=dtype)


def as_labels(x: object, name: str, shape: tuple[int, ...]) -> np.ndarray:
    """A C-contiguous bool array of ``shape``; non-bool input must hold only 0 and 1."""
    arr = _array(x, name)
    if arr.shape != shape:
        raise MetricError(f"{name} has shape {arr.shape} but the scores have shape {shape}; they must match")
    if arr.dtype != np.bool_:
        if arr.dtype.kind not in "fiu":
            raise MetricError(f"{name} must be bool or 0/1 numbers, got dtype {arr.dtype}")
        bad = (arr != 0) & (arr != 1)
        if bad.any():
            raise MetricError(f"{name} must hold only 0 and 1, found {arr[bad].flat[0]!r}; binarise it first")
        arr = arr != 0
    return np.ascontiguousarray(arr)


def check_finite_range(lo: float, hi: float, name: str) -> None:
    """Raise if the smallest or largest score is NaN or infinite (NaN propagates through min/max)."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise MetricError(f"{name} contains NaN or infinite values (min {lo}, max {hi}); "
                          "replace them, e.g. with np.nan_to_num, before computing metrics")


def check_fpr_limit(fpr_limit: float) -> float:
    """``fpr_limit`` as a float in (0, 1]."""
    try:
        value = float(fpr_limit)
    except (TypeError, ValueError):
        raise MetricError(f"fpr_limit must be a number in (0, 1], got {fpr_limit!r}") from None
    if not 0.0 < value <= 1.0:
        raise MetricError(f"fpr_limit must be in (0, 1], got {fpr_limit!r}")
    return value


def check_steps(steps: int) -> int:
    """``steps`` as a positive int."""
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise MetricError(f"steps must be a positive integer, got {steps!r}")
    return int(steps)
