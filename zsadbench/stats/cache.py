"""The bootstrap replicates of computed cells, kept in ``OUT/stats/bootstrap.sqlite`` beside the results.

A row is keyed by the cell's id, its artifact's checksum (so a recomputed cell never reuses an old
bootstrap), the bootstrap settings (:meth:`~zsadbench.stats.resample.BootstrapSettings.key`, which name the
resampling scheme) and the metric; it holds the point estimate and every replicate, so intervals at any
confidence, dataset means and paired differences are computed from it without touching an artifact. The
cache is a convenience: when it cannot be written (a read-only results folder) the statistics are computed
all the same.
"""
from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import numpy as np

from .bootstrap import Replicates

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS replicates (cell_id TEXT NOT NULL, checksum TEXT NOT NULL, settings TEXT NOT NULL, "
    "metric TEXT NOT NULL, point REAL, vals BLOB NOT NULL, PRIMARY KEY (cell_id, checksum, settings, metric))",
    "CREATE TABLE IF NOT EXISTS images (cell_id TEXT NOT NULL, checksum TEXT NOT NULL, digest TEXT NOT NULL, "
    "count INTEGER NOT NULL, PRIMARY KEY (cell_id, checksum))",
)


class BootstrapCache:
    """Replicates per (cell, artifact checksum, settings, metric), and each cell's image digest."""

    def __init__(self, out: str | Path) -> None:
        self.path = Path(out) / "stats" / "bootstrap.sqlite"
        self.writable = True

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=60.0)
        for statement in _SCHEMA:
            conn.execute(statement)
        return conn

    def get(self, cell_id: str, checksum: str, settings: str,
            metrics: tuple[str, ...]) -> tuple[dict[str, Replicates], tuple[str, int] | None]:
        """The cached replicates among ``metrics`` and the cell's ``(image digest, image count)`` (``None``:
        not cached)."""
        if not self.path.is_file():
            return {}, None
        try:
            with closing(self._connect()) as conn:
                rows = conn.execute(
                    f"SELECT metric, point, vals FROM replicates WHERE cell_id = ? AND checksum = ? AND settings = ? "
                    f"AND metric IN ({', '.join('?' * len(metrics))})", (cell_id, checksum, settings, *metrics)
                ).fetchall()
                image = conn.execute("SELECT digest, count FROM images WHERE cell_id = ? AND checksum = ?",
                                     (cell_id, checksum)).fetchone()
        except sqlite3.Error:
            return {}, None
        found = {m: Replicates(float("nan") if p is None else float(p), np.frombuffer(v, np.float64).copy())
                 for m, p, v in rows}
        return found, (str(image[0]), int(image[1])) if image else None

    def put(self, cell_id: str, checksum: str, settings: str, values: dict[str, Replicates], digest: str,
            count: int) -> bool:
        """Store a cell's replicates; ``False`` (and no further tries) when the folder cannot be written."""
        if not self.writable:
            return False
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with closing(self._connect()) as conn, conn:
                conn.executemany(
                    "INSERT OR REPLACE INTO replicates VALUES (?, ?, ?, ?, ?, ?)",
                    [(cell_id, checksum, settings, m, None if np.isnan(r.point) else r.point,
                      np.ascontiguousarray(r.values, np.float64).tobytes()) for m, r in values.items()],
                )
                conn.execute("INSERT OR REPLACE INTO images VALUES (?, ?, ?, ?)", (cell_id, checksum, digest, count))
        except (OSError, sqlite3.Error):
            self.writable = False
            return False
        return True
