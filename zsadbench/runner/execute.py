"""Executing a run plan: the driver, which alone writes the results store.

For each fit group the driver leases the group's pending cells, hands them to
:func:`~zsadbench.runner.worker.compute_group` (in this process, or on an executor), and stores each outcome
as soon as it arrives: artifact first, row last. Storing (compressing the maps, writing the artifact and the
row) runs on one background thread while the next cell is computed; the run waits for it before it ends or
stops, so an interrupt loses no computed cell. A lease held by another live run means that run computes the
cell; it is skipped here and named at the end.
"""
from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
from rich.markup import escape

from ..machine import available_cpus
from ..store import ResultStore, StoredCell
from ..store.artifacts import encode
from ..store.manifest import SupportManifest
from .loggers import CellLogger, cell_logger
from .plan import Cell, FitGroup, RunConfig
from .planner import Plan, build_plan
from .progress import RunDisplay
from .worker import CellOutcome, compute_group, failure, score_outcome, seed_everything

__all__ = ["BackgroundWriter", "RunSummary", "evaluate", "execute_plan", "intact_finished", "lease_pending", "maps_to_keep",
           "seed_everything", "store_outcome"]


@dataclass
class RunSummary:
    """What a run did: counts, the error of every failed cell, and cells left to other runs."""

    done: int = 0
    cached: int = 0
    failed: int = 0
    failures: list[tuple[Cell, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    elsewhere: list[tuple[Cell, str]] = field(default_factory=list)


def evaluate(config: RunConfig, display: RunDisplay | None = None) -> RunSummary:
    """Run every cell of ``config`` that is not already in the store; returns a summary.

    A failing cell is stored with its error and the sweep goes on. ``KeyboardInterrupt`` propagates after
    the cell in flight is abandoned; every finished cell is already stored.
    """
    return execute_plan(build_plan(config), display)


def execute_plan(plan: Plan, display: RunDisplay | None = None) -> RunSummary:
    """Compute every pending cell of ``plan`` in this process and store it."""
    store = ResultStore(plan.config.out)
    summary = RunSummary(notes=list(plan.notes))
    store.remove_stale_temporaries()
    display = display or RunDisplay(len(plan.cells))
    finished, damaged = intact_finished(store, plan, display)
    with display, cell_logger(plan.config.log, store.out) as logger, BackgroundWriter() as writer:
        for group in plan.groups:
            pending = lease_pending(store, plan, group, finished, summary, display, damaged)
            if not pending:
                continue
            try:
                for outcome in compute_group(plan, group, list(pending), store.out, display.step, score=False):
                    pending.remove(outcome.cell)
                    writer.submit(store_outcome, plan, store, outcome, summary, display, logger)
            finally:
                # The next group's cells compute while this group's are stored; only an interrupted group waits
                # for its computed cells to be stored before giving back the leases of the rest.
                if pending:
                    writer.drain()
                    for cell in pending:
                        store.release(cell.cell_id)
    return summary


class BackgroundWriter:
    """Runs store jobs in order on one thread, at most ``depth`` behind; a job's error is raised by the next
    :meth:`submit` or by :meth:`drain`. A job's metric kernels get a quarter of the CPUs while the run computes
    beside it, and every CPU once the run only waits for the stores (:meth:`drain`). The metrics are the same bits
    for any thread count."""

    def __init__(self, depth: int = 2) -> None:
        self.depth = depth
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="zsadbench-store")
        self._pending: deque[Future] = deque()
        self._waiting = False

    def submit(self, job: Callable[..., Any], *args: Any) -> None:
        self._pending.append(self._pool.submit(self._run, job, *args))
        while len(self._pending) > self.depth:
            self._pending.popleft().result()

    def _run(self, job: Callable[..., Any], *args: Any) -> Any:
        import numba

        share = available_cpus() if self._waiting else available_cpus() // 4
        numba.set_num_threads(max(1, min(share, numba.config.NUMBA_NUM_THREADS)))
        return job(*args)

    def drain(self) -> None:
        """Wait for every submitted job."""
        self._waiting = True
        try:
            while self._pending:
                self._pending.popleft().result()
        finally:
            self._waiting = False

    def __enter__(self) -> "BackgroundWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.drain()
        finally:
            self._pool.shutdown(wait=True)


def intact_finished(store: ResultStore, plan: Plan, display: RunDisplay) -> tuple[set[str], set[str]]:
    """The ids of this plan's stored successful cells whose artifact looks intact, and of those whose artifact
    is damaged or missing (named on the display; they are computed again)."""
    if plan.config.force:
        return set(), set()
    wanted = {cell.cell_id for cell in plan.cells}
    finished, damaged = set(), set()
    for row in store.rows():
        if row.status != "ok" or row.cell_id not in wanted:
            continue
        problem = store.artifact_problem(row)
        if problem is None:
            finished.add(row.cell_id)
        else:
            damaged.add(row.cell_id)
            display.note(f"[yellow]note[/]: {row.describe()}: {problem}; computing the cell again")
    return finished, damaged


def lease_pending(store: ResultStore, plan: Plan, group: FitGroup, finished: set[str], summary: RunSummary,
                  display: RunDisplay, damaged: frozenset[str] | set[str] = frozenset()) -> list[Cell]:
    """The group's cells this run computes: not finished (or stored with a ``damaged`` artifact), and not
    leased by another live run."""
    pending = []
    for cell in group.cells:
        if cell.cell_id in finished:
            summary.cached += 1
            display.cell_finished("cached", "")
            continue
        holder = store.acquire(cell.cell_id, force=plan.config.force or cell.cell_id in damaged)
        if holder == "done":
            summary.cached += 1
            display.cell_finished("cached", "")
        elif holder is not None:
            summary.elsewhere.append((cell, holder))
            display.cell_finished("cached", f"[cyan]…[/] {escape(plan.describe(cell))}: being computed by another run ({holder})")
        else:
            pending.append(cell)
    return pending


def store_outcome(plan: Plan, store: ResultStore, outcome: CellOutcome, summary: RunSummary, display: RunDisplay,
                  logger: CellLogger | None = None) -> None:
    """Write one outcome (artifact, manifest record, row), release its lease, count and show it, and hand the
    stored row to ``logger`` (``--log``)."""
    cell = outcome.cell
    artifact = None
    if outcome.status == "ok":
        try:
            outcome = score_outcome(outcome, plan.adapters[cell.dataset].metric_levels)
        except Exception as exc:  # noqa: BLE001 - a cell whose metrics fail fails alone, as in the worker
            outcome = failure(cell, exc)
    if outcome.status == "ok":
        outcome, artifact = _write_artifact(plan, store, outcome)
        if outcome.support is not None:
            SupportManifest(store.out).record(**outcome.support)
    stored = _stored(plan, outcome, artifact)
    written = store.put(stored)
    store.release(cell.cell_id)
    if outcome.status == "ok":
        summary.done += 1
        shown = "  ".join(f"{_label(k)} {100 * v:.1f}" for k, v in outcome.metrics.items() if v == v)
        wall = outcome.provenance.wall_seconds or 0.0
        display.cell_finished("done", f"[green]✓[/] {escape(plan.describe(cell))}  {shown}  ({wall:.1f} s)")
    else:
        summary.failed += 1
        kept = "" if written else " (the stored good result is kept)"
        summary.failures.append((cell, outcome.error + kept))
        display.cell_finished("failed", f"[red]✗[/] {escape(plan.describe(cell))}: {outcome.error}{kept}")
    if logger is not None:
        logger.log_cell(stored)


#: Cases per kind whose maps ``--keep-maps gallery`` keeps: galleries of up to this many per kind are complete.
GALLERY_CASES = 4


def maps_to_keep(policy: str, scores: np.ndarray, labels: np.ndarray, keys: list[str]) -> np.ndarray | None:
    """The images whose maps an artifact keeps under ``--keep-maps policy`` (``None``: all)."""
    if policy == "all":
        return None
    if policy == "none":
        return np.zeros(0, np.int64)
    from ..viz.cases import pick_cases

    return np.array(sorted({case.index for case in pick_cases(keys, scores, labels, GALLERY_CASES)}), np.int64)



def _write_artifact(plan: Plan, store: ResultStore, outcome: CellOutcome) -> tuple[CellOutcome, str]:
    """Encode and write a computed cell's artifact; the outcome comes back with the artifact's size and
    encode/write time in its provenance."""
    cell, arrays = outcome.cell, outcome.arrays
    started = time.perf_counter()
    policy = plan.config.keep_maps
    keep = maps_to_keep(policy, arrays["pred_score"], arrays["gt_label"], arrays["image_keys"])
    provenance = replace(outcome.provenance, keep_maps=policy)
    outcome = replace(outcome, provenance=provenance)
    encoded = encode(
        image_keys=arrays["image_keys"],
        pred_score=arrays["pred_score"],
        gt_label=arrays["gt_label"],
        levels=arrays["levels"],
        map_min=arrays["map_min"],
        map_max=arrays["map_max"],
        gt_mask=arrays["gt_mask"],
        record={**_stored(plan, outcome, None).record(), "artifact": f"cells/{cell.cell_id}.npz"},
        keep=keep,
        keep_maps=policy,
    )
    artifact = store.save_artifact(cell.cell_id, encoded)
    stages = {**(provenance.stage_seconds or {}), "artifact": round(time.perf_counter() - started, 4)}
    size = store.artifact_path(cell.cell_id).stat().st_size
    provenance = replace(provenance, stage_seconds=stages, artifact_bytes=size,
                         artifact_checksum=str(encoded["checksum"]))
    return replace(outcome, provenance=provenance), artifact


def _label(name: str) -> str:
    from ..metrics import METRICS

    return METRICS[name].label


def _stored(plan: Plan, outcome: CellOutcome, artifact: str | None) -> StoredCell:
    cell = outcome.cell
    spec = plan.spec_for(cell)
    adapter = plan.adapters[cell.dataset]
    return StoredCell.of(
        cell,
        method_label=spec.label,
        config_json=spec.config.to_json(),
        dataset_label=adapter.title or cell.dataset,
        domain=adapter.domain,
        random_init=spec.weights.random,
        status=outcome.status,
        error=outcome.error,
        artifact=artifact,
        metrics=outcome.metrics,
        provenance=outcome.provenance,
    )
