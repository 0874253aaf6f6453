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
    lines = re.findall(r"^\[\d+:\d\d:\d\d\] cells (\d)/2 \(0 failed(?:, ~\d+:\d\d:\d\d left)?\); (.+): (\d+)%"
                       r"(?: · ~\d+:\d\d:\d\d left)?$", done.stderr, re.M)
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


def test_the_time_left_in_the_current_work_follows_its_own_rate():
    from rich.console import Console

    from zsadbench.runner.progress import RunDisplay

    display = RunDisplay(3, Console(file=io.StringIO()))
    t = 100.0
    assert display.step_remaining("fit nut: epoch 1/4", 0.0, now=t) is None  # just started
    assert display.step_remaining("fit nut: epoch 2/4", 0.25, now=t + 10) == pytest.approx(30.0)  # 10 s per quarter
    assert display.step_remaining("fit nut: epoch 3/4", 0.5, now=t + 40) == pytest.approx(40.0)  # slower: 40 s per half
    # another piece of work, or the same one starting over, restarts the clock
    assert display.step_remaining("predict nut: 3 of 9 images", 0.33, now=t + 41) is None
    assert display.step_remaining("predict nut: 6 of 9 images", 0.66, now=t + 44) == pytest.approx(3 / 0.33 * 0.34)
    assert display.step_remaining("predict nut: 1 of 9 images", 0.11, now=t + 45) is None
