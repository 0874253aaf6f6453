"""Sending each finished cell to an experiment tracker: ``zsadbench run --log mlflow|tensorboard``.

The run hands every cell it stores to :meth:`CellLogger.log_cell` (on its storing thread, once the row is
written) and closes the logger when it ends. Each method variant (method, config, weights, precision) is one
tracker run, named by its label; the cell is in each metric's name, ``<dataset>/<category>/<k>-shot/seed<S>/<metric>``,
and in the names of the tags that hold its provenance. The variant's config, weights and precision are its run's
params. A tracker's package is imported only when its logger is opened, so a run without ``--log`` never loads it.
"""
from __future__ import annotations

import json
import os
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..store.schema import StoredCell

BACKENDS = ("mlflow", "tensorboard")
#: the longest tag or param value sent; MLflow refuses longer ones (5000 characters in its older releases)
MAX_VALUE = 5000
#: provenance left out of the per-cell tags: the environment is the run's (tagged once), a traceback is the store's
_RUN_LEVEL = ("environment", "traceback")


@dataclass(frozen=True)
class LogTarget:
    """``--log BACKEND`` and ``--log-dir``: the tracker a run sends its cells to, and its folder (``None``: the
    backend's default, see :func:`cell_logger`)."""

    backend: str
    folder: Path | None = None

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ConfigError(f"--log must be one of {', '.join(BACKENDS)}, got {self.backend!r}")


class CellLogger(ABC):
    """Receives each cell a run stores, in order, from one thread; closed once when the run ends."""

    @abstractmethod
    def log_cell(self, cell: StoredCell) -> None:
        """Send one stored cell: its metrics (if it succeeded), its status and provenance."""

    @abstractmethod
    def close(self) -> None:
        """Finish every tracker run this logger opened."""


def _key(text: str) -> str:
    """``text`` with the characters tracker keys refuse replaced by ``_``."""
    return re.sub(r"[^\w.\- /]", "_", text)


def _text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= MAX_VALUE else text[: MAX_VALUE - 1] + "…"


def cell_name(cell: StoredCell) -> str:
    """The cell as the prefix of its metric and tag names: ``<dataset>/<category>/<k>-shot/seed<S>``."""
    return _key(f"{cell.dataset}/{cell.category}/{cell.shots}-shot/seed{cell.seed}")


def _variant(cell: StoredCell) -> tuple[str, str, str, str]:
    return cell.method, cell.config_hash, cell.pretrained, cell.precision


def variant_params(cell: StoredCell) -> dict[str, str]:
    """What all cells of the cell's variant share: the method, its config (``config.<field>``), weights,
    precision and evaluation size."""
    config = {f"config.{name}": _text(value) for name, value in json.loads(cell.config_json).items()}
    return {"method": cell.method, "method_version": cell.method_version, **config, "pretrained": cell.pretrained,
            "weights_id": cell.weights_id, "random_init": str(cell.random_init), "precision": cell.precision,
            "eval_size": str(cell.eval_size)}


def cell_tags(cell: StoredCell) -> dict[str, str]:
    """The cell's identity, status and provenance, each under ``<cell name>/``."""
    prefix = cell_name(cell)
    values: dict[str, Any] = {"cell_id": cell.cell_id, "status": cell.status, "aux": cell.aux,
                              "data_digest": cell.data_digest}
    if cell.error:
        values["error"] = cell.error
    values.update((k, v) for k, v in cell.provenance.to_dict().items() if k not in _RUN_LEVEL)
    return {f"{prefix}/{_key(name)}": _text(value) for name, value in values.items()}


def _metrics(cell: StoredCell) -> dict[str, float]:
    """The cell's metrics by their full names; metrics that do not apply (NaN) are left out."""
    prefix = cell_name(cell)
    return {f"{prefix}/{name}": float(value) for name, value in cell.metrics.items() if value == value}


def _environment(cell: StoredCell) -> dict[str, str]:
    environment = cell.provenance.environment or {}
    return {f"environment.{_key(name)}": _text(value) for name, value in environment.items()}


def _import_error(backend: str, package: str, exc: ImportError) -> ConfigError:
    return ConfigError(f"--log {backend} needs the {package} package, which cannot be imported ({exc}): "
                       f"pip install {package}")


