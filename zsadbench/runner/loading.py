"""Loading samples into batches: the pre-processing shared by every method.

Images are converted to RGB and resized to the method's square input size with bicubic interpolation,
aspect ratio not preserved (the AnomalyCLIP protocol), and handed over in ``[0,1]`` without
normalisation. Ground-truth masks are resized bilinearly and binarised at 0.5, at whichever size the
consumer needs (the method's input size for training, the evaluation size for metrics).
"""
from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image

from ..errors import DataError
from ..types import Batch, Sample
from zsadbench.datasets.base import DatasetAdapter


def resize_image(image: np.ndarray, size: int) -> np.ndarray:
    """``uint8 [H,W,3]`` → ``uint8 [size,size,3]`` with bicubic interpolation."""
    if image.shape[0] == size and image.shape[1] == size:
        return image
    return np.asarray(Image.fromarray(image).resize((size, size), Image.BICUBIC))


def resize_mask(mask: np.ndarray | None, size: int, shape: tuple[int, int], sample: Sample | None = None) -> np.ndarray:
    """``bool [H,W]`` (or ``None`` = no defect, of ``shape``) → ``bool [size,size]``: bilinear, then ``> 0.5``."""
    if mask is None:
        return np.zeros((size, size), dtype=bool)
    if mask.shape != shape:
        where = f"{sample.mask_path} ({mask.shape[1]}x{mask.shape[0]} px)" if sample else f"a {mask.shape} mask"
        image = f"its image {sample.image_path}" if sample else "its image"
        raise DataError(
            f"mask {where} does not match {image} ({shape[1]}x{shape[0]} px); "
            "masks must have their image's size (check that the mask belongs to that image)"
        )
    if mask.shape == (size, size):
        return mask.copy()
    resized = Image.fromarray(mask.astype(np.uint8) * 255).resize((size, size), Image.BILINEAR)
    return np.asarray(resized) > 127


@dataclass
class LoadedBatch:
    """A batch for the method plus the ground truth at the evaluation size."""

    batch: Batch
    samples: list[Sample]
    masks: np.ndarray
    labels: np.ndarray


class ImageSet:
    """The samples of one adapter, loaded lazily in batches by a pool of threads.

    Decoding, resizing and the conversion to a float tensor run in ``workers`` threads (PIL and torch release
    the GIL), which load ahead of the batch being used (see :class:`Prefetcher`); with
    ``pin_memory`` (for a CUDA device) batches come in page-locked memory, so the copy to the GPU is fast and
    may be asynchronous.
    """

    def __init__(
        self,
        adapter: DatasetAdapter,
        samples: list[Sample],
        input_size: int,
        mask_size: int,
        workers: int = 2,
        *,
        pin_memory: bool = False,
    ) -> None:
        self.adapter = adapter
        self.samples = list(samples)
        self.input_size = input_size
        self.mask_size = mask_size
        self.workers = max(1, workers)
        self.pin_memory = pin_memory

    def __len__(self) -> int:
        return len(self.samples)

    def _load(self, sample: Sample, into: torch.Tensor) -> np.ndarray:
        """Decode and resize one sample, writing its image into ``into`` ``[3,S,S]``; returns its mask."""
        image = self.adapter.load_image(sample)
        mask = self.adapter.load_mask(sample)
        # float32 division, as torch's div_ computes it, on this thread alone
        np.divide(resize_image(image, self.input_size).transpose(2, 0, 1), np.float32(255.0), out=into.numpy())
        return resize_mask(mask, self.mask_size, image.shape[:2], sample)

    def original(self, sample: Sample) -> torch.Tensor:
        """One sample at its file's resolution: float32 ``[3,H,W]`` RGB in ``[0,1]``."""
        return torch.from_numpy(np.array(self.adapter.load_image(sample), dtype=np.float32)).permute(2, 0, 1).div_(255.0)

    def iter_batches(self, batch_size: int, *, shuffle: bool = False, seed: int = 0) -> Iterator[LoadedBatch]:
        """Yield batches in index order (or shuffled with ``seed``), loading ahead while one is used."""
        order = np.arange(len(self.samples))
        if shuffle:
            order = np.random.default_rng(seed).permutation(order)
        with Prefetcher([self], batch_size, orders=[order]) as loads:
            yield from loads.batches(0)

    def batches(self, batch_size: int = 8, shuffle: bool = False, seed: int = 0) -> Iterator[Batch]:
        """Batches with ``gt_label`` and ``gt_mask`` (at ``mask_size``) filled in: the form ``FitData`` hands out."""
        for loaded in self.iter_batches(batch_size, shuffle=shuffle, seed=seed):
            yield loaded.batch

    def _assemble(self, samples: list[Sample], tensor: torch.Tensor, masks: list[np.ndarray]) -> LoadedBatch:
        masks = np.stack(masks)
        labels = np.array([s.gt_label for s in samples], dtype=np.int64)
        categories = tuple(s.category for s in samples)
        batch = Batch(
            image=tensor,
            category=categories[0] if len(set(categories)) == 1 else "object",
            image_path=tuple(str(s.image_path) for s in samples),
            gt_label=torch.from_numpy(labels),
            gt_mask=torch.from_numpy(masks),
            categories=categories,
            load_original=lambda index: self.original(samples[index]),
        )
        return LoadedBatch(batch=batch, samples=samples, masks=masks, labels=labels)


