"""Shared helpers of the runner tests: a toy data root and the CLI with the toy plugins loaded."""
from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

from zsadbench import registry
from zsadbench.cli.main import main

import toy_plugins

TESTS = Path(toy_plugins.__file__).parent


def run(*args: str) -> int:
    """``zsadbench run`` in this process with the toy dataset plugin and small maps."""
    registry.reset()
    return main(["run", "--plugin", "toy_plugins:ToyDataset", "--no-table", "--eval-size", "32", *args])


def command(*args: str) -> list[str]:
    """The same command line for a separate process."""
    return [sys.executable, "-m", "zsadbench", "run", "--plugin", "toy_plugins:ToyDataset", "--no-table",
            "--eval-size", "32", *args]


def env(**extra: str) -> dict[str, str]:
    """The environment of a subprocess that imports the toy plugins."""
    path = os.pathsep.join(p for p in (str(TESTS), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, **extra}


def spawn(*args: str, **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(command(*args), env=env(**extra), capture_output=True, text=True, timeout=600)


def stored_categories(out: Path) -> dict[str, float]:
    """``category -> created_at`` of the successful cells (empty while the store does not exist)."""
    try:
        with sqlite3.connect(out / "results.sqlite") as conn:
            return dict(conn.execute("SELECT category, created_at FROM cells WHERE status='ok'").fetchall())
    except sqlite3.OperationalError:
        return {}
