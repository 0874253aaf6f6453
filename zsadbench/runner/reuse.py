"""Which stored cells a run reuses that were computed under other settings that change only the last bits.

The device, the torch thread count and the inference batch size are not part of a cell's identity (they change
the rounding of float sums, not the method), so a run reuses cells computed under others. Each cell records
them; a run names the reused cells whose settings differ from its own, so a table never mixes them silently.
"""
from __future__ import annotations

from collections import Counter

from ..store import ResultStore
from .planner import Plan


def reuse_notes(plan: Plan, device: str) -> list[str]:
    """One line per group of reused cells whose device, threads or batch size differ from this run's
    (``device`` is this run's device name as provenance records it)."""
    config = plan.config
    if config.force:
        return []
    wanted = {cell.cell_id for cell in plan.cells}
    here = (device, config.threads, config.batch_size)
    others: Counter[tuple] = Counter()
    reused = 0
    for row in ResultStore(config.out).rows():
        if row.status != "ok" or row.cell_id not in wanted:
            continue
        reused += 1
        recorded = (row.provenance.device, row.provenance.threads, row.provenance.batch_size)
        differs = tuple(r if r is not None and r != h else None for r, h in zip(recorded, here))
        if any(v is not None for v in differs):
            others[differs] += 1
    notes = []
    for (other_device, threads, batch), count in sorted(others.items(), key=lambda item: -item[1]):
        what = ", ".join(part for part in (
            f"device {other_device}" if other_device else "",
            _threads(threads) if threads else "",
            f"batch size {batch}" if batch else "",
        ) if part)
        notes.append(f"{count} of the {reused} cells reused from {config.out} were computed with {what} (this run: "
                     f"{device}, {_threads(config.threads)}, batch size {config.batch_size}); they may differ from "
                     "this run's in the last bits of float sums; --force recomputes them")
    return notes


def _threads(count: int) -> str:
    return f"{count} thread" + ("" if count == 1 else "s")
