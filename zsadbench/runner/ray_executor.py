"""Executing a run plan on a Ray cluster (``zsadbench run --executor ray``).

The driver (this process) plans and leases the cells as a local run does, then submits one Ray task per unit
of work: a fit group, or a single cell of a zero-shot method that learns nothing (its fit is free, so its
cells spread over the cluster). A task fits a fresh method with
:func:`~zsadbench.runner.worker.compute_group` and streams its outcomes back as a Ray generator; the driver
stores each one as it arrives, so the results store is only ever written by the driver and never needs a
shared filesystem.

Trained states travel through Ray's object store: a state already in ``OUT/cache/states`` is sent to the task
that needs it, and a state a task trains comes back to the driver, which writes it there. A worker keeps its
caches (states, checkpoints, features) in a scratch folder of its own machine (:func:`scratch_folder`).

A task whose worker process or machine dies loses only the cells it had not reported yet: the driver
submits a new task for them (up to :data:`MAX_RETRIES` times), with the trained state if it already came
back, so a retry never recomputes a stored cell. Ray's own task retries are off for these tasks, since Ray
would rerun a generator from its first cell.

Ray is imported only here, and this module only with ``--executor ray``.
"""
from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import re
import socket
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError, ZsadError
from ..method import fit_kind
from ..store import ResultStore
from ..store.files import atomic_write_bytes
from .execute import RunSummary, intact_finished, lease_pending, store_outcome
from .plan import Cell, FitGroup
from .planner import Plan
from .progress import RunDisplay
from .worker import FATAL, CellOutcome, compute_group, failure, state_key, trains_state

#: How often the driver resubmits the unreported cells of a task whose worker process or machine died.
MAX_RETRIES = 3
#: Environment variable naming the workers' scratch folder (default: the system temporary folder).
SCRATCH_ENV = "ZSADBENCH_RAY_SCRATCH"
_PROGRESS_EVERY_S = 0.5


def import_ray():
    """The ``ray`` module, or a :class:`ConfigError` saying how to install it."""
    try:
        import ray
    except ImportError as exc:
        raise ConfigError(
            f'--executor ray needs Ray, which is not installed ({exc}); install the extra: pip install "zsadbench[ray]"'
        ) from None
    return ray


def scratch_folder(run_key: str) -> Path:
    """The folder where a worker keeps the caches of one run's output folder (``run_key``)."""
    base = os.environ.get(SCRATCH_ENV) or tempfile.gettempdir()
    return Path(base) / "zsadbench-ray" / run_key


def run_key(out: Path) -> str:
    """Names the driver's output folder across machines: its host and absolute path."""
    return hashlib.sha256(f"{socket.gethostname()}:{Path(out).resolve()}".encode()).hexdigest()[:16]


@dataclass
class _Unit:
    """One submitted task: its cells, those not yet stored, and how often it was resubmitted."""

    group: FitGroup
    waiting: list[Cell]
    attempts: int = 0


def units_of(plan: Plan, group: FitGroup, pending: list[Cell]) -> list[tuple[FitGroup, list[Cell]]]:
    """The tasks a group's pending cells become: one per cell when the method learns nothing in zero-shot
    (every cell is then independent), else one for the whole group (its state is built once)."""
    spec = plan.spec_of(group)
    if fit_kind(spec.cls, group.shots) == "none":
        return [(group, [cell]) for cell in pending]
    return [(group, pending)]


def ledger_class() -> type:
    """The class of a small actor that collects the progress messages of running tasks for the driver. It
    is made here, not at module level, so that Ray ships it by value and it starts without importing
    zsadbench (and torch)."""

    class Ledger:
        def __init__(self) -> None:
            self.progress: dict[int, tuple[str, float]] = {}

        def report(self, unit: int, message: str, fraction: float) -> None:
            self.progress[unit] = (message, fraction)

        def finished(self, unit: int) -> None:
            self.progress.pop(unit, None)

        def snapshot(self) -> dict[int, tuple[str, float]]:
            return dict(self.progress)

    return Ledger


