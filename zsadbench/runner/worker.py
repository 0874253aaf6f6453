"""Computing the cells of one fit group: fit a fresh method, predict every cell, score it.

This is the part of a run that may execute away from the results store (on a Ray worker, for instance): it
reads the data and the output folder's caches (trained states, checkpoints, features) and returns one
:class:`CellOutcome` per cell; only the driver writes rows into ``results.sqlite``.

Every cell is a pure function of its identity: the method instance is new for each fit group, the global
generators are seeded from the group's seed before fitting and from the cell's seed before predicting, and
random-init backbones are seeded from their model name. A trained method is always evaluated from its
stored state, whether it was trained a moment ago or loaded from an earlier run.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import random
import time
import traceback
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..backbones.feature_cache import FeatureCache
from ..errors import DataError, MethodError, StoreError, WeightsError, ZsadError
from ..method import FitData, Method, fit_kind, trains_then_adapts
from ..store.artifacts import quantize
from ..store.checkpoints import EpochCheckpoints
from ..store.files import atomic_write_bytes, out_of_space
from ..store.schema import Provenance
from ..types import Batch
from .identity import index_digest
from .loading import ImageSet, LoadedBatch, Prefetcher
from .plan import Cell, FitGroup
from .planner import MethodSpec, Plan
from .provenance import device_name, environment, peak_memory_mb, reset_peak_memory
from .scoring import score_arrays
from .support import draw_support, relative_key

Step = Callable[[str, float], None]


@dataclass
class CellOutcome:
    """What computing one cell gave: metrics, provenance and per-image arrays, or an error."""

    cell: Cell
    status: str
    metrics: dict[str, float] = field(default_factory=dict)
    provenance: Provenance = field(default_factory=Provenance)
    arrays: dict[str, np.ndarray] | None = None
    error: str | None = None
    support: dict[str, Any] | None = None
    scored: bool = True


#: Errors that concern every cell of a run: they stop it with one message instead of failing cells.
FATAL = (KeyboardInterrupt, WeightsError, StoreError)


def seed_everything(seed: int, threads: int | None = None) -> None:
    """Seed Python's, NumPy's and torch's global generators and, with ``threads``, pin torch's intra-op thread
    count (float reductions depend on it, and libraries such as Numba's OpenMP layer may change it)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if threads is not None and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)


def compute_group(
    plan: Plan, group: FitGroup, cells: list[Cell], out: Path, step: Step = lambda message, fraction: None,
    *, score: bool = True,
) -> Iterator[CellOutcome]:
    """Fit the group's method once and yield the outcome of each of ``cells`` as soon as it is predicted (and,
    with ``score``, scored; otherwise the caller scores it with :func:`score_outcome`). A failing fit fails
    every cell; a failing cell fails alone."""
    spec = plan.spec_of(group)
    try:
        method, fit_info, support = _fitted_method(plan, spec, group, out, step)
    except FATAL:
        raise
    except Exception as exc:  # noqa: BLE001 - a failing fit fails its cells, the sweep goes on
        for cell in cells:
            yield failure(cell, exc, spec, out)
        return
    sets, unreadable = _test_sets(plan, cells, method.input_size)
    with Prefetcher(sets, plan.config.batch_size) as loads:  # the next cell's images load while this one finishes
        for index, cell in enumerate(cells):
            try:
                if index in unreadable:
                    raise unreadable[index]
                yield _run_cell(plan, method, cell, fit_info, step, support, score, sets[index], loads.batches(index))
            except FATAL:
                raise
            except Exception as exc:  # noqa: BLE001
                yield failure(cell, exc, spec, out)


def _test_sets(plan: Plan, cells: list[Cell], input_size: int) -> tuple[list[ImageSet], dict[int, Exception]]:
    """Each cell's test images, and the error of each cell whose images cannot be listed (it fails alone)."""
    config = plan.config
    sets, unreadable = [], {}
    for index, cell in enumerate(cells):
        adapter = plan.adapters[cell.dataset]
        try:
            samples = adapter.select("test", cell.category)
        except FATAL:
            raise
        except Exception as exc:  # noqa: BLE001
            samples, unreadable[index] = [], exc
        sets.append(ImageSet(adapter, samples, input_size, config.eval_size, config.workers,
                             pin_memory=config.device.startswith("cuda")))
    return sets, unreadable


def failure(cell: Cell, exc: BaseException, spec: MethodSpec | None = None, out: Path | None = None) -> CellOutcome:
    """The outcome of a cell that raised: its message names the plugin class for errors from the method. A full
    disk (wherever it surfaced: a cache, a checkpoint, a state) is not the cell's problem: it stops the run with
    one line naming ``out``."""
    if out_of_space(exc):
        where = f" under {out}" if out is not None else ""
        raise StoreError(f"no space left on the device while writing{where} ({type(exc).__name__}): free space "
                         "there (or pass another --out) and run the same command again; every finished cell is "
                         "kept") from exc
    message = str(exc) if isinstance(exc, ZsadError) else f"{type(exc).__name__}: {exc}"
    if spec is not None and not isinstance(exc, DataError):
        message = f"{cell.method} ({spec.cls.__module__}.{spec.cls.__qualname__}): {message}"
    provenance = Provenance(environment=environment(), traceback=traceback.format_exc(limit=8))
    return CellOutcome(cell, "failed", provenance=provenance, error=message)


def new_method(plan: Plan, spec: MethodSpec) -> Method:
    """A fresh instance of a method variant, checked and set up, on the run's device and precision."""
    extra = {"precision": spec.precision} if spec.precision != "fp32" else {}
    method = spec.cls(spec.config, pretrained=spec.weights.tag, device=plan.config.device, **extra)
    method.check_params().setup()
    return method


# -- fitting -------------------------------------------------------------------------------------
def _fitted_method(plan: Plan, spec: MethodSpec, group: FitGroup, out: Path, step: Step):
    config = plan.config
    support = None
    kind = fit_kind(spec.cls, group.shots)
    if kind == "auxiliary":
        state, state_info = _trained_state(plan, spec, group, out, step)  # builds a model only if it trains
        seed_everything(group.seed, config.threads)
        step(f"{spec.key}: building model", 0.0)
        method = new_method(plan, spec)
        method.load_state_dict(state)
        return method, {"weights": method.weights_info(), **state_info}, support
    info: dict[str, Any] = {}
    state = None
    if trains_then_adapts(spec.cls, group.shots):
        state, info = _trained_state(plan, spec, group, out, step)
    seed_everything(group.seed, config.threads)
    step(f"{spec.key}: building model", 0.0)
    method = new_method(plan, spec)
    if state is not None:
        method.load_state_dict(state)
    info["weights"] = method.weights_info()
    if kind == "support":
        adapter = plan.adapters[group.dataset]
        drawn = draw_support(
            adapter.select("train", group.category, 0), group.dataset, group.category, group.shots, group.seed,
            root=adapter.root, replay=plan.replay,
        )
        files = [relative_key(s, adapter.root) for s in drawn]
        support = {"dataset": group.dataset, "category": group.category, "shots": group.shots, "seed": group.seed,
                   "files": files}
        images = ImageSet(adapter, drawn, method.input_size, method.input_size, config.workers)
        checkpoints = EpochCheckpoints(out / "cache" / "checkpoints" / group.cells[0].cell_id)
        if config.force:
            checkpoints.clear()

        def report(message: str, fraction: float) -> None:
            step(f"{spec.key} fitting {group.dataset}/{group.category} {group.shots}-shot: {message}", fraction)

        method.fit(FitData("support", images.batches, len(images), group.dataset, group.category, group.shots,
                           group.seed, report, checkpoints, FeatureCache(out / "cache" / "features")))
        checkpoints.clear()
        info["support"] = files
    else:
        method.fit(FitData("none", seed=group.seed))
    return method, info, support


def trains_state(spec: MethodSpec, group: FitGroup) -> bool:
    """Whether the group's method trains a state on its auxiliary set (cached under :func:`state_key`)."""
    return fit_kind(spec.cls, group.shots) == "auxiliary" or trains_then_adapts(spec.cls, group.shots)


def state_key(plan: Plan, spec: MethodSpec, group: FitGroup) -> str:
    """The trained-state key: method, version, config, weights, precision, auxiliary set and its index, seed."""
    aux = plan.auxiliaries[group.aux]
    fields = {
        "method": spec.name,
        "version": spec.version,
        "config": spec.config.config_hash(),
        "weights": spec.weights.identity,
        "precision": spec.precision,
        "aux": group.aux,
        "aux_index": index_digest(aux.select("test"), aux.root),
        "seed": group.seed,
    }
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:20]


