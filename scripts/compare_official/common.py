"""What every comparison with the official code shares: the tiny backbones, the stored configuration, and the
table of differences."""
from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
from pathlib import Path
from types import ModuleType

import numpy as np
import open_clip
import torch

from zsadbench.backbones import create_clip
from zsadbench.backbones.clip import ClipBackbone, register_model_configs

HERE = Path(__file__).resolve().parent


def config_json(config: object) -> str:
    """A method config as sorted JSON, stored beside the official outputs to tie them to that configuration."""
    return json.dumps(dataclasses.asdict(config), sort_keys=True)


def register_backbone(name: str) -> None:
    """Make the tiny architecture ``name`` (``<name>.json`` in this folder) known to open_clip (idempotent)."""
    register_model_configs()
    if name not in open_clip.list_models():
        open_clip.add_model_config(HERE / f"{name}.json")


def native_backbone(name: str) -> ClipBackbone:
    """The tiny backbone ``name`` at its native size, with the seeded random weights zsadbench gives
    ``pretrained="none"``."""
    register_backbone(name)
    return create_clip(name, "none")


def differences(mine: dict[str, np.ndarray], theirs: dict[str, np.ndarray],
                stages: tuple[str, ...]) -> list[tuple[str, float, float]]:
    """``(stage, max |ours − official|, max |ours − official| / max |official|)`` for each stage."""
    rows = []
    for name in stages:
        if mine[name].shape != theirs[name].shape:
            raise ValueError(f"{name}: ours {mine[name].shape} vs official {theirs[name].shape}")
        gap = float(np.abs(mine[name] - theirs[name]).max())
        rows.append((name, gap, gap / max(float(np.abs(theirs[name]).max()), np.finfo(np.float64).tiny)))
    return rows


def table(rows: list[tuple[str, float, float]], stages: dict[str, np.ndarray]) -> str:
    """The differences as a Markdown table."""
    lines = ["| stage | shape | max abs diff | max rel diff |", "|---|---|---|---|"]
    lines += [f"| {name} | {list(stages[name].shape)} | {gap:.1e} | {rel:.1e} |" for name, gap, rel in rows]
    return "\n".join(lines)


def official_commit(checkout: Path) -> str:
    """The commit of a git work tree of the official code."""
    done = subprocess.run(["git", "-C", str(checkout), "rev-parse", "HEAD"], capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{checkout} is not a git work tree; pass --commit with the commit it was taken from")
    return done.stdout.strip()


def store(path: Path, theirs: dict[str, np.ndarray], commit: str, ours: ModuleType) -> None:
    """Write the official stages with the commit, the configuration and the seeds they were made with
    (``ours.RECORD``), which the tests check before comparing."""
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **theirs, official_commit=np.array(commit), config=np.array(ours.config_json()),
                        **{key: np.array(value) for key, value in ours.RECORD.items()})


def seeded_images(count: int, size: int, seed: int) -> torch.Tensor:
    """``[count, 3, size, size]`` images in ``[0, 1]`` from a generator seeded with ``seed``."""
    return torch.rand(count, 3, size, size, generator=torch.Generator().manual_seed(seed))


def arguments(doc: str, repository: str, argv: list[str] | None) -> argparse.Namespace:
    """``--official`` (a checkout of ``repository``), ``--commit`` and ``--out`` of a comparison script."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--official", type=Path, required=True, help=f"a checkout of {repository}")
    parser.add_argument("--commit", default=None, help="its commit, when the checkout is not a git work tree")
    parser.add_argument("--out", type=Path, default=None,
                        help="the .npz to write (default: tests/reference_outputs/official/<method>.npz)")
    return parser.parse_args(argv)


def report(args: argparse.Namespace, theirs: dict[str, np.ndarray], mine: dict[str, np.ndarray],
           ours: ModuleType) -> None:
    """Store the official stages (see :func:`store`) and print the table of differences."""
    store(args.out, theirs, args.commit or official_commit(args.official), ours)
    print(table(differences(mine, theirs, ours.STAGES), theirs))
    print(f"official stages written to {args.out}")


def report_variant(ours: ModuleType, theirs: dict[str, np.ndarray], images: torch.Tensor, what: str,
                   **changes: object) -> None:
    """Print the table of differences of zsadbench's side built with ``changes`` to ``ours.CONFIG`` (``what``
    says what they are) against the official stages."""
    variant = ours.build_ours(dataclasses.replace(ours.CONFIG, **changes))
    print(f"\nwith {what}, for comparison:\n")
    print(table(differences(ours.our_stages(variant, images), theirs, ours.STAGES), theirs))
