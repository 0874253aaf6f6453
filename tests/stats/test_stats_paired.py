"""Paired comparisons: identical methods, a planted advantage, seeds averaged within resamples, images that
differ, and DeLong's fast algorithm against a brute-force DeLong variance."""
from __future__ import annotations

import math

import numpy as np
import pytest

from zsadbench.errors import ConfigError
from zsadbench.stats.paired import (bootstrap_p_value, check_same_images, compare_dataset, delong_category,
                                    delong_cells, delong_combine, delong_covariance)
from zsadbench.stats.resample import BootstrapSettings
from zsadbench.stats.results import Bootstrapper, dataset_replicates
from zsadbench.store import ResultStore

from stats_store import ToyMethod, cell_arrays, category_images, put_cell, write_store

DATASETS = {"toy": ("a", "b", "c")}


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    out = tmp_path_factory.mktemp("paired") / "out"
    methods = [ToyMethod("twin1", 1.0), ToyMethod("twin2", 1.0), ToyMethod("good", 3.0, seeds=(0, 1)),
               ToyMethod("poor", 0.2)]
    write_store(out, methods, DATASETS, normal=10, anomalous=10)
    return out


def results_of(folder, metrics=("image_auroc", "pixel_auroc")):
    """The replicates of every cell of ``folder``, by method (300 resamples)."""
    results = Bootstrapper(folder, BootstrapSettings(300, 0)).run(ResultStore(folder).rows(), list(metrics))
    by_method: dict[str, list] = {}
    for r in results:
        by_method.setdefault(r.cell.method, []).append(r)
    return by_method


def test_two_identical_methods_differ_by_zero_with_p_one(folder):
    by_method = results_of(folder)
    for metric in ("image_auroc", "pixel_auroc"):
        diff = compare_dataset(by_method["twin1"], by_method["twin2"], metric, "toy", ("twin1", "twin2"))
        assert diff.difference.point == 0.0 and (diff.difference.values == 0.0).all()
        assert diff.p_value == 1.0 and (diff.low, diff.high) == (0.0, 0.0)
    cells = {m: [r.cell for r in rs] for m, rs in by_method.items()}
    delong = delong_cells(ResultStore(folder), cells["twin1"], cells["twin2"])
    assert delong.difference == 0.0 and delong.p_value == 1.0


def test_a_planted_advantage_is_significant(folder):
    by_method = results_of(folder)
    for metric in ("image_auroc", "pixel_auroc"):
        diff = compare_dataset(by_method["good"], by_method["poor"], metric, "toy", ("good", "poor"))
        assert diff.difference.point > 0.1 and diff.low > 0.0 and diff.p_value < 0.01
        assert diff.p_value == pytest.approx(2.0 / 301.0)  # no resample reverses the order
    cells = {m: [r.cell for r in rs] for m, rs in by_method.items()}
    delong = delong_cells(ResultStore(folder), cells["good"], cells["poor"])
    assert delong.z > 3 and delong.p_value < 0.01
    reverse = compare_dataset(by_method["poor"], by_method["good"], "image_auroc", "toy", ("poor", "good"))
    assert reverse.difference.point < 0 and reverse.p_value == pytest.approx(2.0 / 301.0)


def test_seeds_are_averaged_within_each_resample(folder):
    good = results_of(folder)["good"]
    value = dataset_replicates(good, "pixel_auroc")
    per_seed = [np.mean([r.metrics["pixel_auroc"].values for r in good if r.cell.seed == s], axis=0) for s in (0, 1)]
    np.testing.assert_allclose(value.values, np.mean(per_seed, axis=0), rtol=0, atol=1e-15)
    points = [np.mean([r.cell.metrics["pixel_auroc"] for r in good if r.cell.seed == s]) for s in (0, 1)]
    assert value.point == pytest.approx(np.mean(points), abs=1e-15)  # the table's value


def test_methods_on_other_images_are_refused(tmp_path):
    out = tmp_path / "out"
    store = write_store(out, [ToyMethod("one", 1.0)], {"toy": ("a",)})
    keys, labels, masks = category_images("toy", "a")
    keys[0] = "toy/a/good/elsewhere.png"
    maps, scores = cell_arrays(ToyMethod("two", 1.0), masks, labels, 0)
    put_cell(store, ToyMethod("two", 1.0), "toy", "a", 0, keys, labels, masks, maps, scores)
    by_method = results_of(out, ("image_auroc",))
    with pytest.raises(ConfigError, match="not evaluated on the same images of toy/a"):
        check_same_images(by_method["one"], by_method["two"], "toy", ("one", "two"))


def brute_force_delong(scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """DeLong et al. (1988) directly: the kernel psi over every (positive, negative) pair."""
    pos, neg = scores[:, labels == 1], scores[:, labels == 0]
    psi = (pos[:, :, None] > neg[:, None, :]) + 0.5 * (pos[:, :, None] == neg[:, None, :])  # [k, m, n]
    auc = psi.mean(axis=(1, 2))
    v10 = psi.mean(axis=2)  # [k, m]
    v01 = psi.mean(axis=1)  # [k, n]
    m, n = pos.shape[1], neg.shape[1]
    s10 = (v10 - auc[:, None]) @ (v10 - auc[:, None]).T / (m - 1)
    s01 = (v01 - auc[:, None]) @ (v01 - auc[:, None]).T / (n - 1)
    return auc, s10 / m + s01 / n


def test_fast_delong_equals_the_brute_force_delong_covariance():
    rng = np.random.default_rng(3)
    labels = np.array([1] * 8 + [0] * 7)
    scores = np.round(rng.normal(labels * 0.8, 1.0, (3, 15)), 1)  # rounded: ties within and across classes
    auc, cov = delong_covariance(scores, labels)
    want_auc, want_cov = brute_force_delong(scores, labels)
    np.testing.assert_allclose(auc, want_auc, rtol=0, atol=1e-12)
    np.testing.assert_allclose(cov, want_cov, rtol=0, atol=1e-12)
    difference, variance = delong_category(scores[:2], scores[2:], labels)
    contrast = np.array([0.5, 0.5, -1.0])
    assert difference == pytest.approx(contrast @ want_auc, abs=1e-12)
    assert variance == pytest.approx(contrast @ want_cov @ contrast, abs=1e-12)


def test_delong_combines_independent_categories():
    result = delong_combine([(0.1, 0.0004), (0.05, 0.0009)])
    assert result.difference == pytest.approx(0.075)
    assert result.std_error == pytest.approx(math.sqrt(0.0013) / 2)
    assert result.p_value == pytest.approx(2 * (1 - 0.5 * (1 + math.erf(result.z / math.sqrt(2)))))
    assert delong_combine([(0.0, 0.0)]).p_value == 1.0


def test_bootstrap_p_value_counts_both_tails():
    assert bootstrap_p_value(np.zeros(99)) == 1.0
    assert bootstrap_p_value(np.ones(99)) == pytest.approx(0.02)
    values = np.r_[-np.ones(5), np.ones(94)]
    assert bootstrap_p_value(values) == pytest.approx(2 * 6 / 100)
