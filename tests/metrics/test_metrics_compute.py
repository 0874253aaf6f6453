"""compute_metrics, the METRICS table and the accumulating forms."""
from __future__ import annotations

import doctest
import math

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

import zsadbench.metrics as zm
from zsadbench.errors import MetricError
from zsadbench.metrics import (
    METRICS,
    MetricAccumulator,
    PixelMetricAccumulator,
    UndefinedMetricWarning,
    aupro,
    aupro_anomalyclip,
    compute_metrics,
    image_ap,
    image_auroc,
    image_f1_max,
    pixel_ap,
    pixel_auroc,
    pixel_f1_max,
)
from zsadbench.metrics import accumulate

FUNCS = {"image_auroc": image_auroc, "image_ap": image_ap, "image_f1_max": image_f1_max,
         "pixel_auroc": pixel_auroc, "pixel_ap": pixel_ap, "pixel_f1_max": pixel_f1_max,
         "aupro": aupro, "aupro_anomalyclip": aupro_anomalyclip}


def cell(seed: int = 0, n: int = 6, size: int = 16):
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 2 == 1
    masks = np.zeros((n, size, size), bool)
    for i in np.flatnonzero(labels):
        y, x = rng.integers(0, size - 4, 2)
        masks[i, y:y + rng.integers(1, 5), x:x + rng.integers(1, 5)] = True
    maps = (rng.random((n, size, size)) + 0.8 * masks).astype(np.float32)
    scores = maps.reshape(n, -1).max(axis=1).astype(np.float64) + rng.normal(0, 0.1, n)
    return scores, labels, maps, masks


def test_metric_table_matches_the_contract():
    labels = {"image_auroc": "I-AUROC", "image_ap": "I-AP", "image_f1_max": "I-F1max",
              "pixel_auroc": "P-AUROC", "pixel_ap": "P-AP", "pixel_f1_max": "P-F1max",
              "aupro": "AUPRO", "aupro_anomalyclip": "AUPRO-AC"}
    assert {k: s.label for k, s in METRICS.items()} == labels
    assert all(s.name == k and s.higher_is_better for k, s in METRICS.items())
    assert {k for k, s in METRICS.items() if s.level == "image"} == {"image_auroc", "image_ap", "image_f1_max"}


def test_compute_metrics_equals_the_single_functions():
    scores, labels, maps, masks = cell()
    out = compute_metrics(scores, labels, maps, masks)
    assert list(out) == list(METRICS)
    for name, value in out.items():
        args = (scores, labels) if METRICS[name].level == "image" else (maps, masks)
        assert value == FUNCS[name](*args)
    assert out["pixel_auroc"] == pytest.approx(roc_auc_score(masks.ravel(), maps.ravel()), abs=1e-12)


def test_levels_names_and_missing_inputs():
    scores, labels, maps, masks = cell()
    assert list(compute_metrics(scores, labels, None, None, levels=("image",))) == [
        "image_auroc", "image_ap", "image_f1_max"]
    only = compute_metrics(scores, labels, maps, masks, names=["aupro", "image_ap"])
    assert list(only) == ["image_ap", "aupro"]
    no_masks = compute_metrics(scores, labels, None, None)  # a dataset without masks: pixel metrics NaN
    assert all(math.isnan(no_masks[n]) for n in METRICS if METRICS[n].level == "pixel")
    assert not math.isnan(no_masks["image_auroc"])
    with pytest.raises(MetricError, match="anomaly_map and gt_mask"):
        compute_metrics(scores, labels, None, None, names=["aupro"])
    with pytest.raises(MetricError, match="unknown metric 'auroc'"):
        compute_metrics(scores, labels, maps, masks, names=["auroc"])
    with pytest.raises(MetricError, match="level"):
        compute_metrics(scores, labels, maps, masks, levels=("images",))
    with pytest.raises(MetricError, match="gt_mask has shape"):
        compute_metrics(scores, labels, maps, masks[:, :4])


def test_only_normal_images_give_nan_with_warnings():
    scores, labels, maps, masks = cell()
    keep = ~labels
    with pytest.warns(UndefinedMetricWarning):
        out = compute_metrics(scores[keep], labels[keep], maps[keep], masks[keep])
    assert all(math.isnan(v) for v in out.values())


@pytest.mark.parametrize("block_pixels", [accumulate.BLOCK_PIXELS, 700])
def test_accumulators_equal_the_one_shot_form(monkeypatch, block_pixels):
    monkeypatch.setattr(accumulate, "BLOCK_PIXELS", block_pixels)  # 700: blocks of 2 images, batches split
    scores, labels, maps, masks = cell(seed=3, n=9)
    expected = compute_metrics(scores, labels, maps, masks)
    acc = MetricAccumulator()
    pix = PixelMetricAccumulator()
    for lo, hi in ((0, 4), (4, 5), (5, 9)):
        acc.update(scores[lo:hi], labels[lo:hi], maps[lo:hi], masks[lo:hi])
        pix.update(maps[lo:hi], masks[lo:hi])
    assert len(pix) == 9
    assert acc.compute() == expected
    assert pix.compute() == {n: v for n, v in expected.items() if METRICS[n].level == "pixel"}


def test_accumulator_checks():
    acc = PixelMetricAccumulator(("aupro",))
    with pytest.raises(MetricError, match="no maps"):
        acc.compute()
    acc.update(np.zeros((1, 4, 4), np.float32), np.zeros((1, 4, 4), bool))
    with pytest.raises(MetricError, match="one evaluation size"):
        acc.update(np.zeros((1, 5, 5), np.float32), np.zeros((1, 5, 5), bool))
    with pytest.raises(MetricError, match="not a pixel metric"):
        PixelMetricAccumulator(("image_auroc",))


def test_float64_accumulator_keeps_float64_maps_exact():
    rng = np.random.default_rng(1)
    maps = rng.random((2, 8, 8))
    maps[0, 0, :2] = [0.5, 0.5 + 1e-12]  # distinct in float64, one value in float32
    masks = np.zeros(maps.shape, bool)
    masks[0, 0, 1] = True
    exact = PixelMetricAccumulator(("pixel_auroc",), dtype=np.float64)
    rounded = PixelMetricAccumulator(("pixel_auroc",))
    for acc in (exact, rounded):
        acc.update(maps, masks)
    assert exact.compute()["pixel_auroc"] == pytest.approx(roc_auc_score(masks.ravel(), maps.ravel()), abs=1e-15)
    # float32 storage merges the two scores into a tie: half a pair of the 127 is lost
    assert rounded.compute()["pixel_auroc"] == pytest.approx(exact.compute()["pixel_auroc"] - 0.5 / 127, abs=1e-15)


@pytest.mark.parametrize("module", ["ranking", "pro", "compute", "accumulate"])
def test_docstring_examples(module):
    result = doctest.testmod(getattr(zm, module), extraglobs={"np": np})
    assert result.attempted > 0 and result.failed == 0
