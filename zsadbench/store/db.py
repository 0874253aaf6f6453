"""SQLite-backed results store.

Layout of an output folder ``OUT``::

    OUT/results.sqlite            one row per cell (identity, metrics, provenance, status), plus cell leases
    OUT/cells/<cell_id>.npz       per-image scores, labels, maps and masks at the evaluation size (see artifacts.py)
    OUT/manifests/support.jsonl   the few-shot support images drawn for every cell, one record per draw
    OUT/cache/states/<key>.pt     trained method states, reused across datasets and runs
    OUT/cache/checkpoints/<key>/  per-epoch checkpoints of a training in flight
    OUT/cache/features/           frozen backbone outputs, per image

Every write is atomic: artifacts go to a temporary file that is renamed into place, and the row is
inserted last in its own transaction, so an interrupted run loses at most the cell in flight. The database
runs in WAL mode with a busy timeout, and a cell is computed under a lease, so two runs on one folder
neither corrupt it nor compute a cell twice.
"""
from __future__ import annotations

import errno
import io
import json
import os
import shutil
import socket
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import ConfigError, StoreError
from .files import atomic_write_bytes, out_of_space
from .schema import StoredCell

SCHEMA_VERSION = 3
BUSY_TIMEOUT_S = 60.0

_SQL_TYPES = {"str": "TEXT NOT NULL", "int": "INTEGER NOT NULL", "bool": "INTEGER NOT NULL", "str | None": "TEXT"}
_COLUMNS = {
    **{name: "TEXT PRIMARY KEY" if name == "cell_id" else _SQL_TYPES[kind]
       for name, kind in StoredCell.scalar_fields().items()},
    "metrics_json": "TEXT NOT NULL",
    "provenance_json": "TEXT NOT NULL",
    "created_at": "REAL NOT NULL",
}


def _nearly_full(path: Path) -> bool:
    """Whether the file system of ``path`` has less than 1 MiB free (SQLite reports a full disk during a WAL
    write as a plain I/O error)."""
    folder = next((p for p in (path, *path.parents) if p.exists()), Path("."))
    try:
        return shutil.disk_usage(folder).free < 1 << 20
    except OSError:
        return False


