"""Ranking methods across datasets: Friedman's test, then Nemenyi's critical difference or Wilcoxon–Holm.

Following Demšar (2006, JMLR 7): on every dataset the methods are ranked (1 = best; tied methods share the
mean of the ranks they span), and the average ranks are compared. Friedman's test
(:func:`scipy.stats.friedmanchisquare`, which corrects its statistic for ties) asks whether any method
differs; Iman and Davenport's F, which Demšar recommends as less conservative, is reported beside it. Two
post-hoc tests compare every pair:

* **Nemenyi**: two methods differ when their average ranks differ by at least the critical difference
  ``CD = q_alpha sqrt(k (k + 1) / (6 N))``, with ``q_alpha`` the studentized range quantile for ``k`` groups
  and infinite degrees of freedom divided by sqrt(2) (:func:`scipy.stats.studentized_range`; this gives
  Demšar's table, e.g. 2.569 for k = 4 at alpha = 0.05).
* **Wilcoxon–Holm**: a Wilcoxon signed-rank test per pair over the datasets (:func:`scipy.stats.wilcoxon`, zero
  differences split between the signs as Demšar does, ``zero_method="zsplit"``), with Holm's step-down
  correction for the ``k (k - 1) / 2`` tests.

Only SciPy is used: ``autorank`` would choose its test itself from normality and variance checks and draw its
own diagram, whereas here the test is the one asked for, ties are handled as above, and nothing is added to
the dependencies.
"""
from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import f as f_distribution
from scipy.stats import friedmanchisquare, rankdata, studentized_range, wilcoxon

from ..errors import ConfigError

TESTS = ("nemenyi", "wilcoxon-holm")


