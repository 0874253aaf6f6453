"""Image and pixel AUROC / AP / F1-max against scikit-learn, on random data and on edge cases."""
from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_auc_score

from zsadbench.errors import MetricError, ZsadError
from zsadbench.metrics import (
    UndefinedMetricWarning,
    f1_max,
    image_ap,
    image_auroc,
    image_f1_max,
    pixel_ap,
    pixel_auroc,
    pixel_f1_max,
)
from zsadbench.metrics import _pixels

TOL = 1e-12


def sk_f1_max(labels: np.ndarray, scores: np.ndarray) -> float:
    precision, recall, _ = precision_recall_curve(labels.ravel(), scores.ravel())
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    return float(f1.max())


def check_pixels(scores: np.ndarray, masks: np.ndarray) -> None:
    y, s = masks.ravel(), scores.ravel().astype(np.float64)
    with np.errstate(all="ignore"):  # scikit-learn overflows on scores near the float maximum
        expected = roc_auc_score(y, s), average_precision_score(y, s), sk_f1_max(y, s)
    assert pixel_auroc(scores, masks) == pytest.approx(expected[0], abs=TOL)
    assert pixel_ap(scores, masks) == pytest.approx(expected[1], abs=TOL)
    assert pixel_f1_max(scores, masks) == pytest.approx(expected[2], abs=TOL)


def random_maps(seed: int, dtype: type, levels: int | None = None, shape=(3, 16, 16)):
    rng = np.random.default_rng(seed)
    scores = rng.normal(size=shape)
    masks = rng.random(shape) < 0.2
    scores += masks * rng.uniform(0.0, 1.5)
    if levels is not None:  # heavy ties
        scores = np.round(scores * levels) / levels
    return scores.astype(dtype), masks


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("levels", [None, 4, 64])
@pytest.mark.parametrize("seed", [0, 1])
def test_pixel_metrics_equal_sklearn(seed, levels, dtype):
    check_pixels(*random_maps(seed, dtype, levels))


@pytest.mark.parametrize("dense_min", [0, 10**9])
def test_dense_and_sorted_bucket_paths_and_many_chunks(monkeypatch, dense_min):
    monkeypatch.setattr(_pixels, "DENSE_MIN", dense_min)
    monkeypatch.setattr(_pixels, "MIN_CHUNK", 64)  # several parallel chunks per array
    for levels in (None, 16):
        check_pixels(*random_maps(3, np.float32, levels, shape=(5, 24, 24)))


def test_float32_and_float64_paths_agree_on_the_same_values():
    scores, masks = random_maps(4, np.float32, None, shape=(4, 20, 20))
    for f in (pixel_auroc, pixel_ap, pixel_f1_max):
        assert f(scores, masks) == pytest.approx(f(scores.astype(np.float64), masks), abs=TOL)
        assert f(scores, masks) == f(scores.astype(">f4"), masks)  # byte order does not matter
        assert f(scores, masks) == f(np.asfortranarray(scores), masks)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_huge_negative_and_signed_zero_scores(dtype):
    big = np.finfo(dtype).max
    values = np.array([-big, -1e30, -1.0, -0.0, 0.0, 1e-38, 1.0, 1e30, big], dtype=dtype)
    rng = np.random.default_rng(5)
    scores = rng.choice(values, size=(2, 8, 8)).astype(dtype)
    masks = rng.random((2, 8, 8)) < 0.4
    check_pixels(scores, masks)
    # -0.0 and +0.0 are one score: a tie, worth half a pair
    tie = np.array([[[-0.0, 0.0]]], dtype=dtype)
    assert pixel_auroc(tie, np.array([[[True, False]]])) == 0.5


def test_constant_map_is_chance_level():
    masks = np.zeros((2, 4, 4), bool)
    masks[0, :2] = True
    scores = np.full((2, 4, 4), 0.7, np.float32)
    assert pixel_auroc(scores, masks) == 0.5
    assert pixel_ap(scores, masks) == pytest.approx(masks.mean())
    p = masks.mean()
    assert pixel_f1_max(scores, masks) == pytest.approx(2 * p / (p + 1))


def test_hand_computed_image_metrics():
    scores = [0.1, 0.4, 0.35, 0.8]
    labels = [0, 0, 1, 1]
    assert image_auroc(scores, labels) == 0.75  # 3 of 4 pairs ordered
    assert image_ap(scores, labels) == pytest.approx((1 / 1 + 2 / 3) / 2)
    assert image_f1_max(scores, labels) == pytest.approx(0.8)  # 2 TP, 1 FP: 4 / 5


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_image_metrics_equal_sklearn_with_ties(seed):
    rng = np.random.default_rng(seed)
    labels = rng.random(200) < 0.3
    scores = np.round(rng.normal(size=200) + labels, 1)
    assert image_auroc(scores, labels) == pytest.approx(roc_auc_score(labels, scores), abs=TOL)
    assert image_ap(scores, labels) == pytest.approx(average_precision_score(labels, scores), abs=TOL)
    assert image_f1_max(scores, labels) == pytest.approx(sk_f1_max(labels, scores), abs=TOL)
    assert f1_max(scores.reshape(10, 20), labels.reshape(10, 20)) == pytest.approx(sk_f1_max(labels, scores))


def test_integer_and_torch_inputs():
    import torch
    scores = torch.tensor([[[3, 1], [2, 0]]], dtype=torch.int16)
    masks = torch.tensor([[[1, 0], [1, 0]]], dtype=torch.uint8)
    assert pixel_auroc(scores, masks) == 1.0
    assert image_auroc(torch.tensor([0.2, 0.1]), torch.tensor([True, False])) == 1.0


@pytest.mark.parametrize("func", [image_auroc, image_ap, image_f1_max])
def test_one_class_gives_nan_with_warning(func):
    with pytest.warns(UndefinedMetricWarning, match="only one class"):
        assert np.isnan(func([0.1, 0.2], [1, 1]))


def test_pixel_one_class_gives_nan_with_warning():
    with pytest.warns(UndefinedMetricWarning, match="only one class is present in the masks"):
        assert np.isnan(pixel_auroc(np.ones((1, 2, 2), np.float32), np.zeros((1, 2, 2), bool)))


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_non_finite_scores_raise(bad, dtype):
    scores = np.zeros((1, 3, 3), dtype)
    scores[0, 1, 2] = bad
    with pytest.raises(MetricError, match="NaN or infinite"):
        pixel_auroc(scores, np.eye(3, dtype=bool)[None])
    with pytest.raises(MetricError, match="NaN or infinite"):
        image_ap(np.array([0.0, bad]), [0, 1])


def test_bad_inputs_raise_clear_errors():
    with pytest.raises(MetricError, match="shape"):
        pixel_auroc(np.zeros((1, 3, 3)), np.zeros((1, 3, 4), bool))
    with pytest.raises(MetricError, match=r"\[N,H,W\]"):
        pixel_ap(np.zeros((3, 3)), np.zeros((3, 3), bool))
    with pytest.raises(MetricError, match="empty"):
        image_auroc([], [])
    with pytest.raises(MetricError, match="only 0 and 1"):
        image_auroc([0.1, 0.2], [0, 2])
    with pytest.raises(MetricError, match="float32 or float64"):
        image_auroc(np.array([1 + 1j, 2j]), [0, 1])
    with pytest.raises(ZsadError):  # every user error is a ZsadError (and a ValueError)
        f1_max(np.zeros(3), np.zeros(4))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert image_auroc(np.array([0.2, 0.1], np.float16), np.array([1.0, 0.0])) == 1.0
