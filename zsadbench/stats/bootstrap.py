"""Bootstrap confidence intervals of one cell's metrics, resampling its test images.

The resampling unit is the test image, for image and pixel metrics alike (pixels of one image are never
resampled apart: they are not independent), stratified by label (:mod:`~zsadbench.stats.resample`).
Intervals are **percentile** intervals of the replicates (NumPy's linear interpolation, as
:func:`scipy.stats.bootstrap` with ``method="percentile"``).

The point estimate is :func:`~zsadbench.metrics.compute_metrics` on the cell's stored data, the same call
the run and ``rescore`` make, so it is the stored (table) value. AUROC, AP and F1-max of every resample come
from per-image histograms (:mod:`~zsadbench.stats.histograms`) and are the same bits as ``compute_metrics`` on
the resampled images; a bootstrap checks this on the unresampled cell before it returns. AUPRO depends on
the defect regions, so each resample is materialised (the drawn images, with their masks and so their regions,
in the cell's order) and scored by ``compute_metrics``: exact, but a full metric pass per resample.
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..errors import ConfigError
from ..metrics import METRICS, UndefinedMetricWarning, compute_metrics
from ..store.artifacts import dequantize, stored_levels, unpack_masks
from .histograms import RankTable, image_table, pixel_table

#: the metrics a bootstrap resamples (AnomalyCLIP's AUPRO variant is not among them)
RESAMPLED = ("image_auroc", "image_ap", "image_f1_max", "pixel_auroc", "pixel_ap", "pixel_f1_max", "aupro")


@dataclass
class CellData:
    """A cell's per-image results as its artifact stores them."""

    image_keys: np.ndarray
    scores: np.ndarray  # float32 [N]
    labels: np.ndarray  # int [N]
    levels: np.ndarray | None  # uint16 [N,S,S], or None when not every map was kept
    low: np.ndarray
    high: np.ndarray
    masks: np.ndarray  # bool [N,S,S]
    keep_maps: str = "all"
    _maps: np.ndarray | None = field(default=None, repr=False)

    @classmethod
    def from_artifact(cls, arrays: dict[str, np.ndarray]) -> CellData:
        """The data of a raw artifact (:meth:`~zsadbench.store.ResultStore.load_artifact`), either format."""
        return cls(image_keys=np.asarray(arrays["image_keys"]).astype(str), scores=arrays["pred_score"],
                   labels=np.asarray(arrays["gt_label"]), levels=stored_levels(arrays),
                   low=arrays["map_min"], high=arrays["map_max"], masks=unpack_masks(arrays),
                   keep_maps=str(arrays["keep_maps"]) if "keep_maps" in arrays else "all")

    def stored_maps(self) -> np.ndarray:
        """The uint16 levels of every map; one line naming ``--keep-maps`` when the artifact lacks some."""
        if self.levels is None:
            raise ConfigError(f"the cell was stored with --keep-maps {self.keep_maps}, so it has no maps for pixel "
                              "metrics: run it again with --keep-maps all --force, or choose an image metric")
        return self.levels

    @property
    def maps(self) -> np.ndarray:
        """The float32 maps the metrics are computed on (dequantised once)."""
        if self._maps is None:
            self._maps = dequantize(self.stored_maps(), self.low, self.high)
        return self._maps

    def applies(self, level: str) -> bool:
        """Whether a metric level is defined on this cell, by the run's rule (image: both classes present;
        pixel: some defect pixel)."""
        if level == "image":
            return 0 < int(np.sum(self.labels)) < len(self.labels)
        return bool(self.masks.any())


@dataclass(frozen=True)
class Replicates:
    """A metric's point estimate and its bootstrap replicates (NaN where a resample leaves it undefined)."""

    point: float
    values: np.ndarray

    @property
    def undefined(self) -> int:
        return int(np.isnan(self.values).sum())

    def interval(self, confidence: float = 0.95) -> tuple[float, float]:
        """The percentile interval (see :func:`percentile_interval`)."""
        return percentile_interval(self.values, confidence)


