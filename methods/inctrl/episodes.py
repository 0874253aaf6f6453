"""InCTRL's training episodes: balanced query batches, each query with k normal prompts of its own category.

The auxiliary set is read once into memory (:class:`AuxiliaryPool`: the images at the input size, their labels and
categories). Each epoch, :class:`Episodes` deals ``steps`` batches: ``batch_size // 2`` normal queries, then the
rest anomalous, each kind taken in turn from shuffled passes over its images (a pass ends, the next begins, as the
official ``BalancedBatchSampler`` does). Every query gets k prompts: normal images of its category other than
itself, distinct while the category has k of them, else drawn with replacement. One NumPy generator seeded per
epoch draws it all, so an epoch's episodes depend only on the fit's seed and the epoch.
"""
from __future__ import annotations

import warnings

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from zsadbench.errors import DataError
from zsadbench.method import FitData
from zsadbench.types import Batch


@dataclass(frozen=True)
class Episode(Batch):
    """A :class:`~zsadbench.types.Batch` of queries (``image``, ``gt_label``, ``categories``) with their rows in the
    pool (``rows``, ``[B]``) and the rows of each query's prompts (``prompts``, ``[B, k]``)."""

    rows: torch.Tensor | None = None
    prompts: torch.Tensor | None = None


@dataclass
class AuxiliaryPool:
    """The auxiliary images ``[P, 3, S, S]`` (CPU), their labels ``[P]`` and categories."""

    images: torch.Tensor
    labels: np.ndarray
    categories: tuple[str, ...]

    @classmethod
    def collect(cls, data: FitData, batch_size: int, owner: str) -> "AuxiliaryPool":
        """Read every image of ``data`` once; raise :class:`DataError` when the set cannot make episodes."""
        images, labels, categories = [], [], []
        for batch in data.batches(batch_size, shuffle=False, seed=data.seed):
            if batch.gt_label is None:
                raise DataError(f"{owner} trains on labelled images; the batches of {data.dataset!r} have no gt_label")
            images.append(batch.image.detach().cpu())
            labels.append(batch.gt_label.cpu().numpy().astype(np.int64))
            categories += list(batch.categories)
        if not images:
            raise DataError(f"{owner}: the auxiliary set {data.dataset!r} yielded no images")
        pool = cls(torch.cat(images), np.concatenate(labels), tuple(categories)).usable(data.dataset, owner)
        pool.check(data.dataset, owner)
        return pool

    def usable(self, dataset: str, owner: str) -> "AuxiliaryPool":
        """The pool without the categories that have fewer than two normal images (a query's prompts are other
        normal images of its category), with a warning naming them."""
        short = sorted(c for c in set(self.categories) if len(self.normal_rows(c)) < 2)
        if not short:
            return self
        warnings.warn(f"{owner}: categories {', '.join(short)} of the auxiliary set {dataset!r} have fewer than 2 "
                      "normal images and are left out of training (a query's prompts are other normal images of its "
                      "category)", RuntimeWarning, stacklevel=3)
        keep = np.flatnonzero(~np.isin(np.asarray(self.categories), short))
        return AuxiliaryPool(self.images[torch.from_numpy(keep)], self.labels[keep],
                             tuple(self.categories[i] for i in keep))

    def __len__(self) -> int:
        return len(self.labels)

    def normal_rows(self, category: str) -> np.ndarray:
        """Rows of the normal images of ``category``, ascending."""
        return np.flatnonzero((self.labels == 0) & (np.asarray(self.categories) == category))

    def check(self, dataset: str, owner: str) -> None:
        """Both kinds of query must exist among the categories with two normal images or more."""
        for label, kind in ((0, "normal"), (1, "anomalous")):
            if not (self.labels == label).any():
                raise DataError(f"{owner} trains on normal and anomalous images of categories with at least 2 normal "
                                f"images; the auxiliary set {dataset!r} has no {kind} image in such a category; choose "
                                "another auxiliary set with --aux")


def _passes(rows: np.ndarray, rng: np.random.Generator) -> Iterator[int]:
    """``rows`` in shuffled order, pass after pass, without end."""
    while True:
        yield from rng.permutation(rows).tolist()


class Episodes:
    """Deals the training episodes of one stage; ``shots`` is the number of prompts per query."""

    def __init__(self, pool: AuxiliaryPool, steps: int, shots: int) -> None:
        self.pool = pool
        self.steps = steps
        self.shots = shots
        self._normals = {c: pool.normal_rows(c) for c in sorted(set(pool.categories))}

    def draw_prompts(self, row: int, rng: np.random.Generator) -> np.ndarray:
        """``shots`` rows of normal images of ``row``'s category, ``row`` excluded."""
        candidates = self._normals[self.pool.categories[row]]
        candidates = candidates[candidates != row]
        return rng.choice(candidates, size=self.shots, replace=len(candidates) < self.shots)

    def batches(self, batch_size: int, shuffle: bool = True, seed: int = 0) -> Iterator[Episode]:
        """``steps`` episodes of ``batch_size`` queries (the ``FitData.batches`` signature; episodes are always
        drawn at random, from ``seed``)."""
        pool = self.pool
        rng = np.random.default_rng(seed)
        normal = _passes(np.flatnonzero(pool.labels == 0), rng)
        anomalous = _passes(np.flatnonzero(pool.labels == 1), rng)
        n_normal = batch_size // 2
        for _ in range(self.steps):
            rows = np.array([next(normal) for _ in range(n_normal)]
                            + [next(anomalous) for _ in range(batch_size - n_normal)])
            prompts = np.stack([self.draw_prompts(int(row), rng) for row in rows])
            index = torch.from_numpy(rows)
            categories = tuple(pool.categories[i] for i in rows.tolist())
            yield Episode(
                image=pool.images[index],
                category=categories[0] if len(set(categories)) == 1 else "object",
                gt_label=torch.from_numpy(pool.labels[rows]),
                categories=categories,
                rows=index,
                prompts=torch.from_numpy(prompts),
            )
