"""Few-shot support draws: k normal training images per (dataset, category, k, seed), reproducibly."""
from __future__ import annotations

import hashlib

import numpy as np

from ..errors import DataError
from ..types import Sample


def draw_support(train_normals: list[Sample], dataset: str, category: str, shots: int, seed: int) -> list[Sample]:
    """Draw ``shots`` distinct images from the category's normal training images.

    Files are sorted by path before indexing, and the generator is seeded from
    ``(dataset, category, shots, seed)`` alone, so the draw does not depend on the filesystem order or on
    which other cells run.
    """
    pool = sorted(train_normals, key=lambda s: s.key)
    if len(pool) < shots:
        raise DataError(
            f"{dataset}/{category}: {shots}-shot needs {shots} normal training images, found {len(pool)}"
        )
    digest = hashlib.sha256(f"{dataset}|{category}|{shots}|{seed}".encode()).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
    chosen = sorted(rng.choice(len(pool), size=shots, replace=False).tolist())
    return [pool[i] for i in chosen]
