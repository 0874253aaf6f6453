"""Progress when the output is a pipe or a log: plain periodic lines instead of invisible live bars."""
from __future__ import annotations

import io
import re

import pytest

from runner_helpers import spawn


def test_a_run_into_a_pipe_prints_plain_progress_lines(data_root, tmp_path):
    done = spawn("--plugin", "toy_plugins:ToyMethod", "--method", "toy", "--datasets", "toy", "--data-root",
                 str(data_root), "--out", str(tmp_path / "out"), ZSADBENCH_PROGRESS_EVERY="0")
    assert done.returncode == 0, done.stderr
    lines = re.findall(r"^\[\d+:\d\d:\d\d\] cells (\d)/2 \(0 failed(?:, ~\d+:\d\d:\d\d left)?\); (.+): (\d+)%$",
                       done.stderr, re.M)
    assert {"toy toy/alpha 0-shot seed=0", "toy toy/beta 0-shot seed=0"} <= {line[1] for line in lines}
    assert all(0 <= int(percent) <= 100 for *_, percent in lines)


def test_the_default_interval_keeps_a_short_run_quiet(data_root, tmp_path):
    done = spawn("--plugin", "toy_plugins:ToyMethod", "--method", "toy", "--datasets", "toy", "--data-root",
                 str(data_root), "--out", str(tmp_path / "out"))
    assert done.returncode == 0 and not re.search(r"^\[\d+:\d\d:\d\d\] cells", done.stderr, re.M)


def test_the_estimate_of_time_left_uses_the_computed_cells_only():
    from rich.console import Console

    from zsadbench.runner.progress import RunDisplay

    display = RunDisplay(10, Console(file=io.StringIO()))
    assert display.remaining() is None  # nothing computed yet
    display.done, display.failed, display.cached = 1, 1, 3  # 2 computed in 20 s; 3 cached cost nothing
    assert display.remaining(now=display._started + 20.0) == pytest.approx(10.0 * 5)
    fresh = RunDisplay(4, Console(file=io.StringIO()))
    fresh.cell_finished("cached", "")
    assert "left" not in fresh.progress.tasks[0].description
    fresh.cell_finished("done", "")
    assert re.search(r"· ~\d+:\d\d:\d\d left$", fresh.progress.tasks[0].description)
