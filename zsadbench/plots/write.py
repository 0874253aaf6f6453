"""``write_plots``: every figure of one kind (or all kinds) of a results folder into a folder."""
from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from ..errors import ConfigError
from ..store import ResultStore
from .experts import plot_experts
from .scale import plot_scale
from .shots import plot_shots

Progress = Callable[[int, int], None]


def _one_step(plot: Callable[[ResultStore, Path], list[Path]]) -> Callable[[ResultStore, Path, Progress], list[Path]]:
    """A figure kind that reads only the stored rows, reported as one step."""
    def run(store: ResultStore, dest: Path, progress: Progress) -> list[Path]:
        progress(0, 1)
        written = plot(store, dest)
        progress(1, 1)
        return written
    return run


KINDS = {"scale": plot_scale, "experts": plot_experts, "shots": _one_step(plot_shots)}


def write_plots(out: str | Path, dest: str | Path, kinds: Sequence[str] = tuple(KINDS),
                progress: Callable[[str, int, int], None] = lambda kind, done, total: None) -> list[Path]:
    """Draw ``kinds`` from the results in ``out`` into ``dest`` (PNG and PDF); returns the files written.
    ``progress(kind, done, total)`` follows each kind: the cells a scale figure reads, the variants of the
    expert figures, one step for the few-shot curves."""
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise ConfigError(f"unknown plot kind(s) {', '.join(map(repr, unknown))}; choose from {', '.join(KINDS)}")
    store = ResultStore(out)
    if not store.exists():
        raise ConfigError(f"no results in {out}: run `zsadbench run ... --out {out}` first")
    written = []
    for kind in kinds:
        written += KINDS[kind](store, Path(dest), lambda done, total, kind=kind: progress(kind, done, total))
    return written