# -- the task ------------------------------------------------------------------------------------
def run_unit(plan: Plan, group: FitGroup, cells: list[Cell], state: bytes | None, ledger, unit: int, key: str):
    """The body of one Ray task: yields ``("outcome", CellOutcome)`` for each of ``cells``, in order, and,
    for a state trained here, ``("state", key, bytes)`` before the first outcome."""
    import ray
    import torch

    if torch.device(plan.config.device).type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            f"a Ray worker on {socket.gethostname()} has no GPU for --device {plan.config.device}; pass "
            "--gpus-per-cell 1 (or a fraction), or --device cpu"
        )
    scratch = scratch_folder(key)
    spec = plan.spec_of(group)
    trained = trains_state(spec, group)
    state_path = scratch / "cache" / "states" / f"{state_key(plan, spec, group)}.pt" if trained else None
    if state is not None and not plan.config.force and not state_path.is_file():
        atomic_write_bytes(state_path, state)
    worker = _worker_info(ray)
    for index, outcome in enumerate(compute_group(plan, group, cells, scratch, _Reporter(ledger, unit))):
        if index == 0 and trained and (state is None or plan.config.force) and state_path.is_file():
            yield ("state", state_path.stem, state_path.read_bytes())
        outcome.provenance.worker = worker
        yield ("outcome", outcome)
    ledger.finished.remote(unit)


def _worker_info(ray) -> dict[str, Any]:
    context = ray.get_runtime_context()
    return {"host": socket.gethostname(), "pid": os.getpid(), "node": context.get_node_id(),
            "gpus": [str(g) for g in ray.get_gpu_ids()]}


class _Reporter:
    """The ``step`` callback of a task: forwards progress to the ledger, at most twice a second."""

    def __init__(self, ledger, unit: int) -> None:
        self.ledger, self.unit, self.last = ledger, unit, 0.0

    def __call__(self, message: str, fraction: float) -> None:
        now = time.monotonic()
        if now - self.last >= _PROGRESS_EVERY_S or fraction >= 1.0:
            self.last = now
            self.ledger.report.remote(self.unit, message, float(fraction))


# -- the driver ----------------------------------------------------------------------------------
def execute_plan_ray(
    plan: Plan,
    display: RunDisplay | None = None,
    *,
    address: str | None = None,
    gpus_per_cell: float | None = None,
    cpus_per_cell: float = 1.0,
) -> RunSummary:
    """Compute every pending cell of ``plan`` as Ray tasks and store each outcome here as it arrives.

    ``address``: ``"auto"``, ``HOST:PORT`` or ``None`` (``$RAY_ADDRESS``, else a local Ray started for the
    run). ``gpus_per_cell``: GPUs each task asks for (``None``: 1 when the cluster has GPUs, else 0); device
    ``auto`` becomes ``cuda`` when tasks get a GPU, ``cpu`` otherwise.
    """
    ray = import_ray()
    if cpus_per_cell <= 0 or (gpus_per_cell is not None and gpus_per_cell < 0):
        raise ConfigError(f"--cpus-per-cell must be > 0 and --gpus-per-cell >= 0, got {cpus_per_cell} and {gpus_per_cell}")
    connected_here = not ray.is_initialized()
    if connected_here:
        _connect(ray, address)
    try:
        if gpus_per_cell is None:
            gpus_per_cell = 1.0 if ray.cluster_resources().get("GPU", 0) > 0 else 0.0
        _check_fits(ray, cpus_per_cell, gpus_per_cell)
        if plan.config.device == "auto":
            plan = dataclasses.replace(plan, config=dataclasses.replace(
                plan.config, device="cuda" if gpus_per_cell > 0 else "cpu"))
        return _drive(ray, plan, display, cpus_per_cell, gpus_per_cell)
    finally:
        if connected_here:
            ray.shutdown()


#: Seconds to wait for a TCP answer from ``--address`` before giving up (Ray itself retries for minutes).
CONNECT_TIMEOUT_S = 10.0


