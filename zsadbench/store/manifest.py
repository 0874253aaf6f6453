"""Few-shot support manifests: which normal images each (dataset, category, shots, seed) was given.

``OUT/manifests/support.jsonl`` holds one JSON record per draw, with file keys relative to the dataset's
root, so a run can be replayed on another machine with ``--support-manifest FILE``. A replay file is either
such a manifest or a PromptAD/FineGrainedAD seed folder (``seeds_<dataset>/<category>/selected_samples_per_run.txt``,
lines ``#k: i1 i2 ...`` of indices into the category's normal training images sorted by name), or FineGrainedAD's
Real-IAD seeds (``seeds_realiad/<k>_shot.txt``, paths below the dataset folder).
"""
from __future__ import annotations

import fcntl
import json
import re
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from ..errors import ConfigError
from .files import atomic_write_bytes

DrawKey = tuple[str, str, int, int | None]


@dataclass(frozen=True)
class Draw:
    """The support of one draw: file keys relative to the data root, or indices into the sorted pool."""

    files: tuple[str, ...] = ()
    indices: tuple[int, ...] = ()
    source: str = ""
    by_suffix: bool = False  # ``files`` are paths below the dataset's own folder, matched as key suffixes


class SupportManifest:
    """The manifest of one output folder; writes are deduplicated and atomic."""

    def __init__(self, out: str | Path) -> None:
        self.path = Path(out) / "manifests" / "support.jsonl"

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def records(self) -> list[dict]:
        if not self.path.is_file():
            return []
        return [json.loads(line) for line in self.path.read_text(encoding="utf-8").splitlines() if line.strip()]

    def record(self, dataset: str, category: str, shots: int, seed: int, files: list[str]) -> None:
        """Store the draw, replacing an earlier record of the same (dataset, category, shots, seed)."""
        entry = {"dataset": dataset, "category": category, "shots": shots, "seed": seed, "files": list(files)}
        with self._locked():
            existing = self.records()
            kept = [r for r in existing if _key(r) != _key(entry)]
            if entry in existing and len(kept) == len(existing) - 1:
                return
            lines = [json.dumps(r, sort_keys=True) for r in sorted(kept + [entry], key=_key)]
            atomic_write_bytes(self.path, ("\n".join(lines) + "\n").encode("utf-8"))


def _key(record: dict) -> tuple:
    return (record["dataset"], record["category"], int(record["shots"]), int(record["seed"]))


def load_replay(path: str | Path) -> dict[DrawKey, Draw]:
    """Read ``--support-manifest``: a zsadbench manifest (JSONL) or a ``seeds_<dataset>`` folder of seed files.
    Seed-file draws have no seed (``None``): they apply to every seed."""
    path = Path(path)
    if path.is_dir():
        return _shot_files(path) if any(path.glob("*_shot.txt")) else _seed_folder(path)
    if not path.is_file():
        raise ConfigError(f"--support-manifest {path}: no such file or folder")
    draws: dict[DrawKey, Draw] = {}
    for number, line in enumerate(_text(path).splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            key = (str(record["dataset"]), str(record["category"]), int(record["shots"]), int(record["seed"]))
            files = tuple(str(f) for f in record["files"])
        except (ValueError, KeyError, TypeError) as exc:
            raise ConfigError(
                f"{path}:{number}: not a support record ({exc}); each line needs dataset, category, shots, seed, files"
            ) from None
        _no_repeats(files, f"{path}:{number}", "file")
        _add(draws, key, Draw(files=files, source=f"{path}:{number}"))
    if not draws:
        raise ConfigError(f"--support-manifest {path}: the file holds no support records; pass the support.jsonl "
                          "of a finished few-shot run (OUT/manifests/support.jsonl)")
    return draws


def describe_key(key: DrawKey) -> str:
    """``dataset/category k-shot seed=S`` (or ``every seed``) for messages."""
    dataset, category, shots, seed = key
    return f"{dataset}/{category} {shots}-shot " + ("every seed" if seed is None else f"seed={seed}")


def _text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text (byte {exc.start} cannot be decoded); a support manifest is a "
                          "UTF-8 file, save it as UTF-8") from None


