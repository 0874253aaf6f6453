"""The efficiency measurements, one small function each, and :func:`measure_method`, which runs them on a method
variant built as ``zsadbench run`` builds it (the registry, ``--set``, and the demo configuration with
``--pretrained none``).

Definitions (also in the table's footnotes):

- **Params**: elements of every distinct parameter of the ``torch.nn.Module`` s the method holds in its attributes
  (directly or in lists, tuples and dicts) after ``fit``: frozen backbone, text tower and learned parts. Buffers and
  memory banks are not parameters.
- **Trainable**: elements of the floating-point tensors of ``state_dict()`` after ``fit``, the learned state a run
  caches and reloads: learned prompts and heads, and for few-shot memory methods (WinCLIP+, PatchCore, PaDiM,
  SPADE) the features they keep of the k support images. Integer tensors (indices, sizes) are not counted.
- **GFLOPs**: per image, :class:`torch.utils.flop_counter.FlopCounterMode` around one ``predict`` of a batch,
  divided by its size (2 FLOPs per multiply-add). Ops without a FLOP formula in torch (elementwise, softmax,
  normalisation, interpolation, ``torch.cdist``) and work outside torch (NumPy, SciPy, Numba) are not counted.
- **img/s**: batch size / median seconds of ``repeats`` ``predict`` calls after ``warmup`` calls, synchronised on
  CUDA.
- **Memory**: on CUDA, ``torch.cuda.max_memory_allocated`` over one ``predict`` call (weights, inputs,
  activations); on a CPU, the growth of the process's resident set over one call: the kernel's high-water mark
  (Linux ``VmHWM``, reset just before the call) minus the resident set then, after freed heap memory has been
  returned to the system (``malloc_trim``), so activations and temporaries, without the resident weights.
- **Train s/epoch**: seconds of ``fit`` / the sum of the config's epoch options (fields named ``epochs``,
  ``epochs_*``, ``*_epochs``), or of one fit for a method without them; zero-shot training fits on images of the
  auxiliary set's test split, few-shot methods on k support images of its first category.
"""
from __future__ import annotations

import ctypes
import dataclasses
import gc
import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from .. import registry
from ..config import MethodConfig
from ..errors import ConfigError, DataError
from ..machine import available_cpus
from ..method import FitData, Method, fit_kind, trains_then_adapts
from ..runner.loading import ImageSet
from ..runner.plan import RunConfig
from ..runner.planner import MethodSpec, Plan, _method_specs
from ..runner.worker import new_method, seed_everything
from ..types import Batch, Prediction
from .table import DeviceInfo, EfficiencyRow
from zsadbench.datasets.base import DatasetAdapter
from zsadbench.datasets.roots import resolve_root

Clock = Callable[[], float]
Step = Callable[[str], None]

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


@dataclass(frozen=True)
class Settings:
    """How to measure (the device, precision and threads are the :class:`RunConfig`'s): the larger batch, the
    timing discipline, the setting (``shots``: ``None`` for each method's own) and the training measurement."""

    batch: int = 8
    repeats: int = 5
    warmup: int = 2
    shots: int | None = None
    epochs: int | None = 1
    train_images: int = 8


# -- building ---------------------------------------------------------------------------------------------
def method_specs(config: RunConfig) -> tuple[dict[str, MethodSpec], list[str]]:
    """The method variants ``zsadbench run`` builds for ``config`` (``--set`` grids give several), and its notes
    (e.g. the demo configuration used with ``--pretrained none``)."""
    notes: list[str] = []
    return _method_specs(config, notes), notes


def training_adapter(name: str, data_root: Path | None) -> DatasetAdapter:
    """The dataset ``fit`` reads (indexed now, so a missing root fails before anything is measured)."""
    cls = registry.datasets().get(name)
    adapter = cls(resolve_root(name, data_root))
    if not adapter.samples:
        raise DataError(f"--train-data {name}: no images under {adapter.root}; pass --data-root DIR holding "
                        f"{name}/, or another --train-data")
    return adapter


