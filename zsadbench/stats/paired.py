"""Is one method better than another on the same images? Paired bootstrap per dataset, and DeLong's test.

**Paired bootstrap.** Both methods are scored on the same resamples of each category's test images (the
draws depend on the images only, :mod:`~zsadbench.stats.resample`), so the difference of their metrics is
computed resample by resample. A dataset's value is the tables' (per seed the macro mean over categories,
then the mean over seeds), and so is each resample's: **seeds are combined as the papers average them, by
averaging the metric over seeds within every resample** (each seed's cell evaluated on the same resampled
images). The interval is the percentile interval of the differences; the two-sided p-value is
``min(1, 2 min(P*(d <= 0), P*(d >= 0)))`` with ``P*`` the share of resamples, counted as
``(1 + count) / (1 + B)`` so that it is never 0: the p-value below which the percentile interval at level
``1 - p`` excludes 0. Two methods that differ on no image get difference 0 and p = 1.

**DeLong's test** (image AUROC only) uses the fast algorithm of Sun and Xu (2014, IEEE Signal Processing
Letters 21(11)): midranks of each classifier's scores among the positives, the negatives and all images give
every image's structural component and so the covariance of the AUROCs of all seeds of both methods on one
category. The contrast is the seed-averaged AUROC of A minus that of B; categories are independent test
sets, so the dataset's variance is the sum of the categories' variances over the number of categories squared.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import norm, rankdata

from ..errors import ConfigError
from ..store import ResultStore, StoredCell
from .bootstrap import Replicates
from .results import CellResult, dataset_replicates


@dataclass(frozen=True)
class PairedDifference:
    """A minus B: the point difference, its replicates, its percentile interval and bootstrap p-value."""

    a: float
    b: float
    difference: Replicates
    low: float
    high: float
    p_value: float


def bootstrap_p_value(values: np.ndarray) -> float:
    """Two-sided p-value of "no difference" from bootstrap differences (see the module docstring)."""
    values = np.asarray(values, np.float64)
    values = values[~np.isnan(values)]
    if values.size == 0:
        return math.nan
    share = 1.0 / (values.size + 1)
    below = (1 + np.count_nonzero(values <= 0)) * share
    above = (1 + np.count_nonzero(values >= 0)) * share
    return float(min(1.0, 2.0 * min(below, above)))


def paired_difference(a: Replicates, b: Replicates, confidence: float = 0.95) -> PairedDifference:
    """The difference ``a - b`` of two estimates bootstrapped on the same resamples."""
    diff = Replicates(a.point - b.point, a.values - b.values)
    low, high = diff.interval(confidence)
    return PairedDifference(a.point, b.point, diff, low, high, bootstrap_p_value(diff.values))


def check_same_images(a: Sequence[CellResult], b: Sequence[CellResult], dataset: str, names: tuple[str, str]) -> None:
    """Refuse, in one line, two methods whose cells of ``dataset`` do not cover the same categories and images."""
    digests: list[dict[str, set[str]]] = []
    for results in (a, b):
        by_category: dict[str, set[str]] = {}
        for r in results:
            by_category.setdefault(r.cell.category, set()).add(r.digest)
        digests.append(by_category)
    first, second = digests
    if set(first) != set(second):
        only = sorted(set(first) ^ set(second))
        raise ConfigError(f"{names[0]} and {names[1]} do not cover the same categories of {dataset} ({only[0]} is "
                          "in one only): run both on the same datasets and categories, or leave the dataset out "
                          "with --datasets")
    for category in sorted(first):
        if len(first[category] | second[category]) != 1:
            raise ConfigError(f"{names[0]} and {names[1]} were not evaluated on the same images of {dataset}/{category} "
                              "(their image lists or labels differ): run both on the same copy of the data")


def compare_dataset(a: Sequence[CellResult], b: Sequence[CellResult], metric: str, dataset: str,
                    names: tuple[str, str], confidence: float = 0.95) -> PairedDifference:
    """The paired bootstrap of ``metric`` between the cells of two methods on one dataset."""
    check_same_images(a, b, dataset, names)
    return paired_difference(dataset_replicates(a, metric), dataset_replicates(b, metric), confidence)


# -- DeLong ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DeLongResult:
    """AUROC difference (A minus B), its DeLong standard error, z and two-sided p-value."""

    difference: float
    std_error: float
    z: float
    p_value: float


def delong_covariance(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """AUROCs ``[k]`` and their DeLong covariance ``[k, k]`` for ``k`` score vectors ``[k, n]`` of the same
    images (labels 1 = anomalous, scored higher), by Sun and Xu's midrank algorithm."""
    scores = np.atleast_2d(np.asarray(scores, np.float64))
    labels = np.asarray(labels).astype(bool)
    positives, negatives = scores[:, labels], scores[:, ~labels]
    m, n = positives.shape[1], negatives.shape[1]
    if m == 0 or n == 0:
        raise ConfigError("DeLong's test needs normal and anomalous images; this set has one class only")
    rank_pos = rankdata(positives, axis=1)
    rank_neg = rankdata(negatives, axis=1)
    rank_all = rankdata(np.concatenate([positives, negatives], axis=1), axis=1)
    auc = (rank_all[:, :m].sum(axis=1) / m - (m + 1) / 2.0) / n
    v_pos = (rank_all[:, :m] - rank_pos) / n  # each positive's share of negatives scored below it
    v_neg = 1.0 - (rank_all[:, m:] - rank_neg) / m  # each negative's share of positives scored above it
    cov = _covariance(v_pos) / m + _covariance(v_neg) / n
    return auc, cov


