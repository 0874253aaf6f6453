"""The rich progress display of a run: cells done / cached / failed, the current cell, the time left for the run
and for the work running now."""
from __future__ import annotations

import os
import time

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn


#: Seconds between the plain progress lines printed when the output is not a terminal (a pipe, a log file);
#: ``ZSADBENCH_PROGRESS_EVERY`` sets another interval.
PLAIN_EVERY_S = 30.0


class RunDisplay:
    """Overall cell progress plus one line for the work inside the current cell. When the output is not a
    terminal, where live bars stay invisible, the current work is printed as a plain line every
    :data:`PLAIN_EVERY_S` seconds instead."""

    def __init__(self, total: int, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self.total = total
        self.plain = not self.console.is_terminal
        self.every = float(os.environ.get("ZSADBENCH_PROGRESS_EVERY", PLAIN_EVERY_S))
        self._started = self._printed = time.monotonic()
        self.done = self.cached = self.failed = 0
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=self.console,
            transient=False,
        )
        self.cells = self.progress.add_task(self._summary(), total=total)
        self.inner = self.progress.add_task("", total=1.0, visible=False)
        self._phase = ("", 0.0, 0.0, 0.0)  # (what runs, when it started, its fraction then, its last fraction)

    def _summary(self) -> str:
        left = self.remaining()
        eta = "" if left is None else f" · ~{_clock(left)} left"
        return f"cells: [green]{self.done} done[/] [cyan]{self.cached} cached[/] [red]{self.failed} failed[/]{eta}"

    def remaining(self, now: float | None = None) -> float | None:
        """Seconds the cells not finished yet should take, at the mean time of the cells computed so far (cached
        cells cost nothing and are left out); ``None`` before the first computed cell."""
        computed = self.done + self.failed
        if computed == 0:
            return None
        spent = (time.monotonic() if now is None else now) - self._started
        return spent / computed * (self.total - computed - self.cached)

    def step_remaining(self, message: str, fraction: float, now: float | None = None) -> float | None:
        """Seconds the current work should still take at its rate so far: the work is the part of ``message``
        before its first ":" and starts again when that part changes or ``fraction`` goes back; ``None`` until it
        has run a second and done 1 %."""
        now = time.monotonic() if now is None else now
        what = message.split(":", 1)[0]
        if what != self._phase[0] or fraction < self._phase[3]:
            self._phase = (what, now, fraction, fraction)
            return None
        _, started, begun_at, _ = self._phase
        self._phase = (what, started, begun_at, fraction)
        done = fraction - begun_at
        if now - started < 1.0 or done < 0.01:
            return None
        return (now - started) / done * (1.0 - fraction)

    def __enter__(self) -> "RunDisplay":
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def step(self, message: str, fraction: float) -> None:
        """Show the current work (training or inference of one cell) and its progress in ``[0,1]``."""
        fraction = min(max(fraction, 0.0), 1.0)
        now = time.monotonic()
        step_left = self.step_remaining(message, fraction, now)
        here = "" if step_left is None else f" · ~{_clock(step_left)} left"
        self.progress.update(self.inner, description=f"  {escape(message)}{here}", completed=fraction, visible=True)
        if self.plain and now - self._printed >= self.every:
            self._printed = now
            finished = self.done + self.cached + self.failed
            elapsed = _clock(now - self._started)
            left = self.remaining(now)
            eta = "" if left is None else f", ~{_clock(left)} left"
            self.console.print(f"[{elapsed}] cells {finished}/{self.total} ({self.failed} failed{eta}); {message}: "
                               f"{fraction:.0%}{here}", markup=False, highlight=False, soft_wrap=True)

    def cell_finished(self, outcome: str, line: str) -> None:
        """Count a finished cell (``done``, ``cached`` or ``failed``) and print its one-line summary."""
        setattr(self, outcome, getattr(self, outcome) + 1)
        self.progress.update(self.cells, advance=1, description=self._summary())
        self.progress.update(self.inner, visible=False)
        if line:
            self.console.print(line, highlight=False)

    def note(self, line: str) -> None:
        """Print one line above the progress bars."""
        self.console.print(line, highlight=False, soft_wrap=True)


def _clock(seconds: float) -> str:
    """``H:MM:SS`` (hours unbounded)."""
    whole = int(round(max(seconds, 0.0)))
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"
