"""Executing a run plan: fit once per group, predict every cell, score it, store it."""
from __future__ import annotations

import hashlib
import json
import random
import time
import traceback
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import MethodError, WeightsError, ZsadError
from ..method import FitData, Method
from ..metrics import METRICS, MetricAccumulator, UndefinedMetricWarning
from ..backbones.feature_cache import FeatureCache
from ..store import ResultStore, StoredCell
from ..store.checkpoints import EpochCheckpoints
from ..types import Batch
from .loading import ImageSet
from .plan import Cell, FitGroup, RunConfig
from .planner import Plan, build_plan
from .progress import RunDisplay
from .provenance import device_name, environment, peak_memory_mb
from .support import draw_support


@dataclass
class RunSummary:
    """What a run did: counts, and the error of every failed cell."""

    done: int = 0
    cached: int = 0
    failed: int = 0
    failures: list[tuple[Cell, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def evaluate(config: RunConfig, display: RunDisplay | None = None) -> RunSummary:
    """Run every cell of ``config`` that is not already in the store; returns a summary.

    A failing cell is stored with its error and the sweep goes on. ``KeyboardInterrupt`` propagates after
    the cell in flight is abandoned; every finished cell is already stored.
    """
    plan = build_plan(config)
    return execute_plan(plan, display)


def execute_plan(plan: Plan, display: RunDisplay | None = None) -> RunSummary:
    config = plan.config
    store = ResultStore(config.out)
    finished = set() if config.force else store.finished_ids()
    summary = RunSummary(notes=list(plan.notes))
    display = display or RunDisplay(len(plan.cells))
    with display:
        instances: dict[str, Method] = {}
        for group in plan.groups:
            pending = [c for c in group.cells if c.cell_id not in finished]
            for _ in range(len(group.cells) - len(pending)):
                summary.cached += 1
                display.cell_finished("cached", "")
            if not pending:
                continue
            try:
                method, fit_info = _fitted_method(plan, group, store, instances, display)
            except (KeyboardInterrupt, WeightsError):  # missing weights concern every cell: stop with one message
                raise
            except Exception as exc:  # noqa: BLE001 - a failing fit fails its cells, the sweep goes on
                for cell in pending:
                    _record_failure(plan, store, cell, exc, summary, display)
                continue
            for cell in pending:
                try:
                    line = _run_cell(plan, store, method, cell, fit_info, display)
                except KeyboardInterrupt:
                    raise
                except Exception as exc:  # noqa: BLE001
                    _record_failure(plan, store, cell, exc, summary, display)
                else:
                    summary.done += 1
                    display.cell_finished("done", line)
    return summary


# -- fitting -------------------------------------------------------------------------------------
def _fitted_method(
    plan: Plan, group: FitGroup, store: ResultStore, instances: dict[str, Method], display: RunDisplay
) -> tuple[Method, dict]:
    config = plan.config
    spec = plan.methods[group.method]
    seed_everything(group.seed)
    reusable = not spec.cls.trains_on_auxiliary
    method = instances.get(group.method) if reusable else None
    if method is None:
        method = spec.cls(spec.config, pretrained=config.pretrained, device=config.device)
        display.step(f"{group.method}: building model", 0.0)
        method.setup()
        if reusable:
            instances[group.method] = method
    info: dict = {"weights": method.weights_info()}
    if group.shots > 0:
        adapter = plan.adapters[group.dataset]
        support = draw_support(adapter.select("train", group.category, 0), group.dataset, group.category, group.shots, group.seed)
        files = [s.key for s in support]
        store.append_manifest(
            {"dataset": group.dataset, "category": group.category, "shots": group.shots, "seed": group.seed, "files": files}
        )
        images = ImageSet(adapter, support, method.input_size, method.input_size, config.workers)
        method.fit(FitData("support", images.batches, len(images), group.dataset, group.category, group.shots, group.seed))
        info["support"] = files
    elif spec.cls.trains_on_auxiliary:
        info.update(_train_or_load(plan, group, store, method, display))
    else:
        method.fit(FitData("none", seed=group.seed))
    return method, info


def _train_or_load(plan: Plan, group: FitGroup, store: ResultStore, method: Method, display: RunDisplay) -> dict:
    config = plan.config
    aux = plan.auxiliaries[group.aux]
    samples = aux.select("test")
    key_fields = {
        "method": group.method,
        "config": plan.methods[group.method].config.config_hash(),
        "pretrained": method.pretrained_tag,
        "weights_sha256": method.weights_info().get("sha256"),
        "aux": group.aux,
        "aux_files": hashlib.sha256("\n".join(s.key for s in samples).encode()).hexdigest()[:16],
        "seed": group.seed,
    }
    key = hashlib.sha256(json.dumps(key_fields, sort_keys=True).encode()).hexdigest()[:20]
    path = store.state_path(key)
    if path.is_file():
        method.load_state_dict(torch.load(path, map_location=config.device, weights_only=True))
        return {"state": key, "state_reused": True}
    images = ImageSet(aux, samples, method.input_size, method.input_size, config.workers)
    started = time.perf_counter()

    def report(message: str, fraction: float) -> None:
        display.step(f"{group.method} training on {group.aux}: {message}", fraction)

    checkpoints = EpochCheckpoints(store.out / "cache" / "checkpoints" / key)
    features = FeatureCache(store.out / "cache" / "features")
    method.fit(FitData("auxiliary", images.batches, len(images), group.aux, None, 0, group.seed, report, checkpoints, features))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(method.state_dict(), tmp)
    tmp.replace(path)
    checkpoints.clear()
    return {"state": key, "state_reused": False, "train_seconds": round(time.perf_counter() - started, 2)}


# -- one cell ------------------------------------------------------------------------------------
def _run_cell(plan: Plan, store: ResultStore, method: Method, cell: Cell, fit_info: dict, display: RunDisplay) -> str:
    config = plan.config
    adapter = plan.adapters[cell.dataset]
    samples = adapter.select("test", cell.category)
    images = ImageSet(adapter, samples, method.input_size, config.eval_size, config.workers)
    started = time.perf_counter()
    accumulator = MetricAccumulator(adapter.metric_levels)
    pixel_level = "pixel" in adapter.metric_levels
    scores, small_maps, small_masks, labels, keys = [], [], [], [], []
    has_defect = False
    for loaded in images.iter_batches(config.batch_size):
        batch = Batch(
            image=loaded.batch.image,
            category=cell.category,
            image_path=loaded.batch.image_path,
            categories=loaded.batch.categories,
            load_original=loaded.batch.load_original,
        )
        with torch.inference_mode():
            prediction = method.predict(batch)
        score, amap = _checked(prediction.pred_score, prediction.anomaly_map, len(batch), cell, batch, config.eval_size)
        accumulator.update(score, loaded.labels, amap if pixel_level else None, loaded.masks if pixel_level else None)
        has_defect = has_defect or bool(loaded.masks.any())
        scores.append(score)
        labels.append(loaded.labels)
        small_maps.append(_downsample(amap, config.save_map_size).astype(np.float16))
        small_masks.append(np.packbits(_downsample(loaded.masks.astype(np.float32), config.save_map_size) > 0.5, axis=-1))
        keys.extend(s.key for s in loaded.samples)
        display.step(f"{cell.describe()}", len(keys) / max(len(samples), 1))
    pred_score, gt_label = np.concatenate(scores), np.concatenate(labels)
    levels = plan.levels_for(cell.dataset, gt_label, has_defect)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)  # levels that do not apply are dropped below
        computed = accumulator.compute() if levels else {}
    metrics = {name: value for name, value in computed.items() if METRICS[name].level in levels}
    wall = time.perf_counter() - started
    artifact = store.save_artifact(
        cell.cell_id,
        {
            "image_keys": np.array(keys),
            "pred_score": pred_score,
            "gt_label": gt_label,
            "anomaly_map": np.concatenate(small_maps),
            "gt_mask": np.concatenate(small_masks),
        },
    )
    store.put(_stored(plan, cell, "ok", metrics, _provenance(plan, cell, fit_info, wall, len(keys)), None, artifact))
    shown = "  ".join(f"{METRICS[k].label} {100 * v:.1f}" for k, v in metrics.items() if np.isfinite(v))
    return f"[green]✓[/] {cell.describe()}  {shown}  ({wall:.1f} s)"


def _checked(score: torch.Tensor, amap: torch.Tensor, size: int, cell: Cell, batch: Batch, eval_size: int):
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


def _downsample(array: np.ndarray, size: int) -> np.ndarray:
    if array.shape[-1] <= size:
        return array
    tensor = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))[:, None]
    return F.interpolate(tensor, size=(size, size), mode="area")[:, 0].numpy()