def owner_id() -> str:
    """This process, as a lease owner: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _owner_alive(owner: str) -> bool:
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname():
        return True  # another machine: trusted until its lease expires
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, ValueError):
        return True
    return True


class ResultStore:
    """The results of every cell run into one output folder."""

    #: A lease older than this is taken over even if its owner looks alive (a machine that went away).
    lease_ttl_s: float = 24 * 3600.0

    def __init__(self, out: str | Path) -> None:
        self.out = Path(out)
        self.db_path = self.out / "results.sqlite"
        self._checked = False

    # -- connection -------------------------------------------------------------------------------
    @contextmanager
    def _connect(self, *, immediate: bool = False) -> Iterator[sqlite3.Connection]:
        with self.writing(self.db_path):
            self._check_paths()
            self.out.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.db_path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
            try:
                try:
                    conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
                    conn.execute("PRAGMA journal_mode=WAL")
                    if not self._checked:
                        self._prepare(conn)
                    conn.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
                except sqlite3.DatabaseError as exc:
                    if isinstance(exc, sqlite3.OperationalError) or out_of_space(exc):
                        raise  # turned into one line by ``writing``
                    raise self._corrupt(exc) from exc
                try:
                    yield conn
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise
            finally:
                conn.close()

    def _prepare(self, conn: sqlite3.Connection) -> None:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "meta" in tables:
            row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            try:
                found = int(row[0]) if row else 0
            except (TypeError, ValueError):
                raise StoreError(f"{self.db_path} records schema_version {row[0]!r}, which no zsadbench writes: it was "
                                 "edited or is not a zsadbench store; move it aside and run `zsadbench rescore --out "
                                 f"{self.out} --rebuild` to rebuild it from {self.out / 'cells'}") from None
            if found != SCHEMA_VERSION:
                newer = found > SCHEMA_VERSION
                raise StoreError(
                    f"{self.db_path} has store schema {found}, this zsadbench reads schema {SCHEMA_VERSION}: "
                    + ("upgrade zsadbench to read it, or use another --out"
                       if newer else "its cells lack identity fields this version keys cells by (such as the precision); "
                       "use a new --out (or move the folder aside) and rerun, the cells are recomputed")
                )
        elif tables:
            raise StoreError(f"{self.db_path} is an SQLite file but not a zsadbench store; use another --out")
        cols = ", ".join(f"{k} {v}" for k, v in _COLUMNS.items())
        conn.execute(f"CREATE TABLE IF NOT EXISTS cells ({cols})")
        conn.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)")
        conn.execute(
            "CREATE TABLE IF NOT EXISTS leases (cell_id TEXT PRIMARY KEY, owner TEXT NOT NULL, acquired REAL NOT NULL)"
        )
        conn.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        self._checked = True

    def _corrupt(self, exc: Exception) -> StoreError:
        return StoreError(
            f"{self.db_path} cannot be read ({exc}); move it aside (mv {self.db_path} {self.db_path}.broken) and run "
            f"`zsadbench rescore --out {self.out} --rebuild` to rebuild it from {self.out / 'cells'}"
        )

    @contextmanager
    def writing(self, path: Path) -> Iterator[None]:
        """Turn a full disk while writing ``path`` into one :class:`StoreError` naming the folder."""
        try:
            yield
        except (OSError, sqlite3.OperationalError) as exc:
            if out_of_space(exc) or ("disk i/o error" in str(exc).lower() and _nearly_full(path)):
                raise self._full(path) from exc
            if isinstance(exc, PermissionError) or "readonly" in str(exc).lower() or getattr(exc, "errno", None) == errno.EROFS:
                raise StoreError(f"cannot write {path} ({exc}): the folder is read-only; pass a writable --out, or "
                                 f"make {path.parent} writable") from exc
            if "disk i/o error" in str(exc).lower():
                raise StoreError(f"disk I/O error writing {path}: check the disk that holds {path.parent} (space, "
                                 "mount, permissions) and run the same command again; every finished cell is kept") from exc
            raise

    def _full(self, path: Path) -> StoreError:
        """The one-line error of a full disk while writing ``path``."""
        return StoreError(
            f"no space left on the device writing {path}: free space in {path.parent} (or pass another --out) and "
            "run the same command again; every finished cell is kept"
        )

    def _check_paths(self) -> None:
        if self.out.exists() and not self.out.is_dir():
            raise StoreError(f"--out {self.out} is a file, not a folder; pass a folder (it is created if missing)")
        if self.db_path.exists() and not self.db_path.is_file():
            raise StoreError(f"{self.db_path} is not a file (a folder?), so it cannot be a results store; move it "
                             "aside or pass another --out")

    def exists(self) -> bool:
        """Whether the folder holds a results store (a folder or file in the wrong place is an error)."""
        self._check_paths()
        return self.db_path.is_file()

    # -- cells ------------------------------------------------------------------------------------
    def finished_ids(self) -> set[str]:
        """Ids of cells that completed successfully (failed cells are retried on the next run)."""
        if not self.exists():
            return set()
        with self._connect() as conn:
            return {row[0] for row in conn.execute("SELECT cell_id FROM cells WHERE status = 'ok'")}

    def put(self, cell: StoredCell) -> bool:
        """Insert or replace one cell's row, in one transaction. A failure never replaces a stored success
        (``--force`` recomputing a good cell that then fails keeps the good result); returns whether the row
        was written."""
        record = cell.record()
        row = {
            **{k: v for k, v in record.items() if k in _COLUMNS},
            "random_init": int(cell.random_init),
            "metrics_json": json.dumps(record["metrics"], sort_keys=True),
            "provenance_json": json.dumps(record["provenance"], sort_keys=True, default=str),
            "created_at": time.time(),
        }
        names = list(_COLUMNS)
        updates = ", ".join(f"{n} = excluded.{n}" for n in names if n != "cell_id")
        with self._connect() as conn:
            cursor = conn.execute(
                f"INSERT INTO cells ({', '.join(names)}) VALUES ({', '.join('?' * len(names))}) "
                f"ON CONFLICT(cell_id) DO UPDATE SET {updates} "
                "WHERE cells.status != 'ok' OR excluded.status = 'ok'",
                [row[n] for n in names],
            )
            return cursor.rowcount > 0

    def rows(self) -> list[StoredCell]:
        """Every stored cell."""
        if not self.exists():
            return []
        with self._connect() as conn:
            conn.row_factory = sqlite3.Row
            records = conn.execute("SELECT * FROM cells ORDER BY created_at").fetchall()
        return [self._cell(dict(r)) for r in records]

    def _cell(self, row: dict) -> StoredCell:
        try:
            return StoredCell.from_record({**row, "metrics": json.loads(row["metrics_json"]),
                                           "provenance": json.loads(row["provenance_json"])})
        except (TypeError, ValueError) as exc:
            raise StoreError(f"{self.db_path}: the row of cell {row.get('cell_id')} cannot be read ({exc}); move the "
                             f"store aside and run `zsadbench rescore --out {self.out} --rebuild` to rebuild it from "
                             f"{self.out / 'cells'}") from None

    def to_frame(self) -> pd.DataFrame:
        """The store as the DataFrame that :func:`zsadbench.tables.make_table` takes (one row per cell)."""
        rows = self.rows()
        if not rows:
            raise ConfigError(f"no results in {self.out}: run `zsadbench run ... --out {self.out}` first")
        return pd.DataFrame.from_records([cell.frame_record() for cell in rows])

    # -- leases -----------------------------------------------------------------------------------
    def acquire(self, cell_id: str, *, force: bool = False) -> str | None:
        """Take the lease of ``cell_id`` for this process. Returns ``None`` when taken, or why not:
        ``"done"`` (already stored, unless ``force``) or the owner of a live lease."""
        me = owner_id()
        with self._connect(immediate=True) as conn:
            if not force and conn.execute(
                "SELECT 1 FROM cells WHERE cell_id = ? AND status = 'ok'", (cell_id,)
            ).fetchone():
                return "done"
            held = conn.execute("SELECT owner, acquired FROM leases WHERE cell_id = ?", (cell_id,)).fetchone()
            if held and held[0] != me and _owner_alive(held[0]) and time.time() - held[1] < self.lease_ttl_s:
                return held[0]
            conn.execute("INSERT OR REPLACE INTO leases VALUES (?, ?, ?)", (cell_id, me, time.time()))
        return None

    def release(self, cell_id: str) -> None:
        """Give back this process's lease of ``cell_id`` (if it holds it)."""
        with self._connect() as conn:
            conn.execute("DELETE FROM leases WHERE cell_id = ? AND owner = ?", (cell_id, owner_id()))

    # -- artifacts --------------------------------------------------------------------------------
    def artifact_path(self, cell_id: str) -> Path:
        return self.out / "cells" / f"{cell_id}.npz"

    def save_artifact(self, cell_id: str, arrays: dict[str, np.ndarray]) -> str:
        """Save per-image arrays of a cell atomically; returns the path relative to the output folder. The
        arrays come compressed (:func:`~zsadbench.store.artifacts.encode`), so the npz itself is not."""
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        path = self.artifact_path(cell_id)
        with self.writing(path):
            atomic_write_bytes(path, buffer.getvalue())
        return str(path.relative_to(self.out))

    def load_artifact(self, cell_id: str) -> dict[str, np.ndarray]:
        """The raw arrays of a cell's artifact (see :func:`load_cell_arrays` for decoded maps and masks)."""
        from .artifacts import checksum_problem

        path = self.artifact_path(cell_id)
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
        except FileNotFoundError:
            raise StoreError(f"{path} is missing: the cell's per-image results are gone; run the same command "
                             "again to recompute the cell") from None
        except Exception as exc:  # noqa: BLE001 - zip, npy and decompression errors all mean a damaged file
            raise StoreError(f"{path} is damaged ({type(exc).__name__}: {exc}); run the same command again to "
                             "recompute the cell") from exc
        problem = checksum_problem(arrays)
        if problem:
            raise StoreError(f"{path} is damaged ({problem}); run the same command again to recompute the cell")
        return arrays

    def artifact_problem(self, cell: StoredCell) -> str | None:
        """Why a stored cell's artifact cannot be used, from a cheap look (it exists, has the size the row
        recorded, and opens as an npz holding the checksum the row recorded); ``None`` when it looks intact.
        Reading an artifact verifies its whole content."""
        path = self.artifact_path(cell.cell_id)
        expected = cell.provenance.artifact_bytes
        try:
            size = path.stat().st_size
            if expected is not None and size != expected:
                return f"{path} holds {size} bytes, the run wrote {expected}"
            with np.load(path, allow_pickle=False) as data:
                checksum = cell.provenance.artifact_checksum
                if checksum is not None and ("checksum" not in data.files or str(data["checksum"]) != checksum):
                    return f"{path} is not the artifact this cell's row records (checksum differs)"
        except FileNotFoundError:
            return f"{path} is missing"
        except Exception as exc:  # noqa: BLE001 - any failure to open means the file is damaged
            return f"{path} cannot be opened ({type(exc).__name__}: {exc})"
        return None

    def load_cell_arrays(self, cell_id: str) -> dict[str, np.ndarray]:
        """A cell's per-image results at the evaluation size: ``image_keys``, ``pred_score``, ``gt_label``,
        ``anomaly_map`` float32 ``[N,S,S]`` and ``gt_mask`` bool ``[N,S,S]``."""
        from .artifacts import decode

        return decode(self.load_artifact(cell_id))

    def remove_stale_temporaries(self) -> list[Path]:
        """Delete the temporary files that killed writers left in this folder's store, artifacts, manifests,
        trained states and checkpoints (see :func:`~zsadbench.store.files.remove_stale_temporaries`)."""
        from .files import remove_stale_temporaries

        folders = [self.out, self.out / "cells", self.out / "manifests", self.out / "cache" / "states"]
        checkpoints = self.out / "cache" / "checkpoints"
        folders += sorted(p for p in checkpoints.iterdir() if p.is_dir()) if checkpoints.is_dir() else []
        return [path for folder in folders for path in remove_stale_temporaries(folder)]

    def state_path(self, key: str) -> Path:
        return self.out / "cache" / "states" / f"{key}.pt"

    def checkpoint_dir(self, key: str) -> Path:
        return self.out / "cache" / "checkpoints" / key

    def feature_dir(self) -> Path:
        return self.out / "cache" / "features"

