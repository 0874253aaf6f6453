"""Which images of a cell a gallery shows: its best and worst cases, by image score."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Case:
    """One image of a gallery: its index in the cell's arrays, why it was picked, its key, score and label."""

    index: int
    kind: str  # "detected" (best), "missed" or "false alarm" (worst)
    key: str
    score: float
    label: int


def pick_cases(keys, scores: np.ndarray, labels: np.ndarray, per_kind: int = 2) -> list[Case]:
    """Best: the ``per_kind`` anomalous images with the highest scores. Worst: the anomalous images with the
    lowest scores (missed) and the normal images with the highest scores (false alarms)."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels).astype(int)
    anomalous = np.flatnonzero(labels == 1)
    normal = np.flatnonzero(labels == 0)
    by_score = lambda idx: idx[np.argsort(-scores[idx], kind="stable")]  # noqa: E731
    ranked_anomalous = by_score(anomalous)
    detected = ranked_anomalous[:per_kind]
    missed = [i for i in ranked_anomalous[::-1][:per_kind] if i not in set(detected)]
    false_alarms = by_score(normal)[:per_kind]
    out = []
    for kind, chosen in (("detected", detected), ("missed", missed), ("false alarm", false_alarms)):
        out += [Case(int(i), kind, str(keys[i]), float(scores[i]), int(labels[i])) for i in chosen]
    return out
