"""Few-shot support draws: k normal training images per (dataset, category, k, seed), reproducibly."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from ..errors import DataError
from ..store.manifest import Draw, DrawKey
from ..types import Sample


def relative_key(sample: Sample, root: Path) -> str:
    """A sample's key with the dataset root removed (what manifests store)."""
    key = sample.key
    prefix = str(root).rstrip("/") + "/"
    return key[len(prefix):] if key.startswith(prefix) else key


def draw_support(
    train_normals: list[Sample],
    dataset: str,
    category: str,
    shots: int,
    seed: int,
    *,
    root: Path | None = None,
    replay: dict[DrawKey, Draw] | None = None,
) -> list[Sample]:
    """Draw ``shots`` distinct images from the category's normal training images.

    Files are sorted by path before indexing, and the generator is seeded from
    ``(dataset, category, shots, seed)`` alone, so the draw does not depend on the filesystem order or on
    which other cells run. A ``replay`` entry for ``(dataset, category, shots, seed)`` (or ``seed=None``, from a
    seed file) takes precedence: its files (relative to ``root``) or its indices into the sorted pool.
    """
    pool = sorted(train_normals, key=lambda s: s.key)
    if len(pool) < shots:
        raise DataError(
            f"{dataset}/{category}: {shots}-shot needs {shots} normal training images, found {len(pool)}"
        )
    wanted = None if replay is None else replay.get((dataset, category, shots, seed)) or replay.get((dataset, category, shots, None))
    if wanted is not None:
        return _replayed(pool, wanted, dataset, category, shots, root)
    digest = hashlib.sha256(f"{dataset}|{category}|{shots}|{seed}".encode()).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:8], "little"))
    chosen = sorted(rng.choice(len(pool), size=shots, replace=False).tolist())
    return [pool[i] for i in chosen]


def _replayed(pool: list[Sample], draw: Draw, dataset: str, category: str, shots: int, root: Path | None) -> list[Sample]:
    if draw.indices:
        bad = [i for i in draw.indices if not 0 <= i < len(pool)]
        if bad:
            raise DataError(
                f"{draw.source}: index {bad[0]} is outside the {len(pool)} normal training images of "
                f"{dataset}/{category} (indices count from 0 in the images sorted by name)"
            )
        return [pool[i] for i in draw.indices]
    if draw.by_suffix:
        by_key = {f: s for f in draw.files for s in pool if s.key.endswith("/" + f)}
    else:
        by_key = {relative_key(s, root) if root else s.key: s for s in pool}
    missing = [f for f in draw.files if f not in by_key]
    if missing:
        raise DataError(
            f"{draw.source}: {missing[0]} is not a normal training image of {dataset}/{category} under "
            f"{root}; replay the manifest with the data root it was made with"
        )
    if len(draw.files) != shots:
        raise DataError(f"{draw.source}: lists {len(draw.files)} files for {shots}-shot")
    return [by_key[f] for f in draw.files]
