"""A VisualAD and a PromptAD fit killed with SIGKILL mid-training resume from their last epoch through ``zsadbench
run`` and store the metrics an uninterrupted run stores, bit for bit.

The child process is the real CLI; the only thing added is a wrapper around ``EpochCheckpoints.save`` that
records each saved epoch in a file and, when asked, kills the process right after saving one.
"""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tiny_configs import TINY

DRIVER = textwrap.dedent("""
    import os, signal, sys
    from zsadbench.store.checkpoints import EpochCheckpoints
    from zsadbench.cli.main import main

    save = EpochCheckpoints.save
    kill_after = int(os.environ.get("KILL_AFTER_EPOCH", "0"))

    def recording_save(self, epoch, state):
        save(self, epoch, state)
        with open(os.environ["EPOCH_LOG"], "a") as log:
            log.write(f"{epoch}\\n")
        if epoch == kill_after:
            os.kill(os.getpid(), signal.SIGKILL)

    EpochCheckpoints.save = recording_save
    sys.exit(main(sys.argv[1:]))
""")

CASES = {
    # method: (its tiny configuration with more epochs, shots, the epoch after which the process is killed)
    "visualad": ({**TINY["visualad"], "epochs": 3}, "0", 2),
    "promptad": ({**TINY["promptad"], "epochs_seg": 2, "epochs_cls": 2}, "1", 3),  # killed in the second phase
}


def _run(method: str, out: Path, log: Path, kill_after: int = 0) -> subprocess.CompletedProcess:
    config, shots, _ = CASES[method]
    sets = [arg for k, v in config.items()
            for arg in ("--set", f"{k}={','.join(map(str, v)) if isinstance(v, tuple) else v}")]
    args = [sys.executable, "-c", DRIVER, "run", "--method", method, "--datasets", "synthetic", "--pretrained", "none",
            "--shots", shots, "--eval-size", "32", "--threads", "1", "--no-table", "--out", str(out), *sets]
    env = {**os.environ, "ZSADBENCH_SYNTHETIC_SIZE": "small", "ZSADBENCH_CACHE": str(out.parent / "data-cache"),
           "EPOCH_LOG": str(log), "KILL_AFTER_EPOCH": str(kill_after)}
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=600)


def _metrics(out: Path) -> dict[tuple, dict]:
    with sqlite3.connect(out / "results.sqlite") as conn:
        rows = conn.execute("SELECT category, shots, seed, metrics_json FROM cells WHERE status = 'ok'").fetchall()
    return {tuple(row[:3]): json.loads(row[3]) for row in rows}


@pytest.mark.parametrize("method", sorted(CASES))
def test_a_fit_killed_mid_training_resumes_from_its_last_epoch_with_identical_results(method, tmp_path):
    _, _, kill_after = CASES[method]
    killed_log, clean_log = tmp_path / "killed.log", tmp_path / "clean.log"
    killed = _run(method, tmp_path / "killed", killed_log, kill_after)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    epochs_before = killed_log.read_text().split()
    assert epochs_before == [str(e) for e in range(1, kill_after + 1)]

    resumed = _run(method, tmp_path / "killed", killed_log)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    clean = _run(method, tmp_path / "clean", clean_log)
    assert clean.returncode == 0, clean.stderr[-2000:]

    total = len(clean_log.read_text().split()) // (1 if method == "visualad" else 3)  # PromptAD: 3 categories
    after_kill = killed_log.read_text().split()[kill_after:]
    assert after_kill[: total - kill_after] == [str(e) for e in range(kill_after + 1, total + 1)]  # resumed, not redone
    assert len(killed_log.read_text().split()) == len(clean_log.read_text().split())  # no epoch trained twice
    assert _metrics(tmp_path / "killed") == _metrics(tmp_path / "clean")
    assert not list((tmp_path / "killed" / "cache" / "checkpoints").glob("*/last.pt"))