def _trained_state(plan: Plan, spec: MethodSpec, group: FitGroup, out: Path, step: Step):
    """The group's trained state: from the cache, or trained now by a fresh instance (seeded by the group)."""
    config = plan.config
    key = state_key(plan, spec, group)
    path = out / "cache" / "states" / f"{key}.pt"
    checkpoints = EpochCheckpoints(out / "cache" / "checkpoints" / key)
    if path.is_file() and not config.force:
        try:
            return torch.load(path, map_location="cpu", weights_only=True), {"state": key, "state_reused": True}
        except Exception as exc:  # noqa: BLE001 - any unreadable state is trained again
            warnings.warn(f"{spec.key}: the trained state {path} cannot be read ({type(exc).__name__}); it is "
                          "removed and the method trains again", RuntimeWarning, stacklevel=2)
            path.unlink(missing_ok=True)
    if config.force:
        checkpoints.clear()
    seed_everything(group.seed, config.threads)
    step(f"{spec.key}: building model", 0.0)
    method = new_method(plan, spec)
    aux = plan.auxiliaries[group.aux]
    images = ImageSet(aux, aux.select("test"), method.input_size, method.input_size, config.workers)
    started = time.perf_counter()

    def report(message: str, fraction: float) -> None:
        step(f"{spec.key} training on {group.aux}: {message}", fraction)

    features = FeatureCache(out / "cache" / "features")
    method.fit(FitData("auxiliary", images.batches, len(images), group.aux, None, 0, group.seed, report,
                       checkpoints, features))
    state = method.state_dict()
    import io

    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic_write_bytes(path, buffer.getvalue())
    checkpoints.clear()
    buffer.seek(0)
    stored = torch.load(buffer, map_location="cpu", weights_only=True)
    return stored, {"state": key, "state_reused": False, "train_seconds": round(time.perf_counter() - started, 2)}


