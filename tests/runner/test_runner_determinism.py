"""A cell's numbers do not depend on what the process ran before it.

For every built-in method, a small sweep on the synthetic dataset is computed four ways: in one process; cell
group by cell group in separate processes (``--shots k --seeds s``); the same in reverse order; and killed with
SIGKILL mid-sweep, then resumed. The stored metrics must be bitwise identical (same machine, same threads).
Adding a method is one line in ``SWEEPS`` (its tiny configuration is the one of ``tiny_configs.TINY``).
"""
from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from runner_helpers import env
from tiny_configs import TINY

# method -> the sweep's (shots, seed) groups; each method runs its tiny configuration from tiny_configs.TINY
SWEEPS: dict[str, tuple[tuple[int, int], ...]] = {
    "winclip": ((0, 0), (1, 0), (1, 1)),
    "visualad": ((0, 0), (0, 1)),
    "anomalyclip": ((0, 0), (0, 1)),
    "mpa": ((0, 0), (0, 1)),
    "mpama": ((0, 0), (0, 1)),
    "promptad": ((1, 0), (1, 1)),
    "finegrainedad": ((1, 0), (1, 1)),
    "patchcore": ((1, 0), (1, 1)),
    "padim": ((1, 0), (1, 1)),
    "spade": ((1, 0), (1, 1)),
    "vand": ((0, 0), (1, 0)),
    "inctrl": ((1, 0), (1, 1)),
    "adaclip": ((0, 0), (0, 1)),
    "faprompt": ((0, 0), (0, 1)),
}


def overrides(method: str) -> list[str]:
    """``--set`` arguments of the method's tiny configuration (shipped captions cover the synthetic set)."""
    args = []
    for key, value in TINY[method].items():
        if key == "captions_dir":
            continue
        text = ",".join(map(str, value)) if isinstance(value, tuple) else str(value)
        args += ["--set", f"{key}={text}"]
    return args


def command(method: str, out: Path, groups: tuple[tuple[int, int], ...], cache: Path) -> tuple[list[str], dict]:
    shots = ",".join(sorted({str(k) for k, _ in groups}, key=int))
    seeds = ",".join(sorted({str(s) for _, s in groups}, key=int))
    args = [sys.executable, "-m", "zsadbench", "run", "--method", method, "--datasets", "synthetic", "--pretrained",
            "none", "--shots", shots, "--seeds", seeds, "--eval-size", "64", "--batch-size", "1", "--threads", "2",
            "--out", str(out), "--no-table", *overrides(method)]
    return args, env(ZSADBENCH_CACHE=str(cache), ZSADBENCH_SYNTHETIC_SIZE="small")


def metrics(out: Path) -> dict[str, str]:
    with sqlite3.connect(out / "results.sqlite") as conn:
        return dict(conn.execute("SELECT cell_id, metrics_json FROM cells WHERE status = 'ok'").fetchall())


def finished(out: Path) -> int:
    try:
        with sqlite3.connect(out / "results.sqlite") as conn:
            return conn.execute("SELECT count(*) FROM cells WHERE status = 'ok'").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def run_groups(method: str, out: Path, groups, cache: Path) -> None:
    for group in groups:
        args, environment = command(method, out, (group,), cache)
        result = subprocess.run(args, env=environment, capture_output=True, text=True, timeout=600)
        assert result.returncode == 0, result.stderr[-2000:]


@pytest.mark.parametrize("method", sorted(SWEEPS))
def test_cells_are_identical_alone_in_a_sweep_reversed_and_after_a_kill(method, tmp_path):
    groups = SWEEPS[method]
    cache = tmp_path / "cache"
    whole, alone, backwards, killed = (tmp_path / n for n in ("whole", "alone", "backwards", "killed"))
    args, environment = command(method, whole, groups, cache)
    result = subprocess.run(args, env=environment, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    reference = metrics(whole)
    assert len(reference) >= 3 * len(groups)

    with ThreadPoolExecutor(2) as pool:  # two independent orders side by side
        jobs = [pool.submit(run_groups, method, alone, groups, cache),
                pool.submit(run_groups, method, backwards, tuple(reversed(groups)), cache)]
        for job in jobs:
            job.result()

    args, environment = command(method, killed, groups, cache)
    process = subprocess.Popen(args, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while finished(killed) < 2 and process.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    interrupted_at = finished(killed)
    assert 0 < interrupted_at < len(reference), "the kill should land mid-sweep"
    result = subprocess.run(args, env=environment, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]

    for out in (alone, backwards, killed):
        found = metrics(out)
        assert found.keys() == reference.keys(), out.name
        differing = [cell for cell in reference if json.loads(found[cell]) != json.loads(reference[cell])]
        assert not differing, (out.name, differing[:3])
