"""Merging results files from several machines or authors into one leaderboard folder.

The merged folder is a results store rebuilt from the files' cells (``DIR/results.sqlite``, no artifacts) plus
the merged results file (``DIR/results.json``). A store rather than a frame of the files' summaries, because
the tables aggregate cells themselves (seeds, coverage, failures, the Mean over datasets): with the cells in a
store, ``zsadbench table`` in every format and layout, ``rank``, ``plot --kind shots``, ``export`` and
``leaderboard`` read the folder as they read a run's, unchanged. What needs the per-image data (``intervals``,
``compare``, ``viz``, ``rescore``) says in one line that the artifacts are missing; the intervals the files
carry are kept in ``results.json``, which ``table --ci`` and ``leaderboard`` use for such a folder.

Files are refused, in one line naming both, when for the same method and dataset they mix random-init with
real weights, protocols, evaluation sizes or metric definitions (``metric_versions``), or hold the same cell (one
variant, dataset, category and seed) with different metrics. A file of another results format (``schema_version``)
is refused when it is read, so two formats are never merged. The same cell with the same metrics in two files
is kept once; a failed cell gives way to a finished one.
"""
from __future__ import annotations

import hashlib
import math
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import DataError, StoreError
from ..store import ResultStore, StoredCell
from .document import cells_frame, results_document, stored_cells
from .files import read_results, write_results
from .intervals import RESULTS_FILE, document_intervals


@dataclass(frozen=True)
class Source:
    """A results file as read: its path (as given), its document and the sha256 of its bytes."""

    path: Path
    doc: dict[str, Any]
    sha256: str

    @classmethod
    def read(cls, path: str | Path) -> Source:
        path = Path(path)
        doc = read_results(path)
        return cls(path, doc, hashlib.sha256(path.read_bytes()).hexdigest())

    def record(self) -> dict[str, Any]:
        """The entry of the merged file's ``sources`` (the file's name only: paths stay local)."""
        return {"file": self.path.name, "sha256": self.sha256, "zsadbench_version": self.doc["zsadbench_version"],
                "created": self.doc["created"]}


