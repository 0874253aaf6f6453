"""Per-cell bootstrap: replicates equal to compute_metrics bit for bit, intervals as scipy.stats.bootstrap's,
nominal coverage on binormal scores, the resampling scheme and the cache."""
from __future__ import annotations

import math
import time
import warnings

import numpy as np
import pytest
from scipy import stats

from zsadbench.errors import ConfigError
from zsadbench.metrics import UndefinedMetricWarning, compute_metrics
from zsadbench.stats.bootstrap import CellData, RESAMPLED, bootstrap_cell, percentile_interval
from zsadbench.stats.histograms import image_table, pixel_table
from zsadbench.stats.resample import (BootstrapSettings, cell_weights, image_digest, multiplicities,
                                      stratified_indices)
from zsadbench.stats.results import Bootstrapper
from zsadbench.store.artifacts import dequantize, quantize

from stats_store import ToyMethod, write_store


def tricky_cell(rng: np.random.Generator, n: int = 10, size: int = 24) -> CellData:
    """Maps with ties, negative values, one image whose levels collapse onto few floats, and images whose
    scores are equal."""
    maps = rng.normal(0.0, 1.0, (n, size, size)).astype(np.float32)
    maps[1] = np.round(maps[1] * 4) / 4  # many ties within an image
    maps[2] = np.float32(1000.0) + maps[2] * np.float32(1e-5)  # 16-bit levels finer than float32 steps
    maps[3] = -np.abs(maps[3])
    masks = np.zeros(maps.shape, bool)
    for i in range(n // 2, n):
        masks[i, 3 + i % 5:9 + i % 5, 4:10] = True
        maps[i][masks[i]] += 1.0
    masks[n - 1, 0, 0] = True  # a one-pixel region
    labels = np.array([0] * (n // 2) + [1] * (n - n // 2))
    scores = maps.reshape(n, -1).max(axis=1)
    scores[4] = scores[7]  # a tie across classes
    levels, low, high = quantize(maps)
    keys = np.array([f"img{i:02d}" for i in range(n)])
    return CellData(keys, scores.astype(np.float32), labels, levels, low, high, masks)


def reference(data: CellData, index: np.ndarray) -> dict[str, float]:
    """compute_metrics on the images ``index`` of ``data``, materialised."""
    maps = dequantize(data.levels, data.low, data.high)[index]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        return compute_metrics(data.scores[index].astype(np.float64), data.labels[index], maps, data.masks[index],
                               names=RESAMPLED)


def same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


def test_every_replicate_equals_compute_metrics_on_the_materialised_resample():
    rng = np.random.default_rng(0)
    data = tricky_cell(rng)
    weights = multiplicities(stratified_indices(data.labels, 12, rng), len(data.labels))
    result = bootstrap_cell(data, RESAMPLED, weights)
    whole = reference(data, np.arange(len(data.labels)))
    for metric in RESAMPLED:
        assert result[metric].point == whole[metric], metric  # the point estimate is the stored value
    for b, row in enumerate(weights):
        expected = reference(data, np.repeat(np.arange(len(row)), row))
        for metric in RESAMPLED:
            assert same(result[metric].values[b], expected[metric]), (metric, b)


def test_dense_buckets_and_unstratified_weights_stay_exact():
    """Large images put many pixels in one bucket (the metric kernels count those densely); weights need not
    keep the class balance."""
    rng = np.random.default_rng(1)
    n, size = 4, 120
    maps = (np.float32(0.5) + rng.random((n, size, size), np.float32) * np.float32(0.01)).astype(np.float32)
    masks = np.zeros(maps.shape, bool)
    masks[2:, 30:80, 20:70] = True
    maps[masks] += np.float32(0.004)
    levels, low, high = quantize(maps)
    table = pixel_table(levels, low, high, masks)
    weights = np.array([[1, 1, 1, 1], [3, 0, 1, 0], [0, 2, 0, 2], [2, 0, 0, 1]])
    got = table.ranking(weights)
    full = dequantize(levels, low, high)
    for b, row in enumerate(weights):
        index = np.repeat(np.arange(n), row)
        want = compute_metrics(None, None, full[index], masks[index], names=("pixel_auroc", "pixel_ap", "pixel_f1_max"))
        assert [got[k][b] for k in ("auroc", "ap", "f1_max")] == list(want.values())


def test_a_resample_with_one_class_is_undefined():
    table = image_table(np.array([0.1, 0.9, 0.4], np.float32), np.array([0, 1, 1]))
    values = table.ranking(np.array([[3, 0, 0], [1, 1, 1]]))
    assert math.isnan(values["auroc"][0]) and values["auroc"][1] == 0.5 + 0.5 * (0.4 > 0.1)


def test_intervals_match_scipy_bootstrap_with_the_same_draws():
    rng = np.random.default_rng(5)
    normal = rng.normal(0.0, 1.0, 15).astype(np.float32)
    anomalous = rng.normal(1.0, 1.0, 12).astype(np.float32)
    anomalous[:2] = normal[:2]  # ties across classes

    def auroc(x, y, axis=-1):
        greater = (y[..., :, None] > x[..., None, :]).sum(axis=(-1, -2))
        equal = (y[..., :, None] == x[..., None, :]).sum(axis=(-1, -2))
        return (greater + 0.5 * equal) / (x.shape[-1] * y.shape[-1])

    expected = stats.bootstrap((normal.astype(np.float64), anomalous.astype(np.float64)), auroc, n_resamples=999,
                               method="percentile", confidence_level=0.9, rng=np.random.default_rng(11))
    labels = np.array([0] * 15 + [1] * 12)
    weights = multiplicities(stratified_indices(labels, 999, np.random.default_rng(11)), len(labels))
    scores = np.concatenate([normal, anomalous])
    data = CellData(np.arange(27).astype(str), scores, labels, None, np.zeros(27), np.zeros(27),
                    np.zeros((27, 1, 1), bool))
    values = bootstrap_cell(data, ["image_auroc"], weights)["image_auroc"]
    np.testing.assert_array_equal(values.values, expected.bootstrap_distribution)
    assert values.interval(0.9) == (expected.confidence_interval.low, expected.confidence_interval.high)


def test_percentile_intervals_cover_the_true_binormal_auroc_at_the_nominal_rate():
    """Binormal scores N(0,1) vs N(d,1) have AUROC Phi(d / sqrt 2). Over R repetitions the share of intervals
    that cover it must lie within 3 binomial standard deviations of the nominal level."""
    rng = np.random.default_rng(2024)
    n, d, repetitions, resamples = 40, 1.0, 400, 300
    truth = stats.norm.cdf(d / math.sqrt(2.0))
    labels = np.array([0] * n + [1] * n)
    hits = {0.9: 0, 0.95: 0}
    for _ in range(repetitions):
        scores = np.concatenate([rng.normal(0.0, 1.0, n), rng.normal(d, 1.0, n)]).astype(np.float32)
        weights = multiplicities(stratified_indices(labels, resamples, rng), 2 * n)
        values = image_table(scores, labels).ranking(weights)["auroc"]
        for level in hits:
            low, high = percentile_interval(values, level)
            hits[level] += low <= truth <= high
    for level, count in hits.items():
        tolerance = 3.0 * math.sqrt(level * (1.0 - level) / repetitions)
        assert abs(count / repetitions - level) <= tolerance, (level, count / repetitions)


def test_resamples_are_stratified_and_depend_on_the_images_only():
    labels = np.array([0, 1, 0, 1, 1, 0, 0])
    keys = np.array([f"k{i}" for i in range(7)])
    settings = BootstrapSettings(resamples=50, seed=3)
    weights = cell_weights(keys, labels, settings)
    assert weights.shape == (50, 7)
    assert (weights[:, labels == 0].sum(axis=1) == 4).all() and (weights[:, labels == 1].sum(axis=1) == 3).all()
    shuffled = np.array([3, 6, 0, 5, 1, 4, 2])  # the same images listed in another order
    np.testing.assert_array_equal(cell_weights(keys[shuffled], labels[shuffled], settings), weights[:, shuffled])
    assert not np.array_equal(cell_weights(keys, labels, BootstrapSettings(50, seed=4)), weights)
    assert image_digest(keys[shuffled], labels[shuffled]) == image_digest(keys, labels)
    assert image_digest(keys, 1 - labels) != image_digest(keys, labels)
    with pytest.raises(ConfigError, match="at least 2 resamples"):
        BootstrapSettings(resamples=1)


def test_percentile_interval_ignores_undefined_replicates():
    values = np.array([np.nan, 0.1, 0.2, 0.3, 0.4, np.nan])
    assert percentile_interval(values, 0.5) == tuple(np.percentile([0.1, 0.2, 0.3, 0.4], [25, 75]))
    assert all(math.isnan(v) for v in percentile_interval(np.full(3, np.nan)))


def test_the_cache_answers_a_second_request_and_keys_by_settings(tmp_path):
    store = write_store(tmp_path / "out", [ToyMethod("good", 2.0)], {"toy": ("a", "b")})
    cells = store.rows()
    first = Bootstrapper(tmp_path / "out", BootstrapSettings(200, 0)).run(cells, ["image_auroc", "pixel_auroc"])
    assert (tmp_path / "out" / "stats" / "bootstrap.sqlite").is_file()
    again = Bootstrapper(tmp_path / "out", BootstrapSettings(200, 0))
    started = time.perf_counter()
    second = again.run(cells, ["image_auroc", "pixel_auroc"])
    assert again.computed == 0 and time.perf_counter() - started < 1.0
    for a, b in zip(first, second):
        assert a.digest == b.digest
        for metric in ("image_auroc", "pixel_auroc"):
            assert a.metrics[metric].point == b.metrics[metric].point == a.cell.metrics[metric]
            np.testing.assert_array_equal(a.metrics[metric].values, b.metrics[metric].values)
    other = Bootstrapper(tmp_path / "out", BootstrapSettings(200, 1))
    other.run(cells, ["image_auroc"])
    assert other.computed == len(cells)
    more = Bootstrapper(tmp_path / "out", BootstrapSettings(200, 0))
    more.run(cells, ["image_auroc", "image_ap"])  # a metric not yet cached is computed, the others reused
    assert more.computed == len(cells)
