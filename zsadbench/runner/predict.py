"""Predicting on a user's own images, outside any dataset: the logic of ``zsadbench predict``.

The method variant is resolved as ``zsadbench run`` resolves it (registry, ``--set``, the demo configuration with
``--pretrained none``), fitted the way its setting needs (nothing, a trained state a run cached, normal support
images, or a state and then support images), and the images are loaded as a run loads them (RGB in ``[0,1]``,
resized bicubically to the method's input size by :class:`~zsadbench.runner.loading.ImageSet`).

For every image the output folder gets its score (a row of ``scores.csv``, in input order), its anomaly map at
the image's own size (``maps/<name>.npy``, float32, resized bilinearly from the method's output) and the map as
a heat map over the image (``overlays/<name>.png``), where ``<name>`` is the image's path relative to the
folder that holds every input. All overlays share one colour scale, the lowest and highest value of all maps,
which ``README.txt`` states. ``scores.csv`` is written as it goes: a row is added (and flushed) once its map is
on disk, so an interrupted or failed call keeps every row and map it wrote.
"""
from __future__ import annotations

import csv
import itertools
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..errors import ConfigError, DataError, MethodError
from ..method import FitData, FitKind, Method, fit_kind, trains_then_adapts
from ..types import Batch, Prediction, Sample
from .loading import ImageSet
from .plan import RunConfig, default_workers
from .planner import MethodSpec, method_variants
from .worker import seed_everything
from zsadbench.datasets.base import DatasetAdapter
from zsadbench.datasets.folders import IMAGE_SUFFIXES, list_images, subdirs
from zsadbench.datasets.io import read_rgb

#: ``(phase, images done, images in all)``: ``phase`` is ``"predicting"``, then ``"overlays"``
Progress = Callable[[str, int, int], None]

#: where a run caches the trained states that ``--state`` takes
STATES = "OUT/cache/states/"
COLORMAP = "jet"
SEED = 0


@dataclass(frozen=True)
class PredictConfig:
    """What ``zsadbench predict`` was asked: the method variant, how to fit it, the images and the output folder."""

    method: str
    inputs: tuple[Path, ...]
    write: Path
    pretrained: str = "default"
    overrides: tuple[tuple[str, str], ...] = ()
    state: Path | None = None
    support: tuple[Path, ...] = ()
    category: str | None = None
    device: str = "cpu"
    precision: str = "fp32"
    batch_size: int = 8
    workers: int = field(default_factory=default_workers)


@dataclass(frozen=True)
class InputImage:
    """An image to predict: its path as found, and ``name``, where its map and overlay go below the output."""

    path: Path
    name: str


@dataclass
class PredictSummary:
    """What a call wrote: how many images, the method variant's label and the overlays' colour scale."""

    images: int
    label: str
    scale: tuple[float, float]
    write: Path


class _UserImages(DatasetAdapter):
    """Files given on the command line, read as a dataset adapter reads its own (so :class:`ImageSet` loads them)."""

    name = "user"

    def __init__(self, samples: Sequence[Sample]) -> None:
        super().__init__(Path.cwd())
        self._given = list(samples)

    def index(self) -> list[Sample]:
        return list(self._given)


def _walk(folder: Path) -> list[Path]:
    return list_images(folder) + [image for sub in subdirs(folder) for image in _walk(sub)]


def find_images(inputs: Sequence[Path], option: str = "IMAGES", skip: Path | None = None) -> list[InputImage]:
    """The images of ``inputs`` (files, or folders searched recursively, each sorted by name, leaving out the folder
    ``skip``) in input order, each once, named by their path relative to the folder that holds every input."""
    suffixes = ", ".join(sorted(IMAGE_SUFFIXES))
    skipped = None if skip is None else os.path.join(os.path.abspath(skip), "")
    found: list[Path] = []
    bases: list[str] = []
    for given in inputs:
        if given.is_dir():
            images = [path for path in _walk(given) if not (skipped and os.path.abspath(path).startswith(skipped))]
            if not images:
                raise DataError(f"{option}: no images found in {given} (looked for {suffixes} files, sub-folders "
                                "included); pass image files or folders that hold them")
            found += images
            bases.append(os.path.abspath(given))
        elif given.is_file():
            if given.suffix.lower() not in IMAGE_SUFFIXES:
                raise DataError(f"{option}: {given} is not an image file (expected {suffixes}); leave it out")
            found.append(given)
            bases.append(os.path.dirname(os.path.abspath(given)))
        else:
            raise DataError(f"{option}: {given} does not exist; pass image files or folders that hold them")
    base = os.path.commonpath(bases)
    images: dict[str, InputImage] = {}
    for path in found:
        absolute = os.path.abspath(path)
        images.setdefault(absolute, InputImage(path, Path(os.path.relpath(absolute, base)).as_posix()))
    return list(images.values())


