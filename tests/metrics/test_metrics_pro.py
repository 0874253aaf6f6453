"""Standard and AnomalyCLIP-style AUPRO against slow per-threshold references written here."""
from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from sklearn.metrics import auc

from zsadbench.errors import MetricError
from zsadbench.metrics import UndefinedMetricWarning, aupro, aupro_anomalyclip
from zsadbench.metrics import _pixels

EIGHT = np.ones((3, 3), int)


def regions_of(masks: np.ndarray) -> list[tuple[int, np.ndarray]]:
    out = []
    for i, m in enumerate(masks):
        labels, n = ndimage.label(m, EIGHT)
        out += [(i, labels == k) for k in range(1, n + 1)]
    return out


def slow_aupro(scores: np.ndarray, masks: np.ndarray, limit: float = 0.3) -> float:
    """Threshold at every distinct score, measure each region's overlap, integrate to ``limit``."""
    regions = regions_of(masks)
    normal = ~masks
    fprs, pros = [0.0], [0.0]
    for t in np.unique(scores)[::-1]:
        pred = scores >= t
        fprs.append((pred & normal).sum() / normal.sum())
        pros.append(np.mean([(pred[i] & r).sum() / r.sum() for i, r in regions]))
    area = 0.0
    for x0, x1, y0, y1 in zip(fprs, fprs[1:], pros, pros[1:]):
        if x1 <= limit:
            area += (x1 - x0) * (y0 + y1) / 2
            continue
        if x0 < limit:
            y_lim = y0 + (y1 - y0) * (limit - x0) / (x1 - x0)
            area += (limit - x0) * (y0 + y_lim) / 2
        break
    return area / limit


def slow_aupro_anomalyclip(scores: np.ndarray, masks: np.ndarray, limit: float = 0.3, steps: int = 200) -> float:
    """AnomalyCLIP's procedure, threshold by threshold and region by region."""
    lo, hi = scores.min(), scores.max()
    regions = regions_of(masks)
    normal = ~masks
    fprs, pros = [], []
    for th in np.arange(lo, hi, (hi - lo) / steps):
        binary = scores > th
        pros.append(np.mean([binary[i][r].sum() / r.sum() for i, r in regions]))
        fprs.append((binary & normal).sum() / normal.sum())
    fprs, pros = np.array(fprs), np.array(pros)
    keep = fprs < limit
    kept = fprs[keep]
    return auc((kept - kept.min()) / (kept.max() - kept.min()), pros[keep])


def random_case(seed: int, dtype=np.float32, levels=None, shape=(4, 12, 12)):
    rng = np.random.default_rng(seed)
    masks = np.zeros(shape, bool)
    for i in range(shape[0] - 1):  # the last image stays normal
        for _ in range(rng.integers(1, 4)):
            y, x = rng.integers(0, shape[1], 2)
            h, w = rng.integers(1, 5, 2)
            masks[i, y:y + h, x:x + w] = True
    scores = ndimage.gaussian_filter(rng.normal(size=shape), (0, 1, 1)) + masks * rng.uniform(0.2, 1.0)
    if levels is not None:
        scores = np.round(scores * levels) / levels
    return scores.astype(dtype), masks


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("levels", [None, 3, 20])
@pytest.mark.parametrize("seed", [0, 1])
def test_aupro_equals_slow_reference(seed, levels, dtype):
    scores, masks = random_case(seed, dtype, levels)
    for limit in (0.3, 0.05, 1.0):
        assert aupro(scores, masks, fpr_limit=limit) == pytest.approx(slow_aupro(scores, masks, limit), abs=1e-12)


@pytest.mark.parametrize("dense_min", [0, 10**9])
def test_aupro_dense_and_sorted_paths_and_many_chunks(monkeypatch, dense_min):
    monkeypatch.setattr(_pixels, "DENSE_MIN", dense_min)
    monkeypatch.setattr(_pixels, "MIN_CHUNK", 50)
    for levels in (None, 8):
        scores, masks = random_case(7, np.float32, levels, shape=(5, 14, 14))
        assert aupro(scores, masks) == pytest.approx(slow_aupro(scores, masks), abs=1e-12)


def test_perfect_reversed_and_constant_maps():
    masks = np.zeros((3, 6, 6), bool)
    masks[0, 1:3, 1:4] = True
    masks[1, 5, 5] = True
    assert aupro(masks.astype(np.float32), masks) == 1.0
    assert aupro((~masks).astype(np.float32), masks) == pytest.approx(0.0, abs=1e-15)
    # one threshold: the curve is the straight line (0,0)-(1,1), so the area up to L is L^2/2
    assert aupro(np.full(masks.shape, 3.0, np.float32), masks) == pytest.approx(0.15, abs=1e-15)
    assert aupro(np.full(masks.shape, 3.0), masks, fpr_limit=0.1) == pytest.approx(0.05, abs=1e-15)