# -- one cell ------------------------------------------------------------------------------------
def _run_cell(plan: Plan, method: Method, cell: Cell, fit_info: dict, step: Step, support, score: bool,
              images: ImageSet, batches: Iterator[LoadedBatch]) -> CellOutcome:
    """Predict the cell's test ``images`` from ``batches`` (their loaded batches) and build its outcome."""
    config = plan.config
    adapter = images.adapter
    samples = images.samples
    seed_everything(cell.seed, config.threads)
    reset_peak_memory(config.device)
    started = time.perf_counter()
    clock = StageClock()
    scores, levels, lows, highs, masks, labels, keys = [], [], [], [], [], [], []
    stats: dict[str, torch.Tensor] = {}
    while (loaded := clock.run("load_wait", next, batches, None)) is not None:
        batch = Batch(
            image=loaded.batch.image,
            category=cell.category,
            image_path=loaded.batch.image_path,
            categories=loaded.batch.categories,
            load_original=loaded.batch.load_original,
        )
        with torch.inference_mode():
            prediction = clock.run("predict", method.predict, batch)
        prediction_score, amap = clock.run("check", checked_prediction, prediction.pred_score, prediction.anomaly_map,
                                len(batch), cell, batch, config.eval_size)
        level, low, high = clock.run("quantise", quantize, amap)
        for name, value in prediction.stats.items():
            value = value.detach().cpu()
            stats[name] = stats[name] + value if name in stats else value.clone()
        scores.append(prediction_score)
        labels.append(loaded.labels)
        levels.append(level)
        lows.append(low)
        highs.append(high)
        masks.append(loaded.masks)
        keys.extend(relative_key(s, adapter.root) for s in loaded.samples)
        step(plan.describe(cell), len(keys) / max(len(samples), 1))
    wall = time.perf_counter() - started
    provenance = Provenance(
        environment=environment(),
        device=device_name(config.device),
        threads=config.threads,  # pinned before predicting; the metrics' OpenMP layer may change it afterwards
        workers=config.workers,
        batch_size=config.batch_size,
        precision=cell.precision,
        wall_seconds=round(wall, 3),
        stage_seconds=clock.rounded(),
        images=len(keys),
        peak_memory=peak_memory_mb(config.device),
        data_root=str(adapter.root),
        protocol=config.protocol,
        aux_forced=config.aux is not None,
        metric_levels=sorted(adapter.metric_levels),
        test_limit=config.limit,
        method_stats={name: value.tolist() for name, value in stats.items()} or None,
        **fit_info,
    )
    arrays = {
        "image_keys": keys,
        "pred_score": np.concatenate(scores),
        "gt_label": np.concatenate(labels),
        "levels": np.concatenate(levels),
        "map_min": np.concatenate(lows),
        "map_max": np.concatenate(highs),
        "gt_mask": np.concatenate(masks),
    }
    outcome = CellOutcome(cell, "ok", {}, provenance, arrays, support=support, scored=False)
    return score_outcome(outcome, adapter.metric_levels) if score else outcome


