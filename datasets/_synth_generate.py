"""Rendering one synthetic image, and writing a whole synthetic set as an MVTec-layout tree.

Every image is a pure function of ``(seed, category, kind, index)``: its random streams come from a hash of
those, so any image can be rendered alone, in any order, in parallel. This module imports no torch, so the
worker processes of a parallel generation start quickly.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np
from PIL import Image

from zsadbench.errors import ConfigError, DataError

from ._synth_common import grid
from ._synth_defects import SIZE_CLASSES, apply_defect
from ._synth_objects import OBJECTS
from ._synth_textures import TEXTURES

VERSION = 1
MANIFEST = "synthetic.json"
GENERATOR = "zsadbench.datasets.synthetic"
MASK_THRESHOLD = 8  # uint8 levels: a pixel belongs to the defect when some channel moved by at least this much
MIN_DEFECT_PIXELS = 4
KINDS = ("train", "test_good", "test_anomalous")

# category -> defect folders; the first group is the evaluation set, the second the auxiliary set
EVAL_DEFECTS: dict[str, tuple[str, ...]] = {
    "carpet": ("hole", "stain", "contamination", "scratch"),
    "nut": ("scratch", "missing", "stain", "crack"),
    "tile": ("crack", "stain", "hole", "contamination"),
    "pill": ("crack", "stain", "missing", "contamination"),
    "weave": ("hole", "stain", "scratch", "bright_spot"),
    "screw": ("scratch", "missing", "contamination", "bright_spot"),
    "wood": ("scratch", "hole", "stain", "crack"),
    "cap": ("missing", "scratch", "contamination", "stain"),
    "grid": ("bright_spot", "hole", "contamination", "scratch"),
    "coin": ("scratch", "stain", "hole", "bright_spot"),
    "leather": ("crack", "stain", "hole", "scratch", "contamination"),
    "chip": ("missing", "scratch", "contamination", "bright_spot"),
    "brushed": ("scratch", "stain", "hole", "contamination"),
    "button": ("crack", "missing", "stain", "hole"),
    "battery": ("scratch", "stain", "contamination", "missing"),
}
AUX_DEFECTS: dict[str, tuple[str, ...]] = {
    "marble": ("crack", "stain", "hole", "contamination"),
    "gear": ("missing", "scratch", "crack", "bright_spot"),
    "herringbone": ("hole", "stain", "contamination", "bright_spot"),
    "hazel": ("crack", "hole", "stain", "bright_spot"),
    "perforated": ("scratch", "crack", "stain", "contamination"),
    "plug": ("missing", "scratch", "stain", "contamination"),
    "cork": ("hole", "scratch", "bright_spot", "stain"),
    "tablet": ("crack", "missing", "stain", "contamination"),
}
DEFECTS_OF: dict[str, tuple[str, ...]] = {**EVAL_DEFECTS, **AUX_DEFECTS}
SCENES = {**TEXTURES, **OBJECTS}
SIZE_ORDER = tuple(SIZE_CLASSES)


@dataclass(frozen=True)
class Rendered:
    """One generated image: ``image`` and ``clean`` uint8 ``[S,S,3]``, ``mask`` bool ``[S,S]``.

    ``clean`` is the same picture without the defect (identical to ``image`` for normal images); ``mask`` is
    exactly the set of pixels where the two differ.
    """

    image: np.ndarray
    clean: np.ndarray
    mask: np.ndarray
    defect: str
    size_class: str


def defect_of(category: str, index: int) -> tuple[str, str]:
    """The (defect type, size class) of the ``index``-th anomalous image of ``category``.

    Size classes cycle with period 4, so every four consecutive anomalies span tiny to large; the defect type
    is the size position plus the block number (modulo the number of types), so over ``4 × types`` anomalies
    every type meets every size.
    """
    types, block = DEFECTS_OF[category], len(SIZE_ORDER)
    return types[(index % block + index // block) % len(types)], SIZE_ORDER[index % block]


def _streams(seed: int, category: str, kind: str, index: int) -> list[np.random.Generator]:
    key = f"{GENERATOR}/v{VERSION}/{seed}/{category}/{kind}/{index}".encode()
    entropy = int.from_bytes(hashlib.sha256(key).digest()[:16], "little")
    return [np.random.default_rng(s) for s in np.random.SeedSequence(entropy).spawn(3)]


def _camera(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-image lighting (a gain field ``[S,S,1]``) and sensor noise (``[S,S,3]``)."""
    x, y = grid(size)
    tilt = rng.uniform(-0.08, 0.08, 2).astype(np.float32)
    gain = np.float32(rng.uniform(0.93, 1.07)) * (1 + tilt[0] * x + tilt[1] * y)
    noise = rng.standard_normal((size, size, 3), dtype=np.float32) * np.float32(rng.uniform(0.006, 0.014))
    return gain[..., None], noise