def percentile_interval(values: np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """The ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` quantiles of the defined replicates, NumPy's
    linear interpolation; ``(nan, nan)`` when none is defined."""
    if not 0.0 < confidence < 1.0:
        raise ConfigError(f"confidence {confidence} must lie strictly between 0 and 1 (e.g. 0.95)")
    finite = np.asarray(values, np.float64)
    finite = finite[~np.isnan(finite)]
    if finite.size == 0:
        return math.nan, math.nan
    alpha = (1.0 - confidence) / 2.0
    low, high = np.percentile(finite, [100.0 * alpha, 100.0 * (1.0 - alpha)])
    return float(low), float(high)


def point_estimates(data: CellData, metrics: Sequence[str]) -> dict[str, float]:
    """``compute_metrics`` on the whole cell, as the run scores it (NaN where a level does not apply)."""
    out = dict.fromkeys(metrics, math.nan)
    levels = {METRICS[m].level for m in metrics if data.applies(METRICS[m].level)}
    names = tuple(m for m in metrics if METRICS[m].level in levels)
    if not names:
        return out
    pixel = "pixel" in levels
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        out.update(compute_metrics(np.asarray(data.scores, np.float64), data.labels, data.maps if pixel else None,
                                   data.masks if pixel else None, names=names))
    return out


def bootstrap_cell(data: CellData, metrics: Sequence[str], weights: np.ndarray,
                   progress: Callable[[int], None] | None = None) -> dict[str, Replicates]:
    """Point estimate and replicates of each of ``metrics`` (names in :data:`RESAMPLED`) for the resamples
    ``weights`` (``[B, N]``, how often each image is drawn; see :func:`~zsadbench.stats.resample.cell_weights`).

    ``progress(done)`` is called after each materialised AUPRO resample.
    """
    unknown = [m for m in metrics if m not in RESAMPLED]
    if unknown:
        raise ConfigError(f"metric {unknown[0]!r} has no bootstrap; choose from {', '.join(RESAMPLED)}")
    weights = np.asarray(weights)
    if weights.ndim != 2 or weights.shape[1] != len(data.scores):
        raise ConfigError(f"resample weights have shape {weights.shape}; expected [resamples, {len(data.scores)}]")
    points = point_estimates(data, metrics)
    out: dict[str, Replicates] = {}
    nan = np.full(len(weights), np.nan)
    for level, table in (("image", _image_table), ("pixel", _pixel_table)):
        wanted = [m for m in metrics if METRICS[m].level == level and m != "aupro"]
        if not wanted:
            continue
        if not data.applies(level):
            out.update({m: Replicates(points[m], nan.copy()) for m in wanted})
            continue
        values = _checked(table(data), weights, points, level)
        out.update({m: Replicates(points[m], values[m.removeprefix(f"{level}_")]) for m in wanted})
    if "aupro" in metrics:
        values = _aupro(data, weights, progress) if data.applies("pixel") else nan.copy()
        out["aupro"] = Replicates(points["aupro"], values)
    return {m: out[m] for m in metrics}


def _image_table(data: CellData) -> RankTable:
    return image_table(data.scores, data.labels)


def _pixel_table(data: CellData) -> RankTable:
    return pixel_table(data.stored_maps(), data.low, data.high, data.masks)


def _checked(table: RankTable, weights: np.ndarray, points: dict[str, float], level: str) -> dict[str, np.ndarray]:
    """The table's values for ``weights``, after checking that the unresampled cell gives the point estimates."""
    rows = np.vstack([np.ones((1, weights.shape[1]), weights.dtype), weights])
    values = table.ranking(rows)
    for name, series in values.items():
        if f"{level}_{name}" not in points:
            continue
        point = points[f"{level}_{name}"]
        if not (series[0] == point or (math.isnan(series[0]) and math.isnan(point))):
            raise RuntimeError(f"the histogram scan gives {level}_{name} = {series[0]!r} on the unresampled cell, "
                               f"compute_metrics gives {point!r}; the two must agree bit for bit")
    return {name: series[1:] for name, series in values.items()}


def _aupro(data: CellData, weights: np.ndarray, progress: Callable[[int], None] | None) -> np.ndarray:
    maps, masks = data.maps, data.masks
    drawn_maps = np.empty_like(maps)
    drawn_masks = np.empty_like(masks)
    out = np.empty(len(weights))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        for b, row in enumerate(weights):
            index = np.repeat(np.arange(len(row)), row)
            if index.size == len(maps):  # a stratified resample keeps the cell's size: reuse the buffers
                np.take(maps, index, axis=0, out=drawn_maps)
                np.take(masks, index, axis=0, out=drawn_masks)
                out[b] = compute_metrics(None, None, drawn_maps, drawn_masks, names=("aupro",))["aupro"]
            else:
                out[b] = compute_metrics(None, None, maps[index], masks[index], names=("aupro",))["aupro"]
            if progress is not None:
                progress(b + 1)
    return out

