"""Walking dataset folders: listing images, pairing masks with images by name, MVTec-like trees.

Masks are always paired with images by file name (never by position in two sorted lists, which is what the
AnomalyCLIP/AdaCLIP preparation scripts do and which silently mis-pairs an incomplete copy). A missing or an
extra mask is reported through the :class:`~zsadbench.datasets.problems.ProblemLog`, naming the file.
"""
from __future__ import annotations

import difflib
import errno
from collections.abc import Iterable, Sequence
from pathlib import Path

from zsadbench.types import Sample

from .problems import ProblemLog

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"})
_JUNK_DIRS = frozenset({"__MACOSX", "__pycache__", ".ipynb_checkpoints"})


def is_image(path: Path) -> bool:
    """True for a visible file with an image extension (any case: ``.PNG``, ``.JPG``...)."""
    return path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith(".") and path.is_file()


def list_images(folder: Path) -> list[Path]:
    """Image files directly in ``folder``, sorted by name (empty if the folder does not exist)."""
    if not folder.is_dir():
        return []
    return sorted((p for p in folder.iterdir() if is_image(p)), key=lambda p: p.name)


def subdirs(folder: Path) -> list[Path]:
    """Visible sub-folders of ``folder``, sorted by name (archive junk such as ``__MACOSX`` and symlinks that
    loop back to a folder above them skipped)."""
    if not folder.is_dir():
        return []
    return sorted(
        (p for p in folder.iterdir()
         if p.is_dir() and not p.name.startswith(".") and p.name not in _JUNK_DIRS and not is_symlink_loop(p)),
        key=lambda p: p.name,
    )


def is_symlink_loop(path: Path) -> bool:
    """True for a symlink that cannot be resolved for looping, or that points at a folder containing it."""
    if not path.is_symlink():
        return False
    try:
        target = path.resolve(strict=True)
    except RuntimeError:  # "Symlink loop" (Python < 3.13)
        return True
    except OSError as exc:
        return exc.errno == errno.ELOOP
    return target.is_dir() and path.parent.resolve().is_relative_to(target)


def find_dir(parent: Path, *names: str, ignore_case: bool = True) -> Path | None:
    """The first of ``names`` that is a folder in ``parent`` (exact spelling first, then any case)."""
    for name in names:
        if (parent / name).is_dir():
            return parent / name
    if ignore_case:
        lowered = {n.lower() for n in names}
        for child in subdirs(parent):
            if child.name.lower() in lowered:
                return child
    return None


def near_miss(parent: Path, name: str) -> str:
    """A hint naming folders of ``parent`` spelled like ``name`` (``" (found 'Test')"``), or ``""``."""
    names = [p.name for p in subdirs(parent)]
    close = [n for n in names if n.lower() == name.lower() and n != name]
    close += [n for n in difflib.get_close_matches(name, names, n=2, cutoff=0.75) if n not in close and n != name]
    return f" (found {', '.join(repr(n) for n in close)})" if close else ""


def pair_masks(
    images: Sequence[Path], masks: Iterable[Path], suffixes: Sequence[str], log: ProblemLog, mask_dir: Path
) -> dict[Path, Path]:
    """Map each image to the mask whose stem is the image stem plus one of ``suffixes`` (extension ignored).

    Images without a mask and masks without an image are reported as errors naming the file.
    """
    by_stem: dict[str, Path] = {}
    for mask in masks:
        if mask.stem in by_stem:
            log.error(mask, f"two masks with the stem {mask.stem!r} ({by_stem[mask.stem].name} and {mask.name})",
                      "delete one of them")
            continue
        by_stem[mask.stem] = mask
    pairs: dict[Path, Path] = {}
    for image in images:
        mask = next((by_stem[image.stem + s] for s in suffixes if image.stem + s in by_stem), None)
        if mask is None:
            log.error(image, f"no mask for this image in {mask_dir}",
                      f"add {mask_dir / (image.stem + suffixes[0])}.png, or remove the image")
        else:
            pairs[image] = mask
    used = set(pairs.values())
    for mask in by_stem.values():
        if mask not in used:
            log.error(mask, "mask has no image of the same name",
                      f"remove it, or restore its image (expected a stem of {mask.stem!r} minus one of "
                      f"{[s for s in suffixes if s] or ['nothing']})")
    return pairs


def looks_mvtec_like(root: Path) -> bool:
    """True when some sub-folder of ``root`` holds a ``test`` folder (any case): ``<cls>/test/<type>/``."""
    return any(find_dir(cat, "test") is not None for cat in subdirs(root))