def average_ranks(scores: np.ndarray, higher_is_better: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Ranks ``[N, k]`` of ``k`` methods on ``N`` datasets (1 = best, ties averaged) and their means ``[k]``."""
    scores = np.asarray(scores, np.float64)
    ranks = rankdata(-scores if higher_is_better else scores, axis=1, method="average")
    return ranks, ranks.mean(axis=0)


@dataclass(frozen=True)
class Friedman:
    """Friedman's chi-square (tie-corrected) and p-value, and Iman–Davenport's F with its p-value."""

    chi2: float
    p_value: float
    f: float
    f_p_value: float


def friedman(scores: np.ndarray) -> Friedman:
    """Friedman's test of ``scores`` ``[N datasets, k methods]`` (k >= 3, N >= 2)."""
    scores = np.asarray(scores, np.float64)
    n, k = scores.shape
    if k < 3 or n < 2:
        raise ConfigError(f"Friedman's test needs at least 3 methods on at least 2 datasets, got {k} on {n}; compare "
                          "two methods with `zsadbench compare`")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all methods tied on every dataset: chi2 is nan
        result = friedmanchisquare(*scores.T)
    chi2 = float(result.statistic)
    if not math.isfinite(chi2):
        return Friedman(0.0, 1.0, 0.0, 1.0)
    denominator = n * (k - 1) - chi2
    f_value = math.inf if denominator <= 0 else (n - 1) * chi2 / denominator
    f_p = 0.0 if math.isinf(f_value) else float(f_distribution.sf(f_value, k - 1, (k - 1) * (n - 1)))
    return Friedman(chi2, float(result.pvalue), f_value, f_p)


def q_alpha(k: int, alpha: float = 0.05) -> float:
    """Nemenyi's critical value for ``k`` methods (Demšar's Table 5a/5b)."""
    return float(studentized_range.ppf(1.0 - alpha, k, np.inf) / math.sqrt(2.0))


def critical_difference(k: int, n: int, alpha: float = 0.05) -> float:
    """The least difference of average ranks Nemenyi's test calls significant (``k`` methods, ``n`` datasets)."""
    return q_alpha(k, alpha) * math.sqrt(k * (k + 1) / (6.0 * n))


def nemenyi_p_values(mean_ranks: np.ndarray, n: int) -> np.ndarray:
    """Pairwise Nemenyi p-values ``[k, k]`` of average ranks over ``n`` datasets."""
    k = len(mean_ranks)
    scale = math.sqrt(k * (k + 1) / (12.0 * n))
    gaps = np.abs(np.subtract.outer(mean_ranks, mean_ranks)) / scale
    p = studentized_range.sf(gaps, k, np.inf)
    np.fill_diagonal(p, 1.0)
    return np.minimum(p, 1.0)


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values (same order as given)."""
    p = np.asarray(p_values, np.float64)
    m = p.size
    order = np.argsort(p, kind="stable")
    adjusted = np.empty(m)
    running = 0.0
    for i, j in enumerate(order):
        running = max(running, min(1.0, (m - i) * p[j]))
        adjusted[j] = running
    return adjusted


def wilcoxon_holm_p_values(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Pairwise Wilcoxon signed-rank p-values ``[k, k]`` over the datasets, raw and Holm-adjusted."""
    scores = np.asarray(scores, np.float64)
    k = scores.shape[1]
    pairs = [(i, j) for i in range(k) for j in range(i + 1, k)]
    raw = np.ones((k, k))
    values = []
    for i, j in pairs:
        diff = scores[:, i] - scores[:, j]
        if not np.any(diff):
            p = 1.0
        else:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # scipy warns when it falls back to the normal approximation
                p = float(wilcoxon(scores[:, i], scores[:, j], zero_method="zsplit").pvalue)
        raw[i, j] = raw[j, i] = p
        values.append(p)
    adjusted = np.ones((k, k))
    for (i, j), p in zip(pairs, holm(values)):
        adjusted[i, j] = adjusted[j, i] = p
    return raw, adjusted


@dataclass(frozen=True)
class RankTest:
    """The ranking of ``methods`` over ``datasets`` and the post-hoc test's verdict on each pair."""

    methods: list[str]
    datasets: list[str]
    scores: np.ndarray  # [N, k]
    ranks: np.ndarray  # [N, k]
    mean_ranks: np.ndarray  # [k]
    friedman: Friedman
    test: str
    alpha: float
    p_values: np.ndarray  # [k, k], the post-hoc test's (Holm-adjusted for wilcoxon-holm)
    cd: float | None  # Nemenyi's critical difference

    @property
    def significant(self) -> np.ndarray:
        """``[k, k]`` bool: the pair differs at ``alpha``."""
        if self.cd is not None:
            gaps = np.abs(np.subtract.outer(self.mean_ranks, self.mean_ranks))
            return gaps >= self.cd
        return self.p_values < self.alpha


def rank_test(scores: np.ndarray, methods: Sequence[str], datasets: Sequence[str], test: str = "nemenyi",
              alpha: float = 0.05, higher_is_better: bool = True) -> RankTest:
    """Friedman's test and the post-hoc ``test`` (:data:`TESTS`) of ``scores`` ``[N datasets, k methods]``."""
    if test not in TESTS:
        raise ConfigError(f"unknown test {test!r}; choose {' or '.join(TESTS)}")
    if not 0.0 < alpha < 1.0:
        raise ConfigError(f"--alpha {alpha} must lie strictly between 0 and 1 (e.g. 0.05)")
    scores = np.asarray(scores, np.float64)
    if np.isnan(scores).any():
        raise ConfigError("every method needs a value on every dataset to be ranked; leave out the incomplete ones")
    result = friedman(scores)
    ranks, mean_ranks = average_ranks(scores, higher_is_better)
    n, k = scores.shape
    if test == "nemenyi":
        p_values, cd = nemenyi_p_values(mean_ranks, n), critical_difference(k, n, alpha)
    else:
        p_values, cd = wilcoxon_holm_p_values(scores if higher_is_better else -scores)[1], None
    return RankTest(list(methods), list(datasets), scores, ranks, mean_ranks, result, test, alpha, p_values, cd)
