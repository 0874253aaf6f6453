"""The small data types that flow between datasets, methods and the runner.

Field names follow anomalib's convention: ``image``, ``gt_label``, ``gt_mask``, ``image_path`` on the way
in, ``pred_score`` and ``anomaly_map`` on the way out.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from .errors import DataError, MethodError

if TYPE_CHECKING:  # torch is imported where tensors are made, so commands that compute nothing never load it
    import torch

Split = Literal["train", "test"]


@dataclass(frozen=True)
class Sample:
    """One image of a dataset, as indexed by an adapter (no pixels loaded).

    ``crop`` is an optional ``(top, left, height, width)`` window of the file (used for datasets whose
    images are split into parts, e.g. SDD strips). ``mask_path`` is ``None`` for normal images and for
    datasets without pixel annotations.
    """

    image_path: Path
    category: str
    split: Split
    gt_label: int
    mask_path: Path | None = None
    defect_type: str = ""
    crop: tuple[int, int, int, int] | None = None

    def __post_init__(self) -> None:
        if self.gt_label not in (0, 1):
            raise DataError(f"{self.image_path}: gt_label must be 0 or 1, got {self.gt_label!r}")
        if self.split not in ("train", "test"):
            raise DataError(f"{self.image_path}: split must be 'train' or 'test', got {self.split!r}")

    @property
    def key(self) -> str:
        """A stable identifier of the sample within its dataset (path plus crop)."""
        suffix = "" if self.crop is None else "@" + ",".join(map(str, self.crop))
        return f"{self.image_path}{suffix}"


@dataclass(frozen=True)
class Batch:
    """A batch of images for a method.

    ``image`` is float32 ``[B,3,H,W]`` RGB in ``[0,1]`` at the method's input size, *not* normalised:
    each method applies its backbone's mean/std. ``gt_mask`` (bool ``[B,h,w]``) and ``gt_label`` (int64
    ``[B]``) are present for training data and absent at prediction time. ``categories`` names each image's
    category (auxiliary training batches mix categories; ``category`` is then ``"object"``), and
    :meth:`original` loads an image at its file's own resolution (for methods that tile at high resolution).
    """

    image: torch.Tensor
    category: str
    image_path: tuple[str, ...] = ()
    gt_label: torch.Tensor | None = None
    gt_mask: torch.Tensor | None = None
    categories: tuple[str, ...] = ()
    load_original: Callable[[int], torch.Tensor] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.image.ndim != 4 or self.image.shape[1] != 3:
            raise DataError(f"Batch.image must be [B,3,H,W], got {tuple(self.image.shape)}")
        if not self.categories:
            object.__setattr__(self, "categories", (self.category,) * len(self))
        elif len(self.categories) != len(self):
            raise DataError(f"Batch.categories has {len(self.categories)} names for {len(self)} images")

    def __len__(self) -> int:
        return int(self.image.shape[0])

    def original(self, index: int) -> torch.Tensor:
        """Image ``index`` at its original resolution: float32 ``[3,H,W]`` RGB in ``[0,1]``."""
        if self.load_original is None:
            raise DataError("this batch was built without access to its original images (load_original is None)")
        return self.load_original(index)


@dataclass(frozen=True)
class Prediction:
    """A method's output for one batch: ``pred_score`` float32 ``[B]``, ``anomaly_map`` float32 ``[B,H,W]``.

    ``stats`` holds optional counters (e.g. MoE expert usage) that the runner sums over a cell's batches and
    stores with the cell under ``provenance.method_stats``.
    """

    pred_score: torch.Tensor
    anomaly_map: torch.Tensor
    stats: dict[str, torch.Tensor] = field(default_factory=dict)

    def __post_init__(self) -> None:
        import torch

        if not isinstance(self.pred_score, torch.Tensor) or not isinstance(self.anomaly_map, torch.Tensor):
            raise MethodError(
                f"Prediction needs tensors, got pred_score {type(self.pred_score).__name__} and "
                f"anomaly_map {type(self.anomaly_map).__name__}"
            )
        if self.pred_score.ndim != 1:
            raise MethodError(f"pred_score must be [B], got {tuple(self.pred_score.shape)}")
        if self.anomaly_map.ndim != 3 or self.anomaly_map.shape[0] != self.pred_score.shape[0]:
            raise MethodError(
                f"anomaly_map must be [B,H,W] with B={self.pred_score.shape[0]}, "
                f"got {tuple(self.anomaly_map.shape)}"
            )
