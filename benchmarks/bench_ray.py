"""Speed-up of a sweep on a local Ray cluster with two workers over one, next to the local executor.

The sweep is WinCLIP (zero-shot and WinCLIP+ few-shot) on the tiny random backbone over the synthetic set:
its cells take a real fraction of a second on a CPU, and each few-shot (category, shots, seed) and each
zero-shot cell is its own Ray task. Every executor writes its own output folder; the script checks that all
of them hold the same cells with bitwise-equal metrics, then prints a Markdown table.

    python benchmarks/bench_ray.py                      # 1 and 2 workers, 5 seeds of 1- and 2-shot
    python benchmarks/bench_ray.py --workers 1,2,4 --seeds 0,1,2

Random weights: the numbers measure the executor, not the method. Worker start-up (each Ray worker process
imports torch and zsadbench once) is timed apart, before the sweep; the local run is timed after a one-seed
warm-up run (compiled metric kernels), so every row times the sweep itself.
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from zsadbench.metrics import METRICS
from zsadbench.runner import RunConfig, build_plan, execute_plan
from zsadbench.runner.progress import RunDisplay
from zsadbench.runner.ray_executor import SCRATCH_ENV, execute_plan_ray, import_ray
from zsadbench.store import ResultStore


def _config(out: Path, seeds: tuple[int, ...]) -> RunConfig:
    return RunConfig(
        methods=("winclip",), datasets=("synthetic",), shots=(0, 1, 2), seeds=seeds, pretrained="none",
        out=out, device="cpu", eval_size=128, batch_size=4, overrides=(("backbone", "zsad-tiny-16-240"),),
        threads=1, workers=1,
    )


def _quiet(total: int) -> RunDisplay:
    from rich.console import Console

    return RunDisplay(total, Console(file=open(os.devnull, "w")))


def _warm_up(ray, workers: int) -> float:
    """Start every worker process and import the runner in it; returns the seconds it took."""

    def load(_: int) -> None:
        import zsadbench.runner.worker  # noqa: F401 - the import is the work
        time.sleep(1.0)  # keep this worker busy so the next call lands on another one

    started = time.perf_counter()
    task = ray.remote(load).options(num_cpus=1)
    ray.get([task.remote(i) for i in range(workers)])
    return time.perf_counter() - started - 1.0


def _frame(out: Path):
    frame = ResultStore(out).to_frame().sort_values("cell_id").reset_index(drop=True)
    return frame, [m for m in METRICS if m in frame.columns]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default="1,2", help="worker counts to compare (default: 1,2)")
    parser.add_argument("--seeds", default="0,1,2,3,4", help="seeds of the few-shot cells (default: 0,1,2,3,4)")
    args = parser.parse_args()
    workers = [int(w) for w in args.workers.split(",")]
    seeds = tuple(int(s) for s in args.seeds.split(","))
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # a throwaway single-machine cluster
    ray = import_ray()
    scratch = Path(tempfile.mkdtemp(prefix="zrb"))
    os.environ[SCRATCH_ENV] = str(scratch / "workers")  # the workers' caches go with the rest
    rows = []
    try:
        warm_plan = build_plan(_config(scratch / "warm", (0,)))  # compiles the metric kernels
        execute_plan(warm_plan, _quiet(len(warm_plan.cells)))
        plan = build_plan(_config(scratch / "local", seeds))
        groups = len(plan.groups)
        started = time.perf_counter()
        execute_plan(plan, _quiet(len(plan.cells)))
        local = time.perf_counter() - started
        rows.append(("local (this process)", "-", local, "-", scratch / "local"))
        for count in workers:
            out = scratch / f"ray{count}"
            plan = build_plan(_config(out, seeds))
            ray.init(num_cpus=count, include_dashboard=False, log_to_driver=False, _temp_dir=str(scratch / "ray"))
            try:
                warm = _warm_up(ray, count)
                started = time.perf_counter()
                execute_plan_ray(plan, _quiet(len(plan.cells)), cpus_per_cell=1, gpus_per_cell=0)
                wall = time.perf_counter() - started
            finally:
                ray.shutdown()
            rows.append((f"ray, {count} worker{'s' * (count > 1)}", f"{warm:.1f}", wall, count, out))
        reference, names = _frame(scratch / "local")
        for _, _, _, _, out in rows[1:]:
            frame, _ = _frame(out)
            if list(frame.cell_id) != list(reference.cell_id) or not np.array_equal(
                frame[names].to_numpy(float), reference[names].to_numpy(float), equal_nan=True
            ):
                raise SystemExit(f"{out}: the cells differ from the local run")
        cells = len(reference)
        one = next((wall for _, _, wall, count, _ in rows if count == 1), None)
        print(f"WinCLIP tiny random backbone, synthetic (small), shots 0/1/2, seeds {args.seeds}: {cells} cells, "
              f"{groups} fit groups; every output equals the local run "
              "cell for cell (bitwise metrics)\n")
        print("| executor | worker start s | wall s | cells/s | speed-up over 1 worker |")
        print("|---|---|---|---|---|")
        for label, warm, wall, count, _ in rows:
            speed = f"{one / wall:.2f}×" if one and count != "-" else "-"
            print(f"| {label} | {warm} | {wall:.1f} | {cells / wall:.2f} | {speed} |")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