def _expose(image: np.ndarray, gain: np.ndarray, noise: np.ndarray) -> np.ndarray:
    return np.clip(np.rint((image * gain + noise) * 255), 0, 255).astype(np.uint8)


def render_image(category: str, kind: str, index: int, *, image_size: int, seed: int = 0) -> Rendered:
    """Render image ``index`` of ``kind`` (``train``, ``test_good`` or ``test_anomalous``) of ``category``."""
    if category not in SCENES:
        raise ConfigError(f"unknown synthetic category {category!r}; known: {', '.join(sorted(SCENES))}")
    if kind not in KINDS:
        raise ConfigError(f"unknown synthetic image kind {kind!r}; use one of {', '.join(KINDS)}")
    scene_rng, camera_rng, defect_rng = _streams(seed, category, kind, index)
    scene = SCENES[category](scene_rng, image_size)
    gain, noise = _camera(camera_rng, image_size)
    clean = _expose(scene.image, gain, noise)
    if kind != "test_anomalous":
        return Rendered(clean, clean, np.zeros(clean.shape[:2], bool), "good", "")
    defect, size_class = defect_of(category, index)
    for _ in range(32):  # redraw the rare defect that lands where it changes almost nothing
        damaged = _expose(apply_defect(defect_rng, scene, defect, size_class), gain, noise)
        mask = (np.abs(damaged.astype(np.int16) - clean.astype(np.int16)).max(axis=2) >= MASK_THRESHOLD)
        if mask.sum() >= MIN_DEFECT_PIXELS:
            image = np.where(mask[..., None], damaged, clean)
            return Rendered(image, clean, mask, defect, size_class)
    raise RuntimeError(f"synthetic {category}/{defect} #{index}: no visible defect after 32 draws")


@dataclass(frozen=True)
class _Task:
    category: str
    kind: str
    index: int
    image: str
    mask: str | None


def _plan(categories: Sequence[str], n_train: int, n_test_normal: int, n_test_anomalous: int) -> list[_Task]:
    width = max(3, len(str(max(n_train, n_test_normal, n_test_anomalous, 1) - 1)))
    tasks = []
    for cat in categories:
        tasks += [_Task(cat, "train", i, f"{cat}/train/good/{i:0{width}d}.png", None) for i in range(n_train)]
        tasks += [_Task(cat, "test_good", i, f"{cat}/test/good/{i:0{width}d}.png", None) for i in range(n_test_normal)]
        counts: dict[str, int] = {}
        for i in range(n_test_anomalous):
            defect = defect_of(cat, i)[0]
            n = counts[defect] = counts.get(defect, -1) + 1
            stem = f"{n:0{width}d}"
            tasks.append(
                _Task(cat, "test_anomalous", i, f"{cat}/test/{defect}/{stem}.png", f"{cat}/ground_truth/{defect}/{stem}_mask.png")
            )
    return tasks


def _work(tasks: list[_Task], root: str, image_size: int, seed: int) -> None:
    for task in tasks:
        out = render_image(task.category, task.kind, task.index, image_size=image_size, seed=seed)
        path = Path(root, task.image)
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(out.image).save(path, compress_level=1)
        if task.mask is not None:
            mask_path = Path(root, task.mask)
            mask_path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(out.mask.astype(np.uint8) * 255).save(mask_path, compress_level=1)


def manifest(dataset: str, categories: Sequence[str], n_train: int, n_test_normal: int, n_test_anomalous: int,
             image_size: int, seed: int) -> dict:
    """The ``synthetic.json`` content a complete tree with these parameters carries."""
    return {
        "generator": GENERATOR,
        "version": VERSION,
        "dataset": dataset,
        "params": {
            "categories": list(categories),
            "n_train": n_train,
            "n_test_normal": n_test_normal,
            "n_test_anomalous": n_test_anomalous,
            "image_size": image_size,
            "seed": seed,
        },
        "defect_types": {c: list(DEFECTS_OF[c]) for c in categories},
        "mask_threshold": MASK_THRESHOLD,
        "files": len(categories) * (n_train + n_test_normal + 2 * n_test_anomalous),
    }