def resolve_variant(config: PredictConfig) -> tuple[MethodSpec, list[str]]:
    """The method variant, as ``zsadbench run`` resolves it, and the notes that gives; a ``--set`` grid is refused."""
    run = RunConfig(methods=(config.method,), datasets=(), pretrained=config.pretrained, overrides=config.overrides,
                    precision=config.precision, batch_size=config.batch_size, workers=config.workers)
    specs, notes = method_variants(run)
    if len(specs) > 1:
        raise ConfigError(f"--set makes {len(specs)} variants of {config.method} ({', '.join(specs)}); predict runs "
                          "one: give each option a single value")
    return next(iter(specs.values())), notes


def check_fit(cls: type[Method], shots: int, state: Path | None) -> FitKind:
    """The :class:`FitData` kind a method gets with ``shots`` support images, after checking that ``--support``
    and ``--state`` give what it needs (a :class:`ConfigError` names the option to add or drop)."""
    name = getattr(cls, "name", cls.__name__)
    takes = ", ".join(map(str, cls.shots)) or "any k"
    if shots == 0 and "zero-shot" not in cls.settings:
        raise ConfigError(f"{name} is a few-shot method: pass --support IMG|DIR with k normal images ({takes})")
    if shots > 0 and "few-shot" not in cls.settings:
        raise ConfigError(f"{name} is a zero-shot method and takes no support images: leave out --support")
    if shots > 0 and cls.shots and shots not in cls.shots:
        raise ConfigError(f"--support gives {shots} images but {name} takes k in {takes}: pass that many normal "
                          "images")
    kind = fit_kind(cls, shots)
    trains = kind == "auxiliary" or trains_then_adapts(cls, shots)
    if trains and state is None:
        raise ConfigError(f"{name} trains on an auxiliary set: pass --state FILE, a trained state that `zsadbench run "
                          f"--method {name}` cached in {STATES} (OUT: its --out), with the same --set and --pretrained")
    if trains and not state.is_file():
        raise ConfigError(f"--state {state}: no such file; trained states of {name} are the *.pt files a run "
                          f"cached in {STATES} (OUT: its --out)")
    if not trains and state is not None:
        raise ConfigError(f"--state {state}: {name} learns no state on an auxiliary set: leave out --state")
    return kind


def load_state(method: Method, path: Path, name: str) -> None:
    """Restore a trained state a run cached; a file that is no state of this variant is named with the fix."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same one-line answer
        raise ConfigError(f"--state {path} cannot be read as a trained state ({type(exc).__name__}); pass a *.pt "
                          f"file of {STATES}") from exc
    try:
        method.load_state_dict(state)
    except Exception as exc:  # noqa: BLE001 - the method says why in its own words
        raise ConfigError(f"--state {path} is no state of {name} with this configuration ({type(exc).__name__}: "
                          f"{exc}); pass one that a run of {name} with the same --set and --pretrained cached in "
                          f"{STATES}") from exc


def _build(spec: MethodSpec, device: str) -> Method:
    extra = {"precision": spec.precision} if spec.precision != "fp32" else {}
    method = spec.cls(spec.config, pretrained=spec.weights.tag, device=device, **extra)
    return method.check_params().setup()


def _samples(images: Sequence[InputImage], split: str, category: str | None) -> list[Sample]:
    return [Sample(image.path, category or image.path.parent.name or "object", split, 0) for image in images]


def fitted_method(spec: MethodSpec, config: PredictConfig, support: Sequence[InputImage], kind: FitKind) -> Method:
    """A new instance of the variant, set up, given its trained state and fitted as ``kind`` (what
    :func:`check_fit` returned) says."""
    seed_everything(SEED)
    method = _build(spec, config.device)
    if config.state is not None:
        load_state(method, config.state, spec.name)
    if kind == "support":
        samples = _samples(support, "train", config.category)
        images = ImageSet(_UserImages(samples), samples, method.input_size, method.input_size, config.workers)
        method.fit(FitData("support", images.batches, len(samples), "user", samples[0].category, len(samples), SEED))
    elif kind == "none":
        method.fit(FitData("none", seed=SEED))
    return method


def _checked(prediction: Prediction, batch: Batch, name: str) -> tuple[np.ndarray, torch.Tensor]:
    """Scores ``[B]`` and maps ``[B,h,w]`` as float32 on the CPU, after checking their count and finiteness."""
    size = len(batch)
    if prediction.pred_score.shape[0] != size or prediction.anomaly_map.shape[0] != size:
        raise MethodError(f"{name} returned {prediction.pred_score.shape[0]} scores and "
                          f"{prediction.anomaly_map.shape[0]} maps for a batch of {size} images")
    scores = prediction.pred_score.detach().float().cpu()
    maps = prediction.anomaly_map.detach().float().cpu()
    bad = ~(torch.isfinite(scores) & torch.isfinite(maps.flatten(1)).all(dim=1))
    if bad.any():
        raise MethodError(f"{name} returned NaN/inf for {batch.image_path[int(bad.nonzero()[0])]}")
    return scores.numpy(), maps


def _own_size(amap: torch.Tensor, path: Path) -> np.ndarray:
    """``amap`` ``[h,w]`` resized bilinearly to the image file's own height and width."""
    with Image.open(path) as image:
        width, height = image.size
    if tuple(amap.shape) != (height, width):
        amap = F.interpolate(amap[None, None], size=(height, width), mode="bilinear", align_corners=False)[0, 0]
    return amap.numpy().astype(np.float32, copy=False)