def describe_device(device: str, precision: str, threads: int) -> DeviceInfo:
    """The GPU's name, or the CPU's model (``/proc/cpuinfo``, else what :mod:`platform` knows)."""
    dev = torch.device(device)
    if dev.type == "cuda":
        name = torch.cuda.get_device_name(dev)
    else:
        name = _cpu_model() or platform.processor() or platform.machine()
        name += f", {available_cpus()} CPUs"
    return DeviceInfo(name, dev.type, torch.__version__, precision, threads)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.partition(":")[2].strip()
    except OSError:
        pass
    return ""


def shots_for(cls: type[Method], requested: int | None) -> tuple[int, str]:
    """The shots to measure ``cls`` at and a note when ``requested`` does not apply: ``requested`` when the
    method takes it, else its own setting (zero-shot where it has one, else its smallest k)."""
    own = 0 if "zero-shot" in cls.settings else min(cls.shots or (1,))
    if requested is None or requested == own:
        return own, ""
    try:
        fit_kind(cls, requested)
    except ConfigError:
        name = getattr(cls, "name", cls.__name__)
        return own, f"{name} does not take {_setting(requested)}; measured {_setting(own)}"
    return requested, ""


def _setting(shots: int) -> str:
    return "zero-shot" if shots == 0 else f"{shots}-shot"


def epoch_options(config: MethodConfig) -> dict[str, int]:
    """The config's epoch counts: integer fields named ``epochs``, ``epochs_*`` or ``*_epochs``."""
    return {name: value for name, value in config.to_dict().items()
            if isinstance(value, int) and not isinstance(value, bool)
            and (name == "epochs" or name.startswith("epochs_") or name.endswith("_epochs"))}


def with_epochs(spec: MethodSpec, epochs: int | None, user_set: set[str]) -> MethodSpec:
    """``spec`` with every epoch option the user did not ``--set`` at ``epochs`` (``None``: as configured)."""
    if epochs is None:
        return spec
    changed = {name: epochs for name, value in epoch_options(spec.config).items() if name not in user_set and value}
    return dataclasses.replace(spec, config=spec.config.replace(**changed)) if changed else spec


# -- inputs -----------------------------------------------------------------------------------------------
def random_batch(size: int, count: int, category: str, *, seed: int = 0, pin: bool = False) -> Batch:
    """``count`` random images in ``[0,1]`` at ``size`` px, as the runner hands them to ``predict``."""
    image = torch.rand((count, 3, size, size), generator=torch.Generator().manual_seed(seed))
    if pin:
        image = image.pin_memory()
    return Batch(image=image, category=category, image_path=tuple(f"random-{i}.png" for i in range(count)),
                 load_original=image.__getitem__)