def score_outcome(outcome: CellOutcome, declared) -> CellOutcome:
    """The outcome with its metrics, computed from its stored form (``arrays``); the time goes to its
    ``metrics`` stage. The driver scores on its storing thread, so the next cell's inference overlaps it."""
    if outcome.scored:
        return outcome
    started = time.perf_counter()
    arrays = outcome.arrays
    metrics = score_arrays(declared, arrays["pred_score"], arrays["gt_label"], arrays["levels"], arrays["map_min"],
                           arrays["map_max"], arrays["gt_mask"])
    stages = {**(outcome.provenance.stage_seconds or {}), "metrics": round(time.perf_counter() - started, 4)}
    provenance = dataclasses.replace(outcome.provenance, stage_seconds=stages)
    return dataclasses.replace(outcome, metrics=metrics, provenance=provenance, scored=True)


class StageClock:
    """Wall seconds spent per named stage of a cell."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def run(self, stage: str, function: Callable, *args: Any) -> Any:
        """``function(*args)``, its time added to ``stage``."""
        started = time.perf_counter()
        try:
            return function(*args)
        finally:
            self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - started

    def rounded(self) -> dict[str, float]:
        return {stage: round(seconds, 4) for stage, seconds in self.seconds.items()}


def checked_prediction(score: torch.Tensor, amap: torch.Tensor, size: int, cell: Cell, batch: Batch, eval_size: int):
    """A batch's scores ``[B]`` and maps ``[B,eval_size,eval_size]`` as float32 NumPy arrays, after checking
    lengths and finiteness; maps of another size are resized bilinearly (``align_corners=False``)."""
    if score.shape[0] != size or amap.shape[0] != size:
        raise MethodError(
            f"{cell.describe()}: {cell.method} returned {score.shape[0]} scores and {amap.shape[0]} maps for a batch of {size}"
        )
    score = score.detach().float().cpu()
    amap = amap.detach().float().cpu()
    for name, values in (("pred_score", score), ("anomaly_map", amap)):
        bad = ~torch.isfinite(values.reshape(size, -1)).all(dim=1)
        if bad.any():
            where = batch.image_path[int(bad.nonzero()[0])] if batch.image_path else "?"
            raise MethodError(f"{cell.describe()}: {cell.method} returned NaN/inf in {name} (first for {where})")
    if amap.shape[-2:] != (eval_size, eval_size):
        amap = F.interpolate(amap[:, None], size=(eval_size, eval_size), mode="bilinear", align_corners=False)[:, 0]
    return score.numpy(), amap.numpy()
