"""Loading samples into batches: the pre-processing shared by every method.

Images are converted to RGB and resized to the method's square input size with bicubic interpolation,
aspect ratio not preserved (the AnomalyCLIP protocol), and handed over in ``[0,1]`` without
normalisation. Ground-truth masks are resized bilinearly and binarised at 0.5, at whichever size the
consumer needs (the method's input size for training, the evaluation size for metrics).
"""
from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
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
    """The samples of one adapter, loaded lazily in batches with a small thread pool."""

    def __init__(
        self,
        adapter: DatasetAdapter,
        samples: list[Sample],
        input_size: int,
        mask_size: int,
        workers: int = 2,
    ) -> None:
        self.adapter = adapter
        self.samples = list(samples)
        self.input_size = input_size
        self.mask_size = mask_size
        self.workers = max(1, workers)

    def __len__(self) -> int:
        return len(self.samples)

    def _load(self, sample: Sample) -> tuple[np.ndarray, np.ndarray]:
        image = self.adapter.load_image(sample)
        mask = self.adapter.load_mask(sample)
        return resize_image(image, self.input_size), resize_mask(mask, self.mask_size, image.shape[:2], sample)

    def original(self, sample: Sample) -> torch.Tensor:
        """One sample at its file's resolution: float32 ``[3,H,W]`` RGB in ``[0,1]``."""
        return torch.from_numpy(np.array(self.adapter.load_image(sample), dtype=np.float32)).permute(2, 0, 1).div_(255.0)

    def iter_batches(self, batch_size: int, *, shuffle: bool = False, seed: int = 0) -> Iterator[LoadedBatch]:
        """Yield batches in index order (or shuffled with ``seed``), loading the next batch while one is used."""
        order = np.arange(len(self.samples))
        if shuffle:
            order = np.random.default_rng(seed).permutation(order)
        chunks = [order[i : i + batch_size] for i in range(0, len(order), batch_size)]
        with ThreadPoolExecutor(self.workers) as pool:
            pending = pool.map(self._load, [self.samples[i] for i in chunks[0]]) if chunks else None
            for index, chunk in enumerate(chunks):
                loaded = list(pending)  # type: ignore[arg-type]
                if index + 1 < len(chunks):
                    pending = pool.map(self._load, [self.samples[i] for i in chunks[index + 1]])
                yield self._assemble([self.samples[i] for i in chunk], loaded)

    def batches(self, batch_size: int = 8, shuffle: bool = False, seed: int = 0) -> Iterator[Batch]:
        """Batches with ``gt_label`` and ``gt_mask`` (at ``mask_size``) filled in: the form ``FitData`` hands out."""
        for loaded in self.iter_batches(batch_size, shuffle=shuffle, seed=seed):
            yield loaded.batch

    def _assemble(self, samples: list[Sample], loaded: list[tuple[np.ndarray, np.ndarray]]) -> LoadedBatch:
        images = np.stack([image for image, _ in loaded])
        masks = np.stack([mask for _, mask in loaded])
        labels = np.array([s.gt_label for s in samples], dtype=np.int64)
        tensor = torch.from_numpy(images).permute(0, 3, 1, 2).float().div_(255.0)
        categories = tuple(s.category for s in samples)
        batch = Batch(
            image=tensor.contiguous(),
            category=categories[0] if len(set(categories)) == 1 else "object",
            image_path=tuple(str(s.image_path) for s in samples),
            gt_label=torch.from_numpy(labels),
            gt_mask=torch.from_numpy(masks),
            categories=categories,
            load_original=lambda index: self.original(samples[index]),
        )
        return LoadedBatch(batch=batch, samples=samples, masks=masks, labels=labels)