def _covariance(components: np.ndarray) -> np.ndarray:
    if components.shape[1] < 2:
        return np.full((len(components), len(components)), np.nan)
    return np.atleast_2d(np.cov(components, ddof=1))


def delong_category(a_scores: np.ndarray, b_scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """(difference, variance) of the seed-averaged AUROC of A (``[seeds_a, n]``) minus that of B on one set."""
    a_scores, b_scores = np.atleast_2d(a_scores), np.atleast_2d(b_scores)
    auc, cov = delong_covariance(np.vstack([a_scores, b_scores]), labels)
    contrast = np.concatenate([np.full(len(a_scores), 1.0 / len(a_scores)), np.full(len(b_scores), -1.0 / len(b_scores))])
    return float(contrast @ auc), float(contrast @ cov @ contrast)


def delong_combine(parts: Sequence[tuple[float, float]]) -> DeLongResult:
    """DeLong's test of the mean over independent sets (categories) of per-set ``(difference, variance)``."""
    if not parts:
        return DeLongResult(math.nan, math.nan, math.nan, math.nan)
    count = len(parts)
    difference = sum(d for d, _ in parts) / count
    variance = sum(v for _, v in parts) / count**2
    if math.isnan(variance):
        return DeLongResult(difference, math.nan, math.nan, math.nan)
    std_error = math.sqrt(max(variance, 0.0))
    if std_error == 0.0:
        return DeLongResult(difference, 0.0, math.nan if difference == 0 else math.copysign(math.inf, difference),
                            1.0 if difference == 0 else 0.0)
    z = difference / std_error
    return DeLongResult(difference, std_error, z, float(2.0 * norm.sf(abs(z))))


def delong_cells(store: ResultStore, a: Sequence[StoredCell], b: Sequence[StoredCell]) -> DeLongResult:
    """DeLong's test of image AUROC between the cells of two methods on one dataset (every seed of each),
    reading the exact image scores from the artifacts; categories with one class only are left out."""
    parts = []
    for category in sorted({c.category for c in a}):
        a_scores, labels = _aligned_scores(store, [c for c in a if c.category == category])
        b_scores, _ = _aligned_scores(store, [c for c in b if c.category == category])
        if 0 < int(labels.sum()) < len(labels):
            parts.append(delong_category(a_scores, b_scores, labels))
    return delong_combine(parts)


def _aligned_scores(store: ResultStore, cells: Sequence[StoredCell]) -> tuple[np.ndarray, np.ndarray]:
    """Each cell's image scores (as float64, as the metrics read them) in sorted image-key order, and the labels."""
    rows, labels = [], None
    for cell in sorted(cells, key=lambda c: c.seed):
        arrays = store.load_artifact(cell.cell_id)
        order = np.argsort(np.asarray(arrays["image_keys"]).astype(str), kind="stable")
        rows.append(np.asarray(arrays["pred_score"], np.float64)[order])
        labels = np.asarray(arrays["gt_label"])[order]
    return np.vstack(rows), labels
