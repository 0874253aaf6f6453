"""SQLite-backed results store.

Layout of an output folder ``OUT``::

    OUT/results.sqlite            one row per cell (identity, metrics, provenance, status)
    OUT/cells/<cell_id>.npz       per-image scores, labels and downsampled float16 maps/masks
    OUT/manifests/support.jsonl   the few-shot support images drawn for every cell
    OUT/cache/states/<key>.pt     trained method states, reused across datasets and runs

Every write is atomic: artifacts go to a temporary file that is renamed into place, and the row is
inserted last in its own transaction, so an interrupted run loses at most the cell in flight.
"""
from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import ConfigError
from .files import atomic_write_bytes

SCHEMA_VERSION = 1

_COLUMNS = {
    "cell_id": "TEXT PRIMARY KEY",
    "method": "TEXT NOT NULL",
    "method_label": "TEXT NOT NULL",
    "config_hash": "TEXT NOT NULL",
    "config_json": "TEXT NOT NULL",
    "dataset": "TEXT NOT NULL",
    "dataset_label": "TEXT NOT NULL",
    "domain": "TEXT NOT NULL",
    "category": "TEXT NOT NULL",
    "shots": "INTEGER NOT NULL",
    "seed": "INTEGER NOT NULL",
    "aux": "TEXT NOT NULL",
    "eval_size": "INTEGER NOT NULL",
    "pretrained": "TEXT NOT NULL",
    "random_init": "INTEGER NOT NULL",
    "status": "TEXT NOT NULL",
    "metrics_json": "TEXT NOT NULL",
    "error": "TEXT",
    "provenance_json": "TEXT NOT NULL",
    "artifact": "TEXT",
    "created_at": "REAL NOT NULL",
}


@dataclass(frozen=True)
class StoredCell:
    """One row of the store, as written by the runner."""

    cell_id: str
    method: str
    method_label: str
    config_hash: str
    config_json: str
    dataset: str
    dataset_label: str
    domain: str
    category: str
    shots: int
    seed: int
    aux: str
    eval_size: int
    pretrained: str
    random_init: bool
    status: str
    metrics: dict[str, float]
    provenance: dict[str, Any]
    error: str | None = None
    artifact: str | None = None


class ResultStore:
    """The results of every cell run into one output folder."""

    def __init__(self, out: str | Path) -> None:
        self.out = Path(out)
        self.db_path = self.out / "results.sqlite"

    # -- connection -------------------------------------------------------------------------------
    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        self.out.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.db_path, timeout=30)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            cols = ", ".join(f"{k} {v}" for k, v in _COLUMNS.items())
            conn.execute(f"CREATE TABLE IF NOT EXISTS cells ({cols})")
            conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
            conn.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            yield conn
            conn.commit()
        finally:
            conn.close()

    def exists(self) -> bool:
        return self.db_path.is_file()

    # -- cells ------------------------------------------------------------------------------------
    def finished_ids(self) -> set[str]:
        """Ids of cells that completed successfully (failed cells are retried on the next run)."""
        if not self.exists():
            return set()
        with self._connect() as conn:
            return {row[0] for row in conn.execute("SELECT cell_id FROM cells WHERE status = 'ok'")}

    def put(self, cell: StoredCell) -> None:
        """Insert or replace one cell's row, in one transaction."""
        row = {
            **{k: getattr(cell, k) for k in _COLUMNS if hasattr(cell, k)},
            "random_init": int(cell.random_init),
            "metrics_json": json.dumps({k: _json_float(v) for k, v in cell.metrics.items()}, sort_keys=True),
            "provenance_json": json.dumps(cell.provenance, sort_keys=True, default=str),
            "created_at": time.time(),
        }
        names = list(_COLUMNS)
        with self._connect() as conn:
            conn.execute(
                f"INSERT OR REPLACE INTO cells ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
                [row[n] for n in names],
            )

    def rows(self) -> list[StoredCell]:
        """Every stored cell."""
        if not self.exists():
            return []
        with self._connect() as conn:
            conn.row_factory = sqlite3.Row
            records = conn.execute("SELECT * FROM cells ORDER BY created_at").fetchall()
        return [
            StoredCell(
                **{k: r[k] for k in _COLUMNS if k not in ("metrics_json", "provenance_json", "created_at", "random_init")},
                random_init=bool(r["random_init"]),
                metrics={k: (float("nan") if v is None else float(v)) for k, v in json.loads(r["metrics_json"]).items()},
                provenance=json.loads(r["provenance_json"]),
            )
            for r in records
        ]

    def to_frame(self) -> pd.DataFrame:
        """The store as the DataFrame that :func:`zsadbench.tables.make_table` takes (one row per cell)."""
        rows = self.rows()
        if not rows:
            raise ConfigError(f"no results in {self.out}: run `zsadbench run ... --out {self.out}` first")
        records = []
        for cell in rows:
            record = {k: getattr(cell, k) for k in _COLUMNS if hasattr(cell, k)}
            record.update(cell.metrics)
            records.append(record)
        return pd.DataFrame.from_records(records)

    # -- artifacts --------------------------------------------------------------------------------
    def artifact_path(self, cell_id: str) -> Path:
        return self.out / "cells" / f"{cell_id}.npz"

    def save_artifact(self, cell_id: str, arrays: dict[str, np.ndarray]) -> str:
        """Save per-image arrays of a cell atomically; returns the path relative to the output folder."""
        import io

        buffer = io.BytesIO()
        np.savez_compressed(buffer, **arrays)
        path = self.artifact_path(cell_id)
        atomic_write_bytes(path, buffer.getvalue())
        return str(path.relative_to(self.out))

    def load_artifact(self, cell_id: str) -> dict[str, np.ndarray]:
        with np.load(self.artifact_path(cell_id), allow_pickle=False) as data:
            return {k: data[k] for k in data.files}

    def state_path(self, key: str) -> Path:
        return self.out / "cache" / "states" / f"{key}.pt"

    def append_manifest(self, record: dict[str, Any]) -> None:
        """Append one few-shot support record to ``manifests/support.jsonl`` (one JSON object per line)."""
        path = self.out / "manifests" / "support.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, sort_keys=True) + "\n")
            handle.flush()
            os.fsync(handle.fileno())


def _json_float(value: float) -> float | None:
    value = float(value)
    return None if np.isnan(value) else value
