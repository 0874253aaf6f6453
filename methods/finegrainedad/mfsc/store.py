"""Where caption files live and how they are read and written: ``<folder>/<dataset>/<category>.json``.

A user folder (``captions_dir``) is looked in first, then the data shipped with the package. ``captions_dir`` may
also name FineGrainedAD's released caption file (see :mod:`.released`).
"""
from __future__ import annotations

import json
import os
import tempfile
from importlib import resources
from pathlib import Path
from typing import Any

from .client import API_KEY_ENV, ENDPOINT_ENV
from .errors import CaptionsError, MissingCaptionsError
from .released import is_released, load_released, released_file
from .types import MFSCCaptions
from .validate import validate


def shipped_dir() -> Path:
    """The folder of the caption files shipped with zsadbench."""
    return Path(str(resources.files(__package__).joinpath("data")))


def caption_path(folder: Path, dataset: str, category: str) -> Path:
    """``folder/<dataset>/<category>.json``."""
    return Path(folder) / dataset / f"{category}.json"


def generate_command(dataset: str, category: str, out: Path | str | None = None) -> str:
    """The command line that writes the captions of one category into ``out`` (``DIR`` when not given)."""
    return (f"zsadbench captions generate --dataset {dataset} --category {category} "
            f"--image IMAGE --out {out or 'DIR'}")


def load_captions(dataset: str, category: str, folder: Path | str | None = None) -> MFSCCaptions:
    """The captions of ``dataset``/``category``: from ``folder`` when it holds them, else the shipped data.
    ``folder`` may be FineGrainedAD's released ``fine_grained_prompts.py`` or a folder holding it.

    Raises :class:`MissingCaptionsError` naming the folders looked in and the command that generates the
    file, and :class:`CaptionsError` when ``folder`` does not exist or the file found is not valid.
    """
    if folder and is_released(folder):
        try:
            return load_released(folder, dataset, category)
        except MissingCaptionsError as missing:
            path = caption_path(shipped_dir(), dataset, category)
            if path.is_file():
                return read_captions(path, dataset, category)
            raise MissingCaptionsError(f"{missing} and the shipped data has no {path.name} for {dataset}; add the "
                                       f"category to {released_file(folder).name} or generate its captions with "
                                       f"'{generate_command(dataset, category)}'") from None
    if folder and not Path(folder).expanduser().is_dir():
        raise CaptionsError(f"captions folder {folder} does not exist; fix captions_dir or write captions into it "
                            f"with '{generate_command(dataset, category, folder)}'")
    folders = ([Path(folder).expanduser()] if folder else []) + [shipped_dir()]
    for base in folders:
        path = caption_path(base, dataset, category)
        if path.is_file():
            return read_captions(path, dataset, category)
    looked = ", ".join(str(caption_path(f, dataset, category)) for f in folders)
    out = folders[0] if folder else None
    raise MissingCaptionsError(
        f"no MFSC captions for {dataset}/{category} (looked for {looked}); generate them with "
        f"'{generate_command(dataset, category, out)}' (IMAGE: a normal image of the category; endpoint and key "
        f"from --endpoint/--api-key or {ENDPOINT_ENV}/{API_KEY_ENV}) and run with --set captions_dir="
        f"{out or 'DIR'}"
    )


def read_captions(path: Path, dataset: str | None = None, category: str | None = None) -> MFSCCaptions:
    """Parse and validate one caption file; ``dataset``/``category``, when given, must match its fields."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise CaptionsError(f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}: {exc.msg}); "
                            "fix the file or generate it again") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise CaptionsError(f"{path}: cannot be read ({exc}); check the file") from None
    captions = validate(data, str(path))
    for field, expected in (("dataset", dataset), ("category", category)):
        if expected is not None and getattr(captions, field) != expected:
            raise CaptionsError(f"{path}: {field}: the file says {getattr(captions, field)!r} but sits where the "
                                f"captions of {field} {expected!r} belong; fix the field or move the file")
    return captions


def write_captions(captions: MFSCCaptions, folder: Path | str) -> Path:
    """Store ``captions`` as ``folder/<dataset>/<category>.json`` atomically (a temporary file renamed)."""
    path = caption_path(Path(folder), captions.dataset, captions.category)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(captions.to_dict(), indent=2, ensure_ascii=False) + "\n"
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def caption_files(folder: Path | str) -> list[Path]:
    """Every ``<dataset>/<category>.json`` under ``folder``, sorted."""
    return sorted(p for p in Path(folder).glob("*/*.json") if not p.name.startswith("."))


def check_folder(folder: Path | str) -> dict[Path, Any]:
    """Validate every caption file under ``folder``: maps each file to its record or its :class:`CaptionsError`."""
    results: dict[Path, Any] = {}
    for path in caption_files(folder):
        try:
            results[path] = read_captions(path, path.parent.name, path.stem)
        except CaptionsError as exc:
            results[path] = exc
    return results