def walk_mvtec(
    root: Path,
    log: ProblemLog,
    *,
    normal: Sequence[str] = ("good",),
    mask_suffixes: Sequence[str] = ("_mask",),
    with_masks: bool = True,
    category: str | None = None,
) -> list[Sample]:
    """Index ``<cls>/train/<normal>/``, ``<cls>/test/<type>/`` and ``<cls>/ground_truth/<type>/``.

    Folders named in ``normal`` hold normal images; every other ``test`` sub-folder holds anomalies, paired
    by name with ``ground_truth/<type>/<stem><suffix>.<any ext>`` when ``with_masks``. ``category`` renames
    the single category folder of a one-class dataset (whose folder name differs between preparations).
    """
    categories = _category_dirs(root, log)
    if category is not None and len(categories) > 1:
        log.error(root, f"found {len(categories)} category folders ({', '.join(c.name for c in categories)}) "
                        "but this dataset has a single category", "keep only the dataset's own folder in the root")
        categories = categories[:1]
    samples: list[Sample] = []
    for cat_dir in categories:
        name = category or cat_dir.name
        samples += _walk_train(cat_dir, name, normal, log)
        test = _walk_test(cat_dir, name, normal, mask_suffixes, with_masks, log)
        if not test:
            log.skip(name, f"its folder {cat_dir / 'test'} holds no test images")
        samples += test
    return samples


def _category_dirs(root: Path, log: ProblemLog) -> list[Path]:
    found = []
    for child in subdirs(root):
        if (child / "test").is_dir():
            found.append(child)
        elif find_dir(child, "test", "train", "ground_truth") is not None:
            log.error(child / "test", f"category folder {child.name!r} has no 'test' folder{near_miss(child, 'test')}",
                      "rename the folder to 'test' (lower case), as in the official layout")
        else:
            log.warn(child, "folder ignored: it has no test/ sub-folder", "remove it if it is not part of the dataset")
    return found


def _walk_train(cat_dir: Path, category: str, normal: Sequence[str], log: ProblemLog) -> list[Sample]:
    train = cat_dir / "train"
    samples = []
    for folder in subdirs(train):
        if folder.name in normal:
            samples += [Sample(p, category, "train", 0, defect_type=folder.name) for p in list_images(folder)]
        else:
            log.warn(folder, "training folder ignored: only normal images are used for training",
                     f"name the normal folder {normal[0]!r}")
    return samples


def _walk_test(cat_dir: Path, category: str, normal: Sequence[str], suffixes: Sequence[str], with_masks: bool,
               log: ProblemLog) -> list[Sample]:
    test = cat_dir / "test"
    gt_root = cat_dir / "ground_truth"
    samples: list[Sample] = []
    anomalous = []
    for folder in subdirs(test):
        images = list_images(folder)
        if folder.name in normal:
            samples += [Sample(p, category, "test", 0, defect_type=folder.name) for p in images]
            continue
        anomalous.append(folder.name)
        pairs: dict[Path, Path] = {}
        if with_masks:
            mask_dir = gt_root / folder.name
            if mask_dir.is_dir():
                pairs = pair_masks(images, list_images(mask_dir), suffixes, log, mask_dir)
            elif images:
                hint = near_miss(cat_dir, "ground_truth") if not gt_root.is_dir() else near_miss(gt_root, folder.name)
                log.error(mask_dir, f"mask folder missing for the {len(images)} images in {folder}{hint}",
                          f"put the masks in {mask_dir}")
        samples += [Sample(p, category, "test", 1, pairs.get(p), folder.name) for p in images]
    for stray in list_images(test):
        log.warn(stray, "image ignored: test images must sit in a sub-folder per type",
                 f"move it into {test / normal[0]} or {test}/<defect type>")
    if with_masks:
        for mask_dir in subdirs(gt_root):
            if mask_dir.name not in anomalous and mask_dir.name not in normal:
                log.error(mask_dir, f"mask folder has no image folder {test / mask_dir.name}",
                          "rename it to match its image folder, or remove it")
    return samples


def masked_anomalies(
    images: Sequence[Path], mask_dir: Path, category: str, suffixes: Sequence[str], log: ProblemLog,
    defect_type: str = "",
) -> list[Sample]:
    """Test samples for anomalous ``images`` whose masks sit together in ``mask_dir`` (paired by name)."""
    pairs = pair_masks(images, list_images(mask_dir), suffixes, log, mask_dir)
    return [Sample(p, category, "test", 1, pairs.get(p), defect_type) for p in images]