class MLflowLogger(CellLogger):
    """One MLflow run per method variant in the experiment ``$MLFLOW_EXPERIMENT_NAME`` (default ``zsadbench
    <results folder name>``), tracked at ``$MLFLOW_TRACKING_URI``, or in a local folder (``--log-dir``, which wins,
    else ``OUT/mlruns``) as the SQLite database ``mlflow.db`` with an ``artifacts`` folder: MLflow 3 refuses its
    older file store. Each cell is one ``log_batch`` call."""

    def __init__(self, folder: Path | None, out: Path) -> None:
        try:
            import mlflow
            from mlflow.entities import Metric, Param, RunTag
        except ImportError as exc:
            raise _import_error("mlflow", "mlflow", exc) from exc
        self._entities = Metric, Param, RunTag
        if folder is None and not os.environ.get("MLFLOW_TRACKING_URI"):
            folder = out / "mlruns"
        artifacts = None
        if folder is not None:
            folder = folder.resolve()
            folder.mkdir(parents=True, exist_ok=True)
            artifacts = (folder / "artifacts").as_uri()
        self.client = mlflow.MlflowClient(tracking_uri=None if folder is None else f"sqlite:///{folder / 'mlflow.db'}")
        name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or f"zsadbench {out.resolve().name}"
        experiment = self.client.get_experiment_by_name(name)
        self.experiment_id = (experiment.experiment_id if experiment is not None
                              else self.client.create_experiment(name, artifact_location=artifacts))
        self.runs: dict[tuple[str, str, str, str], str] = {}

    def _run(self, cell: StoredCell) -> str:
        variant = _variant(cell)
        if variant not in self.runs:
            tags = {"zsadbench.method": cell.method, "zsadbench.config_hash": cell.config_hash, **_environment(cell)}
            run = self.client.create_run(self.experiment_id, run_name=cell.method_label, tags=tags)
            self.runs[variant] = run.info.run_id
            _, Param, _ = self._entities
            self.client.log_batch(run.info.run_id, params=[Param(k, v) for k, v in variant_params(cell).items()])
        return self.runs[variant]

    def log_cell(self, cell: StoredCell) -> None:
        Metric, _, RunTag = self._entities
        now = int(time.time() * 1000)
        self.client.log_batch(self._run(cell), metrics=[Metric(k, v, now, 0) for k, v in _metrics(cell).items()],
                              tags=[RunTag(k, v) for k, v in cell_tags(cell).items()])

    def close(self) -> None:
        for run_id in self.runs.values():
            self.client.set_terminated(run_id)


class TensorBoardLogger(CellLogger):
    """One ``SummaryWriter`` per method variant, writing event files to ``<folder>/<label>-<config hash>``
    (``folder``: ``--log-dir``, else ``OUT/tensorboard``): a scalar per metric, and the variant's params and
    each cell's provenance as text."""

    def __init__(self, folder: Path | None, out: Path) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:
            raise _import_error("tensorboard", "tensorboard", exc) from exc
        self._summary_writer = SummaryWriter
        self.folder = folder if folder is not None else out / "tensorboard"
        self.writers: dict[tuple[str, str, str, str], Any] = {}

    def _writer(self, cell: StoredCell) -> Any:
        variant = _variant(cell)
        if variant not in self.writers:
            name = re.sub(r"[^\w.\-]", "_", f"{cell.method_label}-{cell.config_hash[:8]}")
            writer = self._summary_writer(log_dir=str(self.folder / name))
            writer.add_text("params", _table({**variant_params(cell), **_environment(cell)}))
            self.writers[variant] = writer
        return self.writers[variant]

    def log_cell(self, cell: StoredCell) -> None:
        writer = self._writer(cell)
        for name, value in _metrics(cell).items():
            writer.add_scalar(name, value, global_step=0)
        writer.add_text(f"{cell_name(cell)}/provenance", _table(cell_tags(cell)))
        writer.flush()

    def close(self) -> None:
        for writer in self.writers.values():
            writer.close()


def _table(values: dict[str, str]) -> str:
    """``values`` as a Markdown table (TensorBoard renders text as Markdown)."""
    cells = [f"| {k} | {v.replace('|', '/')} |" for k, v in values.items()]
    return "\n".join(["| name | value |", "|---|---|", *cells])


LOGGERS: dict[str, type[CellLogger]] = {"mlflow": MLflowLogger, "tensorboard": TensorBoardLogger}


@contextmanager
def cell_logger(target: LogTarget | None, out: Path) -> Iterator[CellLogger | None]:
    """The logger of ``target`` for a run writing ``out`` (``None`` without ``--log``), closed when the block ends.
    A missing package fails here, before any cell is computed, with one line naming ``pip install``."""
    if target is None:
        yield None
        return
    logger = LOGGERS[target.backend](target.folder, Path(out))
    try:
        yield logger
    finally:
        logger.close()