class Prefetcher:
    """The batches of several image sets, one set after another, from one pool of loader threads that keeps
    loading ahead across the boundary between two sets: the first batches of the next set load while the last
    ones of this set are used (a model, on a GPU especially, does not wait for each category's first batch).

    Up to ``max(2 × batch_size, 4 × workers)`` images are in flight. Each batch's tensor is allocated once and
    filled in place by the loaders, so no per-image tensors are stacked on the consuming thread. Sets are taken
    in order with :meth:`batches`; what was loaded for a set left unfinished (its cell failed) is dropped.
    """

    def __init__(self, sets: list[ImageSet], batch_size: int, *, orders: list[np.ndarray] | None = None) -> None:
        self.sets = list(sets)
        orders = orders if orders is not None else [np.arange(len(s)) for s in self.sets]
        self.chunks = [[order[i : i + batch_size] for i in range(0, len(order), batch_size)] for order in orders]
        workers = max([s.workers for s in self.sets] or [1])
        self.ahead = max(2 * batch_size, 4 * workers)
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="zsadbench-load")
        self._jobs = ((s, c, slot) for s, chunks in enumerate(self.chunks) for c in range(len(chunks))
                      for slot in range(len(chunks[c])))
        self._tensors: dict[tuple[int, int], torch.Tensor] = {}
        self._in_flight: deque[tuple[int, Future]] = deque()
        self._current = 0

    def _top_up(self) -> None:
        while len(self._in_flight) < self.ahead:
            job = next(self._jobs, None)
            if job is None:
                return
            s, c, slot = job
            if s < self._current:
                continue
            images = self.sets[s]
            if (s, c) not in self._tensors:
                size = images.input_size
                shape = (len(self.chunks[s][c]), 3, size, size)
                self._tensors[s, c] = torch.empty(shape, pin_memory=images.pin_memory)
            sample = images.samples[self.chunks[s][c][slot]]
            self._in_flight.append((s, self._pool.submit(images._load, sample, self._tensors[s, c][slot])))

    def batches(self, index: int) -> Iterator[LoadedBatch]:
        """The batches of set ``index`` (in the order given for it); call for the sets in increasing order."""
        if index < self._current:
            raise ValueError(f"set {index} was already passed (sets are taken in order; now at {self._current})")
        self._current = index
        while self._in_flight and self._in_flight[0][0] < index:
            self._in_flight.popleft()[1].cancel()
        self._tensors = {key: tensor for key, tensor in self._tensors.items() if key[0] >= index}
        images = self.sets[index]
        for c, chunk in enumerate(self.chunks[index]):
            self._top_up()
            masks = [self._in_flight.popleft()[1].result() for _ in chunk]
            self._top_up()
            yield images._assemble([images.samples[i] for i in chunk], self._tensors.pop((index, c)), masks)

    def close(self) -> None:
        """Stop the loader threads (those running finish their image)."""
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> "Prefetcher":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
