"""The finished cells of a results folder, grouped into the variants the figures draw (one line or bar each)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from ..store import ResultStore, StoredCell  # noqa: E402
from ..tables import variant_labels  # noqa: E402


def variants(cells: list[StoredCell], *, across_shots: bool = False) -> dict[str, list[StoredCell]]:
    """Label → cells, one entry per variant, grouped and labelled as the tables' columns are
    (``across_shots``: one entry for every shot count of a variant)."""
    if not cells:
        return {}
    labels = variant_labels(pd.DataFrame([c.frame_record() for c in cells]), across_shots=across_shots)
    out: dict[str, list[StoredCell]] = {}
    for label, cell in zip(labels, cells):
        out.setdefault(label, []).append(cell)
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
