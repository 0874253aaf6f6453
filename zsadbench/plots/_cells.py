"""The finished cells of a results folder, grouped into the variants the figures draw (one line or bar each)."""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt  # noqa: E402

from ..store import ResultStore, StoredCell  # noqa: E402


def variants(cells: list[StoredCell]) -> dict[str, list[StoredCell]]:
    """Label → cells, one entry per (method label, shots, config, pretrained); labels made unique."""
    groups: dict[tuple, list[StoredCell]] = defaultdict(list)
    for cell in cells:
        groups[(cell.method_label, cell.config_hash, cell.pretrained)].append(cell)
    labels = [k[0] for k in groups]
    out = {}
    for key, group in groups.items():
        label = key[0] if labels.count(key[0]) == 1 else f"{key[0]} [{key[1][:7]}]"
        if group[0].random_init:
            label += " (random init)"
        out[label] = group
    return out


def finished(store: ResultStore) -> list[StoredCell]:
    return [c for c in store.rows() if c.status == "ok"]


def save(fig, dest: Path, name: str) -> list[Path]:
    """Write ``fig`` as ``dest/name.png`` and ``dest/name.pdf``."""
    dest.mkdir(parents=True, exist_ok=True)
    paths = [dest / f"{name}.png", dest / f"{name}.pdf"]
    for path in paths:
        fig.savefig(path, dpi=150, bbox_inches="tight")
    plt.close(fig)
    return paths


def safe(name: str) -> str:
    """A file-name-safe version of a label."""
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name).strip("_") or "x"