def read_manifest(root: Path) -> dict | None:
    """The tree's manifest, or ``None`` if there is none or it is not one of ours."""
    try:
        data = json.loads((root / MANIFEST).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("generator") == GENERATOR else None


def is_complete(root: Path, expected: dict) -> bool:
    """True when ``root`` carries exactly ``expected`` as manifest and all the files it promises."""
    found = read_manifest(root)
    return found == expected and sum(1 for _ in root.rglob("*.png")) == expected["files"]


def _check(categories: Sequence[str], counts: dict[str, int], image_size: int) -> None:
    unknown = [c for c in categories if c not in SCENES]
    if unknown or not categories:
        raise ConfigError(f"synthetic categories {unknown or '[]'} unknown; choose among {', '.join(SCENES)}")
    if len(set(categories)) != len(categories):
        raise ConfigError(f"synthetic categories {list(categories)} repeat a name; list each category once")
    for name, value in counts.items():
        if not isinstance(value, int) or value < 0:
            raise ConfigError(f"synthetic {name} must be a non-negative integer, got {value!r}")
    if counts["n_test_normal"] + counts["n_test_anomalous"] == 0:
        raise ConfigError("synthetic n_test_normal + n_test_anomalous is 0; ask for at least one test image")
    if not isinstance(image_size, int) or image_size < 32:
        raise ConfigError(f"synthetic image_size must be an integer >= 32, got {image_size!r}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def _sweep_partials(root: Path) -> None:
    """Delete temporary trees that interrupted generations of ``root`` left behind (their process is gone)."""
    for leftover in root.parent.glob(f".{root.name}.partial-*"):
        pid = leftover.name.rsplit(".partial-", 1)[1].split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(leftover, ignore_errors=True)


def _run(tasks: list[_Task], root: Path, image_size: int, seed: int, workers: int | None) -> None:
    if workers is None:
        heavy = len(tasks) * image_size**2 > 4e7
        workers = min(8, os.cpu_count() or 1) if heavy else 1
    if workers <= 1:
        _work(tasks, str(root), image_size, seed)
        return
    chunks = [tasks[i::workers * 4] for i in range(workers * 4)]
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        for result in [pool.submit(_work, chunk, str(root), image_size, seed) for chunk in chunks if chunk]:
            result.result()


def generate(root: str | Path, categories: Sequence[str], n_train: int, n_test_normal: int, n_test_anomalous: int,
             image_size: int, seed: int = 0, *, dataset: str = "synthetic", workers: int | None = None,
             overwrite: bool = False) -> Path:
    """Write a synthetic set in MVTec layout under ``root`` and return ``root``.

    The tree is built in a temporary sibling folder and renamed into place, ``synthetic.json`` last, so a
    tree that carries a matching manifest is complete. A complete tree with the same parameters is kept as it
    is; an incomplete or outdated one of ours is replaced. A folder that holds something else, or a complete
    set made with other parameters, is only replaced when ``overwrite`` is true. ``workers`` processes render
    in parallel (default: several for large sets, one for small ones).
    """
    root = Path(root)
    categories = list(categories)
    counts = {"n_train": n_train, "n_test_normal": n_test_normal, "n_test_anomalous": n_test_anomalous}
    _check(categories, counts, image_size)
    expected = manifest(dataset, categories, n_train, n_test_normal, n_test_anomalous, image_size, seed)
    if is_complete(root, expected):
        return root
    found = read_manifest(root)
    occupied = root.is_dir() and any(root.iterdir())
    if occupied and not overwrite:
        if found is None:
            raise DataError(f"{root} is not empty and holds no {MANIFEST}: not a synthetic set; choose an empty or new folder")
        if found.get("version") == VERSION and is_complete(root, found) and found != expected:
            raise DataError(
                f"{root} holds a synthetic set made with {found.get('params')}; asked for {expected['params']}: "
                "delete the folder or choose another one"
            )
    root.parent.mkdir(parents=True, exist_ok=True)
    _sweep_partials(root)
    staging = Path(tempfile.mkdtemp(prefix=f".{root.name}.partial-{os.getpid()}-", dir=root.parent))
    try:
        _run(_plan(categories, n_train, n_test_normal, n_test_anomalous), staging, image_size, seed, workers)
        (staging / MANIFEST).write_text(json.dumps(expected, indent=2, sort_keys=True) + "\n")
        _swap(staging, root, expected)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return root


def _swap(staging: Path, root: Path, expected: dict) -> None:
    """Move the finished ``staging`` tree to ``root``, replacing what was there."""
    if is_complete(root, expected):  # another process finished the same tree meanwhile
        return
    if root.exists() and not (root.is_dir() and not any(root.iterdir())):
        retired = root.parent / f".{root.name}.old-{uuid.uuid4().hex[:8]}"
        os.rename(root, retired)
        shutil.rmtree(retired, ignore_errors=True)
    try:
        os.rename(staging, root)
    except OSError:
        if not is_complete(root, expected):  # another process finished first with a different tree
            raise