def _no_repeats(items: tuple, source: str, what: str) -> None:
    repeated = next((item for i, item in enumerate(items) if item in items[:i]), None)
    if repeated is not None:
        raise ConfigError(f"{source}: lists {what} {repeated} twice; a support draw holds distinct images")


def _add(draws: dict[DrawKey, Draw], key: DrawKey, draw: Draw) -> None:
    if key in draws:
        raise ConfigError(f"{draw.source}: a second draw for {describe_key(key)} (the first is at "
                          f"{draws[key].source}); keep one of them")
    draws[key] = draw


_SHOT_FILE = re.compile(r"^(\d+)_shot\.txt$")
#: the camera view FineGrainedAD's Real-IAD protocol keeps, as it appears in a file name
_VIEW = "_C1_"


def _shot_files(folder: Path) -> dict[DrawKey, Draw]:
    """FineGrainedAD's Real-IAD seeds: ``seeds_realiad/<k>_shot.txt``, one path ``<cat>/OK/S####/<name>.jpg`` per
    line; a category's draw is its first ``k`` top-view (``C1``) lines, in file order, for every seed."""
    match = re.fullmatch(r"seeds_(.+)", folder.name)
    if not match:
        raise ConfigError(f"--support-manifest {folder}: a folder of <k>_shot.txt files must be named seeds_<dataset> "
                          "(e.g. seeds_realiad)")
    draws: dict[DrawKey, Draw] = {}
    for file in sorted(folder.glob("*_shot.txt")):
        shots = _SHOT_FILE.match(file.name)
        if not shots:
            continue
        k = int(shots.group(1))
        by_category: dict[str, list[str]] = {}
        for line in _text(file).splitlines():
            line = line.strip()
            if line and _VIEW in Path(line).name:
                by_category.setdefault(line.split("/", 1)[0], []).append(line)
        for category, lines in by_category.items():
            if len(lines) < k:
                raise ConfigError(f"{file}: lists {len(lines)} top-view (C1) images of {category}; {k}-shot needs {k}")
            _no_repeats(tuple(lines[:k]), f"{file} ({category})", "file")
            _add(draws, (match.group(1), category, k, None),
                 Draw(files=tuple(lines[:k]), source=f"{file} ({category})", by_suffix=True))
    if not draws:
        raise ConfigError(f"--support-manifest {folder}: its <k>_shot.txt files list no top-view (C1) image")
    return draws


_SEED_LINE = re.compile(r"^\s*#\s*(\d+)\s*:\s*([\d\s]+)$")


def _seed_folder(folder: Path) -> dict[DrawKey, Draw]:
    match = re.fullmatch(r"seeds_(.+)", folder.name)
    if not match:
        raise ConfigError(
            f"--support-manifest {folder}: a seed folder must be named seeds_<dataset> (e.g. seeds_mvtec) and hold "
            "<category>/selected_samples_per_run.txt"
        )
    dataset = match.group(1)
    draws: dict[DrawKey, Draw] = {}
    for file in sorted(folder.glob("*/selected_samples_per_run.txt")):
        for number, line in enumerate(_text(file).splitlines(), 1):
            if not line.strip():
                continue
            parsed = _SEED_LINE.match(line)
            if not parsed:
                raise ConfigError(f"{file}:{number}: expected a line like '#2: 101 048', got {line.strip()!r}")
            shots, indices = int(parsed.group(1)), tuple(int(i) for i in parsed.group(2).split())
            if len(indices) != shots:
                raise ConfigError(f"{file}:{number}: '#{shots}:' lists {len(indices)} indices; it needs {shots}")
            _no_repeats(indices, f"{file}:{number}", "index")
            _add(draws, (dataset, file.parent.name, shots, None), Draw(indices=indices, source=f"{file}:{number}"))
    if not draws:
        raise ConfigError(f"--support-manifest {folder}: no <category>/selected_samples_per_run.txt found")
    return draws