def input_files(paths: Sequence[str | Path]) -> list[Path]:
    """The files named, a folder standing for its ``*.json`` files (in name order)."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found = sorted(p.glob("*.json"))
            if not found:
                raise DataError(f"{p} holds no *.json results file; pass files written by `zsadbench export`")
            out += found
        elif p.is_file():
            out.append(p)
        else:
            raise DataError(f"results file {p} does not exist; pass files written by `zsadbench export`")
    return out


def merge_sources(sources: Sequence[Source]) -> list[StoredCell]:
    """The cells of every source, checked to be comparable and deduplicated (see the module's rules)."""
    check_compatible(sources)
    kept: dict[tuple, tuple[Source, StoredCell]] = {}
    for source in sources:
        for cell in stored_cells(source.doc):
            key = table_cell(cell)
            if key not in kept:
                kept[key] = (source, cell)
                continue
            first, other = kept[key]
            if other.status == "ok" and cell.status == "ok":
                differs = _differing(other.metrics, cell.metrics)
                if differs:
                    name, a, b = differs
                    raise DataError(f"{first.path} and {source.path}: both hold {cell.describe()}, with different "
                                    f"metrics ({name}: {a!r} and {b!r}); keep that cell in one file only")
            elif cell.status == "ok":
                kept[key] = (source, cell)
    return [cell for _, cell in kept.values()]


def table_cell(cell: StoredCell) -> tuple:
    """What makes a cell one number of a table's column: its variant, dataset, category and seed."""
    protocol = (cell.provenance.protocol or "") if cell.aux else ""
    return (cell.method, cell.config_hash, cell.shots, cell.pretrained, cell.random_init, cell.precision, cell.aux,
            protocol, cell.eval_size, cell.provenance.test_limit or 0, cell.dataset, cell.category, cell.seed)


def _differing(a: dict[str, float], b: dict[str, float]) -> tuple[str, float, float] | None:
    for name in sorted(set(a) | set(b)):
        x, y = a.get(name, math.nan), b.get(name, math.nan)
        if not (x == y or (math.isnan(x) and math.isnan(y))):
            return name, x, y
    return None


@dataclass(frozen=True)
class _Entry:
    """One variant on one dataset in one file: what must agree across files."""

    source: Source
    method: str
    dataset: str
    random_init: bool
    tag: str
    protocol: str
    eval_size: int
    metric_versions: tuple[tuple[str, int], ...]


def _entries(source: Source) -> list[_Entry]:
    doc = source.doc
    out = []
    for v in doc["variants"]:
        for dataset, d in v["datasets"].items():
            held = {m for cat in d["categories"].values() for c in cat["cells"] for m in c["metrics"]}
            versions = tuple(sorted((m, n) for m, n in doc["metric_versions"].items() if m in held))
            out.append(_Entry(source, v["method"], dataset, v["weights"]["random_init"], v["weights"]["tag"],
                              v["protocol"], v["eval_size"], versions))
    return out


def check_compatible(sources: Sequence[Source]) -> None:
    """Refuse, naming both files, two files that disagree for the same method and dataset on the kind of
    weights, the protocol, the evaluation size or a metric's definition."""
    by_key: dict[tuple[str, str], list[_Entry]] = {}
    for source in sources:
        for entry in _entries(source):
            by_key.setdefault((entry.method, entry.dataset), []).append(entry)
    for (method, dataset), entries in by_key.items():
        for i, a in enumerate(entries):
            for b in entries[i + 1:]:
                if a.source is not b.source:
                    _check_pair(a, b, f"{method} on {dataset}")


def _check_pair(a: _Entry, b: _Entry, what: str) -> None:
    both = f"{a.source.path} and {b.source.path}"
    if a.random_init != b.random_init:
        rand, real = (a, b) if a.random_init else (b, a)
        raise DataError(f"{both}: {what} has random-init weights in {rand.source.path} and real weights ({real.tag}) "
                        f"in {real.source.path}; random-init numbers are not results and are never merged with "
                        "real ones: leave one of the files out")
    if a.protocol != b.protocol:
        raise DataError(f"{both}: {what} was trained under the {a.protocol or 'no'} protocol in {a.source.path} and "
                        f"the {b.protocol or 'no'} protocol in {b.source.path}; merge results of one protocol")
    if a.eval_size != b.eval_size:
        raise DataError(f"{both}: {what} was evaluated at {a.eval_size} px in {a.source.path} and {b.eval_size} px "
                        f"in {b.source.path}; merge results of one --eval-size")
    versions = dict(b.metric_versions)
    for metric, n in a.metric_versions:
        if metric in versions and versions[metric] != n:
            raise DataError(f"{both}: {what} has {metric} by definition {n} in {a.source.path} and "
                            f"{versions[metric]} in {b.source.path}; export both with the same zsadbench")


def merged_document(sources: Sequence[Source]) -> tuple[list[StoredCell], dict[str, Any], list[str]]:
    """The merged cells, the merged results document and notes on the intervals carried over."""
    cells = merge_sources(sources)
    docs = [s.doc for s in sources]
    intervals, settings = document_intervals(docs, cells_frame(cells))
    notes = []
    other = [s.path for s in sources if s.doc["intervals"] not in (None, settings)]
    if other:
        notes.append(f"intervals of {', '.join(map(str, other))} left out: computed with other settings than "
                     f"{next(s.path for s in sources if s.doc['intervals'] == settings)}")
    found = intervals.lookup() if intervals is not None else {}
    doc = results_document(cells, intervals=found, interval_settings=settings,
                           sources=[s.record() for s in sources])
    return cells, doc, notes


def write_leaderboard(directory: str | Path, cells: Sequence[StoredCell], doc: dict[str, Any]) -> Path:
    """Write the merged store and results file into ``directory`` (new, or one a merge wrote before, which is
    replaced)."""
    directory = Path(directory)
    store = ResultStore(directory)
    previous = directory / RESULTS_FILE
    if store.exists() and not (previous.is_file() and read_results(previous)["sources"]):
        raise StoreError(f"--write {directory} holds a results store that no merge wrote; pass a new folder (a "
                         "leaderboard folder is replaced only by another merge)")
    staging = directory / f".merge-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        fresh = ResultStore(staging)
        for cell in cells:
            fresh.put(cell)
        for suffix in ("-wal", "-shm", ""):
            Path(f"{store.db_path}{suffix}").unlink(missing_ok=True)
        os.replace(fresh.db_path, store.db_path)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return write_results(previous, doc)