def test_fpr_jump_across_the_limit_is_interpolated():
    # one region of 2 pixels (scores 0.9 and 0.5); 8 normal pixels: one at 0.8, seven at 0.4.
    scores = np.array([[[0.9, 0.5, 0.8, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4, 0.4]]], np.float32)
    masks = np.zeros(scores.shape, bool)
    masks[0, 0, :2] = True
    # points (0,0) (0,.5) (1/8,.5) (1/8,1) (1,1): area to 0.3 = .5/8 + (0.3 - 1/8) * 1
    expected = (0.5 / 8 + (0.3 - 1 / 8)) / 0.3
    assert aupro(scores, masks) == pytest.approx(expected, abs=1e-15)
    assert aupro(scores, masks) == pytest.approx(slow_aupro(scores, masks), abs=1e-15)


def test_diagonal_pixels_form_one_region_and_single_pixels_count_alone():
    masks = np.zeros((1, 5, 5), bool)
    masks[0, [0, 1, 2], [0, 1, 2]] = True  # a diagonal: one region with 8-connectivity
    masks[0, 4, 4] = True  # a one-pixel region
    scores = np.zeros(masks.shape, np.float32)
    scores[0, 0, 0] = 1.0  # finds a third of the diagonal before any false positive
    # 2 regions: PRO after the first threshold = (1/3 + 0) / 2 = 1/6, at FPR 0. Then all pixels tie at 0.
    # Segment (0, 1/6) -> (1, 1) cut at 0.3: PRO(0.3) = 1/6 + 0.3 * 5/6
    expected = 0.3 * (1 / 6 + (1 / 6 + 0.3 * 5 / 6)) / 2 / 0.3
    assert aupro(scores, masks) == pytest.approx(expected, abs=1e-15)
    assert aupro(scores, masks) == pytest.approx(slow_aupro(scores, masks), abs=1e-15)


def test_huge_and_negative_scores():
    scores, masks = random_case(11, np.float64, None)
    scaled = scores * 1e300 - 1e299  # same order, extreme magnitudes, mostly negative
    assert aupro(scaled, masks) == pytest.approx(slow_aupro(scaled, masks), abs=1e-12)
    assert aupro(scaled, masks) == pytest.approx(aupro(scores, masks), abs=1e-12)
    f32 = np.where(masks, np.float32(3e38), np.float32(-3e38)).astype(np.float32)
    assert aupro(f32, masks) == 1.0


def test_undefined_cases_give_nan_with_a_warning():
    scores = np.random.default_rng(0).random((2, 4, 4)).astype(np.float32)
    for masks, why in ((np.ones((2, 4, 4), bool), "no normal pixels"), (np.zeros((2, 4, 4), bool), "no anomalous")):
        for func in (aupro, aupro_anomalyclip):
            with pytest.warns(UndefinedMetricWarning, match=why):
                assert np.isnan(func(scores, masks))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_aupro_anomalyclip_equals_its_reference(seed, dtype):
    scores, masks = random_case(seed, dtype, None)
    for limit, steps in ((0.3, 200), (0.5, 37)):
        expected = slow_aupro_anomalyclip(scores, masks, limit, steps)
        got = aupro_anomalyclip(scores, masks, fpr_limit=limit, steps=steps)
        assert got == pytest.approx(expected, abs=1e-12)


def test_aupro_anomalyclip_differs_from_the_standard_definition():
    scores, masks = random_case(3, np.float32, None)
    assert abs(aupro_anomalyclip(scores, masks) - aupro(scores, masks)) > 1e-3


def test_aupro_anomalyclip_degenerate_curves_are_nan():
    masks = np.zeros((1, 4, 4), bool)
    masks[0, 0, 0] = True
    with pytest.warns(UndefinedMetricWarning, match="threshold"):  # perfect map: every kept FPR is 0
        assert np.isnan(aupro_anomalyclip(masks.astype(np.float32), masks))
    with pytest.warns(UndefinedMetricWarning, match="no thresholds"):  # constant map
        assert np.isnan(aupro_anomalyclip(np.ones((1, 4, 4), np.float32), masks))


def test_option_errors():
    scores, masks = random_case(0)
    for limit in (0.0, 1.5, "x"):
        with pytest.raises(MetricError, match="fpr_limit"):
            aupro(scores, masks, fpr_limit=limit)
    with pytest.raises(MetricError, match="steps"):
        aupro_anomalyclip(scores, masks, steps=0)
    bad = scores.copy()
    bad[0, 0, 0] = np.nan
    for func in (aupro, aupro_anomalyclip):
        with pytest.raises(MetricError, match="NaN or infinite"):
            func(bad, masks)
