"""``write_plots``: every figure of one kind (or all kinds) of a results folder into a folder."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..errors import ConfigError
from ..store import ResultStore
from .experts import plot_experts
from .scale import plot_scale
from .shots import plot_shots

KINDS = {"scale": plot_scale, "experts": plot_experts, "shots": plot_shots}


def write_plots(out: str | Path, dest: str | Path, kinds: Sequence[str] = tuple(KINDS)) -> list[Path]:
    """Draw ``kinds`` from the results in ``out`` into ``dest`` (PNG and PDF); returns the files written."""
    unknown = [k for k in kinds if k not in KINDS]
    if unknown:
        raise ConfigError(f"unknown plot kind(s) {', '.join(map(repr, unknown))}; choose from {', '.join(KINDS)}")
    store = ResultStore(out)
    if not store.exists():
        raise ConfigError(f"no results in {out}: run `zsadbench run ... --out {out}` first")
    return [path for kind in kinds for path in KINDS[kind](store, Path(dest))]