def overlay(pixels: np.ndarray, amap: np.ndarray, low: float, high: float) -> np.ndarray:
    """``amap`` coloured on ``[low, high]`` and laid over ``pixels`` (``uint8 [H,W,3]``) at half opacity."""
    from matplotlib import colormaps

    scaled = np.clip((amap - low) / (high - low), 0.0, 1.0) if high > low else np.zeros_like(amap)
    coloured = colormaps[COLORMAP](scaled)[..., :3]
    return np.round(127.5 * (pixels / 255.0 + coloured)).astype(np.uint8)


def predict_images(config: PredictConfig, progress: Progress | None = None,
                   note: Callable[[str], None] | None = None) -> PredictSummary:
    """Score every input image and write ``scores.csv``, ``maps/``, ``overlays/`` and ``README.txt`` into
    ``config.write`` (see the module's docstring); returns what was written."""
    progress = progress or (lambda phase, done, total: None)
    spec, notes = resolve_variant(config)
    for text in notes if note is not None else ():
        note(text)
    images = find_images(config.inputs, skip=config.write)  # an output folder inside an input holds no input
    support = find_images(config.support, "--support") if config.support else []
    kind = check_fit(spec.cls, len(support), config.state)  # before the model is built: bad options fail at once
    out = config.write
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--write {out} is a file; pass a folder (it is created if missing)")
    out.mkdir(parents=True, exist_ok=True)
    method = fitted_method(spec, config, support, kind)
    samples = _samples(images, "test", config.category)
    low, high = np.inf, -np.inf
    done = 0
    seed_everything(SEED)
    with (out / "scores.csv").open("w", newline="", encoding="utf-8") as handle:
        rows = csv.writer(handle)
        rows.writerow(["path", "score"])
        # a batch holds one category, as in a run: methods name the object in their prompts by the batch's
        for category, group in itertools.groupby(samples, key=lambda sample: sample.category):
            group = list(group)
            loaded = ImageSet(_UserImages(group), group, method.input_size, method.input_size, config.workers,
                              pin_memory=config.device.startswith("cuda"))
            for part in loaded.iter_batches(config.batch_size):
                batch = Batch(image=part.batch.image, category=category, image_path=part.batch.image_path,
                              load_original=part.batch.load_original)
                with torch.inference_mode():
                    scores, maps = _checked(method.predict(batch), batch, spec.key)
                for image, score, amap in zip(images[done : done + len(batch)], scores, maps):
                    full = _own_size(amap, image.path)
                    low, high = min(low, float(full.min())), max(high, float(full.max()))
                    target = out / "maps" / f"{image.name}.npy"
                    target.parent.mkdir(parents=True, exist_ok=True)
                    np.save(target, full)
                    rows.writerow([str(image.path), repr(float(score))])
                handle.flush()
                done += len(batch)
                progress("predicting", done, len(images))
    _write_readme(out, spec, config, support, method.input_size, low, high)
    for index, image in enumerate(images):
        pixels = read_rgb(image.path)
        target = out / "overlays" / f"{image.name}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(overlay(pixels, np.load(out / "maps" / f"{image.name}.npy"), low, high)).save(target)
        progress("overlays", index + 1, len(images))
    return PredictSummary(len(images), spec.label, (low, high), out)


def _write_readme(out: Path, spec: MethodSpec, config: PredictConfig, support: Sequence[InputImage], size: int,
                  low: float, high: float) -> None:
    fitted = [f"support: {len(support)} normal images ({', '.join(str(s.path) for s in support)})"] if support else []
    if config.state is not None:
        fitted.insert(0, f"trained state: {config.state}")
    random = " (random initialisation: these numbers measure nothing)" if spec.weights.random else ""
    lines = [
        f"zsadbench predict: {spec.label} ({spec.key}), weights {spec.weights.tag or 'none'}{random}, "
        f"precision {spec.precision}",
        f"config: {spec.config.to_json()}",
        *fitted,
        "",
        "scores.csv            one row per image (path, score) in input order; higher = more anomalous",
        f"maps/NAME.npy         float32 anomaly map at the image's own size, resized bilinearly from the method's "
        f"output (its input: {size} x {size} px)",
        f"overlays/NAME.png     the map as a {COLORMAP} heat map at half opacity over the image",
        "NAME                  the image's path relative to the folder holding every input",
        "",
        f"colour scale of the overlays: min {low!r} (dark blue) .. max {high!r} (dark red), the lowest and highest "
        "value of all maps written here",
    ]
    (out / "README.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
