"""The result schema: a cell's identity, its provenance and the stored row, defined once.

The runner plans :class:`Cell` objects, records a :class:`Provenance` per computed cell and writes a
:class:`StoredCell` (the cell plus its labels and results); the store, ``rescore``, the tables and the plots
read the same :class:`StoredCell`. Nothing here imports torch.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any


@dataclass(frozen=True)
class _Identity:
    """The fields that decide a cell's numbers; see :class:`Cell`."""

    method: str
    config_hash: str
    dataset: str
    category: str
    shots: int
    seed: int
    aux: str
    eval_size: int
    pretrained: str
    precision: str = "fp32"
    method_version: str = "1"
    weights_id: str = ""
    data_digest: str = ""

    def describe(self) -> str:
        """``method dataset/category k-shot seed=S [aux=A]``, for messages."""
        setting = f"{self.shots}-shot" if self.shots else "0-shot"
        aux = f" aux={self.aux}" if self.aux else ""
        return f"{self.method} {self.dataset}/{self.category} {setting} seed={self.seed}{aux}"


@dataclass(frozen=True)
class Cell(_Identity):
    """One unit of work that is stored once; every field that can change its numbers hashes into ``cell_id``.

    Besides the method, config, dataset, category, shots, seed, auxiliary set and evaluation size, that is the
    backbone precision, the method's ``version``, the weights (a local file by its sha256) and a digest of the
    category's index, so a fixed method, other weights, another precision or changed data never reuse an old
    result. The machine, device, thread count and inference batch size are not part of it: they only change
    the rounding of float reductions (the last bits), and each cell's provenance records them.
    """

    @property
    def cell_id(self) -> str:
        """First 20 hex digits of the sha256 of the identity fields as canonical JSON."""
        text = json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:20]


@dataclass
class Provenance:
    """What a computed cell records besides its metrics (``None``: not recorded for this cell).

    ``environment`` holds Python, package versions and the git SHA; ``weights`` the backbone's weights record
    (tag, path, sha256, random); ``state``/``state_reused``/``train_seconds`` the trained state of a zero-shot
    method that trains; ``support`` the few-shot support files; ``method_stats`` a method's summed counters;
    ``worker`` the Ray worker that computed it; ``traceback`` a failure's; ``workers`` the image loading
    threads; ``stage_seconds`` where the cell's wall time went (waiting for images, predict, checks, quantise,
    metrics, and the artifact's encode and write); ``keep_maps``, ``artifact_bytes`` and ``artifact_checksum``
    (see :func:`~zsadbench.store.artifacts.content_checksum`) what its artifact holds; ``test_limit`` the
    ``--limit`` of a smoke run (at most that many test images per category). Keys of older rows that are no field
    here are kept in ``extra``.
    """

    environment: dict[str, Any] | None = None
    device: str | None = None
    threads: int | None = None
    batch_size: int | None = None
    precision: str | None = None
    wall_seconds: float | None = None
    images: int | None = None
    peak_memory: dict[str, float] | None = None
    data_root: str | None = None
    protocol: str | None = None
    aux_forced: bool | None = None
    metric_levels: list[str] | None = None
    weights: dict[str, Any] | None = None
    state: str | None = None
    state_reused: bool | None = None
    train_seconds: float | None = None
    support: list[str] | None = None
    method_stats: dict[str, Any] | None = None
    worker: dict[str, Any] | None = None
    traceback: str | None = None
    workers: int | None = None
    stage_seconds: dict[str, float] | None = None
    keep_maps: str | None = None
    artifact_bytes: int | None = None
    artifact_checksum: str | None = None
    test_limit: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The recorded fields as a JSON-able dict (unrecorded ones left out)."""
        recorded = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "extra"}
        return {**self.extra, **{k: v for k, v in recorded.items() if v is not None}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Provenance:
        """Inverse of :meth:`to_dict`; unknown keys go to ``extra``."""
        known = {f.name for f in fields(cls)} - {"extra"}
        return cls(**{k: v for k, v in data.items() if k in known},
                   extra={k: v for k, v in data.items() if k not in known})


_RESULTS = ("metrics", "provenance")


@dataclass(frozen=True, kw_only=True)
class StoredCell(_Identity):
    """One row of the results store: a :class:`Cell`'s identity, its labels, and what computing it gave."""

    cell_id: str
    method_label: str
    config_json: str
    dataset_label: str
    domain: str
    random_init: bool
    status: str
    error: str | None = None
    artifact: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    provenance: Provenance = field(default_factory=Provenance)

    @classmethod
    def of(cls, cell: Cell, **row: Any) -> StoredCell:
        """The row of ``cell`` with the other fields given by keyword."""
        return cls(**asdict(cell), cell_id=cell.cell_id, **row)

    @classmethod
    def scalar_fields(cls) -> dict[str, str]:
        """Name → annotation of each field stored as one value (all but ``metrics`` and ``provenance``)."""
        return {f.name: str(f.type) for f in fields(cls) if f.name not in _RESULTS}

    def record(self) -> dict[str, Any]:
        """The row as JSON-able values (what an artifact embeds so the store can be rebuilt from it)."""
        return {
            **{name: getattr(self, name) for name in self.scalar_fields()},
            "metrics": {k: _json_float(v) for k, v in self.metrics.items()},
            "provenance": self.provenance.to_dict(),
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> StoredCell:
        """Inverse of :meth:`record`; keys that are no field are ignored."""
        values = {k: record[k] for k in cls.scalar_fields() if k in record}
        values["random_init"] = bool(values["random_init"])
        metrics = {k: (math.nan if v is None else float(v)) for k, v in record.get("metrics", {}).items()}
        return cls(**values, metrics=metrics, provenance=Provenance.from_dict(record.get("provenance") or {}))

    def frame_record(self) -> dict[str, Any]:
        """The row as the tables and plots take it: scalar fields, the ``protocol`` it ran under ("" where
        none was recorded), the ``test_limit`` of a smoke run (0: none) and one column per metric."""
        scalars = {name: getattr(self, name) for name in self.scalar_fields()}
        return {**scalars, "protocol": self.provenance.protocol or "", "test_limit": self.provenance.test_limit or 0,
                **self.metrics}


def _json_float(value: float) -> float | None:
    value = float(value)
    return None if math.isnan(value) else value
