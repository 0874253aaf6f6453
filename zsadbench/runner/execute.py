"""Executing a run plan: the driver, which alone writes the results store.

For each fit group the driver leases the group's pending cells, hands them to
:func:`~zsadbench.runner.worker.compute_group` (in this process, or on an executor), and stores each outcome
as soon as it arrives: artifact first, row last. A lease held by another live run means that run computes
the cell; it is skipped here and named at the end.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ..store import ResultStore, StoredCell
from ..store.artifacts import encode
from ..store.manifest import SupportManifest
from .plan import Cell, FitGroup, RunConfig
from .planner import Plan, build_plan
from .progress import RunDisplay
from .worker import CellOutcome, compute_group, seed_everything

__all__ = ["RunSummary", "evaluate", "execute_plan", "lease_pending", "seed_everything", "store_outcome"]


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
    finished = set() if plan.config.force else store.finished_ids()
    summary = RunSummary(notes=list(plan.notes))
    display = display or RunDisplay(len(plan.cells))
    with display:
        for group in plan.groups:
            pending = lease_pending(store, plan, group, finished, summary, display)
            if not pending:
                continue
            try:
                for outcome in compute_group(plan, group, list(pending), store.out, display.step):
                    store_outcome(plan, store, outcome, summary, display)
                    pending.remove(outcome.cell)
            finally:
                for cell in pending:
                    store.release(cell.cell_id)
    return summary


def lease_pending(store: ResultStore, plan: Plan, group: FitGroup, finished: set[str], summary: RunSummary,
           display: RunDisplay) -> list[Cell]:
    """The group's cells this run computes: not finished, and not leased by another live run."""
    pending = []
    for cell in group.cells:
        if cell.cell_id in finished:
            summary.cached += 1
            display.cell_finished("cached", "")
            continue
        holder = store.acquire(cell.cell_id, force=plan.config.force)
        if holder == "done":
            summary.cached += 1
            display.cell_finished("cached", "")
        elif holder is not None:
            summary.elsewhere.append((cell, holder))
            display.cell_finished("cached", f"[cyan]…[/] {cell.describe()}: being computed by another run ({holder})")
        else:
            pending.append(cell)
    return pending


def store_outcome(plan: Plan, store: ResultStore, outcome: CellOutcome, summary: RunSummary, display: RunDisplay) -> None:
    """Write one outcome (artifact, manifest record, row), release its lease, count and show it."""
    cell = outcome.cell
    artifact = None
    if outcome.status == "ok":
        stored = _stored(plan, outcome, None)
        artifact = store.save_artifact(
            cell.cell_id,
            encode(
                image_keys=outcome.arrays["image_keys"],
                pred_score=outcome.arrays["pred_score"],
                gt_label=outcome.arrays["gt_label"],
                levels=outcome.arrays["levels"],
                map_min=outcome.arrays["map_min"],
                map_max=outcome.arrays["map_max"],
                gt_mask=outcome.arrays["gt_mask"],
                record={**stored.record(), "artifact": f"cells/{cell.cell_id}.npz"},
            ),
        )
        if outcome.support is not None:
            SupportManifest(store.out).record(**outcome.support)
    stored = _stored(plan, outcome, artifact)
    written = store.put(stored)
    store.release(cell.cell_id)
    if outcome.status == "ok":
        summary.done += 1
        shown = "  ".join(f"{_label(k)} {100 * v:.1f}" for k, v in outcome.metrics.items() if v == v)
        wall = outcome.provenance.wall_seconds or 0.0
        display.cell_finished("done", f"[green]✓[/] {cell.describe()}  {shown}  ({wall:.1f} s)")
    else:
        summary.failed += 1
        kept = "" if written else " (the stored good result is kept)"
        summary.failures.append((cell, outcome.error + kept))
        display.cell_finished("failed", f"[red]✗[/] {cell.describe()}: {outcome.error}{kept}")


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