def probe(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Raise :class:`ConfigError` when nothing answers at a ``[ray://]HOST:PORT`` address within ``timeout``
    seconds; other forms (``auto``, ``local``) are left to Ray."""
    import socket

    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as exc:
        raise ConfigError(
            f"--address {address}: nothing answers there within {timeout:g} s ({exc.strerror or exc}); check the "
            "HOST:PORT that `ray start --head` printed and that the cluster is up, or omit --address for a local one"
        ) from None


def _connect(ray, address: str | None) -> None:
    import logging

    if address:
        probe(address)
    try:
        ray.init(address=address, log_to_driver=False, logging_level=logging.WARNING,
                 configure_logging=True)
    except Exception as exc:  # noqa: BLE001 - Ray raises many kinds (connection, timeout, start-up); each is one line
        where = address or os.environ.get("RAY_ADDRESS") or "a local cluster"
        raise ConfigError(
            f"--address {where}: cannot connect to the Ray cluster ({type(exc).__name__}: {' '.join(str(exc).split())}); start one with "
            "`ray start --head` and pass its HOST:PORT, or omit --address for a local one"
        ) from None


def _check_fits(ray, cpus: float, gpus: float) -> None:
    """Fail now, not after a silent wait, when no machine of the cluster can hold one task."""
    nodes = [n.get("Resources", {}) for n in ray.nodes() if n.get("Alive")]
    if not any(r.get("CPU", 0) >= cpus and r.get("GPU", 0) >= gpus for r in nodes):
        largest = max(((r.get("CPU", 0), r.get("GPU", 0)) for r in nodes), default=(0, 0))
        raise ConfigError(
            f"--cpus-per-cell {cpus:g} --gpus-per-cell {gpus:g}: no node of the Ray cluster has that much (the "
            f"largest has {largest[0]:g} CPUs and {largest[1]:g} GPUs); ask for less"
        )


def _drive(ray, plan: Plan, display: RunDisplay | None, cpus: float, gpus: float) -> RunSummary:
    store = ResultStore(plan.config.out)
    summary = RunSummary(notes=list(plan.notes))
    store.remove_stale_temporaries()
    display = display or RunDisplay(len(plan.cells))
    finished, damaged = intact_finished(store, plan, display)
    driver = _Driver(ray, plan, store, summary, display, cpus, gpus)
    with display:
        try:
            for group in plan.groups:
                pending = lease_pending(store, plan, group, finished, summary, display, damaged)
                for unit_group, cells in units_of(plan, group, pending):
                    driver.submit(_Unit(unit_group, cells))
            driver.collect()
        finally:
            driver.abandon()
    return summary


class _Driver:
    """Submits tasks, stores what they stream back, resubmits the cells of tasks whose worker died."""

    def __init__(self, ray, plan: Plan, store: ResultStore, summary: RunSummary, display: RunDisplay,
                 cpus: float, gpus: float) -> None:
        self.ray, self.plan, self.store, self.summary, self.display = ray, plan, store, summary, display
        self.task = ray.remote(run_unit).options(num_cpus=cpus, num_gpus=gpus, max_retries=0)
        self.ledger = self.plan_ref = None  # made with the first task: a run with every cell stored needs neither
        self.key = run_key(plan.config.out)
        self.running: dict[Any, _Unit] = {}
        self.submitted = 0
        self.total = 0

    def submit(self, unit: _Unit) -> None:
        if self.ledger is None:
            self.ledger = self.ray.remote(ledger_class()).options(num_cpus=0).remote()
            self.plan_ref = self.ray.put(self.plan)
        if unit.attempts == 0:
            self.total += len(unit.waiting)
        generator = self.task.remote(self.plan_ref, unit.group, unit.waiting, self._cached_state(unit.group),
                                     self.ledger, self.submitted, self.key)
        self.submitted += 1
        self.running[generator] = unit

    def _cached_state(self, group: FitGroup):
        """The group's trained state from ``OUT/cache/states`` as an object reference (``None`` if absent)."""
        spec = self.plan.spec_of(group)
        if not trains_state(spec, group) or self.plan.config.force:
            return None
        path = self.store.state_path(state_key(self.plan, spec, group))
        return self.ray.put(path.read_bytes()) if path.is_file() else None

    def collect(self) -> None:
        ray, last_poll = self.ray, 0.0
        while self.running:
            ready, _ = ray.wait(list(self.running), num_returns=1, timeout=_PROGRESS_EVERY_S)
            for generator in ready:
                self._next(generator)
            if self.running and time.monotonic() - last_poll >= _PROGRESS_EVERY_S:
                last_poll = time.monotonic()
                self._show_progress()
        self.display.progress.update(self.display.inner, visible=False)

    def _next(self, generator) -> None:
        ray, unit = self.ray, self.running[generator]
        try:
            item = ray.get(next(generator))
        except StopIteration:
            self._release(self.running.pop(generator))  # every cell was reported; nothing is left
            return
        except ray.exceptions.RayError as exc:
            self._stop_if_unimportable(exc)
            self._task_failed(generator, unit, exc)
            return
        if item[0] == "state":
            atomic_write_bytes(self.store.state_path(item[1]), item[2])
        else:
            outcome: CellOutcome = item[1]
            store_outcome(self.plan, self.store, outcome, self.summary, self.display)
            unit.waiting = [c for c in unit.waiting if c.cell_id != outcome.cell.cell_id]

    @staticmethod
    def _stop_if_unimportable(exc: BaseException) -> None:
        """A worker that cannot import a plugin would fail every task alike: stop the run with the fix."""
        missing = re.search(r"No module named '([^']+)'", str(exc))
        if missing:
            raise ConfigError(
                f"a Ray worker cannot import the module {missing[1]!r} (a --plugin or what it imports): install it "
                "on every node, or start the nodes with its folder on PYTHONPATH (see the README, Sweeps on a Ray "
                "cluster)"
            ) from None

    def _task_failed(self, generator, unit: _Unit, exc: BaseException) -> None:
        ray = self.ray
        self.running.pop(generator)
        if isinstance(exc, ray.exceptions.RayTaskError):  # the task itself raised
            cause = getattr(exc, "cause", None)
            if isinstance(cause, FATAL + (ConfigError,)):
                raise cause from None
            self._fail_cells(unit, cause or exc)
            return
        unit.attempts += 1  # its worker process or machine died
        if unit.attempts > MAX_RETRIES:
            self._fail_cells(unit, exc)
        elif unit.waiting:
            self.submit(unit)

    def _fail_cells(self, unit: _Unit, exc: BaseException) -> None:
        """Store every cell a task did not report as failed with the task's error (retried on the next run)."""
        spec = self.plan.spec_of(unit.group)
        error = exc if isinstance(exc, ZsadError) else RuntimeError(" ".join(str(exc).split())[:2000])
        for cell in unit.waiting:
            store_outcome(self.plan, self.store, failure(cell, error, spec), self.summary, self.display)
        unit.waiting = []

    def _release(self, unit: _Unit) -> None:
        for cell in unit.waiting:
            self.store.release(cell.cell_id)
        unit.waiting = []

    def _show_progress(self) -> None:
        ray = self.ray
        try:
            snapshot = ray.get(self.ledger.snapshot.remote(), timeout=5)
        except ray.exceptions.RayError:
            snapshot = {}
        latest = snapshot[max(snapshot)][0] if snapshot else "waiting for workers"
        tasks = len(self.running)
        left = sum(len(u.waiting) for u in self.running.values())
        self.display.step(f"[{tasks} task{'s' * (tasks != 1)} on the cluster] {latest}", 1.0 - left / max(self.total, 1))

    def abandon(self) -> None:
        """Cancel the tasks still running (after an error or Ctrl-C) and give back their cells' leases."""
        for generator, unit in self.running.items():
            try:
                self.ray.cancel(generator)
            except Exception:  # noqa: BLE001 - a task that already ended cannot be cancelled
                pass
            self._release(unit)
        self.running.clear()


def default_threads(cpus_per_cell: float) -> int:
    """Torch threads per task when ``--threads`` is not given: the CPUs a task asks for (at least one)."""
    return max(1, math.floor(cpus_per_cell))