# -- bookkeeping ---------------------------------------------------------------------------------
def _provenance(plan: Plan, cell: Cell, fit_info: dict, wall: float, n_images: int) -> dict:
    device = plan.config.device
    return {
        "environment": environment(),
        "device": device_name(device),
        "wall_seconds": round(wall, 3),
        "images": n_images,
        "peak_memory": peak_memory_mb(device),
        "data_root": str(plan.adapters[cell.dataset].root),
        "protocol": plan.config.protocol,
        **fit_info,
    }


def _stored(plan: Plan, cell: Cell, status: str, metrics: dict, provenance: dict, error: str | None, artifact: str | None) -> StoredCell:
    spec = plan.methods[cell.method]
    adapter = plan.adapters[cell.dataset]
    return StoredCell(
        cell_id=cell.cell_id,
        method=cell.method,
        method_label=spec.label,
        config_hash=cell.config_hash,
        config_json=spec.config.to_json(),
        dataset=cell.dataset,
        dataset_label=adapter.title or cell.dataset,
        domain=adapter.domain,
        category=cell.category,
        shots=cell.shots,
        seed=cell.seed,
        aux=cell.aux,
        eval_size=cell.eval_size,
        pretrained=cell.pretrained,
        random_init=cell.pretrained == "none",
        status=status,
        metrics=metrics,
        provenance=provenance,
        error=error,
        artifact=artifact,
    )


def _record_failure(plan: Plan, store: ResultStore, cell: Cell, exc: BaseException, summary: RunSummary, display: RunDisplay) -> None:
    message = str(exc) if isinstance(exc, ZsadError) else f"{type(exc).__name__}: {exc}"
    provenance = {"environment": environment(), "traceback": traceback.format_exc(limit=8)}
    store.put(_stored(plan, cell, "failed", {}, provenance, message, None))
    summary.failed += 1
    summary.failures.append((cell, message))
    display.cell_finished("failed", f"[red]✗[/] {cell.describe()}: {message}")
