"""The rich progress display of a run: cells done / cached / failed, the current cell, ETA."""
from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn


class RunDisplay:
    """Overall cell progress plus one line for the work inside the current cell."""

    def __init__(self, total: int, console: Console | None = None) -> None:
        self.console = console or Console(stderr=True)
        self.done = self.cached = self.failed = 0
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self.console,
            transient=False,
        )
        self.cells = self.progress.add_task(self._summary(), total=total)
        self.inner = self.progress.add_task("", total=1.0, visible=False)

    def _summary(self) -> str:
        return f"cells: [green]{self.done} done[/] [cyan]{self.cached} cached[/] [red]{self.failed} failed[/]"

    def __enter__(self) -> "RunDisplay":
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def step(self, message: str, fraction: float) -> None:
        """Show the current work (training or inference of one cell) and its progress in ``[0,1]``."""
        self.progress.update(self.inner, description=f"  {message}", completed=min(max(fraction, 0.0), 1.0), visible=True)

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
