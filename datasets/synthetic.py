"""The built-in synthetic datasets: procedurally generated textures and objects with exact defect masks.

Two adapters with disjoint categories: ``synthetic`` (15 evaluation categories, 7 textures and 8 objects)
and ``synthetic_aux`` (8 others, the auxiliary training set of zero-shot methods that learn). Defects of seven
kinds (scratch, hole, stain, crack, contamination, bright spot, missing part) come in four size classes, from a
few pixels to about a quarter of the image. Masks are exact: the pixels the defect changed.

Nothing is downloaded. On first use the set is generated (deterministically, from the seed) into
``$ZSADBENCH_CACHE/synthetic/<dataset>-<size>-<hash>`` (cache default ``~/.cache/zsadbench``), or into the
root given, in MVTec AD layout with a ``synthetic.json`` manifest; later uses index the tree on disk.

Sizes: ``small`` (default; 3 categories, 4 train + 3 normal + 5 anomalous test images each, 128 px),
``medium`` (8 categories, 24 + 10 + 20, 256 px) and ``large`` (all categories, 60 + 31 + 84, 512 px, about
MVTec AD's test size for the evaluation set). Choose one with ``size=`` or ``ZSADBENCH_SYNTHETIC_SIZE``;
keyword arguments override single parameters.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, replace
from functools import cached_property
from pathlib import Path
from typing import ClassVar

from zsadbench.errors import ConfigError, DataError
from zsadbench.types import Sample

from ._synth_generate import AUX_DEFECTS, EVAL_DEFECTS, MANIFEST, VERSION, defect_of, generate, read_manifest, render_image
from .base import DatasetAdapter

__all__ = [
    "AUX_CATEGORIES",
    "EVAL_CATEGORIES",
    "PRESETS",
    "SyntheticAuxDataset",
    "SyntheticDataset",
    "SyntheticParams",
    "defect_of",
    "generate",
    "render_image",
]

SIZE_ENV = "ZSADBENCH_SYNTHETIC_SIZE"
CACHE_ENV = "ZSADBENCH_CACHE"
EVAL_CATEGORIES: tuple[str, ...] = tuple(EVAL_DEFECTS)
AUX_CATEGORIES: tuple[str, ...] = tuple(AUX_DEFECTS)

# size -> (number of categories, n_train, n_test_normal, n_test_anomalous, image_size)
PRESETS: dict[str, tuple[int, int, int, int, int]] = {
    "small": (3, 4, 3, 5, 128),
    "medium": (8, 24, 10, 20, 256),
    "large": (15, 60, 31, 84, 512),
}
DEFAULT_SIZE = "small"


@dataclass(frozen=True)
class SyntheticParams:
    """Everything that determines a generated set; equal parameters give byte-identical trees."""

    categories: tuple[str, ...]
    n_train: int
    n_test_normal: int
    n_test_anomalous: int
    image_size: int
    seed: int = 0

    @classmethod
    def preset(cls, size: str, pool: tuple[str, ...]) -> SyntheticParams:
        """The parameters of a named size, drawing the first categories of ``pool``."""
        if size not in PRESETS:
            raise ConfigError(f"synthetic size {size!r} is unknown; use one of {', '.join(PRESETS)} (or {SIZE_ENV})")
        n_cat, n_train, n_normal, n_anomalous, image_size = PRESETS[size]
        return cls(tuple(pool[:n_cat]), n_train, n_normal, n_anomalous, image_size)

    def digest(self) -> str:
        """First 12 hex digits of the sha256 of the parameters' canonical JSON."""
        text = json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:12]


def _size_from_env() -> str:
    return (os.environ.get(SIZE_ENV) or DEFAULT_SIZE).strip().lower()


def cache_dir() -> Path:
    """``$ZSADBENCH_CACHE`` or ``~/.cache/zsadbench``."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "zsadbench").expanduser()


def _in_cache(root: Path) -> bool:
    """True for folders inside the cache's ``synthetic/`` folder, which the generator may replace."""
    return (cache_dir() / "synthetic").resolve() in root.resolve().parents


