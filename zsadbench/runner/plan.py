"""The run plan: methods × datasets × categories × shots × seeds, expanded into cells.

A *cell* is the unit that is stored once: one method configuration evaluated on one category of one
dataset, with one shot count and one seed, after training on one auxiliary set, at one evaluation
resolution. Cells are grouped into *fit groups* that share one call to ``Method.fit``: a zero-shot method
is trained once per (seed, auxiliary set) and reused across datasets; a few-shot method is fitted once per
(dataset, category, shots, seed) on the drawn support images.
"""
from __future__ import annotations

import difflib
import itertools
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import MethodConfig
from ..errors import ConfigError
from ..machine import available_cpus
from ..method import PRECISIONS
from ..store.artifacts import KEEP_MAPS
from ..store.schema import Cell
from .loggers import LogTarget

PROTOCOLS = ("anomalyclip", "visualad")
MAX_DEFAULT_WORKERS = 16


def default_workers() -> int:
    """Image loading threads by default: the CPUs this process may use, at most 16 (decode and resize release
    the GIL, so they run in parallel with the model)."""
    return max(1, min(MAX_DEFAULT_WORKERS, available_cpus()))


@dataclass(frozen=True)
class RunConfig:
    """Everything a run needs; built by the CLI (or by hand) and passed to :func:`zsadbench.runner.evaluate`."""

    methods: tuple[str, ...]
    datasets: tuple[str, ...]
    shots: tuple[int, ...] | None = None
    seeds: tuple[int, ...] = (0,)
    pretrained: str = "default"
    data_root: Path | None = None
    out: Path = Path("runs/default")
    device: str = "cpu"
    eval_size: int = 518
    batch_size: int = 8
    protocol: str = "anomalyclip"
    aux: str | None = None
    force: bool = False
    overrides: tuple[tuple[str, str], ...] = ()
    workers: int = field(default_factory=default_workers)
    precision: str = "fp32"
    support_manifest: Path | None = None
    threads: int | None = None
    keep_maps: str = "all"
    categories: tuple[str, ...] = ()
    limit: int | None = None
    log: LogTarget | None = None

    def __post_init__(self) -> None:
        if self.threads is None:  # pinned for the whole run: results are reproducible for a given thread count
            import torch

            object.__setattr__(self, "threads", torch.get_num_threads())
        self._check()

    def _check(self) -> None:
        if self.threads < 1:
            raise ConfigError(f"--threads must be at least 1, got {self.threads}")
        if self.protocol not in PROTOCOLS:
            raise ConfigError(f"--protocol must be one of {', '.join(PROTOCOLS)}, got {self.protocol!r}")
        if self.eval_size < 8:
            raise ConfigError(f"--eval-size must be at least 8 pixels, got {self.eval_size}")
        if self.batch_size < 1:
            raise ConfigError(f"--batch-size must be at least 1, got {self.batch_size}")
        if not self.seeds:
            raise ConfigError("--seeds needs at least one seed")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"--precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.keep_maps not in KEEP_MAPS:
            raise ConfigError(f"--keep-maps must be one of {', '.join(KEEP_MAPS)}, got {self.keep_maps!r}")
        if self.workers < 1:
            raise ConfigError(f"--workers must be at least 1, got {self.workers}")
        if self.limit is not None and self.limit < 2:
            raise ConfigError(f"--limit must be at least 2 (a normal and an anomalous image), got {self.limit}")


@dataclass(frozen=True)
class FitGroup:
    """Cells that share one fitted method state."""

    method: str
    seed: int
    shots: int
    aux: str
    dataset: str | None = None
    category: str | None = None
    cells: tuple[Cell, ...] = field(default_factory=tuple)
    variant: str = ""

    @property
    def spec_key(self) -> str:
        """The key of this group's method variant in :attr:`Plan.methods`."""
        return self.variant or self.method


def auxiliary_for(dataset: str, protocol: str, forced: str | None = None) -> str:
    """The auxiliary (training) dataset paired with an evaluation dataset under a protocol.

    ``anomalyclip`` (the default): train on MVTec AD's test split, except for MVTec AD itself (VisA).
    ``visualad``: train on VisA, except for VisA itself (MVTec AD). The synthetic dataset always pairs with
    ``synthetic_aux``. ``forced`` overrides the pairing (``--aux``).
    """
    if forced:
        return forced
    if dataset == "synthetic":
        return "synthetic_aux"
    first, second = ("mvtec", "visa") if protocol == "anomalyclip" else ("visa", "mvtec")
    return second if dataset == first else first


def override_variants(
    config: MethodConfig, method: str, overrides: tuple[tuple[str, str], ...]
) -> list[tuple[dict[str, Any], MethodConfig]]:
    """The configs that ``--set`` overrides give ``method``: one, or a grid of variants.

    A scalar field given a comma list (``--set experts=3,4,5``) and a tuple field given ``|``-separated lists
    (``--set perception=1,2,3|1,2,3,4``) expand into variants; the grid is their Cartesian product. Returns
    ``(grid choices, config)`` pairs; the choices (empty without a grid) label each variant's column.
    """
    hints = typing.get_type_hints(type(config))
    chosen: dict[str, list[str]] = {}
    for key, value in overrides:
        target, _, name = key.rpartition(".")
        if target and target != method:
            continue
        if name not in hints:
            if target == method:
                options = ", ".join(sorted(config.to_dict()))
                raise ConfigError(f"--set {key}: {method} has no option {name!r}; options: {options}")
            continue
        origin = typing.get_origin(hints[name])
        separator = "|" if origin in (tuple, list) else ","
        chosen[name] = [v.strip() for v in value.split(separator)] if separator in value else [value]
    grid = {name: values for name, values in chosen.items() if len(values) > 1}
    fixed = {name: values[0] for name, values in chosen.items() if len(values) == 1}
    variants = []
    for combo in itertools.product(*grid.values()):
        choice = dict(zip(grid, combo))
        merged = {**fixed, **choice}
        variants.append((choice, config.replace(**merged) if merged else config))
    return variants


def check_overrides_used(
    configs: dict[str, MethodConfig], overrides: tuple[tuple[str, str], ...], names: dict[str, str] | None = None
) -> None:
    """Raise when a ``--set`` key matches no selected method's config (``names`` maps variant keys to methods)."""
    names = names or {m: m for m in configs}
    for key, _ in overrides:
        target, _, name = key.rpartition(".")
        owners = [m for m, c in configs.items() if name in c.to_dict() and (not target or target == names[m])]
        if not owners:
            raise ConfigError(f"--set {key}: no selected method has an option {name!r}"
                              + _suggestion(name, configs, names, target))


def _suggestion(name: str, configs: dict[str, MethodConfig], names: dict[str, str], target: str) -> str:
    """``; did you mean ...? options of M: ...`` for an unknown ``--set`` key (``zsadbench show M`` lists them
    with types and defaults)."""
    methods = sorted({names[m] for m in configs if not target or names[m] == target})
    known = sorted({option for m, c in configs.items() if names[m] in methods for option in c.to_dict()})
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.6)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    listed = "; ".join(f"options of {m}: {', '.join(sorted(next(c for k, c in configs.items() if names[k] == m).to_dict()))}"
                       for m in methods)
    shown = f" ({listed}; `zsadbench show {methods[0]}` explains each)" if methods else ""
    return hint + shown
