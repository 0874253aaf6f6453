"""Which test images each bootstrap resample draws: stratified by label, from a seed and the image set.

Normal and anomalous images are resampled apart, each stratum with replacement to its own size, so every
resample keeps the cell's class balance. The draws depend only on the bootstrap seed and on the cell's
images (their keys and labels, in sorted key order), never on the method or the run seed: every method and
every seed evaluated on the same images gets the same resamples, which is what pairs them.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError

#: bumped when the resampling scheme or the metric arithmetic of a replicate changes (it keys the cache)
SCHEME = "stratified-images/1"


@dataclass(frozen=True)
class BootstrapSettings:
    """How many resamples, from which seed."""

    resamples: int = 1000
    seed: int = 0

    def __post_init__(self) -> None:
        if self.resamples < 2:
            raise ConfigError(f"--resamples {self.resamples}: at least 2 resamples are needed (1000 is usual)")
        if self.seed < 0:
            raise ConfigError(f"--seed {self.seed}: the bootstrap seed must be a non-negative integer")

    def key(self) -> str:
        """The settings as the cache keys them."""
        return json.dumps({"resamples": self.resamples, "seed": self.seed, "scheme": SCHEME}, sort_keys=True)


def image_digest(image_keys: np.ndarray, labels: np.ndarray) -> str:
    """SHA-256 of the sorted ``(key, label)`` pairs of a cell's test images: equal for two cells exactly when
    they hold the same images with the same labels."""
    order = np.argsort(np.asarray(image_keys).astype(str), kind="stable")
    pairs = [[str(image_keys[i]), int(labels[i])] for i in order]
    return hashlib.sha256(json.dumps(pairs, separators=(",", ":")).encode()).hexdigest()


def stratified_indices(labels: np.ndarray, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """``[resamples, N]`` indices into ``labels``: the normal images drawn with replacement (first), then the
    anomalous ones. The generator is called as ``rng.integers(0, n, (resamples, n))`` per stratum, normal
    first, which is how :func:`scipy.stats.bootstrap` draws two independent samples."""
    labels = np.asarray(labels).astype(bool)
    parts = []
    for stratum in (np.flatnonzero(~labels), np.flatnonzero(labels)):
        if stratum.size:
            parts.append(stratum[rng.integers(0, stratum.size, (resamples, stratum.size))])
    return np.concatenate(parts, axis=1)


def multiplicities(indices: np.ndarray, n: int) -> np.ndarray:
    """``[B, n]`` int32: how often each image occurs in each row of ``indices``."""
    rows = len(indices)
    flat = (indices + n * np.arange(rows)[:, None]).ravel()
    return np.bincount(flat, minlength=rows * n).reshape(rows, n).astype(np.int32)


def cell_generator(settings: BootstrapSettings, digest: str) -> np.random.Generator:
    """The generator of a cell's resamples: the bootstrap seed and the cell's image digest."""
    words = [int(digest[i:i + 8], 16) for i in range(0, 32, 8)]
    return np.random.default_rng(np.random.SeedSequence([settings.seed, *words]))


def cell_weights(image_keys: np.ndarray, labels: np.ndarray, settings: BootstrapSettings) -> np.ndarray:
    """``[resamples, N]`` multiplicities of a cell's images, in the cell's own image order; the draws are made
    in sorted key order, so cells listing the same images in another order get the same resamples."""
    keys = np.asarray(image_keys).astype(str)
    labels = np.asarray(labels)
    order = np.argsort(keys, kind="stable")
    rng = cell_generator(settings, image_digest(keys, labels))
    canonical = multiplicities(stratified_indices(labels[order], settings.resamples, rng), len(keys))
    weights = np.empty_like(canonical)
    weights[:, order] = canonical
    return weights