class SyntheticDataset(DatasetAdapter):
    """The synthetic evaluation set, generated on first use (see the module docstring).

    ``root=None`` means the default cache folder for the requested parameters; a broken tree in the cache is
    regenerated, while a folder elsewhere that holds something else is refused, never deleted. The constructor only stores
    its arguments; parameters are resolved and the tree generated (if missing or incomplete) by :meth:`index`.
    A root that already holds a complete synthetic set is indexed as it is unless parameters were asked for
    explicitly (arguments or ``ZSADBENCH_SYNTHETIC_SIZE``) and differ, which is an error.
    """

    name: ClassVar[str] = "synthetic"
    title: ClassVar[str] = "Synthetic"
    domain = "synthetic"
    metric_levels: ClassVar[frozenset[str]] = frozenset({"image", "pixel"})
    expected_test: ClassVar[tuple[int, int] | None] = (3 * 3, 3 * 5)
    source: ClassVar[str] = "generated locally by zsadbench.datasets.synthetic (no download)"
    license: ClassVar[str] = "generated"
    layout: ClassVar[str] = (
        "MVTec AD: <category>/train/good/NNN.png, <category>/test/<defect>/NNN.png, "
        "<category>/ground_truth/<defect>/NNN_mask.png, plus synthetic.json"
    )
    category_pool: ClassVar[tuple[str, ...]] = EVAL_CATEGORIES

    def __init__(self, root: str | Path | None = None, *, size: str | None = None,
                 categories: tuple[str, ...] | list[str] | None = None, n_train: int | None = None,
                 n_test_normal: int | None = None, n_test_anomalous: int | None = None,
                 image_size: int | None = None, seed: int | None = None, workers: int | None = None) -> None:
        # the base constructor is not called: ``root`` is resolved lazily from the parameters
        self._root = None if root is None else Path(root)
        self.size = size
        self.overrides = {
            "categories": None if categories is None else tuple(categories),
            "n_train": n_train,
            "n_test_normal": n_test_normal,
            "n_test_anomalous": n_test_anomalous,
            "image_size": image_size,
            "seed": seed,
        }
        self.workers = workers

    @property
    def explicit(self) -> bool:
        """True when parameters were asked for, by argument or through ``ZSADBENCH_SYNTHETIC_SIZE``."""
        return self.size is not None or bool(os.environ.get(SIZE_ENV)) or any(
            v is not None for v in self.overrides.values()
        )

    @cached_property
    def params(self) -> SyntheticParams:
        """The requested parameters: the size preset with the keyword overrides applied, checked."""
        params = replace(
            SyntheticParams.preset(self.size or _size_from_env(), self.category_pool),
            **{k: v for k, v in self.overrides.items() if v is not None},
        )
        foreign = [c for c in params.categories if c not in self.category_pool]
        if foreign:
            raise ConfigError(
                f"{self.name}: categories {foreign} belong to another synthetic set; "
                f"choose among {', '.join(self.category_pool)}"
            )
        return params

    @classmethod
    def default_root(cls, params: SyntheticParams | None = None) -> Path:
        """``$ZSADBENCH_CACHE/synthetic/<dataset>-<size>-<param-hash>``; ``params`` default to the size preset
        chosen by ``ZSADBENCH_SYNTHETIC_SIZE`` (``small`` when unset). ``<size>`` is ``custom`` for parameters
        that match no preset."""
        if params is None:
            params = SyntheticParams.preset(_size_from_env(), cls.category_pool)
        label = next((k for k in PRESETS if SyntheticParams.preset(k, cls.category_pool) == params), "custom")
        return cache_dir() / "synthetic" / f"{cls.name}-{label}-{params.digest()}"

    @property
    def root(self) -> Path:  # type: ignore[override]
        """The folder given to the constructor, else :meth:`default_root` of the requested parameters."""
        return self._root if self._root is not None else self.default_root(self.params)

    @cached_property
    def samples(self) -> list[Sample]:
        """The index, generating the tree first when needed (the base class would require it to exist)."""
        found = self.index()
        if not any(s.split == "test" for s in found):
            raise DataError(f"{self.name}: found 0 test images in {self.root}. Expected layout: {self.layout}")
        return found

    def index(self) -> list[Sample]:
        """Generate the tree if it is missing or incomplete, then index it (sorted, masks paired by name)."""
        root, params = self.root, self.params
        existing = read_manifest(root)
        if existing is not None and not self.explicit:
            if existing.get("dataset") != self.name:
                raise DataError(
                    f"{root} holds the {existing.get('dataset')!r} synthetic set, not {self.name!r}; "
                    f"point {self.name} at its own folder"
                )
            params = _params_of(existing) or params  # repair or reuse what is there, as it was made
        generate(
            root, params.categories, params.n_train, params.n_test_normal, params.n_test_anomalous,
            params.image_size, params.seed, dataset=self.name, workers=self.workers, overwrite=_in_cache(root),
        )
        self.expected_test = (  # type: ignore[misc]
            len(params.categories) * params.n_test_normal, len(params.categories) * params.n_test_anomalous
        )
        return index_tree(root)


def _params_of(found: dict) -> SyntheticParams | None:
    """The parameters recorded in a manifest of the current generator version, else ``None``."""
    if found.get("version") != VERSION:
        return None
    try:
        p = found["params"]
        return SyntheticParams(
            tuple(p["categories"]), p["n_train"], p["n_test_normal"], p["n_test_anomalous"], p["image_size"], p["seed"]
        )
    except (KeyError, TypeError):
        return None


class SyntheticAuxDataset(SyntheticDataset):
    """The auxiliary synthetic set: other categories than ``synthetic``, for training zero-shot methods."""

    name: ClassVar[str] = "synthetic_aux"
    title: ClassVar[str] = "Synthetic textures and objects (auxiliary categories)"
    category_pool: ClassVar[tuple[str, ...]] = AUX_CATEGORIES


def index_tree(root: Path) -> list[Sample]:
    """Index an MVTec-layout tree: per category (sorted), train then test images, files sorted by name."""
    samples: list[Sample] = []
    for cat_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        cat = cat_dir.name
        for path in sorted((cat_dir / "train" / "good").glob("*.png")):
            samples.append(Sample(path, cat, "train", 0, defect_type="good"))
        test_dir = cat_dir / "test"
        if not test_dir.is_dir():
            raise DataError(f"{cat_dir} has no test/ folder; expected layout: {SyntheticDataset.layout}")
        for defect_dir in sorted(p for p in test_dir.iterdir() if p.is_dir()):
            for path in sorted(defect_dir.glob("*.png")):
                if defect_dir.name == "good":
                    samples.append(Sample(path, cat, "test", 0, defect_type="good"))
                    continue
                mask = cat_dir / "ground_truth" / defect_dir.name / f"{path.stem}_mask.png"
                if not mask.is_file():
                    raise DataError(
                        f"mask {mask} for {path} is missing; delete {root} to regenerate the synthetic set"
                    )
                samples.append(Sample(path, cat, "test", 1, mask, defect_dir.name))
    if not samples:
        raise DataError(f"found 0 images in {root} (no {MANIFEST} tree); expected layout: {SyntheticDataset.layout}")
    return samples