def spread(items: list, count: int) -> list:
    """``count`` items evenly spaced through ``items`` (all of them for ``count`` 0 or at least their number)."""
    if count <= 0 or count >= len(items):
        return list(items)
    return [items[i * len(items) // count] for i in range(count)]


def auxiliary_data(adapter: DatasetAdapter, size: int, count: int, workers: int) -> FitData:
    """What zero-shot training gets: ``count`` images of the test split (spread over its categories), with masks
    at the input size, loaded as the runner loads them."""
    images = ImageSet(adapter, spread(adapter.select("test"), count), size, size, workers)
    return FitData("auxiliary", images.batches, len(images), adapter.name)


def support_data(adapter: DatasetAdapter, category: str, size: int, shots: int, workers: int) -> FitData:
    """What a ``shots``-shot fit gets: the first ``shots`` normal training images of ``category``."""
    normal = adapter.select("train", category, 0)
    if len(normal) < shots:
        raise DataError(f"--train-data {adapter.name}/{category} has {len(normal)} normal training images, too few "
                        f"for {shots}-shot; pass smaller --shots or another --train-data")
    images = ImageSet(adapter, normal[:shots], size, size, workers)
    return FitData("support", images.batches, len(images), adapter.name, category, shots)


# -- measurements -------------------------------------------------------------------------------------------
def modules_of(method: Method) -> list[nn.Module]:
    """The torch modules ``method`` holds in its attributes, directly or in lists, tuples, sets and dicts."""
    found: list[nn.Module] = []
    pending: list[Any] = list(vars(method).values())
    seen: set[int] = set()
    while pending:
        value = pending.pop()
        if id(value) in seen:
            continue
        seen.add(id(value))
        if isinstance(value, nn.Module):
            found.append(value)
        elif isinstance(value, dict):
            pending.extend(value.values())
        elif isinstance(value, (list, tuple, set, frozenset)):
            pending.extend(value)
    return found


def count_parameters(method: Method) -> int:
    """Elements of every distinct parameter of the modules :func:`modules_of` finds (a shared module once)."""
    distinct = {id(p): p for module in modules_of(method) for p in module.parameters()}
    return sum(p.numel() for p in distinct.values())


def count_state(state: Any) -> int:
    """Elements of the floating-point tensors in a (nested) state dict."""
    if isinstance(state, torch.Tensor):
        return state.numel() if state.is_floating_point() else 0
    if isinstance(state, dict):
        return sum(count_state(v) for v in state.values())
    if isinstance(state, (list, tuple)):
        return sum(count_state(v) for v in state)
    return 0


def predict(method: Method, batch: Batch) -> Prediction:
    """One ``predict`` as the runner calls it (inference mode)."""
    with torch.inference_mode():
        return method.predict(batch)


def gflops_per_image(method: Method, batch: Batch) -> float:
    """GFLOPs per image that torch's FLOP counter sees in one ``predict`` of ``batch``."""
    # no_grad rather than inference mode: the counter's module tracker hooks the autograd graph of inputs that
    # require grad (learned prompts), which inference mode cannot build
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        method.predict(batch)
    return counter.get_total_flops() / len(batch) / 1e9


def median_seconds(call: Callable[[], object], repeats: int, warmup: int, *, sync: Callable[[], None] = lambda: None,
                   clock: Clock = time.perf_counter) -> float:
    """Median wall seconds of ``repeats`` calls after ``warmup`` untimed ones, ``sync`` before and after each
    timed call (``torch.cuda.synchronize`` on CUDA, so queued kernels are inside the measurement)."""
    for _ in range(warmup):
        call()
    times = []
    for _ in range(repeats):
        sync()
        start = clock()
        call()
        sync()
        times.append(clock() - start)
    return statistics.median(times)


def images_per_second(batch_size: int, seconds: float) -> float:
    """Throughput of a call that handles ``batch_size`` images in ``seconds``."""
    return batch_size / seconds


def peak_memory_mb(call: Callable[[], object], device: str) -> float | None:
    """Peak memory of one ``call`` in MiB: allocated CUDA memory on CUDA, resident-set growth on a CPU
    (``None`` where the platform does not say)."""
    dev = torch.device(device)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
        torch.cuda.reset_peak_memory_stats(dev)
        call()
        torch.cuda.synchronize(dev)
        return torch.cuda.max_memory_allocated(dev) / 2**20
    return host_peak_growth_mb(call)


def host_peak_growth_mb(call: Callable[[], object]) -> float | None:
    """The resident set's high-water mark during ``call`` minus the resident set before it, in MiB (Linux)."""
    gc.collect()
    _release_free_heap()
    before = _status_kb("VmRSS")
    try:
        _CLEAR_REFS.write_text("5")  # resets VmHWM to the current resident set
    except OSError:
        before = None
    call()
    peak = _status_kb("VmHWM")
    if before is None or peak is None:
        return None
    return max(0, peak - before) / 1024


def _status_kb(field: str) -> int | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return None


@lru_cache(maxsize=1)
def _malloc_trim() -> Callable[[int], int] | None:
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


def _release_free_heap() -> None:
    """Return freed heap pages to the system (glibc), so memory reused from earlier calls shows as growth."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


def fit_seconds(method: Method, data: FitData, clock: Clock = time.perf_counter,
                sync: Callable[[], None] = lambda: None) -> float:
    """Wall seconds of ``method.fit(data)``."""
    sync()
    start = clock()
    method.fit(data)
    sync()
    return clock() - start


# -- one method --------------------------------------------------------------------------------------------
def measure_method(config: RunConfig, spec: MethodSpec, settings: Settings, adapter: DatasetAdapter,
                   step: Step = lambda message: None, clock: Clock = time.perf_counter) -> EfficiencyRow:
    """Build ``spec`` as a run does, fit it, and measure it (see the module docstring). A failure ends the
    row's measurements: the row keeps what was measured before and the error."""
    row = EfficiencyRow(spec.key, spec.label)
    method = None
    try:
        shots, _ = shots_for(spec.cls, settings.shots)
        row.setting = _setting(shots)
        user_set = {key.rpartition(".")[2] for key, _ in config.overrides if key.rpartition(".")[0] in ("", spec.name)}
        spec = with_epochs(spec, settings.epochs, user_set)
        seed_everything(0, config.threads)
        step(f"{spec.key}: building")
        method = new_method(Plan(config, {spec.key: spec}, {}, {}, []), spec)
        size = row.input_size = method.input_size
        sync = _synchronizer(config.device)
        step(f"{spec.key}: fitting")
        category = adapter.categories()[0]
        row.train_seconds, row.train_per = _fit(method, spec, shots, adapter, category, config,
                                                settings.train_images, clock, sync)
        row.params, row.trainable = count_parameters(method), count_state(method.state_dict())
        cuda = torch.device(config.device).type == "cuda"
        one = random_batch(size, 1, category, pin=cuda)
        many = random_batch(size, settings.batch, category, seed=1, pin=cuda)
        step(f"{spec.key}: timing batch 1")
        row.throughput_1 = images_per_second(1, median_seconds(lambda: predict(method, one), settings.repeats,
                                                               settings.warmup, sync=sync, clock=clock))
        step(f"{spec.key}: counting FLOPs")
        row.gflops = gflops_per_image(method, one)  # after the warm-up: one-time work (cached text) is left out
        step(f"{spec.key}: timing batch {settings.batch}")
        row.throughput_n = images_per_second(settings.batch, median_seconds(
            lambda: predict(method, many), settings.repeats, settings.warmup, sync=sync, clock=clock))
        step(f"{spec.key}: peak memory")
        row.memory_1 = peak_memory_mb(lambda: predict(method, one), config.device)
        row.memory_n = peak_memory_mb(lambda: predict(method, many), config.device)
    except Exception as exc:  # noqa: BLE001 - a failing method fails its row; the others are still measured
        row.error = " ".join(f"{type(exc).__name__}: {exc}".split())
    finally:
        method = None  # free the model before the next one is built
        gc.collect()
        if torch.device(config.device).type == "cuda":
            torch.cuda.empty_cache()
    return row


def _synchronizer(device: str) -> Callable[[], None]:
    dev = torch.device(device)
    return (lambda: torch.cuda.synchronize(dev)) if dev.type == "cuda" else (lambda: None)


def _fit(method: Method, spec: MethodSpec, shots: int, adapter: DatasetAdapter, category: str, config: RunConfig,
         train_images: int, clock: Clock, sync: Callable[[], None]) -> tuple[float | None, str]:
    """Fit ``method`` in its setting; returns the training seconds per epoch (or per fit) and which, or
    ``(None, "")`` for a method that learns nothing. A few-shot method that first trains on the auxiliary set is
    timed on that training; its support fit follows, untimed."""
    kind = fit_kind(spec.cls, shots)
    size = method.input_size
    epochs = sum(epoch_options(spec.config).values())
    per = "epoch" if epochs else "fit"
    if kind == "auxiliary" or trains_then_adapts(spec.cls, shots):
        seconds = fit_seconds(method, auxiliary_data(adapter, size, train_images, config.workers), clock, sync)
        if kind == "support":
            method.fit(support_data(adapter, category, size, shots, config.workers))
        return seconds / max(epochs, 1), per
    if kind == "support":
        seconds = fit_seconds(method, support_data(adapter, category, size, shots, config.workers), clock, sync)
        return seconds / max(epochs, 1), per
    method.fit(FitData("none"))
    return None, ""
