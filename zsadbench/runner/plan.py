"""The run plan: methods × datasets × categories × shots × seeds, expanded into cells.

A *cell* is the unit that is stored once: one method configuration evaluated on one category of one
dataset, with one shot count and one seed, after training on one auxiliary set, at one evaluation
resolution. Cells are grouped into *fit groups* that share one call to ``Method.fit``: a zero-shot method
is trained once per (seed, auxiliary set) and reused across datasets; a few-shot method is fitted once per
(dataset, category, shots, seed) on the drawn support images.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..config import MethodConfig
from ..errors import ConfigError

PROTOCOLS = ("anomalyclip", "visualad")


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
    save_map_size: int = 128
    workers: int = 2

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise ConfigError(f"--protocol must be one of {', '.join(PROTOCOLS)}, got {self.protocol!r}")
        if self.eval_size < 8:
            raise ConfigError(f"--eval-size must be at least 8 pixels, got {self.eval_size}")
        if self.batch_size < 1:
            raise ConfigError(f"--batch-size must be at least 1, got {self.batch_size}")
        if not self.seeds:
            raise ConfigError("--seeds needs at least one seed")


@dataclass(frozen=True)
class Cell:
    """One stored result: its identity fields hash into ``cell_id``."""

    method: str
    config_hash: str
    dataset: str
    category: str
    shots: int
    seed: int
    aux: str
    eval_size: int
    pretrained: str

    @property
    def cell_id(self) -> str:
        text = json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:20]

    def describe(self) -> str:
        setting = f"{self.shots}-shot" if self.shots else "0-shot"
        aux = f" aux={self.aux}" if self.aux else ""
        return f"{self.method} {self.dataset}/{self.category} {setting} seed={self.seed}{aux}"


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


def apply_overrides(config: MethodConfig, method: str, overrides: tuple[tuple[str, str], ...]) -> MethodConfig:
    """Apply ``--set key=value`` / ``--set method.key=value`` overrides that concern ``method``'s config."""
    fields = set(config.to_dict())
    chosen: dict[str, Any] = {}
    for key, value in overrides:
        target, _, name = key.rpartition(".")
        if target and target != method:
            continue
        if name in fields:
            chosen[name] = value
        elif target == method:
            raise ConfigError(f"--set {key}: {method} has no option {name!r}; options: {', '.join(sorted(fields))}")
    return config.replace(**chosen) if chosen else config


def check_overrides_used(configs: dict[str, MethodConfig], overrides: tuple[tuple[str, str], ...]) -> None:
    """Raise when a ``--set`` key matches no selected method's config."""
    for key, _ in overrides:
        target, _, name = key.rpartition(".")
        owners = [m for m, c in configs.items() if name in c.to_dict() and (not target or target == m)]
        if not owners:
            raise ConfigError(f"--set {key}: no selected method has an option {name!r}")
